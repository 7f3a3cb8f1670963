//! Kubernetes resource quantities (`750m`, `512Mi`, `1G`, `2.5Gi`, `1e9`)
//! turned into the numbers the Docker engine takes: `NanoCpus` for cpu and
//! bytes for memory. The same strings configure a call on Kubernetes and in
//! local Docker.

/// The value of a quantity in its base unit (cores, bytes), or why it is
/// not one. Accepts the Kubernetes forms: a decimal number with an optional
/// binary suffix (`Ki` `Mi` `Gi` `Ti` `Pi` `Ei`), decimal suffix (`n` `u`
/// `m` `k` `M` `G` `T` `P` `E`) or exponent (`e3`, `E-2`).
pub fn parse(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let digits = number.strip_prefix(['+', '-']).unwrap_or(number);
    let well_formed = !digits.is_empty()
        && digits != "."
        && digits.matches('.').count() <= 1
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !well_formed {
        return Err(format!(
            "{text:?} is not a quantity (expected e.g. 500m, 2, 512Mi, 1G)"
        ));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a quantity"))?;
    let multiplier = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..]
                .parse()
                .map_err(|_| format!("{text:?} has a malformed exponent"))?;
            10f64.powi(power)
        }
        other => {
            return Err(format!(
                "{text:?} has an unknown suffix {other:?} (expected one of Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent)"
            ));
        }
    };
    Ok(value * multiplier)
}

/// A cpu quantity as the engine's `NanoCpus` (`750m` → 750 000 000).
pub fn nano_cpus(text: &str) -> Result<i64, String> {
    let cores = parse(text)?;
    let nanos = (cores * 1e9).round();
    if !(nanos >= 1.0 && nanos <= i64::MAX as f64) {
        return Err(format!("cpu {text:?} must be more than zero"));
    }
    Ok(nanos as i64)
}

/// A memory quantity in bytes (`512Mi` → 536 870 912), rounded up.
pub fn memory_bytes(text: &str) -> Result<i64, String> {
    let bytes = parse(text)?.ceil();
    if !(bytes >= 1.0 && bytes <= i64::MAX as f64) {
        return Err(format!("memory {text:?} must be more than zero"));
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(nano_cpus("750m"), Ok(750_000_000));
        assert_eq!(nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(nano_cpus("0.5"), Ok(500_000_000));
        assert_eq!(nano_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(nano_cpus("100m"), Ok(100_000_000));
        assert_eq!(nano_cpus("1e-1"), Ok(100_000_000));
        assert!(nano_cpus("0").is_err());
        assert!(nano_cpus("-1").is_err());
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(memory_bytes("512Mi"), Ok(512 * 1024 * 1024));
        assert_eq!(memory_bytes("2Gi"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(memory_bytes("128974848"), Ok(128_974_848));
        assert_eq!(memory_bytes("129e6"), Ok(129_000_000));
        assert_eq!(memory_bytes("1.5Gi"), Ok(1_610_612_736));
        assert_eq!(memory_bytes("32Mi"), Ok(33_554_432));
        assert_eq!(memory_bytes(" 1k "), Ok(1000));
    }

    #[test]
    fn invalid_quantities_say_why() {
        for bad in [
            "", "Mi", "lots", "1.2.3Gi", "12 Mi", "1Gb", "1e", "1ex", ".", "--1",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(&format!("{:?}", bad.trim())), "{bad}: {err}");
        }
        assert!(memory_bytes("0Mi").unwrap_err().contains("more than zero"));
    }
}
