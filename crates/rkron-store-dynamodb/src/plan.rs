//! The store's write planning: [`rkron_store::plan`] (shared with etcd and Consul) plus the
//! trimming rule in the form the DynamoDB store uses.
//!
//! `commit_jobs` validates each op against the state the earlier ops of the same commit leave,
//! while DynamoDB evaluates every condition of a transaction against the state before it and
//! refuses a transaction that touches one item twice. So the first op on each job becomes the
//! item's condition, later ops on the same job are checked by the shared planner against the
//! earlier ones, and only the net effect on each job is written.

pub(crate) use rkron_store::plan::{conflicts_within, effects, first_conflict};

/// Answers the runs that go when `run` is written to a job whose stored runs are `stored`,
/// keeping the newest `retention`: the oldest of `stored` and `run`, which may be `run` itself
/// when it is older than every kept one. Run keys sort by time.
pub(crate) fn trimmed(stored: &[String], run: &str, retention: usize) -> Vec<String> {
    let excess =
        rkron_store::plan::excess(stored.len(), stored.iter().any(|s| s == run), retention);
    rkron_store::plan::trimmed(stored, run, excess)
}

#[cfg(test)]
mod tests {
    use super::*;

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
