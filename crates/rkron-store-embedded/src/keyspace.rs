//! The redb keyspace of the embedded store: tables, key layout and record encoding.
//!
//! Names are stored as raw bytes (not redb `&str`, whose decoding panics on invalid UTF-8), so a
//! damaged record surfaces as [`StoreError::Corrupt`]. Every value starts with a one-byte format
//! version so the encoding can evolve record by record.
//!
//! | table              | key                             | value                                |
//! |--------------------|---------------------------------|--------------------------------------|
//! | `jobs`             | job name                        | format, version (u64 BE), job JSON   |
//! | `executions`       | (job, started Unix nanos, node) | format, group (i64 BE), JSON (¹)     |
//! | `outputs`          | (job, started Unix nanos, node) | format, output (absent when empty)   |
//! | `running`          | (started Unix nanos, job, node) | nothing: index of unfinished runs    |
//! | `execution_counts` | job name                        | stored executions of the job (u64)   |
//! | `meta`             | setting name                    | format, UTF-8 value                  |
//! | `fire_ledger`      | job name                        | latest fired scheduled instant (²)   |
//! | `missed_fires`     | job name                        | format, total (u64 BE), instants (³) |
//! | `internal`         | counter name                    | u64                                  |
//!
//! (¹) The execution without its output, which lives in `outputs` so listings stay cheap.
//! (²) Unix nanoseconds as a plain redb `i64` (fixed width, so it cannot fail to decode).
//! (³) The newest missed instants, ascending, as Unix nanoseconds (i64 BE) each.
//!
//! The last two tables came after layout version 1 without changing it: opening an older file
//! simply creates them empty.
//!
//! Execution keys are tuples, compared element by element, so the range of job `foo` never
//! reaches `foobar`: it ends just before `(foo\0, i64::MIN, "")`.

use std::ops::Range;

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};
use rkron_core::execution::unix_nanos;
use rkron_core::{Execution, Job};
use rkron_store::{MISSED_KEPT, MissedFires, StoreError, Version, Versioned};

/// Format version of every record value written by this build.
const FORMAT_V1: u8 = 1;

/// Version of the keyspace layout, kept in [`INTERNAL`] under [`KEYSPACE_VERSION`].
pub(crate) const KEYSPACE_V1: u64 = 1;

/// A job's key: its name.
pub(crate) type NameKey = &'static [u8];
/// An execution's key: job name, `started_at` as Unix nanoseconds, node name.
pub(crate) type ExecutionKey = (&'static [u8], i64, &'static [u8]);
/// A running execution's key: `started_at` as Unix nanoseconds, job name, node name.
pub(crate) type RunningKey = (i64, &'static [u8], &'static [u8]);

pub(crate) const JOBS: TableDefinition<'static, NameKey, &[u8]> = TableDefinition::new("jobs");
pub(crate) const EXECUTIONS: TableDefinition<'static, ExecutionKey, &[u8]> =
    TableDefinition::new("executions");
pub(crate) const OUTPUTS: TableDefinition<'static, ExecutionKey, &[u8]> =
    TableDefinition::new("outputs");
pub(crate) const RUNNING: TableDefinition<'static, RunningKey, ()> =
    TableDefinition::new("running");
pub(crate) const EXECUTION_COUNTS: TableDefinition<'static, NameKey, u64> =
    TableDefinition::new("execution_counts");
pub(crate) const META: TableDefinition<'static, NameKey, &[u8]> = TableDefinition::new("meta");
pub(crate) const LEDGER: TableDefinition<'static, NameKey, i64> =
    TableDefinition::new("fire_ledger");
pub(crate) const MISSED: TableDefinition<'static, NameKey, &[u8]> =
    TableDefinition::new("missed_fires");
pub(crate) const INTERNAL: TableDefinition<'static, &str, u64> = TableDefinition::new("internal");

/// [`INTERNAL`] key of the last record version handed out.
pub(crate) const LAST_VERSION: &str = "last_version";
/// [`INTERNAL`] key of the keyspace layout version.
pub(crate) const KEYSPACE_VERSION: &str = "keyspace_version";

/// Owned parts of an execution key: `(started nanos, node)`; the job is known from context.
pub(crate) type RunOfJob = (i64, Vec<u8>);

