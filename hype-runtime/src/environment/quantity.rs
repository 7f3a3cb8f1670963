//! Kubernetes resource quantities (`750m`, `512Mi`, `1G`, `2.5Gi`, `1e9`),
//! parsed exactly with integer arithmetic, and the numbers the Docker engine
//! takes: `NanoCpus` for cpu and bytes for memory. The same strings configure
//! a call on Kubernetes and in local Docker.
//!
//! The grammar is Kubernetes': an optional sign, decimal digits with at most
//! one `.` (`1.` and `.5` are numbers), then a suffix: nothing, a binary one
//! (`Ki` `Mi` `Gi` `Ti` `Pi` `Ei`), a decimal one (`n` `u` `m` `k` `M` `G`
//! `T` `P` `E`) or an exponent (`e3`, `E-2`, `e+6`). Whitespace around the
//! text is ignored, whitespace inside it is not.
//!
//! A [`Quantity`] is the exact value as written: `mantissa × 10^exponent`
//! with a 128-bit mantissa. Every decimal fraction and every binary suffix
//! (a power of two, hence a whole number) is exact in that form, so `0.1`,
//! `1.1Gi` and `123456789123456789` lose nothing, unlike in an `f64`. Values
//! beyond 2^127 − 1 in magnitude, and numbers with more significant digits
//! than the mantissa holds (about 38, fewer with a binary suffix), are
//! errors, never rounded or wrapped. Unlike the apiserver, which stores
//! amounts below `1n` as `1n`, nothing is rounded while parsing: the
//! conversions ([`nano_cpus`], [`memory_bytes`]) say how they round.

use std::cmp::Ordering;

/// The largest magnitude a [`Quantity`] holds: 2^127 − 1.
const MAX_MAGNITUDE: u128 = i128::MAX.unsigned_abs();

/// What a quantity looks like, for error messages.
const EXAMPLES: &str = "expected e.g. 500m, 2, 512Mi, 1G";

/// The exact value of a resource quantity in its base unit (cores, bytes):
/// `(-1)^negative × mantissa × 10^exponent`.
///
/// Always normalised, so every value has one representation: the mantissa
/// has no trailing decimal zeros, and zero is `0 × 10^0` and not negative.
/// The magnitude is at most 2^127 − 1. Ordering and equality compare the
/// values exactly (`1000m == 1`, `1Gi > 1G`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Quantity {
    /// Whether the value is below zero (never for zero itself).
    negative: bool,
    /// The significant digits, without trailing zeros (zero for zero).
    mantissa: u128,
    /// The power of ten the mantissa is scaled by.
    exponent: i64,
}

/// How [`Quantity::scaled`] turns a value into a whole number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rounding {
    /// To the nearest whole number, halves away from zero (`2.5` → 3,
    /// `-2.5` → -3).
    Nearest,
    /// Up, towards positive infinity (`2.1` → 3, `-2.9` → -2).
    Ceiling,
}

/// How a suffix scales the number before it.
#[derive(Clone, Copy, Debug)]
enum Scale {
    /// Times 2 to this power (`Ki` is 10, `Ei` 60).
    Binary(u32),
    /// Times 10 to this power (`m` is -3, `e6` 6).
    Decimal(i64),
}

impl Quantity {
    /// Zero.
    const ZERO: Quantity = Quantity {
        negative: false,
        mantissa: 0,
        exponent: 0,
    };

    /// Whether the value is below zero (`-0` is not).
    pub(crate) fn is_negative(&self) -> bool {
        self.negative
    }

