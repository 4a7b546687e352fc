//! The table layout of the DynamoDB store: item keys, attribute names and record encoding.
//!
//! One table holds everything, under a composite primary key: partition key `pk` and sort key
//! `sk`, both strings. DynamoDB orders items of one partition by the UTF-8 bytes of `sk`, so a
//! `Query` of one partition reads its items in order, page by page.
//!
//! | record              | `pk`          | `sk`                     | attributes                                                           |
//! |---------------------|---------------|--------------------------|----------------------------------------------------------------------|
//! | job                 | `job`         | job name                 | `body` (S: job JSON), `ver` (N: version)                             |
//! | version counter     | `counter`     | `version`                | `value` (N: the last version handed out)                             |
//! | execution           | `exec#<job>`  | `<started>#<node>`       | `body` (S: execution JSON without output), `running`, `out` (¹)      |
//! | execution output    | `out#<job>`   | `<started>#<node>`       | `output` (S; no item when the output is empty)                       |
//! | running index       | `running`     | `<started>#<job>#<node>` | `body` (S: execution JSON without output), while unfinished          |
//! | setting             | `meta`        | setting name             | `value` (S)                                                          |
//! | fire ledger entry   | `ledger`      | job name                 | `at` (N: latest fired scheduled instant, Unix nanoseconds)           |
//! | missed fires        | `missed`      | job name                 | `total` (N), `recent` (L of N: Unix nanoseconds), `rev` (N) (²)      |
//! | leadership lease    | `lease`       | `leader`                 | `holder` (S), `token` (N), `expires_at` (N: Unix milliseconds)       |
//! | layout version      | `layout`      | `version`                | `value` (S)                                                          |
//!
//! (¹) `running` (BOOL) is present while the execution is unfinished and `out` (BOOL) while an
//! output item exists, so trimming and deleting read only keys and these flags to know which
//! items to delete, never bodies or outputs.
//! (²) `rev` counts the writes of the record, for compare-and-set.
//!
//! `<started>` is `started_at` as Unix nanoseconds with the sign bit flipped, in 16 lower-case
//! hex digits: byte order is time order, before 1970 included, so a `Query` of `exec#<job>`
//! lists the job's executions by `started_at`, then node. Each job's executions and outputs are
//! partitions of their own (`exec#foo` is never a prefix match of `exec#foobar`: partition keys
//! match exactly), so listing, trimming and deleting touch only that job's items. In the running
//! index, `%` and `#` of the job name are escaped (`%25`, `%23`) so the key stays unambiguous;
//! valid job names contain neither.
//!
//! The jobs, the ledger, the missed fires and the running index each live in one partition
//! (`job`, `ledger`, …) so that a `Query` lists them in order (`GET /v1/jobs` pages by name).
//! DynamoDB splits a busy partition by sort-key range on its own (adaptive capacity), but one
//! item's throughput stays bounded (about 1,000 writes per second): the version counter is such
//! an item, written once per job write.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use rkron_core::execution::unix_nanos;
use rkron_core::{Execution, Job};
use rkron_store::StoreError;

/// An item: attribute name → value.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The partition key attribute.
pub(crate) const PK: &str = "pk";
/// The sort key attribute.
pub(crate) const SK: &str = "sk";
/// A JSON record.
pub(crate) const BODY: &str = "body";
/// A job's version.
pub(crate) const VERSION: &str = "ver";
/// A setting's, the counter's or the layout's value.
pub(crate) const VALUE: &str = "value";
/// Present (true) while an execution is unfinished.
pub(crate) const RUNNING: &str = "running";
/// Present (true) while an execution has an output item.
pub(crate) const HAS_OUTPUT: &str = "out";
/// An execution's output.
pub(crate) const OUTPUT: &str = "output";
/// A fire ledger entry's instant.
pub(crate) const AT: &str = "at";
/// Missed fires: how many in all.
pub(crate) const TOTAL: &str = "total";
/// Missed fires: the newest instants.
pub(crate) const RECENT: &str = "recent";
/// Missed fires: the record's write count.
pub(crate) const REVISION: &str = "rev";
/// The lease's holder.
pub(crate) const HOLDER: &str = "holder";
/// The lease's fencing token.
pub(crate) const TOKEN: &str = "token";
/// The lease's expiry, Unix milliseconds of the writer's clock.
pub(crate) const EXPIRES_AT: &str = "expires_at";

