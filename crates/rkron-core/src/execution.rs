//! Executions: one run of a job on one node, and the status rules of an execution group.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::job::JobStatus;

/// One attempt of one job on one node.
///
/// `output` is carried here for convenience; stores keep it apart from the metadata so that
/// listings and trimming stay cheap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// Name of the job this execution belongs to.
    pub job_name: String,
    /// When the executing node started it.
    pub started_at: DateTime<Utc>,
    /// When it finished; `None` while running.
    pub finished_at: Option<DateTime<Utc>>,
    /// Whether it succeeded; `false` while running.
    pub success: bool,
    /// Captured output (tail, capped by the executor).
    #[serde(default)]
    pub output: String,
    /// The node that ran it.
    pub node_name: String,
    /// Execution group: Unix nanoseconds of the fire that created it; shared by every node and attempt.
    pub group: i64,
    /// 1 for the first try, +1 per retry.
    pub attempt: u32,
    /// The scheduled instant this execution serves; `None` for manual runs.
    #[serde(default)]
    pub scheduled_at: Option<DateTime<Utc>>,
}

impl Execution {
    /// Returns the execution's key: `<started_at as Unix nanoseconds>-<node_name>` (Dkron's id).
    pub fn id(&self) -> String {
        execution_id(self.started_at, &self.node_name)
    }

    /// Returns true while the execution has not finished.
    pub fn is_running(&self) -> bool {
        self.finished_at.is_none()
    }
}

/// Returns Unix nanoseconds of `t`, saturating outside the representable range.
pub fn unix_nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// Builds an execution id from its start instant and node.
pub fn execution_id(started_at: DateTime<Utc>, node_name: &str) -> String {
    format!("{}-{}", unix_nanos(started_at), node_name)
}

/// Splits an execution id into its start nanoseconds and node name.
pub fn parse_execution_id(id: &str) -> Option<(i64, &str)> {
    // The nanoseconds may be negative (before 1970): the separator is the first '-' after them.
    let split = id.get(1..)?.find('-')? + 1;
    let (nanos, node) = (&id[..split], &id[split + 1..]);
    Some((nanos.parse().ok()?, node))
}

/// Computes the status of an execution group from its executions (Dkron §1.5, fixed for retries).
///
/// A node's outcome is its latest attempt, so a retry that succeeds makes that node successful
/// (Dkron leaves the group `partially_failed`; rkron deliberately does not, DESIGN §8).
/// Running executions do not count as failures. An empty group is `""`.
pub fn group_status<'a>(executions: impl IntoIterator<Item = &'a Execution>) -> JobStatus {
    use std::collections::BTreeMap;
    let mut latest: BTreeMap<&str, &Execution> = BTreeMap::new();
    for e in executions {
        let entry = latest.entry(e.node_name.as_str()).or_insert(e);
        if (e.attempt, e.started_at) > (entry.attempt, entry.started_at) {
            *entry = e;
        }
    }
    let finished = latest.values().filter(|e| !e.is_running());
    let (mut ok, mut failed) = (0usize, 0usize);
    for e in finished {
        if e.success {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    match (ok, failed) {
        (0, 0) => JobStatus::Untriggered,
        (_, 0) => JobStatus::Success,
        (0, _) => JobStatus::Failed,
        _ => JobStatus::PartiallyFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn exec(node: &str, attempt: u32, secs: i64, success: Option<bool>) -> Execution {
        let started = Utc.timestamp_opt(secs, 0).unwrap();
        Execution {
            job_name: "j".into(),
            started_at: started,
            finished_at: success.map(|_| started),
            success: success.unwrap_or(false),
            output: String::new(),
            node_name: node.into(),
            group: 1,
            attempt,
            scheduled_at: None,
        }
    }

    #[test]
    fn id_is_nanos_dash_node() {
        let e = exec("node1", 1, 1_734_599_350, Some(true));
        assert_eq!(e.id(), "1734599350000000000-node1");
        assert_eq!(
            parse_execution_id(&e.id()),
            Some((1_734_599_350_000_000_000, "node1"))
        );
        assert_eq!(parse_execution_id("x-node"), None);
        assert_eq!(parse_execution_id("-5-node-a"), Some((-5, "node-a")));
        assert_eq!(parse_execution_id("12-node-a"), Some((12, "node-a")));
    }

    #[test]
    fn dkron_group_vectors() {
        let s = [exec("a", 1, 1, Some(true)), exec("b", 1, 1, Some(false))];
        assert_eq!(group_status(&s), JobStatus::PartiallyFailed);
        let s = [exec("a", 1, 1, Some(true)), exec("b", 1, 1, Some(true))];
        assert_eq!(group_status(&s), JobStatus::Success);
        let s = [exec("a", 1, 1, Some(false))];
        assert_eq!(group_status(&s), JobStatus::Failed);
        assert_eq!(group_status(&[]), JobStatus::Untriggered);
    }

    #[test]
    fn successful_retry_makes_group_success() {
        let s = [exec("a", 1, 1, Some(false)), exec("a", 2, 2, Some(true))];
        assert_eq!(group_status(&s), JobStatus::Success);
    }

    #[test]
    fn running_does_not_count_as_failure() {
        let s = [exec("a", 1, 1, Some(true)), exec("b", 1, 1, None)];
        assert_eq!(group_status(&s), JobStatus::Success);
    }
}