    /// Whether the value is zero (`0`, `-0`, `0Gi`, `0.000`).
    pub(crate) fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The exact value in one canonical text: `0` for zero, else an
    /// optional `-`, the significant digits, `e` and the power of ten
    /// (`750m` is `75e-2`, `512Mi` is `536870912e0`). It parses to an equal
    /// quantity and is its own canonical text. (An exponent of -2^63
    /// cannot be written as such, so the digits move after a point.)
    pub(crate) fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".to_owned();
        }
        let sign = if self.negative { "-" } else { "" };
        let mantissa = self.mantissa;
        match self.exponent.checked_neg() {
            Some(_) => format!("{sign}{mantissa}e{}", self.exponent),
            None => {
                let digits = mantissa.to_string();
                let shifted = self.exponent + digits.len() as i64;
                format!("{sign}0.{digits}e{shifted}")
            }
        }
    }

    /// -1, 0 or 1, as the value is below, at or above zero.
    fn signum(&self) -> i8 {
        if self.mantissa == 0 {
            0
        } else if self.negative {
            -1
        } else {
            1
        }
    }

    /// The value times 10^`power_of_ten`, rounded to a whole number as
    /// `rounding` says: `scaled(9, Rounding::Nearest)` is nano-units,
    /// `scaled(0, Rounding::Ceiling)` whole units rounded up. `None` when
    /// the result does not fit in an `i128`.
    pub(crate) fn scaled(&self, power_of_ten: i64, rounding: Rounding) -> Option<i128> {
        if self.mantissa == 0 {
            return Some(0);
        }
        let exponent = self.exponent.checked_add(power_of_ten)?;
        let magnitude = if exponent >= 0 {
            let factor = 10u128.checked_pow(u32::try_from(exponent).ok()?)?;
            self.mantissa.checked_mul(factor)?
        } else {
            // Split into the whole part and how the dropped fraction
            // compares with a half.
            let divisor = u32::try_from(exponent.unsigned_abs())
                .ok()
                .and_then(|digits| 10u128.checked_pow(digits));
            let (whole, fraction, against_half) = match divisor {
                Some(divisor) => {
                    let rest = self.mantissa % divisor;
                    // rest < divisor, so `divisor - rest` cannot underflow,
                    // and rest > divisor - rest exactly when 2·rest > divisor.
                    (
                        self.mantissa / divisor,
                        rest != 0,
                        rest.cmp(&(divisor - rest)),
                    )
                }
                // 10^digits is beyond u128, so above twice any mantissa:
                // the whole value is a fraction below one half.
                None => (0, true, Ordering::Less),
            };
            let up = match rounding {
                Rounding::Nearest => against_half != Ordering::Less,
                Rounding::Ceiling => fraction && !self.negative,
            };
            // whole ≤ u128::MAX / 10, so adding one cannot overflow.
            whole + u128::from(up)
        };
        let magnitude = i128::try_from(magnitude).ok()?;
        Some(if self.negative { -magnitude } else { magnitude })
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.signum()
            .cmp(&other.signum())
            .then_with(|| match self.signum() {
                0 => Ordering::Equal,
                1 => compare_magnitudes(self, other),
                _ => compare_magnitudes(other, self),
            })
    }
}

/// Compares the magnitudes of two non-zero normalised quantities exactly.
fn compare_magnitudes(a: &Quantity, b: &Quantity) -> Ordering {
    // The order of magnitude: 10^(order - 1) ≤ |value| < 10^order.
    let order = |q: &Quantity| {
        i128::from(q.mantissa.checked_ilog10().unwrap_or(0)) + 1 + i128::from(q.exponent)
    };
    order(a).cmp(&order(b)).then_with(|| {
        // Same order, so the exponents differ by the difference in digit
        // counts, at most 38: align the one with the larger exponent.
        if a.exponent >= b.exponent {
            compare_shifted(a.mantissa, a.exponent.abs_diff(b.exponent), b.mantissa)
        } else {
            compare_shifted(b.mantissa, b.exponent.abs_diff(a.exponent), a.mantissa).reverse()
        }
    })
}

/// Compares `mantissa × 10^shift` with `other`; a product beyond u128 is
/// larger than any `other`.
fn compare_shifted(mantissa: u128, shift: u64, other: u128) -> Ordering {
    u32::try_from(shift)
        .ok()
        .and_then(|shift| 10u128.checked_pow(shift))
        .and_then(|factor| mantissa.checked_mul(factor))
        .map_or(Ordering::Greater, |shifted| shifted.cmp(&other))
}