/// Returns the key range holding exactly the executions of `job`, as owned bounds.
pub(crate) fn job_bounds(job: &[u8]) -> (Vec<u8>, Vec<u8>) {
    // `job\0` is the smallest name greater than `job`, so nothing of another job falls between.
    let mut next = Vec::with_capacity(job.len() + 1);
    next.extend_from_slice(job);
    next.push(0);
    (job.to_vec(), next)
}

/// Returns the range of execution keys of the job whose bounds are `(job, next)`.
pub(crate) fn job_range<'a>(job: &'a [u8], next: &'a [u8]) -> Range<(&'a [u8], i64, &'a [u8])> {
    (job, i64::MIN, &[][..])..(next, i64::MIN, &[][..])
}

/// Returns `(started nanos, node)` of every execution of `job`, in key order.
pub(crate) fn runs_of_job<T>(table: &T, job: &[u8]) -> Result<Vec<RunOfJob>, StoreError>
where
    T: ReadableTable<ExecutionKey, &'static [u8]>,
{
    let (lower, upper) = job_bounds(job);
    let mut runs = Vec::new();
    for entry in table.range(job_range(&lower, &upper)).map_err(storage)? {
        let (key, _) = entry.map_err(storage)?;
        let (_, started, node) = key.value();
        runs.push((started, node.to_vec()));
    }
    Ok(runs)
}

/// Maps a redb failure onto the store's error conditions.
pub(crate) fn storage(error: impl Into<redb::Error>) -> StoreError {
    match error.into() {
        redb::Error::Corrupted(reason) => StoreError::Corrupt {
            key: "rkron.redb".to_owned(),
            reason,
        },
        redb::Error::DatabaseClosed => StoreError::Unavailable("the store is closed".to_owned()),
        redb::Error::PreviousIo => StoreError::Unavailable(
            "an earlier I/O error left the store unusable; restart the server".to_owned(),
        ),
        other => StoreError::Backend(other.to_string()),
    }
}

fn corrupt(key: String, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key,
        reason: reason.into(),
    }
}

fn job_label(name: &[u8]) -> String {
    format!("job {}", String::from_utf8_lossy(name))
}

fn execution_label(job: &[u8], started: i64, node: &[u8]) -> String {
    format!(
        "execution {}/{started}-{}",
        String::from_utf8_lossy(job),
        String::from_utf8_lossy(node)
    )
}

/// Splits a value into its payload after checking the format byte.
fn payload<'a>(label: &str, bytes: &'a [u8]) -> Result<&'a [u8], StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => Ok(rest),
        Some((format, _)) => Err(corrupt(
            label.to_owned(),
            format!("unknown format {format}"),
        )),
        None => Err(corrupt(label.to_owned(), "empty record")),
    }
}

/// Splits a payload into its 8-byte header (a big-endian number) and the JSON after it.
fn header<'a>(label: &str, payload: &'a [u8]) -> Result<([u8; 8], &'a [u8]), StoreError> {
    match payload.split_first_chunk::<8>() {
        Some((head, rest)) => Ok((*head, rest)),
        None => Err(corrupt(label.to_owned(), "truncated record header")),
    }
}

/// Encodes a job record at `version`.
pub(crate) fn encode_job(version: Version, job: &Job) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::with_capacity(256);
    bytes.push(FORMAT_V1);
    bytes.extend_from_slice(&version.to_be_bytes());
    serde_json::to_writer(&mut bytes, job).map_err(|error| {
        StoreError::Backend(format!("failed to encode job {}: {error}", job.name))
    })?;
    Ok(bytes)
}

/// Sets the version of a job record made by [`encode_job`], so the JSON can be encoded before
/// the version is known.
pub(crate) fn set_job_version(record: &mut [u8], version: Version) {
    debug_assert!(
        record.len() > 9 && record[0] == FORMAT_V1,
        "not a job record"
    );
    if let Some(slot) = record.get_mut(1..9) {
        slot.copy_from_slice(&version.to_be_bytes());
    }
}

/// Reads only the version of a job record, without decoding the job.
pub(crate) fn decode_job_version(name: &[u8], bytes: &[u8]) -> Result<Version, StoreError> {
    let label = job_label(name);
    let (version, _) = header(&label, payload(&label, bytes)?)?;
    Ok(Version::from_be_bytes(version))
}

