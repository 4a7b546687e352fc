//! Pure planning of the store's writes: the in-order checks and final effects of a
//! `commit_jobs`, and which executions a write trims.
//!
//! For backends whose transactions evaluate every check against the state before the
//! transaction (etcd's compares, Consul's `check-*` ops): `commit_jobs` validates each op against
//! the state the earlier ops of the same commit leave. So the first op on each job becomes the
//! backend's check, later ops on the same job are checked here against what the earlier ones
//! did, and only the final effect on each job is sent.

use crate::{Expect, JobOp, Version};
use rkron_core::Job;

/// What a job is at some point of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// No record.
    Absent,
    /// The record as stored, at this version.
    At(Version),
    /// Written by an earlier op of the same commit; its version is not known yet.
    Fresh,
}

/// Answers a job's stored version (`None`: absent).
pub type Stored<'s> = &'s dyn Fn(&str) -> Option<Version>;

fn holds(expect: Expect, slot: Slot) -> bool {
    match expect {
        Expect::Any => true,
        Expect::Absent => slot == Slot::Absent,
        Expect::Version(version) => slot == Slot::At(version),
    }
}

fn parts(op: &JobOp) -> (&str, Expect, bool) {
    match op {
        JobOp::Put { job, expect } => (job.name.as_str(), *expect, true),
        JobOp::Delete { name, expect } => (name.as_str(), *expect, false),
    }
}

/// Walks `ops` in order; answers the name of the first op whose expectation fails. `stored`
/// answers a job's stored version (`None`: absent); `None` for it means "assume the first op on
/// each job holds", which finds the conflicts a commit has with itself.
fn walk<'a>(ops: &'a [JobOp], stored: Option<Stored<'_>>) -> Option<&'a str> {
    let mut pending: Vec<(&str, Slot)> = Vec::new();
    for op in ops {
        let (name, expect, is_put) = parts(op);
        let current = pending
            .iter()
            .rev()
            .find(|(pending_name, _)| *pending_name == name)
            .map(|(_, slot)| *slot);
        let ok = match (current, stored) {
            (Some(slot), _) => holds(expect, slot),
            (None, Some(stored)) => holds(expect, stored(name).map_or(Slot::Absent, Slot::At)),
            (None, None) => true,
        };
        if !ok {
            return Some(name);
        }
        pending.push((name, if is_put { Slot::Fresh } else { Slot::Absent }));
    }
    None
}

/// Answers the job of the first op whose expectation fails against `stored`, in order, each op
/// seeing the effect of the earlier ones.
pub fn first_conflict(ops: &[JobOp], stored: Stored<'_>) -> Option<String> {
    walk(ops, Some(stored)).map(str::to_owned)
}

/// Whether some op fails against an earlier op of the same commit, whatever is stored (a put
/// expecting `Absent` after a put, a version expected of a job the commit just wrote or deleted).
pub fn conflicts_within(ops: &[JobOp]) -> bool {
    walk(ops, None).is_some()
}

/// The net effect of a commit on one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect<'a> {
    pub name: &'a str,
    /// The expectation of the first op on the job, checked against the store.
    pub expect: Expect,
    /// Whether some op deletes the job, so its history goes.
    pub deleted: bool,
    /// The job as the last put leaves it; `None` when the last op deletes it.
    pub put: Option<&'a Job>,
}

/// Answers the net effect on each job, in the order jobs first appear.
pub fn effects(ops: &[JobOp]) -> Vec<Effect<'_>> {
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
        let Some(effect) = effects.get_mut(index) else {
            continue;
        };
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

/// How many of a job's executions go once `run` is written: `count` are stored, `exists` says
/// whether `run` is one of them.
pub fn excess(count: usize, exists: bool, retention: usize) -> usize {
    (count + usize::from(!exists)).saturating_sub(retention)
}

/// Answers the runs to trim: the `excess` oldest of the stored runs and `run`. `oldest` holds
/// the oldest stored runs in key order, at least `excess` of them (or all).
pub fn trimmed(oldest: &[String], run: &str, excess: usize) -> Vec<String> {
    if excess == 0 {
        return Vec::new();
    }
    let mut candidates: Vec<&str> = oldest.iter().map(String::as_str).collect();
    if !candidates.contains(&run) {
        candidates.push(run);
    }
    candidates.sort_unstable();
    candidates
        .into_iter()
        .take(excess)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> Job {
        Job {
            name: name.to_owned(),
            schedule: "@every 1m".to_owned(),
            executor: "shell".to_owned(),
            ..Job::default()
        }
    }

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
        assert_eq!(first_conflict(&swap, &|_| Some(4)), Some("a".to_owned()));

        let twice = [put("t", Expect::Absent), put("t", Expect::Absent)];
        assert!(conflicts_within(&twice));
        assert_eq!(first_conflict(&twice, &|_| None), Some("t".to_owned()));
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
        assert_eq!(first_conflict(&ops, &stored), Some("bystander".to_owned()));
        assert_eq!(first_conflict(&ops, &|_| None), None);
        assert_eq!(
            first_conflict(&[put("z", Expect::Version(0))], &|_| None),
            Some("z".to_owned())
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
        let effects = effects(&ops);
        let summary: Vec<(&str, Expect, bool, bool)> = effects
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
        assert_eq!(excess(3, false, 3), 1);
        assert_eq!(trimmed(&stored, "e", 1), ["b"]);
        assert_eq!(trimmed(&stored, "a", 1), ["a"]);
        assert_eq!(excess(3, true, 3), 0);
        assert!(trimmed(&stored, "c", 0).is_empty());
        assert_eq!(excess(3, true, 1), 2);
        assert_eq!(trimmed(&stored, "c", 2), ["b", "c"]);
        assert_eq!(excess(0, false, 0), 1);
        assert_eq!(trimmed(&[], "a", 1), ["a"]);
    }
}
