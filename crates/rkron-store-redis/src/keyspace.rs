//! The Redis keyspace of the store: key names, members and record encoding.
//!
//! Every key of keyspace `<ks>` starts with the hash tag `{<ks>}`, so all of them hash to one
//! slot: the multi-key Lua scripts stay legal on a Redis Cluster, and one keyspace never reaches
//! another (`{a}:…` and `{a:b}:…` differ at the closing brace). Keys that carry a job name end
//! with the name exactly, after a type tag that is not a prefix of another type tag.
//!
//! | key                    | type       | content                                                  |
//! |------------------------|------------|----------------------------------------------------------|
//! | `{ks}:layout`          | string     | keyspace layout version (`1`)                            |
//! | `{ks}:version`         | string     | last record version handed out (`INCR`)                  |
//! | `{ks}:jobs`            | sorted set | every job name, score 0: name order by `ZRANGEBYLEX`     |
//! | `{ks}:job:<job>`       | hash       | `v`: version (decimal), `j`: job JSON                    |
//! | `{ks}:runs:<job>`      | sorted set | execution members (¹), score 0: `started_at`, node order |
//! | `{ks}:exec:<job>`      | hash       | execution member → execution record (²)                  |
//! | `{ks}:out:<job>`       | hash       | execution member → output (absent when empty)            |
//! | `{ks}:stamp:<job>`     | string     | version of the last change of the job's executions (³)   |
//! | `{ks}:running`         | hash       | running field (⁴) → execution record (²) of a running run|
//! | `{ks}:meta`            | hash       | setting → value                                          |
//! | `{ks}:ledger`          | hash       | job → latest dispatched scheduled instant (⁵)            |
//! | `{ks}:missed`          | hash       | job → missed fires as JSON `{"total":…,"recent":[…]}` (⁶)|
//! | `{ks}:leader`          | string     | `<token> <holder>` with the lease's TTL (`PX`)           |
//! | `{ks}:epoch`           | string     | last fencing token handed out (`INCR`, see below)        |
//!
//! (¹) `<started>` (⁵) followed by the node name: fixed width, so byte order is
//!     `(started_at, node)` order, and members of one job never mix with another's.
//! (²) `<group> <metadata JSON>`: the group (decimal) first, so a script can pick the runs of one
//!     group without decoding JSON; the JSON is the execution without its output.
//! (³) Lets `finish_execution` compute the group status in Rust and write it with a
//!     compare-and-set script: versions never repeat, so an unchanged stamp means unchanged runs.
//! (⁴) `<started>` (⁵), the job name's byte length as 10 decimal digits, the job name, the node.
//! (⁵) Unix nanoseconds as a biased unsigned number (`nanos XOR 2^63`), 20 decimal digits: byte
//!     order is time order (before 1970 too), and Lua compares them as strings, never as its
//!     53-bit doubles.
//! (⁶) Unix nanoseconds, ascending, at most [`rkron_store::MISSED_KEPT`].
//!
//! Fencing tokens come from `{ks}:epoch`, but never fall below the Redis server's clock in
//! microseconds: a server that lost its data (no persistence, a failover to a replica that lagged)
//! still hands out tokens greater than those of before, as long as its clock did not go back.
//! (Tokens run ahead of the clock only by the leases taken within one microsecond.)

use chrono::{DateTime, Utc};
use rkron_core::execution::unix_nanos;
use rkron_core::{Execution, Job};
use rkron_store::{MISSED_KEPT, MissedFires, StoreError, Version, Versioned};
use serde::{Deserialize, Serialize};

/// Version of the keyspace layout, kept under [`Keys::layout`].
pub(crate) const LAYOUT_V1: &str = "1";

/// Width of an encoded instant.
const INSTANT_WIDTH: usize = 20;
/// Width of the job name length in a running field.
const LENGTH_WIDTH: usize = 10;
/// The bias that maps `i64` onto `u64` in order.
const BIAS: u64 = 1 << 63;

/// The key names of one keyspace.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `{<keyspace>}:`, the prefix of every key.
    prefix: String,
}

impl Keys {
    /// The keys of `keyspace`, which must not contain braces (checked by the config).
    pub(crate) fn new(keyspace: &str) -> Self {
        Self {
            prefix: format!("{{{keyspace}}}:"),
        }
    }

