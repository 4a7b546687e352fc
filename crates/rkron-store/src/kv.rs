//! Key layout and record encoding shared by the key-value backends whose keys are `/`-separated
//! paths under a keyspace prefix (etcd, Consul). Each backend's own `keyspace` module documents
//! its table and adds what differs (how a key is read back, the lease record).
//!
//! Execution keys are `<job segment>/<started>/<node>`, where `<started>` is the Unix nanoseconds
//! of `started_at` with the sign bit flipped, as 16 lower-case hex digits: key order is time
//! order, before 1970 included. A job segment ends in `/`, so the prefix of `foo` never reaches
//! `foobar`; `%` and `/` in a name are escaped as `%25` and `%2F` (valid job names contain
//! neither).

use std::fmt::{self, Write as _};

use crate::{MISSED_KEPT, MissedFires, StoreError};
use chrono::{DateTime, Utc};
use rkron_core::execution::unix_nanos;
use rkron_core::{Execution, Job};
use serde::{Deserialize, Serialize};

/// Key segment of jobs.
const JOBS: &str = "jobs/";
/// Key segment of execution metadata.
const EXECUTIONS: &str = "executions/";
/// Key segment of execution outputs.
const OUTPUTS: &str = "outputs/";
/// Key segment of the running-executions index.
const RUNNING: &str = "running/";
/// Key segment of cluster-wide settings.
const META: &str = "meta/";
/// Key segment of the fire ledger.
const LEDGER: &str = "ledger/";
/// Key segment of missed fires.
const MISSED: &str = "missed/";
/// Key of the leadership lease.
const LEADER: &str = "leader";

/// Builds the keys of one keyspace.
#[derive(Debug, Clone)]
pub struct Keys {
    /// `<ks>/`.
    root: String,
}

/// Escapes a job name for use as a key segment followed by `/`.
fn segment(job: &str) -> String {
    let mut escaped = String::with_capacity(job.len());
    for c in job.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '/' => escaped.push_str("%2F"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Returns the part of an execution key after its job: `<started>/<node>`.
pub fn run_suffix(started_nanos: i64, node: &str) -> String {
    let mut suffix = String::with_capacity(17 + node.len());
    // Flipping the sign bit maps i64 order onto u64 order.
    let sortable = started_nanos.cast_unsigned() ^ (1 << 63);
    let _ = write!(suffix, "{sortable:016x}/{node}");
    suffix
}

/// Returns the run suffix of `execution`.
pub fn run_of(execution: &Execution) -> String {
    run_suffix(unix_nanos(execution.started_at), &execution.node_name)
}

impl Keys {
    /// The keys under `<keyspace>/`.
    pub fn new(keyspace: &str) -> Self {
        Self {
            root: format!("{keyspace}/"),
        }
    }

    /// The prefix of every key of the keyspace.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The prefix of every job key.
    pub fn jobs(&self) -> String {
        format!("{}{JOBS}", self.root)
    }

    /// The key of job `name`.
    pub fn job(&self, name: &str) -> String {
        format!("{}{JOBS}{name}", self.root)
    }

    /// The prefix of the execution metadata of `job`.
    pub fn executions_of(&self, job: &str) -> String {
        format!("{}{EXECUTIONS}{}/", self.root, segment(job))
    }

    /// The prefix of the outputs of `job`.
    pub fn outputs_of(&self, job: &str) -> String {
        format!("{}{OUTPUTS}{}/", self.root, segment(job))
    }

    /// The prefix of the running index.
    pub fn running(&self) -> String {
        format!("{}{RUNNING}", self.root)
    }

    /// The prefix of the running index entries of `job`.
    pub fn running_of(&self, job: &str) -> String {
        format!("{}{RUNNING}{}/", self.root, segment(job))
    }

    /// The key of setting `name`.
    pub fn meta(&self, name: &str) -> String {
        format!("{}{META}{name}", self.root)
    }

    /// The prefix of the fire ledger.
    pub fn ledger(&self) -> String {
        format!("{}{LEDGER}", self.root)
    }

    /// The fire ledger key of `job`.
    pub fn ledger_of(&self, job: &str) -> String {
        format!("{}{LEDGER}{job}", self.root)
    }

    /// The missed-fires key of `job`.
    pub fn missed(&self, job: &str) -> String {
        format!("{}{MISSED}{job}", self.root)
    }

    /// The leader key.
    pub fn leader(&self) -> String {
        format!("{}{LEADER}", self.root)
    }
}

/// Returns a [`StoreError::Corrupt`] for `key`.
pub fn corrupt(key: impl Into<String>, reason: impl fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.into(),
        reason: format!("{reason}"),
    }
}

/// Encodes a job.
pub fn encode_job(job: &Job) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(job)
        .map_err(|error| StoreError::Backend(format!("encoding job {}: {error}", job.name)))
}

/// Decodes the job stored at `key`.
pub fn decode_job(key: &str, bytes: &[u8]) -> Result<Job, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| corrupt(key, error))
}