/// Partition of the jobs.
const JOBS: &str = "job";
/// Partition of the version counter.
const COUNTER: &str = "counter";
/// Prefix of a job's execution partition.
const EXECUTIONS: &str = "exec#";
/// Prefix of a job's output partition.
const OUTPUTS: &str = "out#";
/// Partition of the running index.
const RUNNING_INDEX: &str = "running";
/// Partition of the settings.
const META: &str = "meta";
/// Partition of the fire ledger.
const LEDGER: &str = "ledger";
/// Partition of the missed fires.
const MISSED: &str = "missed";
/// Partition of the lease.
const LEASE: &str = "lease";
/// Partition of the layout version.
const LAYOUT: &str = "layout";

/// The layout version this code writes and reads.
pub(crate) const LAYOUT_V1: &str = "1";

/// The primary key of one item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) pk: String,
    pub(crate) sk: String,
}

impl Key {
    fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    /// The key as the attributes DynamoDB expects.
    pub(crate) fn to_item(&self) -> Item {
        HashMap::from([
            (PK.to_owned(), AttributeValue::S(self.pk.clone())),
            (SK.to_owned(), AttributeValue::S(self.sk.clone())),
        ])
    }

    /// The key of `item`.
    pub(crate) fn of(item: &Item) -> Result<Self, StoreError> {
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(value)) => Ok(value.clone()),
            _ => Err(corrupt("an item", format!("its {name} is not a string"))),
        };
        Ok(Self {
            pk: text(PK)?,
            sk: text(SK)?,
        })
    }

    /// The key of job `name`.
    pub(crate) fn job(name: &str) -> Self {
        Self::new(JOBS, name)
    }

    /// The key of the version counter.
    pub(crate) fn counter() -> Self {
        Self::new(COUNTER, "version")
    }

    /// The key of the metadata of run `run` of `job`.
    pub(crate) fn execution(job: &str, run: &str) -> Self {
        Self::new(executions_of(job), run)
    }

    /// The key of the output of run `run` of `job`.
    pub(crate) fn output(job: &str, run: &str) -> Self {
        Self::new(outputs_of(job), run)
    }

    /// The running-index key of run `run` of `job`.
    pub(crate) fn running(job: &str, run: &str) -> Self {
        let (started, node) = run.split_once('#').unwrap_or((run, ""));
        Self::new(RUNNING_INDEX, format!("{started}#{}#{node}", escape(job)))
    }

    /// The key of setting `name`.
    pub(crate) fn meta(name: &str) -> Self {
        Self::new(META, name)
    }

    /// The fire ledger key of `job`.
    pub(crate) fn ledger(job: &str) -> Self {
        Self::new(LEDGER, job)
    }

    /// The missed-fires key of `job`.
    pub(crate) fn missed(job: &str) -> Self {
        Self::new(MISSED, job)
    }

    /// The key of the lease.
    pub(crate) fn lease() -> Self {
        Self::new(LEASE, "leader")
    }

    /// The key of the layout version.
    pub(crate) fn layout() -> Self {
        Self::new(LAYOUT, "version")
    }
}

impl Key {
    /// Where the item comes in a delete spread over several batches: running index entries
    /// first (an orphan would be listed as running), then execution metadata, then outputs (an
    /// orphan output is never read, and the next delete of the job's history finds it).
    pub(crate) fn delete_rank(&self) -> u8 {
        if self.pk == RUNNING_INDEX {
            0
        } else if self.pk.starts_with(OUTPUTS) {
            2
        } else {
            1
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.pk, self.sk)
    }
}

/// The partition of the jobs.
pub(crate) fn jobs() -> &'static str {
    JOBS
}

/// The partition of `job`'s execution metadata.
pub(crate) fn executions_of(job: &str) -> String {
    format!("{EXECUTIONS}{job}")
}

/// The partition of `job`'s outputs.
pub(crate) fn outputs_of(job: &str) -> String {
    format!("{OUTPUTS}{job}")
}

/// The partition of the running index.
pub(crate) fn running_index() -> &'static str {
    RUNNING_INDEX
}

/// The partition of the fire ledger.
pub(crate) fn ledger() -> &'static str {
    LEDGER
}