/// Parses a quantity (`750m`, `512Mi`, `1.5`, `129e6`, `-1`) exactly, or
/// says why it is not one. Whitespace around the text is ignored; errors
/// quote the trimmed text.
pub(crate) fn parse(text: &str) -> Result<Quantity, String> {
    let text = text.trim();
    let not_a_quantity = || format!("{text:?} is not a quantity ({EXAMPLES})");
    let negative = text.starts_with('-');
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_len = unsigned
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    // Everything in `number` is ASCII, so `number_len` is a char boundary.
    let (number, suffix) = unsigned.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(not_a_quantity());
    }
    let scale = interpret_suffix(text, suffix)?;

    let out_of_range = || {
        format!(
            "{text:?} is out of range (expected a magnitude of at most 2^127 - 1 = {MAX_MAGNITUDE})"
        )
    };
    let exponent_out_of_range = || exponent_out_of_range(text);
    let too_precise = || {
        format!(
            "{text:?} has too many significant digits to hold exactly (expected at most 38, fewer with a binary suffix)"
        )
    };

    // The digits of `whole` then `fraction`, as one integer, times
    // 10^-fraction.len(). Trailing zeros go into the exponent rather than
    // the mantissa, so `1000…000e-40` does not overflow.
    let fraction_zeros = fraction.len() - fraction.trim_end_matches('0').len();
    let trailing_zeros = if fraction_zeros == fraction.len() {
        fraction_zeros + (whole.len() - whole.trim_end_matches('0').len())
    } else {
        fraction_zeros
    };
    let significant = whole.len() + fraction.len() - trailing_zeros;
    let mut mantissa: Option<u128> = Some(0);
    for digit in whole.bytes().chain(fraction.bytes()).take(significant) {
        mantissa = mantissa
            .and_then(|m| m.checked_mul(10))
            .and_then(|m| m.checked_add(u128::from(digit - b'0')));
    }
    if mantissa == Some(0) {
        return Ok(Quantity::ZERO);
    }
    let decimal_power = match scale {
        Scale::Decimal(power) => power,
        Scale::Binary(_) => 0,
    };
    let exponent = i64::try_from(trailing_zeros)
        .ok()
        .zip(i64::try_from(fraction.len()).ok())
        .and_then(|(zeros, places)| zeros.checked_sub(places))
        .and_then(|e| e.checked_add(decimal_power))
        .ok_or_else(exponent_out_of_range)?;
    // A mantissa beyond u128 is a magnitude beyond 2^127 when nothing
    // divides it (exponent ≥ 0); otherwise the number is just too precise.
    let overflow = || {
        if exponent >= 0 {
            out_of_range()
        } else {
            too_precise()
        }
    };
    let mut mantissa = mantissa.ok_or_else(overflow)?;
    let mut exponent = exponent;
    if let Scale::Binary(power) = scale {
        mantissa = mantissa.checked_mul(1u128 << power).ok_or_else(overflow)?;
        // 5 × 2^10 = 5120: a power of two can bring back trailing zeros.
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exponent = exponent.checked_add(1).ok_or_else(out_of_range)?;
        }
    }
    let in_range = exponent < 0
        || u32::try_from(exponent)
            .ok()
            .and_then(|e| 10u128.checked_pow(e))
            .and_then(|factor| mantissa.checked_mul(factor))
            .is_some_and(|magnitude| magnitude <= MAX_MAGNITUDE);
    // With exponent < 0 the magnitude is at most u128::MAX / 10, below 2^127.
    if !in_range {
        return Err(out_of_range());
    }
    Ok(Quantity {
        negative,
        mantissa,
        exponent,
    })
}