    fn global(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn of_job(&self, kind: &str, job: &str) -> String {
        format!("{}{kind}:{job}", self.prefix)
    }

    pub(crate) fn layout(&self) -> String {
        self.global("layout")
    }
    pub(crate) fn version(&self) -> String {
        self.global("version")
    }
    pub(crate) fn jobs(&self) -> String {
        self.global("jobs")
    }
    /// The prefix of job keys: scripts append a name to reach a job listed in [`Self::jobs`].
    pub(crate) fn job_prefix(&self) -> String {
        self.of_job("job", "")
    }
    pub(crate) fn job(&self, job: &str) -> String {
        self.of_job("job", job)
    }
    pub(crate) fn runs(&self, job: &str) -> String {
        self.of_job("runs", job)
    }
    pub(crate) fn exec(&self, job: &str) -> String {
        self.of_job("exec", job)
    }
    pub(crate) fn out(&self, job: &str) -> String {
        self.of_job("out", job)
    }
    pub(crate) fn stamp(&self, job: &str) -> String {
        self.of_job("stamp", job)
    }
    pub(crate) fn running(&self) -> String {
        self.global("running")
    }
    pub(crate) fn meta(&self) -> String {
        self.global("meta")
    }
    pub(crate) fn ledger(&self) -> String {
        self.global("ledger")
    }
    pub(crate) fn missed(&self) -> String {
        self.global("missed")
    }
    pub(crate) fn leader(&self) -> String {
        self.global("leader")
    }
    pub(crate) fn epoch(&self) -> String {
        self.global("epoch")
    }
}

pub(crate) fn corrupt(key: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Encodes Unix nanoseconds so that byte order is numeric order.
pub(crate) fn encode_nanos(nanos: i64) -> String {
    format!("{:020}", nanos.cast_unsigned() ^ BIAS)
}

/// Encodes an instant as [`encode_nanos`] does (clamped to what an `i64` of nanoseconds holds).
pub(crate) fn encode_instant(instant: DateTime<Utc>) -> String {
    encode_nanos(unix_nanos(instant))
}

/// Decodes [`encode_nanos`].
pub(crate) fn decode_nanos(text: &[u8]) -> Option<i64> {
    if text.len() != INSTANT_WIDTH || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let biased: u64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    Some((biased ^ BIAS).cast_signed())
}

/// Decodes [`encode_instant`].
pub(crate) fn decode_instant(text: &[u8]) -> Option<DateTime<Utc>> {
    decode_nanos(text).map(DateTime::from_timestamp_nanos)
}

/// The member of an execution in its job's sorted set and hashes.
pub(crate) fn execution_member(started_nanos: i64, node: &str) -> String {
    let mut member = encode_nanos(started_nanos);
    member.push_str(node);
    member
}

/// Splits an execution member into `(started nanos, node)`.
pub(crate) fn split_member(member: &[u8]) -> Option<(i64, &[u8])> {
    let (started, node) = member.split_at_checked(INSTANT_WIDTH)?;
    Some((decode_nanos(started)?, node))
}

/// The field of a running execution in the running hash. The scripts build the same field from
/// a job name and an execution member (`running_field` in `scripts.rs`); Rust only reads them.
#[cfg(test)]
pub(crate) fn running_field(job: &str, started_nanos: i64, node: &str) -> String {
    format!(
        "{}{:0LENGTH_WIDTH$}{job}{node}",
        encode_nanos(started_nanos),
        job.len()
    )
}

/// Splits a running field into `(started nanos, job, node)`.
pub(crate) fn split_running_field(field: &[u8]) -> Option<(i64, &[u8], &[u8])> {
    let (started, rest) = field.split_at_checked(INSTANT_WIDTH)?;
    let (length, rest) = rest.split_at_checked(LENGTH_WIDTH)?;
    if !length.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length: usize = std::str::from_utf8(length).ok()?.parse().ok()?;
    let (job, node) = rest.split_at_checked(length)?;
    Some((decode_nanos(started)?, job, node))
}

fn text<'a>(label: &str, bytes: &'a [u8]) -> Result<&'a str, StoreError> {
    std::str::from_utf8(bytes).map_err(|error| corrupt(label, error.to_string()))
}

/// Encodes a job for the `j` field of its hash.
pub(crate) fn encode_job(job: &Job) -> Result<String, StoreError> {
    serde_json::to_string(job)
        .map_err(|error| StoreError::Backend(format!("failed to encode job {}: {error}", job.name)))
}

