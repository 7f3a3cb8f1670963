//! The time axis of `hype timeline`'s picture: a unit that suits the
//! whole run, and round tick values (1, 2 or 5 times a power of ten; whole
//! minutes past ten minutes) with their labels.

/// One unit of the axis: its name and how many microseconds it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// `µs`, `ms`, `s` or `min`.
    pub name: &'static str,
    /// Microseconds per unit.
    pub micros: u64,
}

/// The unit for a run of `total` microseconds: the largest whose count is
/// at least 1 (minutes from ten minutes on).
pub fn unit(total: u64) -> Unit {
    match total {
        t if t >= 600_000_000 => Unit {
            name: "min",
            micros: 60_000_000,
        },
        t if t >= 1_000_000 => Unit {
            name: "s",
            micros: 1_000_000,
        },
        t if t >= 1_000 => Unit {
            name: "ms",
            micros: 1_000,
        },
        _ => Unit {
            name: "µs",
            micros: 1,
        },
    }
}

/// The ticks for a run of `total` microseconds: from 0 to at least
/// `total`, about `target` of them, each a round number of the unit.
/// Returns the step and the tick positions, in microseconds.
pub fn ticks(total: u64, target: u64) -> (u64, Vec<u64>) {
    let total = total.max(1);
    let raw = total.div_ceil(target.max(1)).max(1);
    let mut magnitude = 1u64;
    let step = loop {
        if let Some(step) = [1, 2, 5]
            .iter()
            .map(|m| m * magnitude)
            .find(|step| *step >= raw)
        {
            break step;
        }
        magnitude = magnitude.saturating_mul(10);
    };
    // Past ten minutes, a step of whole minutes.
    let step = if unit(total).name == "min" {
        step.div_ceil(60_000_000) * 60_000_000
    } else {
        step
    };
    let count = total.div_ceil(step);
    (step, (0..=count).map(|i| i * step).collect())
}

/// A position in `unit`, with as many decimals as it needs (at most 3).
pub fn label(micros: u64, unit: Unit) -> String {
    let whole = micros / unit.micros;
    let rest = micros % unit.micros;
    if rest == 0 {
        return format!("{whole} {}", unit.name);
    }
    let text = format!("{:.3}", micros as f64 / unit.micros as f64);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {}", unit.name)
}

/// A duration in words for tooltips and titles: `850 µs`, `12.5 ms`,
/// `3.2 s`, `4 min 10 s`.
pub fn duration(micros: u64) -> String {
    match micros {
        m if m < 1_000 => format!("{m} µs"),
        m if m < 1_000_000 => format!("{:.1} ms", m as f64 / 1e3),
        m if m < 60_000_000 => format!("{:.1} s", m as f64 / 1e6),
        m => format!("{} min {} s", m / 60_000_000, (m % 60_000_000) / 1_000_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_run() {
        let (step, ticks) = ticks(9_300_000, 8);
        assert_eq!(step, 2_000_000);
        assert_eq!(ticks, [0, 2, 4, 6, 8, 10].map(|s| s * 1_000_000));
        let (step, ticks) = super::ticks(1_700, 8);
        assert_eq!((step, ticks.len()), (500, 5));
        assert_eq!(super::ticks(0, 8).1, [0, 1]);
        // 25 minutes: whole minutes.
        let (step, ticks) = super::ticks(25 * 60_000_000, 8);
        assert_eq!(step % 60_000_000, 0);
        assert!(*ticks.last().unwrap() >= 25 * 60_000_000);
    }

    #[test]
    fn labels_carry_their_unit() {
        assert_eq!(label(2_000_000, unit(9_300_000)), "2 s");
        assert_eq!(label(500_000, unit(9_300_000)), "0.5 s");
        assert_eq!(label(500, unit(1_700)), "0.5 ms");
        assert_eq!(label(40, unit(999)), "40 µs");
        assert_eq!(label(20 * 60_000_000, unit(25 * 60_000_000)), "20 min");
        assert_eq!(duration(850), "850 µs");
        assert_eq!(duration(12_500), "12.5 ms");
        assert_eq!(duration(250_000_000), "4 min 10 s");
    }
}
