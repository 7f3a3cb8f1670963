//! The one retry policy of hype: waits that double from a first one up to
//! a cap, with jitter, for a bounded number of attempts. Every retry loop
//! takes its waits from here, so they differ only in their numbers:
//!
//! - [`Doubling`] is the policy itself, with no dependency: a call lost to
//!   the infrastructure and run again ([`crate::RunEnvironment::retry_delay`]),
//!   and the launcher starting an executable that is busy for a moment
//!   (ETXTBSY, [`blocking`]).
//! - `backoff` gives the same shape as `backon`'s builder, for the async
//!   loops that `backon` drives (Kubernetes API requests, Cloud Storage and
//!   GKE REST calls, re-establishing the pod watch); it exists with the
//!   features that bring `backon` in.
//!
//! Nothing here retries a user's failing code.

#[cfg(feature = "kubernetes")]
pub(crate) use backon::BackoffBuilder;
#[cfg(any(feature = "kubernetes", feature = "gcs"))]
pub(crate) use backon::{ExponentialBuilder, Retryable};

use std::time::Duration;

/// Waits that double from `first` up to `max`: the wait after attempt 1
/// is `first`, after attempt 2 twice that, and so on, never more than
/// `max` (nor less than `first`). With [`Doubling::with_jitter`] each wait
/// is drawn uniformly from the upper half of that value, so that calls
/// that failed together do not come back together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Doubling {
    first: Duration,
    max: Duration,
    jitter: bool,
}

impl Doubling {
    /// Waits from `first`, doubling, up to `max`; without jitter.
    pub(crate) const fn new(first: Duration, max: Duration) -> Doubling {
        Doubling {
            first,
            max,
            jitter: false,
        }
    }

    /// The same waits, each drawn from the upper half of its value.
    pub(crate) const fn with_jitter(self) -> Doubling {
        Doubling {
            jitter: true,
            ..self
        }
    }

    /// The wait after attempt `attempt` (from 1) failed.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let full = self
            .first
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max.max(self.first));
        if self.jitter {
            full.mul_f64(0.5 + fastrand::f64() * 0.5)
        } else {
            full
        }
    }
}

/// Runs `op` until it succeeds, fails with an error `retry` refuses, or
/// has been tried `attempts` times, sleeping `policy`'s waits in between
/// (blocking the thread: for code that runs on no async runtime). The
/// last result is returned as it is.
pub(crate) fn blocking<T, E>(
    policy: Doubling,
    attempts: u32,
    mut op: impl FnMut() -> Result<T, E>,
    retry: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let mut attempt = 1;
    loop {
        match op() {
            Err(err) if attempt < attempts && retry(&err) => {
                std::thread::sleep(policy.delay(attempt));
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(any(feature = "kubernetes", feature = "gcs"))]
/// Exponential backoff from `min` to at most `max` between attempts, with
/// jitter, for at most `attempts` attempts in all (`None`: without end,
/// for loops that run as long as their owner lives): the shape of
/// [`Doubling`], built for `backon`'s [`Retryable`].
pub(crate) fn backoff(min: Duration, max: Duration, attempts: Option<u32>) -> ExponentialBuilder {
    let builder = ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter();
    match attempts {
        Some(attempts) => builder
            .with_max_times(usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX)),
        None => builder.without_max_times(),
    }
}

/// Whether an HTTP status refuses a request for good: a 4xx other than
/// 408 Request Timeout, 409 Conflict (the backends handle it: adoption,
/// a removal in progress) and 429 Too Many Requests. Such a request is
/// not tried again ([`crate::Error::Rejected`]).
#[cfg_attr(not(any(feature = "kubernetes", feature = "docker")), allow(dead_code))]
pub(crate) fn is_permanent_status(code: u16) -> bool {
    (400..500).contains(&code) && !matches!(code, 408 | 409 | 429)
}

/// Whether an HTTP status is worth another try: 408, 429 and every 5xx.
#[cfg_attr(not(any(feature = "kubernetes", feature = "gcs")), allow(dead_code))]
pub(crate) fn is_transient_status(code: u16) -> bool {
    matches!(code, 408 | 429) || (500..600).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_permanent_or_transient() {
        for code in [400, 401, 403, 404, 405, 410, 413, 422] {
            assert!(
                is_permanent_status(code) && !is_transient_status(code),
                "{code}"
            );
        }
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(
                !is_permanent_status(code) && is_transient_status(code),
                "{code}"
            );
        }
        // Conflicts are neither: the backends resolve them.
        assert!(!is_permanent_status(409) && !is_transient_status(409));
        assert!(!is_permanent_status(200) && !is_transient_status(304));
    }

    #[test]
    fn doubling_doubles_up_to_the_cap_and_jitters_into_the_upper_half() {
        let policy = Doubling::new(Duration::from_millis(100), Duration::from_secs(3));
        let waits: Vec<u64> = (1..=7)
            .map(|a| policy.delay(a).as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3000, 3000]);
        assert_eq!(policy.delay(u32::MAX), Duration::from_secs(3));
        // A cap below the first wait is the first wait.
        let flat = Doubling::new(Duration::from_millis(25), Duration::ZERO);
        assert_eq!(flat.delay(5), Duration::from_millis(25));
        let jittered = policy.with_jitter();
        for attempt in 1..=7 {
            let full = policy.delay(attempt);
            for _ in 0..50 {
                let wait = jittered.delay(attempt);
                assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
            }
        }
    }

    #[test]
    fn blocking_tries_until_success_refusal_or_the_bound() {
        let quick = Doubling::new(Duration::ZERO, Duration::ZERO);
        let mut tries = 0;
        let result: Result<u32, &str> = blocking(
            quick,
            5,
            || {
                tries += 1;
                if tries < 3 { Err("busy") } else { Ok(tries) }
            },
            |err| *err == "busy",
        );
        assert_eq!(result, Ok(3));
        let mut tries = 0;
        let result: Result<(), &str> = blocking(
            quick,
            5,
            || {
                tries += 1;
                Err("busy")
            },
            |err| *err == "busy",
        );
        assert_eq!((result, tries), (Err("busy"), 5), "5 attempts in all");
        let mut tries = 0;
        let result: Result<(), &str> = blocking(
            quick,
            5,
            || {
                tries += 1;
                Err("gone")
            },
            |err| *err == "busy",
        );
        assert_eq!(
            (result, tries),
            (Err("gone"), 1),
            "a refused error is final"
        );
    }

    #[cfg(feature = "kubernetes")]
    #[test]
    fn attempts_bound_the_delays() {
        let delays: Vec<Duration> =
            backoff(Duration::from_millis(100), Duration::from_secs(3), Some(6))
                .build()
                .collect();
        assert_eq!(delays.len(), 5, "6 attempts wait 5 times: {delays:?}");
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(6)),
            "{delays:?}"
        );
        let endless = backoff(Duration::from_millis(1), Duration::from_millis(5), None);
        assert_eq!(endless.build().take(1000).count(), 1000);
    }
}
