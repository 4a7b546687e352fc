//! Pure planning of a `commit_jobs`: each op's expectation checked, in order, against the
//! state the earlier ops of the same commit leave.

use rkron_store::{Expect, JobOp, Version};

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

fn holds(expect: Expect, slot: Slot) -> bool {
    match expect {
        Expect::Any => true,
        Expect::Absent => slot == Slot::Absent,
        Expect::Version(version) => slot == Slot::At(version),
    }
}

/// The job name, expectation and kind (`true`: put) of `op`.
pub(crate) fn parts(op: &JobOp) -> (&str, Expect, bool) {
    match op {
        JobOp::Put { job, expect } => (job.name.as_str(), *expect, true),
        JobOp::Delete { name, expect } => (name.as_str(), *expect, false),
    }
}

/// Answers the job of the first op whose expectation fails, in order, each op seeing the effect
/// of the earlier ones; `stored` answers a job's stored version (`None`: absent).
pub(crate) fn first_conflict(
    ops: &[JobOp],
    stored: impl Fn(&str) -> Option<Version>,
) -> Option<String> {
    let mut pending: Vec<(&str, Slot)> = Vec::new();
    for op in ops {
        let (name, expect, is_put) = parts(op);
        let current = pending
            .iter()
            .rev()
            .find(|(pending_name, _)| *pending_name == name)
            .map_or_else(
                || stored(name).map_or(Slot::Absent, Slot::At),
                |(_, slot)| *slot,
            );
        if !holds(expect, current) {
            return Some(name.to_owned());
        }
        pending.push((name, if is_put { Slot::Fresh } else { Slot::Absent }));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkron_core::Job;

    fn put(name: &str, expect: Expect) -> JobOp {
        JobOp::Put {
            job: Job {
                name: name.to_owned(),
                ..Job::default()
            },
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
    fn ops_see_the_earlier_ops_of_the_commit() {
        let stored = |name: &str| (name == "a").then_some(7);
        assert_eq!(
            first_conflict(
                &[delete("a", Expect::Version(7)), put("a", Expect::Absent)],
                stored
            ),
            None
        );
        assert_eq!(
            first_conflict(
                &[put("b", Expect::Absent), put("b", Expect::Absent)],
                stored
            ),
            Some("b".to_owned())
        );
        assert_eq!(
            first_conflict(&[put("a", Expect::Version(8))], stored),
            Some("a".to_owned())
        );
        assert_eq!(
            first_conflict(&[put("b", Expect::Any), delete("a", Expect::Any)], stored),
            None
        );
        assert_eq!(
            first_conflict(
                &[put("a", Expect::Any), put("a", Expect::Version(7))],
                stored
            ),
            Some("a".to_owned())
        );
    }
}
