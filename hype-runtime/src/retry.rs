//! The one retry policy of hype: exponential backoff with jitter, a bounded
//! number of attempts, built on `backon`. Every retry loop (Kubernetes API
//! requests, Cloud Storage and GKE REST calls, re-establishing the pod
//! watch) takes its backoff from here, so they differ only in their
//! numbers. Nothing here retries a user's failing code.

use std::time::Duration;

pub(crate) use backon::{BackoffBuilder, ExponentialBuilder, Retryable};

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

#[cfg(test)]
mod tests {
    use super::*;

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
