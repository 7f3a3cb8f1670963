//! The one retry policy of hype: exponential backoff with jitter, a bounded
//! number of attempts, built on `backon`. Every retry loop (Kubernetes API
//! requests, Cloud Storage and GKE REST calls, re-establishing the pod
//! watch) takes its backoff from here, so they differ only in their
//! numbers. Nothing here retries a user's failing code.

#[cfg(any(feature = "kubernetes", feature = "gcs"))]
use std::time::Duration;

#[cfg(feature = "kubernetes")]
pub(crate) use backon::BackoffBuilder;
#[cfg(any(feature = "kubernetes", feature = "gcs"))]
pub(crate) use backon::{ExponentialBuilder, Retryable};

#[cfg(any(feature = "kubernetes", feature = "gcs"))]
/// Exponential backoff from `min` to at most `max` between attempts, with
/// jitter, for at most `attempts` attempts in all (`None`: without end,
/// for loops that run as long as their owner lives).
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