/// Decodes a job hash's `v` and `j` fields; `name` is the name the job is stored under.
pub(crate) fn decode_job(
    name: &str,
    version: &[u8],
    json: &[u8],
) -> Result<Versioned<Job>, StoreError> {
    let label = format!("job {name}");
    let version: Version = text(&label, version)?
        .parse()
        .map_err(|_| corrupt(&label, "the version is not a number"))?;
    let value: Job =
        serde_json::from_slice(json).map_err(|error| corrupt(&label, error.to_string()))?;
    if value.name != name {
        return Err(corrupt(label, format!("record holds job {}", value.name)));
    }
    Ok(Versioned { value, version })
}

/// Returns a copy of `execution` without its output, never copying the output.
fn without_output(execution: &Execution) -> Execution {
    Execution {
        job_name: execution.job_name.clone(),
        started_at: execution.started_at,
        finished_at: execution.finished_at,
        success: execution.success,
        output: String::new(),
        node_name: execution.node_name.clone(),
        group: execution.group,
        attempt: execution.attempt,
        scheduled_at: execution.scheduled_at,
    }
}

/// The prefix of the records of `group`'s executions.
pub(crate) fn group_prefix(group: i64) -> String {
    format!("{group} ")
}

/// Encodes an execution's record: its group, a space and its metadata (no output) as JSON.
pub(crate) fn encode_execution(execution: &Execution) -> Result<String, StoreError> {
    let json = serde_json::to_string(&without_output(execution)).map_err(|error| {
        StoreError::Backend(format!(
            "failed to encode execution {}: {error}",
            execution.id()
        ))
    })?;
    Ok(format!("{}{json}", group_prefix(execution.group)))
}

/// Decodes an execution record stored for `(job, started nanos, node)`; its `output` is empty.
pub(crate) fn decode_execution(
    job: &[u8],
    started: i64,
    node: &[u8],
    record: &[u8],
) -> Result<Execution, StoreError> {
    let label = format!(
        "execution {}/{started}-{}",
        String::from_utf8_lossy(job),
        String::from_utf8_lossy(node)
    );
    let Some(space) = record.iter().position(|byte| *byte == b' ') else {
        return Err(corrupt(label, "no group prefix"));
    };
    let (group, json) = (&record[..space], &record[space + 1..]);
    let group: i64 = text(&label, group)?
        .parse()
        .map_err(|_| corrupt(&label, "the group is not a number"))?;
    let execution: Execution =
        serde_json::from_slice(json).map_err(|error| corrupt(&label, error.to_string()))?;
    let matches_key = execution.job_name.as_bytes() == job
        && unix_nanos(execution.started_at) == started
        && execution.node_name.as_bytes() == node
        && execution.group == group;
    if !matches_key {
        return Err(corrupt(
            label,
            format!(
                "record holds execution {}/{} of group {}",
                execution.job_name,
                execution.id(),
                execution.group
            ),
        ));
    }
    Ok(execution)
}

/// Decodes an output stored for the execution `label` names.
pub(crate) fn decode_output(
    label: impl FnOnce() -> String,
    bytes: Vec<u8>,
) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|error| corrupt(label(), error.to_string()))
}

#[derive(Serialize, Deserialize)]
struct MissedRecord {
    total: u64,
    recent: Vec<i64>,
}

/// Encodes a job's missed fires.
pub(crate) fn encode_missed(missed: &MissedFires) -> String {
    let record = MissedRecord {
        total: missed.total,
        recent: missed
            .recent
            .iter()
            .map(|instant| unix_nanos(*instant))
            .collect(),
    };
    // A struct of numbers always serializes.
    serde_json::to_string(&record).unwrap_or_default()
}

/// Decodes a job's missed fires, checking that the instants are few enough and ascending.
pub(crate) fn decode_missed(job: &str, bytes: &[u8]) -> Result<MissedFires, StoreError> {
    let label = format!("missed fires of job {job}");
    let record: MissedRecord =
        serde_json::from_slice(bytes).map_err(|error| corrupt(&label, error.to_string()))?;
    if record.recent.len() > MISSED_KEPT {
        return Err(corrupt(
            label,
            format!(
                "{} missed instants, at most {MISSED_KEPT} are kept",
                record.recent.len()
            ),
        ));
    }
    if record.recent.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(corrupt(label, "missed instants out of order"));
    }
    Ok(MissedFires {
        total: record.total,
        recent: record
            .recent
            .into_iter()
            .map(DateTime::from_timestamp_nanos)
            .collect(),
    })
}

/// Encodes the leader key's value.
pub(crate) fn encode_lease(token: u64, holder: &str) -> String {
    format!("{token} {holder}")
}

