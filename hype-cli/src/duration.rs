//! Durations as the `hype` command reads and writes them: a whole number
//! and one unit, `30s`, `10m`, `2h`, `7d`.

use std::time::Duration;

/// The forms [`parse`] accepts, for error messages.
pub const FORMS: &str = "a whole number and a unit: 30s, 10m, 2h or 7d";

/// Reads `30s`, `10m`, `2h`, `7d` (seconds, minutes, hours, days). Anything
/// else, or a duration too long to count, is an error naming the accepted
/// forms (clap adds the flag).
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration: write {FORMS}");
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(bad());
    }
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(bad()),
    };
    let count: u64 = number.parse().map_err(|_| bad())?;
    count
        .checked_mul(seconds_per)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long a duration: write {FORMS}"))
}

/// Writes a duration the way [`parse`] reads it, in its largest whole unit
/// below the next (`45s`, `14m`, `3h`, `2d`), rounded down.
pub fn format(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 60 * 60 => format!("{}m", s / 60),
        s if s < 48 * 60 * 60 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_units_are_read() {
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
    }

    #[test]
    fn anything_else_names_the_accepted_forms() {
        for bad in [
            "", "10", "m", "10x", "1.5h", "-1s", "10 m", "10ms", "1h30m", "10M", "ten",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("30s, 10m, 2h or 7d"), "{bad:?}: {err}");
        }
        let err = parse("99999999999999999999d").unwrap_err();
        assert!(err.contains("30s, 10m"), "{err}");
        let err = parse("999999999999999999d").unwrap_err();
        assert!(err.contains("too long"), "{err}");
    }

    #[test]
    fn durations_are_written_in_their_largest_unit() {
        assert_eq!(format(Duration::from_millis(500)), "0s");
        assert_eq!(format(Duration::from_secs(59)), "59s");
        assert_eq!(format(Duration::from_secs(14 * 60 + 30)), "14m");
        assert_eq!(format(Duration::from_secs(3 * 3600)), "3h");
        assert_eq!(format(Duration::from_secs(47 * 3600)), "47h");
        assert_eq!(format(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(
            parse(&format(Duration::from_secs(600))),
            Ok(Duration::from_secs(600))
        );
    }
}
