//! The znode layout of the ZooKeeper store and the encoding of its records.
//!
//! Every node lives under `/<ks>`, the configured keyspace (default `rkron`) as an absolute
//! path, so two keyspaces never see each other's nodes (`rkron` and `rkron2` are siblings). A
//! keyspace may be nested (`apps/rkron`); a keyspace nested in another's tree (`rkron/jobs`)
//! would collide with it: do not nest one keyspace inside another.
//!
//! | znode                                  | mode                | data                                        |
//! |----------------------------------------|---------------------|---------------------------------------------|
//! | `/<ks>`                                | persistent          | empty                                       |
//! | `/<ks>/jobs/<job>`                     | persistent          | job JSON; the node's `mzxid` is its version |
//! | `/<ks>/executions/<job>`               | persistent (dir)    | empty                                       |
//! | `/<ks>/executions/<job>/<run>`         | persistent          | execution JSON without output (¹)           |
//! | `/<ks>/outputs/<job>`                  | persistent (dir)    | empty                                       |
//! | `/<ks>/outputs/<job>/<run>`            | persistent          | output, UTF-8, possibly empty (²)           |
//! | `/<ks>/running/<started>-<job>+<node>` | persistent          | execution JSON without output, while running|
//! | `/<ks>/meta/<setting>`                 | persistent          | setting value, UTF-8                        |
//! | `/<ks>/ledger/<job>`                   | persistent          | latest fired scheduled instant, Unix nanos, decimal |
//! | `/<ks>/missed/<job>`                   | persistent          | missed fires JSON `{"total":n,"recent":[nanos…]}` |
//! | `/<ks>/leader`                         | persistent          | the holder of the last acquisition (a lock word, ³) |
//! | `/<ks>/leader/lease-<seq>`             | ephemeral sequential| lease JSON `{"holder":…,"ttl_ms":…}` (³)    |
//!
//! `<run>` is `<started>-<node>`: `<started>` is the execution's `started_at` as Unix
//! nanoseconds with the sign bit flipped, in 16 lower-case hex digits, so that the byte order of
//! run names is time order (before 1970 included), then node. ZooKeeper lists children in no
//! particular order, so every listing is sorted client-side; the names are nonetheless built to
//! sort.
//!
//! (¹) The output lives under `outputs/`, so listings without output and trimming never read
//! it. (²) Every run has an output node, empty when the output is, so deleting a run never has
//! to find out whether it has one. Outputs longer than [`OUTPUT_MAX`] bytes keep their last
//! [`OUTPUT_MAX`] bytes (ZooKeeper refuses requests over about 1 MiB, `jute.maxbuffer`).
//! (³) See the crate documentation, "Leadership".
//!
//! Job names, node names and setting names are escaped into znode names: ASCII letters and
//! digits and `-_.:@` stay as they are, every other byte of their UTF-8 becomes `%XX` (so `/`,
//! `+`, `%`, control characters and everything ZooKeeper refuses in a path are escaped); a name
//! that is exactly `.` or `..` escapes its dots, and the empty name is `%` alone. Valid job
//! names (`\p{Ll}`, digits, `_`, `-`) are therefore stored as they are.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use rkron_core::execution::unix_nanos;
use rkron_core::{Execution, Job};
use rkron_store::StoreError;
pub(crate) use rkron_store::kv::{decode_missed, encode_missed};
use serde::{Deserialize, Serialize};

/// The longest output stored, in bytes; a longer one keeps its tail.
pub const OUTPUT_MAX: usize = 512 * 1024;

/// Prefix of lease node names under `/<ks>/leader`.
pub(crate) const LEASE_PREFIX: &str = "lease-";

/// The directories created under `/<ks>` when a store connects.
pub(crate) const DIRS: [&str; 8] = [
    "jobs",
    "executions",
    "outputs",
    "running",
    "meta",
    "ledger",
    "missed",
    "leader",
];

fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b':' | b'@')
}

/// Escapes `name` for use inside a znode name (never produces `+` or `/`).
pub(crate) fn escape_part(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len());
    for byte in name.bytes() {
        if is_plain(byte) {
            escaped.push(char::from(byte));
        } else {
            let _ = write!(escaped, "%{byte:02X}");
        }
    }
    escaped
}

/// Escapes `name` as a whole znode name: like [`escape_part`], and never empty, `.` or `..`.
pub(crate) fn escape_segment(name: &str) -> String {
    match name {
        "" => "%".to_owned(),
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        other => escape_part(other),
    }
}