/// Decodes the leader key's value into `(token, holder)`.
pub(crate) fn decode_lease(bytes: &[u8]) -> Option<(u64, String)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (token, holder) = text.split_once(' ')?;
    if token.is_empty() || !token.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((token.parse().ok()?, holder.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkron_store::testsuite;

    #[test]
    fn encoded_instants_sort_like_the_instants() {
        let values = [
            i64::MIN,
            -1_800_000_000_000_000_000,
            -1,
            0,
            1,
            1_700_000_000,
            i64::MAX,
        ];
        let encoded: Vec<String> = values.iter().map(|nanos| encode_nanos(*nanos)).collect();
        assert!(
            encoded.windows(2).all(|pair| pair[0] < pair[1]),
            "{encoded:?}"
        );
        for (nanos, text) in values.iter().zip(&encoded) {
            assert_eq!(text.len(), INSTANT_WIDTH);
            assert_eq!(decode_nanos(text.as_bytes()), Some(*nanos));
        }
        for bad in [
            &b""[..],
            b"123",
            b"1844674407370955161x",
            b"99999999999999999999",
        ] {
            assert_eq!(decode_nanos(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn members_and_running_fields_round_trip() {
        let member = execution_member(-5, "node a");
        assert_eq!(split_member(member.as_bytes()), Some((-5, &b"node a"[..])));
        let field = running_field("job:1", -5, "node a");
        assert_eq!(field, format!("{}0000000005job:1node a", encode_nanos(-5)));
        assert_eq!(
            split_running_field(field.as_bytes()),
            Some((-5, &b"job:1"[..], &b"node a"[..]))
        );
        assert_eq!(split_member(b"short"), None);
        assert_eq!(split_running_field(b"00000000000000000000999"), None);
        let too_long = format!("{}{:010}ab", encode_nanos(0), 5);
        assert_eq!(split_running_field(too_long.as_bytes()), None);
    }

    #[test]
    fn records_round_trip_and_damage_is_corrupt() {
        let job = testsuite::job("round");
        let json = encode_job(&job).unwrap();
        let decoded = decode_job("round", b"7", json.as_bytes()).unwrap();
        assert_eq!((decoded.value, decoded.version), (job, 7));
        for (name, version, json) in [
            ("other", &b"7"[..], json.as_bytes()),
            ("round", b"x", json.as_bytes()),
            ("round", b"7", b"{"),
            ("round", b"\xff", json.as_bytes()),
        ] {
            let decoded = decode_job(name, version, json);
            assert!(
                matches!(decoded, Err(StoreError::Corrupt { .. })),
                "{decoded:?}"
            );
        }

        let mut execution = testsuite::execution("round", 1, "n", true);
        execution.group = -42;
        let record = encode_execution(&execution).unwrap();
        assert!(record.starts_with(&group_prefix(-42)));
        let started = unix_nanos(execution.started_at);
        let decoded = decode_execution(b"round", started, b"n", record.as_bytes()).unwrap();
        execution.output = String::new();
        assert_eq!(decoded, execution);
        for (job, node, record) in [
            (&b"other"[..], &b"n"[..], record.as_bytes()),
            (b"round", b"m", record.as_bytes()),
            (b"round", b"n", b"nospace"),
            (b"round", b"n", b"x {}"),
            (b"round", b"n", b"1 {}"),
            (b"round", b"n", &record.as_bytes()[1..]),
        ] {
            let decoded = decode_execution(job, started, node, record);
            assert!(
                matches!(decoded, Err(StoreError::Corrupt { .. })),
                "{decoded:?}"
            );
        }

        let missed = MissedFires {
            total: u64::MAX,
            recent: vec![testsuite::instant(-1_800_000_000), testsuite::instant(0)],
        };
        assert_eq!(
            decode_missed("j", encode_missed(&missed).as_bytes()).unwrap(),
            missed
        );
        for bad in [
            &br#"{"total":1,"recent":[2,1]}"#[..],
            br#"{"total":-1,"recent":[]}"#,
            b"[]",
        ] {
            assert!(matches!(
                decode_missed("j", bad),
                Err(StoreError::Corrupt { .. })
            ));
        }

        assert_eq!(decode_lease(b"12 a b"), Some((12, "a b".to_owned())));
        assert_eq!(
            decode_lease(encode_lease(3, "").as_bytes()),
            Some((3, String::new()))
        );
        for bad in [
            &b"x a"[..],
            b"12",
            b" a",
            b"-1 a",
            b"99999999999999999999999 a",
        ] {
            assert_eq!(decode_lease(bad), None, "{bad:?}");
        }
    }
}
