//! The grammars of the `#[hype::remote]` defaults' values, checked at
//! compile time: quantities (with the runtime's own parser, compiled in
//! from `hype-runtime`), durations and GPU requests. Each check gives the
//! value or a message saying what is wrong with it; [`crate::args`] adds
//! the attribute's name and a span.

use crate::quantity;

/// The most GPUs one call may ask for, as `hype_runtime`'s `Gpu` allows.
pub const MAX_GPUS: u32 = 16;

/// A Kubernetes quantity that is not negative (`"2"`, `"750m"`, `"4Gi"`),
/// parsed as the runtime parses it.
pub fn quantity(text: &str) -> Result<(), String> {
    match quantity::parse(text) {
        Ok(q) if q.is_negative() => Err(format!("{text:?} is negative")),
        Ok(_) => Ok(()),
        Err(why) => Err(why),
    }
}

/// A duration as a whole number and a unit, `ms`, `s`, `m` or `h`
/// (`500ms`, `30s`, `10m`, `1h`), above zero; in milliseconds.
pub fn duration_millis(text: &str) -> Result<u64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "{text:?} is not a duration: write a whole number and a unit, `ms`, `s`, `m` or `h`, such as \"10m\""
            ));
        }
    };
    if number.is_empty() {
        return Err(format!(
            "{text:?} is not a duration: write a whole number before the unit, such as \"10m\""
        ));
    }
    let millis = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    if millis == 0 {
        return Err(format!("{text:?} is zero; a timeout must be above zero"));
    }
    Ok(millis)
}

/// A GPU request, `MODEL:COUNT` (`nvidia-l4:1`) or `COUNT` (`2`), with a
/// count from 1 to [`MAX_GPUS`] and a model that is a Kubernetes label value
/// (the GKE accelerator name).
pub fn gpu(text: &str) -> Result<(u32, Option<String>), String> {
    let (model, count) = match text.rsplit_once(':') {
        Some((model, count)) => (Some(model), count),
        None => (None, text),
    };
    let shape =
        || format!("{text:?} is not `MODEL:COUNT` or `COUNT`, such as \"nvidia-l4:1\" or \"2\"");
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(shape());
    }
    let count = match count.parse::<u32>() {
        Ok(n) if (1..=MAX_GPUS).contains(&n) => n,
        _ => {
            return Err(format!(
                "{text:?} asks for {count} GPUs; the count must be from 1 to {MAX_GPUS}"
            ));
        }
    };
    if let Some(model) = model {
        let inner_ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        let bytes = model.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 63
            && bytes.iter().all(|&b| inner_ok(b))
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric();
        if !valid {
            return Err(format!(
                "{text:?} has the GPU model {model:?}, which is not a Kubernetes label value (up to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit), such as \"nvidia-l4\""
            ));
        }
    }
    Ok((count, model.map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_the_runtimes() {
        for good in ["2", "750m", "4Gi", "0.5", "1e3", " 1G "] {
            assert_eq!(quantity(good), Ok(()), "{good}");
        }
        for bad in ["", "lots", "4GB", "1 Gi", "-1"] {
            assert!(quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration_millis("500ms"), Ok(500));
        assert_eq!(duration_millis("30s"), Ok(30_000));
        assert_eq!(duration_millis("10m"), Ok(600_000));
        assert_eq!(duration_millis("1h"), Ok(3_600_000));
        for bad in [
            "",
            "10",
            "m",
            "1.5h",
            "10 m",
            "10min",
            "-1s",
            "0s",
            "99999999999999999999h",
        ] {
            assert!(duration_millis(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gpus() {
        assert_eq!(gpu("nvidia-l4:1"), Ok((1, Some("nvidia-l4".to_owned()))));
        assert_eq!(gpu("16"), Ok((16, None)));
        for bad in [
            "",
            "0",
            "17",
            "nvidia-l4",
            "nvidia-l4:",
            ":1",
            "NVIDIA L4:1",
            "a:b:1",
            "l4:x",
        ] {
            assert!(gpu(bad).is_err(), "{bad}");
        }
    }
}