/// Decodes a job record.
pub(crate) fn decode_job(name: &[u8], bytes: &[u8]) -> Result<Versioned<Job>, StoreError> {
    let label = job_label(name);
    let payload = payload(&label, bytes)?;
    let (version, json) = header(&label, payload)?;
    let value: Job =
        serde_json::from_slice(json).map_err(|error| corrupt(label.clone(), error.to_string()))?;
    if value.name.as_bytes() != name {
        return Err(corrupt(label, format!("record holds job {}", value.name)));
    }
    Ok(Versioned {
        value,
        version: Version::from_be_bytes(version),
    })
}

/// Returns a copy of `execution` without its output, never copying the output.
pub(crate) fn without_output(execution: &Execution) -> Execution {
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

/// Encodes an execution's metadata: everything but the output.
pub(crate) fn encode_execution(execution: &Execution) -> Result<Vec<u8>, StoreError> {
    let metadata = without_output(execution);
    let mut bytes = Vec::with_capacity(256);
    bytes.push(FORMAT_V1);
    bytes.extend_from_slice(&execution.group.to_be_bytes());
    serde_json::to_writer(&mut bytes, &metadata).map_err(|error| {
        StoreError::Backend(format!(
            "failed to encode execution {}: {error}",
            execution.id()
        ))
    })?;
    Ok(bytes)
}

/// Reads only the group of an execution record, without decoding the execution.
pub(crate) fn decode_execution_group(
    (job, started, node): (&[u8], i64, &[u8]),
    bytes: &[u8],
) -> Result<i64, StoreError> {
    let label = execution_label(job, started, node);
    let (group, _) = header(&label, payload(&label, bytes)?)?;
    Ok(i64::from_be_bytes(group))
}

/// Decodes an execution's metadata (its `output` is empty).
pub(crate) fn decode_execution(
    (job, started, node): (&[u8], i64, &[u8]),
    bytes: &[u8],
) -> Result<Execution, StoreError> {
    let label = execution_label(job, started, node);
    let payload = payload(&label, bytes)?;
    let (_, json) = header(&label, payload)?;
    let execution: Execution =
        serde_json::from_slice(json).map_err(|error| corrupt(label.clone(), error.to_string()))?;
    let matches_key = execution.job_name.as_bytes() == job
        && unix_nanos(execution.started_at) == started
        && execution.node_name.as_bytes() == node;
    if !matches_key {
        return Err(corrupt(
            label,
            format!("record holds execution {}", execution.id()),
        ));
    }
    Ok(execution)
}

/// Encodes a string value (an output or a setting).
pub(crate) fn encode_text(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.push(FORMAT_V1);
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

/// Decodes a string value; `label` names the record in errors.
pub(crate) fn decode_text(
    label: impl FnOnce() -> String,
    bytes: &[u8],
) -> Result<String, StoreError> {
    let name = label();
    let payload = payload(&name, bytes)?;
    String::from_utf8(payload.to_vec()).map_err(|error| corrupt(name, error.to_string()))
}

/// Returns the instant `nanos` Unix nanoseconds after the epoch.
pub(crate) fn from_nanos(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

/// Returns `instant` as it reads back from the keyspace: instants outside what Unix nanoseconds
/// in an `i64` can hold (before 1677 or after 2262) are clamped to the nearest one.
pub(crate) fn storable(instant: DateTime<Utc>) -> DateTime<Utc> {
    from_nanos(unix_nanos(instant))
}

/// Decodes a job name used as a key.
pub(crate) fn decode_name(
    label: impl FnOnce() -> String,
    name: &[u8],
) -> Result<String, StoreError> {
    String::from_utf8(name.to_vec()).map_err(|error| corrupt(label(), error.to_string()))
}

/// Names a fire ledger entry in errors.
pub(crate) fn ledger_label(job: &[u8]) -> String {
    format!("fire ledger entry of {}", job_label(job))
}

fn missed_label(job: &[u8]) -> String {
    format!("missed fires of {}", job_label(job))
}

/// Encodes a job's missed fires.
pub(crate) fn encode_missed(missed: &MissedFires) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + 8 * (1 + missed.recent.len()));
    bytes.push(FORMAT_V1);
    bytes.extend_from_slice(&missed.total.to_be_bytes());
    for instant in &missed.recent {
        bytes.extend_from_slice(&unix_nanos(*instant).to_be_bytes());
    }
    bytes
}

/// Decodes a job's missed fires, checking that the instants are few enough and ascending.
pub(crate) fn decode_missed(job: &[u8], bytes: &[u8]) -> Result<MissedFires, StoreError> {
    let label = missed_label(job);
    let (total, instants) = header(&label, payload(&label, bytes)?)?;
    let (chunks, rest) = instants.as_chunks::<8>();
    if !rest.is_empty() {
        return Err(corrupt(label, "truncated missed instant"));
    }
    if chunks.len() > MISSED_KEPT {
        return Err(corrupt(
            label,
            format!(
                "{} missed instants, at most {MISSED_KEPT} are kept",
                chunks.len()
            ),
        ));
    }
    let nanos: Vec<i64> = chunks
        .iter()
        .map(|chunk| i64::from_be_bytes(*chunk))
        .collect();
    if nanos.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(corrupt(label, "missed instants out of order"));
    }
    Ok(MissedFires {
        total: u64::from_be_bytes(total),
        recent: nanos.into_iter().map(from_nanos).collect(),
    })
}

