//! Integration tests of the processors against real receivers: files in a temp dir, syslog and Fluent listeners on local sockets.

// Helpers outside `#[test]` functions unwrap too; this whole target is test code.
#![allow(clippy::unwrap_used)]

mod files;
mod fluent;
mod log;
mod registry;
mod syslog;

use chrono::{DateTime, TimeZone, Utc};
use rkron_core::Execution;
use rkron_core::job::StringMap;

/// The instant test executions start.
fn started_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 12, 19, 9, 29, 10).unwrap()
}

/// Returns a finished execution of job `job1` on `node-a` with `output`.
fn execution(output: &str, success: bool) -> Execution {
    Execution {
        job_name: "job1".to_owned(),
        started_at: started_at(),
        finished_at: Some(started_at() + chrono::Duration::milliseconds(1500)),
        success,
        output: output.to_owned(),
        node_name: "node-a".to_owned(),
        group: 1,
        attempt: 1,
        scheduled_at: None,
    }
}

/// Returns a config map from key/value pairs.
fn config(pairs: &[(&str, &str)]) -> StringMap {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}
