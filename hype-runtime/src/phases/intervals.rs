//! An attempt's intervals from its marks: each phase between the two
//! marks that bound it, `hype-run`'s durations placed after the start the
//! caller saw and cut at the end it saw, all clamped into time order.

use std::time::{Duration, Instant};

use super::{Interval, Mark, Marks, Phase};

/// The intervals of an attempt from its marks: each phase between the two
/// marks that bound it, `hype-run`'s durations placed after the start,
/// all clamped into time order.
pub(super) fn intervals(began: Instant, ended: Instant, marks: &Marks) -> Vec<Interval> {
    let at = |mark: Mark| marks.at[mark as usize];
    let submitted = at(Mark::Submitted);
    let mut raw: Vec<(Phase, Option<Instant>, Option<Instant>)> = vec![
        (Phase::Queued, Some(began), submitted),
        (Phase::Scheduling, submitted, at(Mark::Scheduled)),
        (
            Phase::ImagePull,
            at(Mark::Scheduled).or(at(Mark::PullStarted)),
            at(Mark::ImageReady),
        ),
        (
            Phase::ContainerStart,
            at(Mark::ImageReady).or(submitted),
            at(Mark::Started),
        ),
    ];
    if let (Some(started), Some(timings)) = (at(Mark::Started), marks.remote) {
        let limit = at(Mark::Exited).unwrap_or(ended);
        let after = |us: u64| started.checked_add(Duration::from_micros(us));
        let launch = timings.launch_us.unwrap_or(0);
        if let Some(us) = timings.launch_us {
            raw.push((Phase::ExecutableFetch, Some(started), after(us)));
        }
        if let Some(function) = timings.function_us {
            let start = launch.saturating_add(timings.start_us.unwrap_or(0));
            raw.push((
                Phase::Function,
                after(start),
                after(start.saturating_add(function)),
            ));
        }
        // The remote steps end, at the latest, when the caller saw the end.
        for entry in raw.iter_mut().skip(4) {
            entry.1 = entry.1.map(|s| s.min(limit));
            entry.2 = entry.2.map(|e| e.min(limit));
        }
    }
    raw.push((Phase::OutcomeRead, at(Mark::Exited), at(Mark::OutcomeRead)));
    raw.push((Phase::Cleanup, at(Mark::OutcomeRead), at(Mark::CleanedUp)));

    let mut floor = began;
    let mut out = Vec::new();
    for (phase, start, end) in raw {
        let (Some(start), Some(end)) = (start, end) else {
            continue;
        };
        let start = start.max(floor);
        let end = end.min(ended.max(began));
        if end < start {
            continue;
        }
        out.push(Interval {
            phase,
            start: start.saturating_duration_since(began),
            duration: end.saturating_duration_since(start),
        });
        floor = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Timings;

    #[test]
    fn marks_become_ordered_intervals_and_unknown_ones_are_left_out() {
        let began = Instant::now();
        let ms = |n| began + Duration::from_millis(n);
        let mut marks = Marks::default();
        marks.at[Mark::Submitted as usize] = Some(ms(10));
        marks.at[Mark::Started as usize] = Some(ms(30));
        marks.at[Mark::Exited as usize] = Some(ms(100));
        marks.at[Mark::OutcomeRead as usize] = Some(ms(105));
        // The launcher took 20 ms; the function started 5 ms into its
        // process and ran 40 ms.
        marks.remote = Some(Timings::new(Some(20_000), Some(5_000), Some(40_000)));
        let got = intervals(began, ms(110), &marks);
        let names: Vec<_> = got.iter().map(|i| i.phase).collect();
        assert_eq!(
            names,
            [
                Phase::Queued,
                Phase::ContainerStart,
                Phase::ExecutableFetch,
                Phase::Function,
                Phase::OutcomeRead
            ]
        );
        assert_eq!(got[3].start, Duration::from_millis(55));
        assert_eq!(got[3].duration, Duration::from_millis(40));
        for pair in got.windows(2) {
            assert!(pair[0].start + pair[0].duration <= pair[1].start, "{got:?}");
        }
    }

    #[test]
    fn remote_durations_never_run_past_the_end_the_caller_saw() {
        let began = Instant::now();
        let ms = |n| began + Duration::from_millis(n);
        let mut marks = Marks::default();
        marks.at[Mark::Submitted as usize] = Some(ms(0));
        marks.at[Mark::Started as usize] = Some(ms(10));
        marks.at[Mark::Exited as usize] = Some(ms(20));
        marks.at[Mark::OutcomeRead as usize] = Some(ms(25));
        // A function that "ran" longer than the execution lasted (the
        // caller saw the start late): cut at the end.
        marks.remote = Some(Timings::new(None, Some(1_000), Some(500_000)));
        let got = intervals(began, ms(30), &marks);
        let function = got.iter().find(|i| i.phase == Phase::Function).unwrap();
        assert_eq!(
            function.start + function.duration,
            Duration::from_millis(20)
        );
        let read = got.iter().find(|i| i.phase == Phase::OutcomeRead).unwrap();
        assert_eq!(read.start, Duration::from_millis(20));
    }
}