/// Names an execution's output record in errors.
pub(crate) fn output_label(job: &[u8], started: i64, node: &[u8]) -> String {
    format!("output of {}", execution_label(job, started, node))
}

/// Names a setting record in errors.
pub(crate) fn meta_label(key: &[u8]) -> String {
    format!("setting {}", String::from_utf8_lossy(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkron_store::testsuite;

    #[test]
    fn job_bounds_exclude_longer_names() {
        let (lower, upper) = job_bounds(b"foo");
        let range = job_range(&lower, &upper);
        let inside: (&[u8], i64, &[u8]) = (b"foo", i64::MAX, b"\xff\xff");
        let outside: (&[u8], i64, &[u8]) = (b"foo\0", i64::MIN, b"");
        let after: (&[u8], i64, &[u8]) = (b"foobar", i64::MIN, b"");
        assert!(range.contains(&inside));
        assert!(!range.contains(&outside));
        assert!(!range.contains(&after));
    }

    #[test]
    fn records_round_trip() {
        let job = testsuite::job("round");
        let bytes = encode_job(7, &job).unwrap();
        assert_eq!(
            decode_job(b"round", &bytes).unwrap(),
            Versioned {
                value: job,
                version: 7
            }
        );
        assert_eq!(decode_job_version(b"round", &bytes).unwrap(), 7);

        let mut execution = testsuite::execution("round", 1, "n", true);
        execution.group = -42;
        let bytes = encode_execution(&execution).unwrap();
        let key = (&b"round"[..], unix_nanos(execution.started_at), &b"n"[..]);
        assert_eq!(decode_execution_group(key, &bytes).unwrap(), -42);
        let decoded = decode_execution(key, &bytes).unwrap();
        execution.output = String::new();
        assert_eq!(decoded, execution);
        assert_eq!(decode_text(String::new, &encode_text("ü")).unwrap(), "ü");

        let missed = MissedFires {
            total: u64::MAX,
            recent: vec![
                testsuite::instant(-1_800_000_000),
                testsuite::instant(0),
                from_nanos(i64::MAX),
            ],
        };
        assert_eq!(
            decode_missed(b"round", &encode_missed(&missed)).unwrap(),
            missed
        );
        assert_eq!(
            decode_missed(b"round", &encode_missed(&MissedFires::default())).unwrap(),
            MissedFires::default()
        );
    }

    #[test]
    fn damaged_records_are_corrupt_not_panics() {
        let job = encode_job(1, &testsuite::job("x")).unwrap();
        let damaged: [&[u8]; 5] = [b"", &[2, 0, 0], &job[..5], &job[..job.len() - 1], &[1; 9]];
        for bytes in damaged {
            let decoded = decode_job(b"x", bytes);
            assert!(
                matches!(decoded, Err(StoreError::Corrupt { .. })),
                "{bytes:?}: {decoded:?}"
            );
        }
        assert!(matches!(
            decode_job(b"y", &job),
            Err(StoreError::Corrupt { .. })
        ));
        let text = decode_text(|| "setting x".to_owned(), &[1, 0xff, 0xfe]);
        assert!(matches!(text, Err(StoreError::Corrupt { .. })), "{text:?}");
    }
}