/// Escapes `%` and `#` of a job name.
fn escape(job: &str) -> String {
    let mut escaped = String::with_capacity(job.len());
    for c in job.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '#' => escaped.push_str("%23"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The sort key of an execution: `<started>#<node>`.
pub(crate) fn run_key(started_nanos: i64, node: &str) -> String {
    let mut key = String::with_capacity(17 + node.len());
    // Flipping the sign bit maps i64 order onto u64 order.
    let sortable = started_nanos.cast_unsigned() ^ (1 << 63);
    let _ = write!(key, "{sortable:016x}#{node}");
    key
}

/// The sort key of `execution`.
pub(crate) fn run_of(execution: &Execution) -> String {
    run_key(unix_nanos(execution.started_at), &execution.node_name)
}

/// Returns a [`StoreError::Corrupt`] for `key`.
pub(crate) fn corrupt(key: impl fmt::Display, reason: impl fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

/// A string attribute.
pub(crate) fn text(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute.
pub(crate) fn number(value: impl fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Reads string attribute `name` of `item` (stored at `key`).
pub(crate) fn text_of<'a>(item: &'a Item, name: &str, key: &Key) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        Some(_) => Err(corrupt(key, format!("attribute {name} is not a string"))),
        None => Err(corrupt(key, format!("attribute {name} is missing"))),
    }
}

/// Reads number attribute `name` of `item` (stored at `key`).
pub(crate) fn number_of<T: std::str::FromStr>(
    item: &Item,
    name: &str,
    key: &Key,
) -> Result<T, StoreError>
where
    T::Err: fmt::Display,
{
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|error| corrupt(key, format!("attribute {name} = {value}: {error}"))),
        Some(_) => Err(corrupt(key, format!("attribute {name} is not a number"))),
        None => Err(corrupt(key, format!("attribute {name} is missing"))),
    }
}

/// Whether boolean attribute `name` of `item` is present and true.
pub(crate) fn flag_of(item: &Item, name: &str) -> bool {
    matches!(item.get(name), Some(AttributeValue::Bool(true)))
}

/// Returns the instant of Unix nanoseconds `nanos`.
pub(crate) fn instant_of(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

/// Encodes a job.
pub(crate) fn encode_job(job: &Job) -> Result<String, StoreError> {
    serde_json::to_string(job)
        .map_err(|error| StoreError::Backend(format!("encoding job {}: {error}", job.name)))
}

/// Decodes the job item `item`.
pub(crate) fn decode_job(item: &Item) -> Result<Job, StoreError> {
    let key = Key::of(item)?;
    let body = text_of(item, BODY, &key)?;
    serde_json::from_str(body).map_err(|error| corrupt(&key, error))
}

/// Encodes an execution's metadata (its output is stored apart).
pub(crate) fn encode_execution(execution: &Execution) -> Result<String, StoreError> {
    let metadata = Execution {
        output: String::new(),
        ..execution.clone()
    };
    serde_json::to_string(&metadata).map_err(|error| {
        StoreError::Backend(format!(
            "encoding execution {} of {}: {error}",
            execution.id(),
            execution.job_name
        ))
    })
}

/// Decodes an execution item (metadata or running index), without output.
pub(crate) fn decode_execution(item: &Item) -> Result<Execution, StoreError> {
    let key = Key::of(item)?;
    let body = text_of(item, BODY, &key)?;
    serde_json::from_str(body).map_err(|error| corrupt(&key, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_keys_sort_by_time_then_node() {
        let mut keys = vec![
            run_key(5, "b"),
            run_key(-1, "z"),
            run_key(i64::MIN, "a"),
            run_key(5, "a"),
            run_key(0, "a"),
            run_key(i64::MAX, "a"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            [
                run_key(i64::MIN, "a"),
                run_key(-1, "z"),
                run_key(0, "a"),
                run_key(5, "a"),
                run_key(5, "b"),
                run_key(i64::MAX, "a"),
            ]
        );
        assert_eq!(run_key(0, "n"), "8000000000000000#n");
    }

    #[test]
    fn running_keys_escape_the_job() {
        let run = run_key(0, "node#1");
        assert_eq!(
            Key::running("a#b%", &run).sk,
            "8000000000000000#a%23b%25#node#1"
        );
        assert_ne!(
            Key::running("a#b", &run_key(0, "c")),
            Key::running("a", &run_key(0, "b#c"))
        );
    }

    #[test]
    fn partitions_of_similar_jobs_differ() {
        assert_ne!(executions_of("foo"), executions_of("foobar"));
        assert_eq!(Key::execution("foo", "r").pk, "exec#foo");
        assert_eq!(Key::output("foo", "r").pk, "out#foo");
    }

    #[test]
    fn attributes_decode_or_report_corruption() {
        let key = Key::job("j");
        let mut item = key.to_item();
        item.insert(VERSION.to_owned(), number(7));
        item.insert(BODY.to_owned(), text("{"));
        assert_eq!(number_of::<u64>(&item, VERSION, &key), Ok(7));
        assert!(matches!(
            number_of::<u64>(&item, BODY, &key),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(decode_job(&item), Err(StoreError::Corrupt { .. })));
        assert_eq!(Key::of(&item), Ok(key));
        assert!(!flag_of(&item, RUNNING));
    }
}