/// How `suffix` scales the number before it; `text` is the whole quantity,
/// for errors.
fn interpret_suffix(text: &str, suffix: &str) -> Result<Scale, String> {
    Ok(match suffix {
        "" => Scale::Decimal(0),
        "Ki" => Scale::Binary(10),
        "Mi" => Scale::Binary(20),
        "Gi" => Scale::Binary(30),
        "Ti" => Scale::Binary(40),
        "Pi" => Scale::Binary(50),
        "Ei" => Scale::Binary(60),
        "n" => Scale::Decimal(-9),
        "u" => Scale::Decimal(-6),
        "m" => Scale::Decimal(-3),
        "k" => Scale::Decimal(3),
        "M" => Scale::Decimal(6),
        "G" => Scale::Decimal(9),
        "T" => Scale::Decimal(12),
        "P" => Scale::Decimal(15),
        // `E` alone is exa; `E` followed by anything is an exponent.
        "E" => Scale::Decimal(18),
        _ if suffix.starts_with(['e', 'E']) => Scale::Decimal(exponent(text, &suffix[1..])?),
        _ => {
            return Err(format!(
                "{text:?} has an unknown suffix {suffix:?} (expected one of Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent)"
            ));
        }
    })
}

/// The power of ten in an exponent suffix after its `e` or `E`: an optional
/// sign and at least one digit (`3`, `-2`, `+06`).
fn exponent(text: &str, power: &str) -> Result<i64, String> {
    let malformed = || {
        format!(
            "{text:?} has a malformed exponent (expected e or E then a whole number, e.g. 1e3, 5E-1)"
        )
    };
    let negative = power.starts_with('-');
    let digits = power.strip_prefix(['+', '-']).unwrap_or(power);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let mut value: i64 = 0;
    for digit in digits.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(digit - b'0')))
            .ok_or_else(|| exponent_out_of_range(text))?;
    }
    Ok(if negative { -value } else { value })
}

/// The error for an exponent whose arithmetic overflows an `i64`.
fn exponent_out_of_range(text: &str) -> String {
    format!("{text:?} has an exponent out of range (expected an exponent of at most 18 digits)")
}

/// A cpu quantity as the engine's `NanoCpus` (`750m` → 750 000 000),
/// rounded to the nearest nanocpu (halves up); it must be at least one.
pub(crate) fn nano_cpus(text: &str) -> Result<i64, String> {
    let quantity = parse(text)?;
    let text = text.trim();
    if quantity.is_negative() || quantity.is_zero() {
        return Err(format!(
            "cpu {text:?} must be more than zero (at least 1n, a billionth of a core)"
        ));
    }
    match quantity.scaled(9, Rounding::Nearest).map(i64::try_from) {
        Some(Ok(nanos)) if nanos >= 1 => Ok(nanos),
        Some(Ok(_)) => Err(format!(
            "cpu {text:?} rounds to zero nanocpus: it must be more than zero (at least 0.5n)"
        )),
        _ => Err(format!(
            "cpu {text:?} is too large (expected at most {}n, about 9.2 billion cores)",
            i64::MAX
        )),
    }
}