/// Reverses [`escape_segment`] (and [`escape_part`]); `None` for a name it cannot produce.
pub(crate) fn unescape(escaped: &str) -> Option<String> {
    if escaped == "%" {
        return Some(String::new());
    }
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%' {
            let hex = escaped.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else if is_plain(byte) {
            out.push(byte);
            index += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// The sortable text of a start instant: the sign bit flipped, 16 hex digits.
fn started_text(started_nanos: i64) -> String {
    let sortable = started_nanos.cast_unsigned() ^ (1 << 63);
    format!("{sortable:016x}")
}

/// Parses [`started_text`].
fn parse_started(text: &str) -> Option<i64> {
    if text.len() != 16 {
        return None;
    }
    let sortable = u64::from_str_radix(text, 16).ok()?;
    Some((sortable ^ (1 << 63)).cast_signed())
}

/// The znode name of a run: `<started>-<node>`.
pub(crate) fn run_name(started_nanos: i64, node: &str) -> String {
    format!("{}-{}", started_text(started_nanos), escape_part(node))
}

/// The run name of `execution`.
pub(crate) fn run_of(execution: &Execution) -> String {
    run_name(unix_nanos(execution.started_at), &execution.node_name)
}

/// Parses a run name into its start nanos and node name.
pub(crate) fn parse_run(name: &str) -> Option<(i64, String)> {
    let started = parse_started(name.get(..16)?)?;
    let node = name.get(16..)?.strip_prefix('-')?;
    Some((started, unescape_part(node)?))
}

/// Like [`unescape`], without the special case of the empty name.
fn unescape_part(escaped: &str) -> Option<String> {
    if escaped.is_empty() {
        return Some(String::new());
    }
    if escaped == "%" {
        return None;
    }
    unescape(escaped)
}

/// The znode name of a running-index entry: `<started>-<job>+<node>`.
pub(crate) fn running_name(started_nanos: i64, job: &str, node: &str) -> String {
    format!(
        "{}-{}+{}",
        started_text(started_nanos),
        escape_part(job),
        escape_part(node)
    )
}

/// The running-index name of `execution`.
pub(crate) fn running_of(execution: &Execution) -> String {
    running_name(
        unix_nanos(execution.started_at),
        &execution.job_name,
        &execution.node_name,
    )
}

/// Parses a running-index name into start nanos, job and node.
pub(crate) fn parse_running(name: &str) -> Option<(i64, String, String)> {
    let started = parse_started(name.get(..16)?)?;
    let rest = name.get(16..)?.strip_prefix('-')?;
    let (job, node) = rest.split_once('+')?;
    Some((started, unescape_part(job)?, unescape_part(node)?))
}

/// Parses the sequence number of a lease node name.
pub(crate) fn lease_sequence(name: &str) -> Option<i64> {
    name.strip_prefix(LEASE_PREFIX)?.parse().ok()
}

/// Builds the paths of one keyspace.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// `/<ks>`.
    root: String,
}

impl Paths {
    /// The paths under `/<keyspace>` (`keyspace` without leading or trailing slashes).
    pub(crate) fn new(keyspace: &str) -> Self {
        Self {
            root: format!("/{keyspace}"),
        }
    }

    /// `/<ks>`.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// `/<ks>/<dir>`.
    pub(crate) fn dir(&self, dir: &str) -> String {
        format!("{}/{dir}", self.root)
    }

    /// The node of job `name`.
    pub(crate) fn job(&self, name: &str) -> String {
        format!("{}/jobs/{}", self.root, escape_segment(name))
    }

    /// The directory of the executions of `job`.
    pub(crate) fn executions_of(&self, job: &str) -> String {
        format!("{}/executions/{}", self.root, escape_segment(job))
    }

    /// The directory of the outputs of `job`.
    pub(crate) fn outputs_of(&self, job: &str) -> String {
        format!("{}/outputs/{}", self.root, escape_segment(job))
    }

    /// The running-index node named `name`.
    pub(crate) fn running(&self, name: &str) -> String {
        format!("{}/running/{name}", self.root)
    }

    /// The node of setting `name`.
    pub(crate) fn meta(&self, name: &str) -> String {
        format!("{}/meta/{}", self.root, escape_segment(name))
    }

    /// The ledger node of `job`.
    pub(crate) fn ledger_of(&self, job: &str) -> String {
        format!("{}/ledger/{}", self.root, escape_segment(job))
    }

    /// The missed-fires node of `job`.
    pub(crate) fn missed(&self, job: &str) -> String {
        format!("{}/missed/{}", self.root, escape_segment(job))
    }

    /// The lease directory (and lock word).
    pub(crate) fn leader(&self) -> String {
        format!("{}/leader", self.root)
    }

    /// The lease node named `name`.
    pub(crate) fn lease(&self, name: &str) -> String {
        format!("{}/leader/{name}", self.root)
    }
}

/// Returns a [`StoreError::Corrupt`] for `key`.
pub(crate) fn corrupt(key: impl Into<String>, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.into(),
        reason: reason.to_string(),
    }
}

/// Encodes a job.
pub(crate) fn encode_job(job: &Job) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(job)
        .map_err(|error| StoreError::Backend(format!("encoding job {}: {error}", job.name)))
}

/// Decodes the job stored at `path`.
pub(crate) fn decode_job(path: &str, bytes: &[u8]) -> Result<Job, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| corrupt(path, error))
}

/// Encodes an execution's metadata (its output is stored apart).
pub(crate) fn encode_execution(execution: &Execution) -> Result<Vec<u8>, StoreError> {
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

/// Decodes the execution metadata stored at `path`.
pub(crate) fn decode_execution(path: &str, bytes: &[u8]) -> Result<Execution, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| corrupt(path, error))
}

