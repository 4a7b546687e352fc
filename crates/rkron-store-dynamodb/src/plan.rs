//! Pure planning of the store's writes: the in-order checks and net effects of a `commit_jobs`,
//! and which executions a write trims.
//!
//! `commit_jobs` validates each op against the state the earlier ops of the same commit leave,
//! while DynamoDB evaluates every condition of a transaction against the state before it and
//! refuses a transaction that touches one item twice. So the first op on each job becomes the
//! item's condition, later ops on the same job are checked here against the earlier ones, and
//! only the net effect on each job is written.

use rkron_core::Job;
use rkron_store::{Expect, JobOp, Version};

/// What a job is at some point of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// No record.
    Absent,
    /// Stored at this version.
    At(Version),
    /// Written by an earlier op of the same commit, at a version not known yet.
    Written,
    /// Not known (checking a commit against itself only).
    Unknown,
}

fn holds(expect: Expect, slot: Slot) -> bool {
    match (expect, slot) {
        (Expect::Any, _) | (_, Slot::Unknown) => true,
        (Expect::Absent, slot) => slot == Slot::Absent,
        (Expect::Version(version), slot) => slot == Slot::At(version),
    }
}

/// The job, expectation and kind (put or not) of an op.
fn parts(op: &JobOp) -> (&str, Expect, bool) {
    match op {
        JobOp::Put { job, expect } => (job.name.as_str(), *expect, true),
        JobOp::Delete { name, expect } => (name.as_str(), *expect, false),
    }
}

/// Walks `ops` in order, each seeing the earlier ones; answers the job of the first op whose
/// expectation fails. `stored` tells what a job is before the commit.
fn walk<'a>(ops: &'a [JobOp], stored: &dyn Fn(&str) -> Slot) -> Option<&'a str> {
    let mut seen: Vec<(&str, Slot)> = Vec::new();
    for op in ops {
        let (name, expect, is_put) = parts(op);
        let earlier = seen.iter().rev().find(|(seen_name, _)| *seen_name == name);
        let slot = earlier.map_or_else(|| stored(name), |(_, slot)| *slot);
        if !holds(expect, slot) {
            return Some(name);
        }
        seen.push((name, if is_put { Slot::Written } else { Slot::Absent }));
    }
    None
}

/// Answers the job of the first op whose expectation fails, in order, against the stored
/// versions `stored` answers (`None`: absent), each op seeing the effect of the earlier ones.
pub(crate) fn first_conflict<'a>(
    ops: &'a [JobOp],
    stored: &dyn Fn(&str) -> Option<Version>,
) -> Option<&'a str> {
    walk(ops, &|name| stored(name).map_or(Slot::Absent, Slot::At))
}

/// Whether some op fails against an earlier op of the same commit, whatever is stored (a put
/// expecting `Absent` after a put; a version expected of a job the commit wrote or deleted).
pub(crate) fn conflicts_within(ops: &[JobOp]) -> bool {
    walk(ops, &|_| Slot::Unknown).is_some()
}

/// The net effect of a commit on one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Effect<'a> {
    pub(crate) name: &'a str,
    /// The expectation of the first op on the job: the one checked against the store.
    pub(crate) expect: Expect,
    /// Whether some op deletes the job, so its history goes.
    pub(crate) deleted: bool,
    /// The job as the last put leaves it; `None` when the last op deletes it.
    pub(crate) put: Option<&'a Job>,
}

/// Answers the net effect on each job, in the order the jobs first appear.
pub(crate) fn effects(ops: &[JobOp]) -> Vec<Effect<'_>> {
    let mut effects: Vec<Effect<'_>> = Vec::new();
    for op in ops {
        let (name, expect, _) = parts(op);
        let index = match effects.iter().position(|effect| effect.name == name) {
            Some(index) => index,
            None => {
                effects.push(Effect {
                    name,
                    expect,
                    deleted: false,
                    put: None,
                });
                effects.len() - 1
            }
        };
        let effect = &mut effects[index];
        match op {
            JobOp::Put { job, .. } => effect.put = Some(job),
            JobOp::Delete { .. } => {
                effect.deleted = true;
                effect.put = None;
            }
        }
    }
    effects
}

/// Answers the runs that go when `run` is written to a job whose stored runs are `stored`,
/// keeping the newest `retention`: the oldest of `stored` and `run`, which may be `run` itself
/// when it is older than every kept one. Run keys sort by time.
pub(crate) fn trimmed<'a>(stored: &'a [String], run: &'a str, retention: usize) -> Vec<&'a str> {
    let mut runs: Vec<&str> = stored.iter().map(String::as_str).collect();
    if !runs.contains(&run) {
        runs.push(run);
    }
    let excess = runs.len().saturating_sub(retention);
    if excess == 0 {
        return Vec::new();
    }
    runs.sort_unstable();
    runs.truncate(excess);
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkron_store::testsuite::job;

    fn put(name: &str, expect: Expect) -> JobOp {
        JobOp::Put {
            job: job(name),
            expect,
        }
    }

    fn delete(name: &str, expect: Expect) -> JobOp {
        JobOp::Delete {
            name: name.to_owned(),
            expect,
        }
    }

    #[test]
    fn later_ops_see_earlier_ones() {
        let swap = [delete("a", Expect::Version(3)), put("a", Expect::Absent)];
        assert!(!conflicts_within(&swap));
        assert_eq!(first_conflict(&swap, &|_| Some(3)), None);
        assert_eq!(first_conflict(&swap, &|_| Some(4)), Some("a"));

        let twice = [put("t", Expect::Absent), put("t", Expect::Absent)];
        assert!(conflicts_within(&twice));
        assert_eq!(first_conflict(&twice, &|_| None), Some("t"));
        let version_after_put = [put("v", Expect::Any), put("v", Expect::Version(9))];
        assert!(conflicts_within(&version_after_put));
    }

    #[test]
    fn the_first_failing_op_is_named() {
        let ops = [
            put("new", Expect::Absent),
            put("bystander", Expect::Absent),
            put("other", Expect::Absent),
        ];
        let stored = |name: &str| (name != "new").then_some(1);
        assert_eq!(first_conflict(&ops, &stored), Some("bystander"));
        assert_eq!(first_conflict(&ops, &|_| None), None);
        assert_eq!(
            first_conflict(&[put("z", Expect::Version(0))], &|_| None),
            Some("z")
        );
    }

    #[test]
    fn effects_keep_the_final_write_and_any_delete() {
        let ops = [
            delete("a", Expect::Version(2)),
            put("b", Expect::Any),
            put("a", Expect::Absent),
            put("c", Expect::Absent),
            delete("c", Expect::Any),
        ];
        let summary: Vec<(&str, Expect, bool, bool)> = effects(&ops)
            .iter()
            .map(|e| (e.name, e.expect, e.deleted, e.put.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                ("a", Expect::Version(2), true, true),
                ("b", Expect::Any, false, true),
                ("c", Expect::Absent, true, false),
            ]
        );
    }

    #[test]
    fn trimming_takes_the_oldest_including_the_new_run() {
        let stored: Vec<String> = ["b", "c", "d"].map(str::to_owned).into();
        assert_eq!(trimmed(&stored, "e", 3), ["b"]);
        assert_eq!(trimmed(&stored, "a", 3), ["a"]);
        assert!(trimmed(&stored, "c", 3).is_empty());
        assert_eq!(trimmed(&stored, "c", 1), ["b", "c"]);
        assert_eq!(trimmed(&[], "a", 0), ["a"]);
        assert!(trimmed(&[], "a", 1).is_empty());
    }
}