/// A memory quantity in bytes (`512Mi` → 536 870 912), rounded up to a
/// whole byte; it must be at least one and at most `i64::MAX`.
pub(crate) fn memory_bytes(text: &str) -> Result<i64, String> {
    let quantity = parse(text)?;
    let text = text.trim();
    if quantity.is_negative() || quantity.is_zero() {
        return Err(format!(
            "memory {text:?} must be more than zero (at least 1 byte)"
        ));
    }
    // Rounded up, a positive value is at least one byte.
    quantity
        .scaled(0, Rounding::Ceiling)
        .and_then(|bytes| i64::try_from(bytes).ok())
        .ok_or_else(|| {
            format!(
                "memory {text:?} is too large (expected at most {} bytes, one byte under 8Ei)",
                i64::MAX
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a quantity that must parse.
    fn q(text: &str) -> Quantity {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    // The assertions of the f64 parser this one replaces.

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

    // Beyond the old tests.

    #[test]
    fn error_messages_say_what_was_expected() {
        assert_eq!(
            parse("1Gb").unwrap_err(),
            r#""1Gb" has an unknown suffix "Gb" (expected one of Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent)"#
        );
        assert_eq!(
            parse("lots").unwrap_err(),
            r#""lots" is not a quantity (expected e.g. 500m, 2, 512Mi, 1G)"#
        );
        assert_eq!(
            parse(" lots\n").unwrap_err(),
            r#""lots" is not a quantity (expected e.g. 500m, 2, 512Mi, 1G)"#
        );
        assert_eq!(
            parse("12 Mi").unwrap_err(),
            r#""12 Mi" has an unknown suffix " Mi" (expected one of Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent)"#
        );
        for malformed in ["1e", "1ex", "1e+", "1e-", "1e3.5", "1E+-3", "1ee3", "1e 3"] {
            let err = parse(malformed).unwrap_err();
            assert!(err.contains("malformed exponent"), "{malformed}: {err}");
            assert!(
                err.contains(&format!("{malformed:?}")),
                "{malformed}: {err}"
            );
        }
        for not_a_number in [
            "", " ", ".", "+", "-", "--1", "+-1", "-+1", "Mi", "lots", "1.2.3Gi", "..5", "1..",
            "Ki1", "e3", "٣",
        ] {
            let err = parse(not_a_number).unwrap_err();
            assert!(err.contains("is not a quantity"), "{not_a_number}: {err}");
        }
        for unknown in [
            "1K", "1KI", "1ki", "1mi", "1Kib", "1Ki5", "0x10", "1_000", "1 k", "1i", "1,5", "1µ",
            "1kk", "1mm",
        ] {
            let err = parse(unknown).unwrap_err();
            assert!(err.contains("unknown suffix"), "{unknown}: {err}");
        }
        // Outer whitespace is trimmed.
        assert_eq!(parse("1k "), Ok(q("1000")));
        assert_eq!(
            nano_cpus(" 0 ").unwrap_err(),
            r#"cpu "0" must be more than zero (at least 1n, a billionth of a core)"#
        );
        assert_eq!(
            memory_bytes("-1Mi").unwrap_err(),
            r#"memory "-1Mi" must be more than zero (at least 1 byte)"#
        );
    }

    #[test]
    fn grammar() {
        assert_eq!(q("1."), q("1"));
        assert_eq!(q(".5"), q("0.5"));
        assert_eq!(q("+.5"), q("500m"));
        assert_eq!(q("-.5"), q("-500m"));
        assert_eq!(q("+1"), q("1"));
        assert_eq!(q("007"), q("7"));
        assert_eq!(q("1.e3"), q("1k"));
        assert_eq!(q("1e+3"), q("1k"));
        assert_eq!(q("1e03"), q("1k"));
        assert_eq!(q("1E3"), q("1e3"));
        assert_eq!(q("1E-2"), q("10m"));
        assert_eq!(q("1E"), q("1e18"));
        assert_eq!(q("\t2Gi \n"), q("2Gi"));
        assert_eq!(q("0"), Quantity::ZERO);
        assert_eq!(q("-0"), q("0"));
        assert_eq!(q("0.000Gi"), q("0"));
        assert_eq!(q("0e999"), q("0"));
        assert!(!q("-0").is_negative());
        assert!(q("-0").is_zero());
        assert!(q("-1n").is_negative());
        assert!(!q("1n").is_negative());
        assert!(!q("1n").is_zero());
    }

    #[test]
    fn suffixes_are_exact() {
        let cases: [(&str, i128); 19] = [
            ("1n", 1),
            ("1u", 1_000),
            ("1m", 1_000_000),
            ("1", 1_000_000_000),
            ("1k", 1_000_000_000_000),
            ("1M", 10i128.pow(15)),
            ("1G", 10i128.pow(18)),
            ("1T", 10i128.pow(21)),
            ("1P", 10i128.pow(24)),
            ("1E", 10i128.pow(27)),
            ("1Ki", 1024 * 10i128.pow(9)),
            ("1Mi", (1 << 20) * 10i128.pow(9)),
            ("1Gi", (1 << 30) * 10i128.pow(9)),
            ("1Ti", (1 << 40) * 10i128.pow(9)),
            ("1Pi", (1 << 50) * 10i128.pow(9)),
            ("1Ei", (1 << 60) * 10i128.pow(9)),
            ("1e3", 10i128.pow(12)),
            ("129e6", 129 * 10i128.pow(15)),
            ("1e-1", 100_000_000),
        ];
        for (text, nanos) in cases {
            assert_eq!(q(text).scaled(9, Rounding::Nearest), Some(nanos), "{text}");
            assert_eq!(
                q(&format!("-{text}")).scaled(9, Rounding::Nearest),
                Some(-nanos),
                "{text}"
            );
        }
    }

    #[test]
    fn exact_where_f64_is_not() {
        assert_eq!(nano_cpus("100m"), Ok(100_000_000));
        assert_eq!(nano_cpus("0.1"), Ok(100_000_000));
        assert_eq!(nano_cpus("0.3"), Ok(300_000_000));
        assert_eq!(nano_cpus("2.675"), Ok(2_675_000_000));
        // ceil(1.1 × 2^30), computed with integers: 1181116006.4 → 1181116007.
        let expected = (11 * (1i64 << 30) + 9) / 10;
        assert_eq!(expected, 1_181_116_007);
        assert_eq!(memory_bytes("1.1Gi"), Ok(expected));
        // As an f64 this is 123456789123456784.
        assert_eq!(
            memory_bytes("123456789123456789"),
            Ok(123_456_789_123_456_789)
        );
        assert_eq!(memory_bytes("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(memory_bytes("9223372036854775.807k"), Ok(i64::MAX));
        assert!(
            memory_bytes("9223372036854775808")
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(nano_cpus("9223372036.854775807"), Ok(i64::MAX));
        assert_eq!(memory_bytes("0.5Ki"), Ok(512));
        assert_eq!(memory_bytes("0.9Gi"), Ok(966_367_642));
        assert_eq!(memory_bytes("1Ei"), Ok(1 << 60));
        assert_eq!(memory_bytes("7.5Ei"), Ok(15 << 59));
        // 1.000000001 would be 1.0000000010000000827 as an f64.
        assert_eq!(memory_bytes("1.000000001"), Ok(2));
        assert_eq!(q("0.1"), q("100m"));
        assert!(q("0.30000000000000004") > q("0.3"));
        assert!(q("123456789123456789") > q("123456789123456788"));
    }

    #[test]
    fn rounding() {
        // cpu: to the nearest nanocpu, halves away from zero.
        assert_eq!(nano_cpus("0.5n"), Ok(1));
        assert_eq!(nano_cpus("1.5n"), Ok(2));
        assert_eq!(nano_cpus("2.5n"), Ok(3));
        assert_eq!(nano_cpus("2.4999n"), Ok(2));
        assert_eq!(nano_cpus("1.0000000004"), Ok(1_000_000_000));
        assert_eq!(nano_cpus("1.0000000005"), Ok(1_000_000_001));
        let err = nano_cpus("0.4n").unwrap_err();
        assert!(
            err.contains("must be more than zero") && err.contains("\"0.4n\""),
            "{err}"
        );
        assert!(
            nano_cpus("1e-400")
                .unwrap_err()
                .contains("must be more than zero")
        );
        // memory: up to a whole byte.
        assert_eq!(memory_bytes("1m"), Ok(1));
        assert_eq!(memory_bytes("0.1"), Ok(1));
        assert_eq!(memory_bytes("1e-400"), Ok(1));
        assert_eq!(memory_bytes("1.5"), Ok(2));
        assert_eq!(memory_bytes("2"), Ok(2));
        assert!(
            memory_bytes("-0.5")
                .unwrap_err()
                .contains("must be more than zero")
        );
        assert!(
            memory_bytes("0")
                .unwrap_err()
                .contains("must be more than zero")
        );
        // Both directions of both modes, on negatives too.
        assert_eq!(q("-2.5").scaled(0, Rounding::Nearest), Some(-3));
        assert_eq!(q("-2.4").scaled(0, Rounding::Nearest), Some(-2));
        assert_eq!(q("-2.9").scaled(0, Rounding::Ceiling), Some(-2));
        assert_eq!(q("2.1").scaled(0, Rounding::Ceiling), Some(3));
        assert_eq!(q("-1e-400").scaled(0, Rounding::Ceiling), Some(0));
        assert_eq!(q("1e-400").scaled(0, Rounding::Nearest), Some(0));
        assert_eq!(q("1e-400").scaled(400, Rounding::Nearest), Some(1));
        assert_eq!(q("5e-39").scaled(38, Rounding::Nearest), Some(1));
        assert_eq!(q("4e-39").scaled(38, Rounding::Nearest), Some(0));
        assert_eq!(q("1Ki").scaled(-3, Rounding::Ceiling), Some(2));
        assert_eq!(q("1").scaled(i64::MAX, Rounding::Ceiling), None);
        assert_eq!(q("1").scaled(i64::MIN, Rounding::Ceiling), Some(1));
        assert_eq!(q("1e30").scaled(9, Rounding::Nearest), None);
    }

    #[test]
    fn overflow_is_an_error() {
        for (text, why) in [
            ("99999999999999999999999Ei", "out of range"),
            ("1e400", "out of range"),
            ("1e39", "out of range"),
            ("-1e39", "out of range"),
            ("0.1e40", "out of range"),
            ("1e99999999999999999999", "exponent out of range"),
            ("1e-99999999999999999999", "exponent out of range"),
            ("1e9223372036854775807", "out of range"),
            ("0.01e-9223372036854775807", "exponent out of range"),
            ("170141183460469231731687303715884105728", "out of range"),
            ("-170141183460469231731687303715884105728", "out of range"),
            ("340282366920938463463374607431768211456", "out of range"),
            (
                "9999999999999999999999999999999999999999999999",
                "out of range",
            ),
            (
                "0.1234567890123456789012345678901234567891",
                "too many significant digits",
            ),
            ("0.1234567890123456789012Ei", "too many significant digits"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains(&format!("{text:?}")), "{text}: {err}");
        }
        assert_eq!(
            q("170141183460469231731687303715884105727").scaled(0, Rounding::Ceiling),
            Some(i128::MAX)
        );
        assert_eq!(
            q("-170141183460469231731687303715884105727").scaled(0, Rounding::Ceiling),
            Some(-i128::MAX)
        );
        assert_eq!(q("1e38"), q(&format!("1{}", "0".repeat(38))));
        assert_eq!(q("0.1e39"), q("1e38"));
        assert_eq!(q(&format!("1{}e-10", "0".repeat(47))), q("1e37"));
        assert_eq!(q(&format!("0.{}1e50", "0".repeat(60))), q("1e-11"));
        assert_eq!(
            q("0.12345678901234567890123456789012345678"),
            q("12345678901234567890123456789012345678e-38")
        );
        assert_eq!(q("1e-9223372036854775807"), q("1e-9223372036854775807"));
        assert!(q("1e-9223372036854775807") > q("0"));
        assert!(memory_bytes("8Ei").unwrap_err().contains("too large"));
        assert!(memory_bytes("1e19").unwrap_err().contains("too large"));
        assert!(memory_bytes("1e38").unwrap_err().contains("too large"));
        assert!(
            nano_cpus("9223372036.854775808")
                .unwrap_err()
                .contains("too large")
        );
        assert!(nano_cpus("1e30").unwrap_err().contains("too large"));
        assert!(nano_cpus("1e38").unwrap_err().contains("too large"));
        assert!(nano_cpus("-1e38").unwrap_err().contains("more than zero"));
    }

    #[test]
    fn ordering() {
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("1000m"), q("1"));
        assert_eq!(q("1000m").cmp(&q("1")), Ordering::Equal);
        assert_eq!(q("1Ki"), q("1.024k"));
        assert_eq!(q("0.5Gi"), q("512Mi"));
        assert_eq!(q("1.5Gi"), q("1536Mi"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("1E3"), q("1e3"));
        assert_eq!(q("1e-9"), q("1n"));
        assert!(q("-1") < q("0"));
        assert!(q("0") < q("1e-400"));
        assert!(q("1e-400") < q("1n"));
        assert!(q("-2") < q("-1"));
        assert!(q("-1Gi") < q("-1G"));
        assert!(q("1.5") < q("1500000001n"));
        assert!(q("1.5") > q("1499999999n"));
        assert!(q("999m") < q("1"));
        assert!(q("10") > q("9.99999999999999999999999999999999999"));
        let nines = "9".repeat(38);
        assert!(q("1e38") > q(&nines));
        assert!(q("1e37") < q(&nines));
        assert!(q(&format!("{nines}e-38")) < q("1"));
        assert!(q(&format!("{nines}e-39")) > q("0.0999"));
        assert!(q("170141183460469231731687303715884105727") > q("1.7e38"));
        let mut sorted: Vec<Quantity> = ["1Gi", "-1", "1G", "0", "500m", "1e-400", "-2Ki", "1"]
            .into_iter()
            .map(q)
            .collect();
        sorted.sort();
        let expected: Vec<Quantity> = ["-2Ki", "-1", "0", "1e-400", "500m", "1", "1G", "1Gi"]
            .into_iter()
            .map(q)
            .collect();
        assert_eq!(sorted, expected);
        // request <= limit, as a runner checks it.
        assert!(q("500m") <= q("1"));
        assert!(q("1") <= q("1000m"));
        assert!(q("1001m") > q("1"));
    }

    #[test]
    fn ordering_and_equality_agree_with_exact_nano_values() {
        let texts = [
            "-99", "-12", "-1Ki", "-1", "-500m", "-1n", "0", "-0", "0Gi", "1n", "999n", "1u",
            "250m", "3e-1", "500m", ".5", "1", "1000m", "2", "9", "10", "12", "20", "99", "1k",
            "1Ki", "1024", "1.5Ki", "1M", "1Mi", "1G", "1Gi",
        ];
        for a in texts {
            for b in texts {
                let (qa, qb) = (q(a), q(b));
                let nanos = |x: Quantity| x.scaled(9, Rounding::Nearest).unwrap();
                let expected = nanos(qa).cmp(&nanos(qb));
                assert_eq!(qa.cmp(&qb), expected, "{a} cmp {b}");
                assert_eq!(qa.partial_cmp(&qb), Some(expected), "{a} partial_cmp {b}");
                assert_eq!(qa == qb, expected == Ordering::Equal, "{a} == {b}");
            }
        }
        assert_ne!(q("1"), q("2"));
        assert_ne!(q("1"), q("-1"));
        assert_ne!(q("1Gi"), q("1G"));
    }

    #[test]
    fn values_are_normalised() {
        let parts = |text: &str| {
            let x = q(text);
            (x.negative, x.mantissa, x.exponent)
        };
        // A binary suffix can bring back trailing zeros: 5 × 2^10 = 5120.
        assert_eq!(parts("5Ki"), (false, 512, 1));
        assert_eq!(parts("10Ki"), (false, 1024, 1));
        assert_eq!(parts("100Mi"), (false, 1_048_576, 2));
        assert_eq!(parts("0.5Ki"), (false, 512, 0));
        assert_eq!(parts("1Ki"), (false, 1024, 0));
        assert_eq!(parts("-2.50k"), (true, 25, 2));
        assert_eq!(parts("1000"), (false, 1, 3));
        assert_eq!(parts("1.500"), (false, 15, -1));
        assert_eq!(parts("0.000"), (false, 0, 0));
        assert_eq!(parts("-0Ki"), (false, 0, 0));
    }
}