/// Encodes an execution's metadata (its output is stored apart).
pub fn encode_execution(execution: &Execution) -> Result<Vec<u8>, StoreError> {
    let metadata = Execution {
        output: String::new(),
        ..execution.clone()
    };
    serde_json::to_vec(&metadata).map_err(|error| {
        StoreError::Backend(format!(
            "encoding execution {} of {}: {error}",
            execution.id(),
            execution.job_name
        ))
    })
}

/// Decodes the execution metadata stored at `key`.
pub fn decode_execution(key: &str, bytes: &[u8]) -> Result<Execution, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| corrupt(key, error))
}

/// Decodes UTF-8 text stored at `key`.
pub fn decode_text(key: &str, bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|error| corrupt(key, error))
}

/// Encodes an instant given as Unix nanoseconds for the ledger: decimal text.
pub fn encode_nanos(nanos: i64) -> String {
    nanos.to_string()
}

/// Decodes an instant stored at `key` as decimal Unix nanoseconds.
pub fn decode_instant(key: &str, bytes: &[u8]) -> Result<DateTime<Utc>, StoreError> {
    let nanos: i64 = std::str::from_utf8(bytes)
        .map_err(|error| corrupt(key, error))?
        .parse()
        .map_err(|error| corrupt(key, error))?;
    Ok(DateTime::from_timestamp_nanos(nanos))
}

/// Missed fires as stored.
#[derive(Serialize, Deserialize)]
struct StoredMissed {
    total: u64,
    /// Unix nanoseconds, ascending.
    recent: Vec<i64>,
}

/// Encodes missed fires.
pub fn encode_missed(missed: &MissedFires) -> Result<Vec<u8>, StoreError> {
    let stored = StoredMissed {
        total: missed.total,
        recent: missed.recent.iter().map(|t| unix_nanos(*t)).collect(),
    };
    serde_json::to_vec(&stored)
        .map_err(|error| StoreError::Backend(format!("encoding missed fires: {error}")))
}

/// Decodes the missed fires stored at `key`.
pub fn decode_missed(key: &str, bytes: &[u8]) -> Result<MissedFires, StoreError> {
    let stored: StoredMissed =
        serde_json::from_slice(bytes).map_err(|error| corrupt(key, error))?;
    if stored.recent.len() > MISSED_KEPT {
        return Err(corrupt(
            key,
            format!(
                "{} recent instants, more than {MISSED_KEPT}",
                stored.recent.len()
            ),
        ));
    }
    Ok(MissedFires {
        total: stored.total,
        recent: stored
            .recent
            .into_iter()
            .map(DateTime::from_timestamp_nanos)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_suffixes_sort_by_time_then_node() {
        let mut suffixes = vec![
            run_suffix(10, "b"),
            run_suffix(-5, "z"),
            run_suffix(10, "a"),
            run_suffix(i64::MIN, "a"),
            run_suffix(i64::MAX, "a"),
            run_suffix(0, "a"),
            run_suffix(-1, "a"),
        ];
        suffixes.sort();
        assert_eq!(
            suffixes,
            [
                run_suffix(i64::MIN, "a"),
                run_suffix(-5, "z"),
                run_suffix(-1, "a"),
                run_suffix(0, "a"),
                run_suffix(10, "a"),
                run_suffix(10, "b"),
                run_suffix(i64::MAX, "a"),
            ]
        );
        assert_eq!(run_suffix(0, "n"), "8000000000000000/n");
    }

    #[test]
    fn job_prefixes_never_reach_longer_names() {
        let keys = Keys::new("rkron");
        assert_eq!(keys.executions_of("foo"), "rkron/executions/foo/");
        assert!(
            !keys
                .executions_of("foobar")
                .starts_with(&keys.executions_of("foo"))
        );
        assert_eq!(keys.running_of("a/b"), "rkron/running/a%2Fb/");
        assert_eq!(keys.outputs_of("a%2Fb"), "rkron/outputs/a%252Fb/");
        assert_eq!(keys.job("foo"), "rkron/jobs/foo");
    }

    #[test]
    fn damaged_records_are_corrupt_not_panics() {
        assert!(matches!(
            decode_job("k", b"{"),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_execution("k", b"[]"),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_instant("k", b"12x"),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_instant("k", &[0xff]),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_missed("k", b"{}"),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_text("k", vec![0xff]),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn records_round_trip() {
        let missed = MissedFires {
            total: 7,
            recent: vec![
                DateTime::from_timestamp_nanos(-3),
                DateTime::from_timestamp_nanos(1_700_000_000_000_000_001),
            ],
        };
        let bytes = encode_missed(&missed).unwrap();
        assert_eq!(decode_missed("k", &bytes).unwrap(), missed);
        let instant = DateTime::from_timestamp_nanos(-1_800_000_000_123_456_789);
        assert_eq!(
            decode_instant("k", encode_nanos(unix_nanos(instant)).as_bytes()).unwrap(),
            instant
        );
    }
}