/// Returns the stored form of an output: at most [`OUTPUT_MAX`] bytes, its tail.
pub(crate) fn output_bytes(output: &str) -> &[u8] {
    if output.len() <= OUTPUT_MAX {
        return output.as_bytes();
    }
    let mut start = output.len() - OUTPUT_MAX;
    while !output.is_char_boundary(start) {
        start += 1;
    }
    &output.as_bytes()[start..]
}

/// Decodes UTF-8 text stored at `path`.
pub(crate) fn decode_text(path: &str, bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|error| corrupt(path, error))
}

/// Encodes Unix nanoseconds for the ledger: decimal text.
pub(crate) fn encode_nanos(nanos: i64) -> Vec<u8> {
    nanos.to_string().into_bytes()
}

/// Decodes decimal Unix nanoseconds stored at `path`.
pub(crate) fn decode_nanos(path: &str, bytes: &[u8]) -> Result<i64, StoreError> {
    std::str::from_utf8(bytes)
        .map_err(|error| corrupt(path, error))?
        .parse()
        .map_err(|error| corrupt(path, error))
}

/// The data of a lease node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseData {
    /// The holder's node name.
    pub(crate) holder: String,
    /// The TTL the holder asked for at its last acquisition or renewal, in milliseconds.
    pub(crate) ttl_ms: u64,
}

/// Encodes a lease node's data.
pub(crate) fn encode_lease(data: &LeaseData) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(data)
        .map_err(|error| StoreError::Backend(format!("encoding the lease: {error}")))
}

/// Decodes the lease stored at `path`.
pub(crate) fn decode_lease(path: &str, bytes: &[u8]) -> Result<LeaseData, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| corrupt(path, error))
}

/// Converts Unix nanoseconds to an instant.
pub(crate) fn instant_of(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_sort_by_time_then_node() {
        let mut names = vec![
            run_name(10, "b"),
            run_name(-5, "z"),
            run_name(10, "a"),
            run_name(i64::MIN, "a"),
            run_name(i64::MAX, "a"),
            run_name(0, "a"),
            run_name(-1, "a"),
        ];
        names.sort();
        assert_eq!(
            names,
            [
                run_name(i64::MIN, "a"),
                run_name(-5, "z"),
                run_name(-1, "a"),
                run_name(0, "a"),
                run_name(10, "a"),
                run_name(10, "b"),
                run_name(i64::MAX, "a"),
            ]
        );
        assert_eq!(run_name(0, "n"), "8000000000000000-n");
    }

    #[test]
    fn names_round_trip_through_escaping() {
        for name in [
            "",
            ".",
            "..",
            "...",
            "a",
            "job-1_x",
            "a/b",
            "a+b",
            "%",
            "%2F",
            "ünï",
            "a b",
            "\u{1}",
            "node.example.com:80",
        ] {
            let segment = escape_segment(name);
            assert!(!segment.is_empty() && segment != "." && segment != "..");
            assert!(
                !segment.contains('/') && !segment.contains('+'),
                "{segment}"
            );
            assert_eq!(unescape(&segment).as_deref(), Some(name), "{segment}");
            assert_eq!(unescape_part(&escape_part(name)).as_deref(), Some(name));
        }
        assert_eq!(escape_segment("valid-job_1"), "valid-job_1");
        assert_eq!(unescape("%zz"), None);
        assert_eq!(unescape("a/b"), None);
    }

    #[test]
    fn runs_and_running_entries_parse_back() {
        for (nanos, node) in [
            (0, "n"),
            (-1_800_000_000_000_000_000, "a-b"),
            (7, ""),
            (1, "x+y"),
        ] {
            assert_eq!(
                parse_run(&run_name(nanos, node)),
                Some((nanos, node.to_owned()))
            );
            for job in ["j", "", "a+b", "fo-o"] {
                assert_eq!(
                    parse_running(&running_name(nanos, job, node)),
                    Some((nanos, job.to_owned(), node.to_owned()))
                );
            }
        }
        assert_eq!(parse_run("garbage"), None);
        assert_eq!(lease_sequence("lease-0000000042"), Some(42));
        assert_eq!(lease_sequence("other"), None);
    }

    #[test]
    fn long_outputs_keep_their_tail_on_a_char_boundary() {
        let output = format!("{}{}", "é".repeat(OUTPUT_MAX), "end");
        let stored = output_bytes(&output);
        assert!(stored.len() <= OUTPUT_MAX);
        let text = std::str::from_utf8(stored).unwrap();
        assert!(text.ends_with("end"));
        assert_eq!(output_bytes("short"), b"short");
    }

    #[test]
    fn job_paths_never_reach_longer_names() {
        let paths = Paths::new("rkron");
        assert_eq!(paths.job("foo"), "/rkron/jobs/foo");
        assert_eq!(paths.executions_of("foo"), "/rkron/executions/foo");
        assert_eq!(paths.meta("a/b"), "/rkron/meta/a%2Fb");
        assert_eq!(paths.lease("lease-1"), "/rkron/leader/lease-1");
    }
}
