//! Instants a bound away, without overflow: `Instant + Duration` panics
//! when the sum cannot be represented, and a bound of `Duration::MAX`
//! (meaning "never") must not. Every deadline in hype is made here.

use std::time::Duration;

/// An instant type ([`std::time::Instant`], [`tokio::time::Instant`]).
pub(crate) trait Instant: Copy {
    /// `self + by`, if representable.
    fn checked_add(self, by: Duration) -> Option<Self>;
}

impl Instant for std::time::Instant {
    fn checked_add(self, by: Duration) -> Option<Self> {
        std::time::Instant::checked_add(&self, by)
    }
}

impl Instant for tokio::time::Instant {
    fn checked_add(self, by: Duration) -> Option<Self> {
        tokio::time::Instant::checked_add(&self, by)
    }
}

/// `from + by`, or far in the future (about 30 years, what tokio uses for
/// "never") when that cannot be represented.
pub(crate) fn later<I: Instant>(from: I, by: Duration) -> I {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    from.checked_add(by)
        .or_else(|| from.checked_add(FAR))
        .unwrap_or(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_of_any_length_give_an_instant() {
        let now = std::time::Instant::now();
        assert!(later(now, Duration::MAX) > now);
        assert_eq!(
            later(now, Duration::from_secs(1)).duration_since(now),
            Duration::from_secs(1)
        );
        let now = tokio::time::Instant::now();
        assert!(later(now, Duration::MAX) > now);
    }
}
