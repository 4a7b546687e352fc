//! Catch-up of missed fires: which fires were due while nobody dispatched them, which one still
//! runs (the most recent, if within the job's starting deadline) and which are recorded as missed.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::schedule::Schedule;

/// Longest list of missed instants enumerated one by one; beyond it they are only counted.
pub const MAX_ENUMERATED: usize = 10_000;

/// The decision for one job's missed fires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// The fire that still runs: the most recent due fire, when within the deadline.
    pub run: Option<DateTime<Utc>>,
    /// Fires recorded as missed, oldest first (at most [`MAX_ENUMERATED`]).
    pub missed: Vec<DateTime<Utc>>,
    /// Further missed fires that were counted but not enumerated.
    pub uncounted: u64,
}

/// Plans the catch-up of fires strictly after `since` and at or before `now`.
///
/// `runnable` tells whether the job could run at an instant (`starts_at`/`expires_at`); fires
/// outside that window are neither run nor missed.
pub fn plan_catch_up(
    schedule: &Schedule,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    deadline: Duration,
    runnable: impl Fn(DateTime<Utc>) -> bool,
) -> CatchUp {
    let mut due: std::collections::VecDeque<DateTime<Utc>> = std::collections::VecDeque::new();
    let mut uncounted = 0u64;
    let mut cursor = since;
    // Walking is bounded: past MAX_ENUMERATED the oldest are dropped and only counted, and the
    // walk itself stops after a generous bound so a year of `@every 1s` cannot stall start-up.
    let mut steps = 0usize;
    while let Some(next) = schedule.next_after(cursor) {
        if next > now || steps > 4 * MAX_ENUMERATED {
            break;
        }
        steps += 1;
        cursor = next;
        if !runnable(next) {
            continue;
        }
        if due.len() == MAX_ENUMERATED {
            due.pop_front();
            uncounted += 1;
        }
        due.push_back(next);
    }
    let Some(&latest) = due.back() else {
        return CatchUp {
            uncounted,
            ..CatchUp::default()
        };
    };
    let deadline = TimeDelta::from_std(deadline).unwrap_or(TimeDelta::MAX);
    let run = (now - latest <= deadline).then_some(latest);
    if run.is_some() {
        due.pop_back();
    }
    CatchUp {
        run,
        missed: due.into(),
        uncounted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn latest_within_deadline_runs_and_older_are_missed() {
        let every10 = Schedule::parse("*/10 * * * * *", "j", "").unwrap();
        // 1_800_000_000 is a multiple of 10.
        let plan = plan_catch_up(&every10, t(0), t(35), Duration::from_secs(60), |_| true);
        assert_eq!(plan.run, Some(t(30)));
        assert_eq!(plan.missed, vec![t(10), t(20)]);
        assert_eq!(plan.uncounted, 0);
    }

    #[test]
    fn latest_beyond_deadline_is_missed_too() {
        let every10 = Schedule::parse("*/10 * * * * *", "j", "").unwrap();
        let plan = plan_catch_up(&every10, t(0), t(35), Duration::from_secs(2), |_| true);
        assert_eq!(plan.run, None);
        assert_eq!(plan.missed, vec![t(10), t(20), t(30)]);
    }

    #[test]
    fn nothing_due_means_nothing_to_do() {
        let daily = Schedule::parse("@daily", "j", "").unwrap();
        assert_eq!(
            plan_catch_up(&daily, t(0), t(5), Duration::from_secs(60), |_| true),
            CatchUp::default()
        );
    }

    #[test]
    fn fires_outside_the_runnable_window_are_neither_run_nor_missed() {
        let every10 = Schedule::parse("*/10 * * * * *", "j", "").unwrap();
        // t(30) is past expires_at: the latest runnable fire is t(20), 15 s old, so it runs.
        let plan = plan_catch_up(&every10, t(0), t(35), Duration::from_secs(60), |at| {
            at < t(25)
        });
        assert_eq!(plan.run, Some(t(20)));
        assert_eq!(plan.missed, vec![t(10)]);
    }

    #[test]
    fn long_outages_are_bounded_and_counted() {
        let every1 = Schedule::parse("@every 1s", "j", "").unwrap();
        let plan = plan_catch_up(&every1, t(0), t(30_000), Duration::from_secs(60), |_| true);
        assert!(plan.run.is_some());
        assert_eq!(plan.missed.len() as u64 + plan.uncounted + 1, 30_000);
        assert_eq!(plan.missed.len(), MAX_ENUMERATED - 1);
    }
}
