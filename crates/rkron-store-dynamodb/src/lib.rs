//! rkron-store-dynamodb owns rkron's DynamoDB store: the [`Store`] trait over one DynamoDB
//! table (AWS, or a local server such as moto), so any number of servers share one table.
//!
//! The table layout (one composite key `pk`/`sk`, a partition per kind of record and per job's
//! executions) is in module `keys`. Every read is strongly consistent.
//!
//! # Atomicity
//!
//! Writes that the trait wants atomic are one `TransactWriteItems` each: every condition is
//! checked and every write applied, or none. DynamoDB allows at most 100 items per transaction,
//! which shapes four operations:
//!
//! - `commit_jobs` writes the jobs (one conditional put or delete each) and, for each deleted
//!   job, its fire ledger entry and missed fires, in one transaction: at most 33 deleted jobs or
//!   100 written ones per commit ([`StoreError::Backend`] beyond; the node commits a few ops at
//!   a time). A deleted job's executions (metadata, output, running index: up to 3 items each)
//!   fill the rest of that transaction; **the executions that do not fit are deleted in
//!   follow-up batches after the transaction, when the job itself is already gone.** Running
//!   index entries go first, then metadata, then outputs, so a crash in between leaves at worst
//!   some executions still listed under the deleted job's name (or unread outputs), which
//!   `delete_executions` or the next delete of that name removes. Executions are read before
//!   the transaction, so one stored concurrently with the delete may stay the same way.
//! - `put_execution` and `finish_execution` write the execution's items (and the job, for
//!   `finish_execution`) in one transaction, together with as many deletes of trimmed
//!   executions as fit; the rest of the trim follows in batches.
//! - `record_fires` writes its slice in chunks of [`FIRES_PER_TRANSACTION`] ledger entries,
//!   [`FIRE_CHUNKS_IN_FLIGHT`] at a time. **Each chunk is atomic and fenced; the slice as a
//!   whole is not.** Every chunk's transaction checks the lease item (`token = :fence AND
//!   expires_at > :now`, `:now` being the instant the call started: the slice is judged
//!   against the lease as it stood when the scheduler handed it over, as one atomic write
//!   would be), so a deposed leader records nothing from the moment another server takes the
//!   lease (which changes the token). A crash between chunks leaves some fires of the tick
//!   recorded and others not; the scheduler records fires before dispatching them, so that only
//!   means some recorded fires were not dispatched: the same window as a crash right after one
//!   atomic write. A failed condition cancels a whole transaction, so each chunk first reads
//!   its entries (`BatchGetItem`) and writes only those that move forward, each with the
//!   condition `attribute_not_exists(at) OR at < :new`; a concurrent writer that moved an
//!   entry in between fails the chunk, which then reads and writes again.
//!
//! Versions come from a counter item, incremented atomically (`ADD`) before each write, so no
//! version is ever handed out twice. A write of an existing job also requires the stored
//! version to be lower than the new one, so a job's version only grows; a write that loses that
//! race reserves again, above the stored version (which also moves a counter that fell behind,
//! say after a restore from a backup, past every stored version). One window remains: a create
//! (`Expect::Absent`) whose version was reserved just before another server created,
//! re-versioned and deleted the same job gets a lower version than that deleted incarnation
//! had. Compare-and-swap stays safe (versions are never reused, so a writer holding the old
//! incarnation's version conflicts), only the "strictly greater across re-creation" ordering
//! may not hold inside that one round trip.
//!
//! # Leadership
//!
//! The lease is the item `lease`/`leader` with `holder`, `token` and `expires_at`. DynamoDB
//! conditions cannot read a server clock, so **expiry uses the clients' clocks**: the holder
//! writes `expires_at = now + ttl` from its clock, and an acquirer takes the item only with the
//! condition `attribute_not_exists(pk) OR (token = :old AND expires_at <= :now)` from its own
//! clock, writing `token = old + 1`. Renewal, release and the fence check compare
//! `expires_at` with the caller's clock the same way. This assumes the servers' clocks agree
//! (NTP) to well within the lease TTL: a server whose clock runs ahead by `d` sees a lease
//! expire `d` early and may take it over while the holder still believes it leads. Fencing
//! keeps that safe for the ledger: once the new lease is written, the old token fails every
//! chunk's condition, so the old leader can no longer record (and so dispatch) a fire. Release
//! keeps the item (with `expires_at = 0`) so the next token still counts up from it.
//!
//! # Errors
//!
//! Every call runs under [`DynamoConfig::timeout`] (the SDK retries throttling and transient
//! failures within it). Unreachable endpoints, timeouts, throttling and service-side failures
//! answer [`StoreError::Unavailable`]; failed compare-and-swap conditions
//! [`StoreError::Conflict`]; undecodable items [`StoreError::Corrupt`]; anything DynamoDB
//! refuses (a missing table, bad credentials, an item over 400 KB such as an output that
//! large) [`StoreError::Backend`]. A call that times out may still have been applied (entirely
//! or not at all). An operation of several calls (a paged listing, a long `record_fires`) is
//! bounded per call, not as a whole.
//!
//! # Costs and limits
//!
//! - `jobs_page` counts the jobs (`Select=COUNT`) and skips `start` of them reading keys only:
//!   DynamoDB has no offsets. The count and the page are two reads, not one snapshot.
//! - Listings read page by page (DynamoDB pages at 1 MB); they are not snapshots either.
//! - Transactional writes cost twice the capacity of plain ones; a 10,000-fire tick is about
//!   10,000 ledger writes (20,000 write units) and 10,000 strongly consistent reads.
//! - The principal needs `dynamodb:DescribeTable`, `GetItem`, `PutItem`, `UpdateItem`,
//!   `DeleteItem`, `ConditionCheckItem`, `Query`, `BatchGetItem` and `BatchWriteItem` on the
//!   table (`TransactWriteItems` is authorized per item action), and `CreateTable` when it
//!   creates the table.

mod config;
mod keys;
mod plan;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use rkron_core::execution::{parse_execution_id, unix_nanos};
use rkron_core::{Clock, Execution, Job, SystemClock};
use rkron_store::{Expect, JobOp, JobPage, Lease, MissedFires, Store, StoreError, Versioned};

pub use crate::config::{DEFAULT_TABLE, DEFAULT_TIMEOUT, DynamoConfig};
use crate::keys::{
    AT, BODY, EXPIRES_AT, HAS_OUTPUT, HOLDER, Item, Key, LAYOUT_V1, OUTPUT, PK, RECENT, REVISION,
    RUNNING, TOKEN, TOTAL, VALUE, VERSION, corrupt, decode_execution, decode_job, encode_execution,
    encode_job, flag_of, instant_of, number, number_of, run_key, run_of, text, text_of,
};
use crate::table::{CallError, Expression, MAX_TRANSACT_ITEMS, Query, Table, TransactError, Write};

/// Ledger entries per `record_fires` transaction: one item of each goes to the lease check.
pub const FIRES_PER_TRANSACTION: usize = MAX_TRANSACT_ITEMS - 1;

/// `record_fires` chunks written at the same time.
pub const FIRE_CHUNKS_IN_FLIGHT: usize = 4;

/// Attempts of a read-modify-write before answering [`StoreError::Conflict`].
const CAS_ATTEMPTS: u32 = 64;

/// rkron's DynamoDB [`Store`]: every server of a cluster uses the same table.
pub struct DynamoStore {
    table: Arc<Table>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for DynamoStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("DynamoStore")
            .field("table", &self.table.name())
            .field("place", &self.table.place())
            .field("timeout", &self.table.timeout())
            .finish_non_exhaustive()
    }
}

/// A stored execution's key and flags, read without its body.
#[derive(Debug, Clone)]
struct StoredRun {
    run: String,
    running: bool,
    has_output: bool,
}

impl StoredRun {
    fn of(item: &Item) -> Result<Self, StoreError> {
        Ok(Self {
            run: Key::of(item)?.sk,
            running: flag_of(item, RUNNING),
            has_output: flag_of(item, HAS_OUTPUT),
        })
    }

    /// The keys of this run's items.
    fn keys(&self, job: &str) -> Vec<Key> {
        let mut keys = Vec::with_capacity(3);
        if self.running {
            keys.push(Key::running(job, &self.run));
        }
        keys.push(Key::execution(job, &self.run));
        if self.has_output {
            keys.push(Key::output(job, &self.run));
        }
        keys
    }
}

/// The lease item, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredLease {
    holder: String,
    token: u64,
    expires_at: i64,
}

/// Waits a little before another attempt after contention, longer each time.
async fn back_off(attempt: u32) {
    let millis = 5u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

fn encode_job_item(job: &Job, version: u64) -> Result<Item, StoreError> {
    let mut item = Key::job(&job.name).to_item();
    item.insert(BODY.to_owned(), text(encode_job(job)?));
    item.insert(VERSION.to_owned(), number(version));
    Ok(item)
}

/// The condition of a job write expecting `expect`, written at `version`.
fn job_condition(expect: Expect, version: u64, put: bool) -> Option<Expression> {
    let version_value = || number(version);
    match (expect, put) {
        (Expect::Absent, _) => Some(Expression::new(format!("attribute_not_exists(#{PK})"))),
        (Expect::Version(expected), true) => Some(
            Expression::new(format!("#{VERSION} = :expected AND #{VERSION} < :version"))
                .value(":expected", number(expected))
                .value(":version", version_value()),
        ),
        (Expect::Version(expected), false) => Some(
            Expression::new(format!("#{VERSION} = :expected")).value(":expected", number(expected)),
        ),
        (Expect::Any, true) => Some(
            Expression::new(format!(
                "attribute_not_exists(#{PK}) OR #{VERSION} < :version"
            ))
            .value(":version", version_value()),
        ),
        (Expect::Any, false) => None,
    }
}

/// The writes that store `execution` (metadata, output, running index) as run `run`.
fn run_writes(execution: &Execution, run: &str) -> Result<Vec<Write>, StoreError> {
    let job = &execution.job_name;
    let body = encode_execution(execution)?;
    let running = execution.is_running();
    let has_output = !execution.output.is_empty();
    let mut metadata = Key::execution(job, run).to_item();
    metadata.insert(BODY.to_owned(), text(body.clone()));
    if running {
        metadata.insert(RUNNING.to_owned(), AttributeValue::Bool(true));
    }
    if has_output {
        metadata.insert(HAS_OUTPUT.to_owned(), AttributeValue::Bool(true));
    }
    let output = if has_output {
        let mut item = Key::output(job, run).to_item();
        item.insert(OUTPUT.to_owned(), text(execution.output.clone()));
        Write::put(item)
    } else {
        Write::delete(Key::output(job, run))
    };
    let index = if running {
        let mut item = Key::running(job, run).to_item();
        item.insert(BODY.to_owned(), text(body));
        Write::put(item)
    } else {
        Write::delete(Key::running(job, run))
    };
    Ok(vec![Write::put(metadata), output, index])
}

fn decode_lease(item: &Item) -> Result<StoredLease, StoreError> {
    let key = Key::lease();
    Ok(StoredLease {
        holder: text_of(item, HOLDER, &key)?.to_owned(),
        token: number_of(item, TOKEN, &key)?,
        expires_at: number_of(item, EXPIRES_AT, &key)?,
    })
}

fn decode_missed(item: &Item, key: &Key) -> Result<(MissedFires, u64), StoreError> {
    let total = number_of(item, TOTAL, key)?;
    let revision = number_of(item, REVISION, key)?;
    let recent = match item.get(RECENT) {
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|value| match value {
                AttributeValue::N(nanos) => nanos
                    .parse::<i64>()
                    .map(instant_of)
                    .map_err(|error| corrupt(key, format!("recent instant {nanos}: {error}"))),
                _ => Err(corrupt(key, "a recent instant is not a number")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(corrupt(key, format!("attribute {RECENT} is not a list"))),
    };
    Ok((MissedFires { total, recent }, revision))
}

impl DynamoStore {
    /// Connects to DynamoDB: checks the settings, checks that the table exists with the store's
    /// key schema (creating it when [`DynamoConfig::create_table`] is set) and records the
    /// layout version in a new table (or checks the one found).
    ///
    /// Fails with [`StoreError::Unavailable`] when DynamoDB cannot be reached within
    /// [`DynamoConfig::timeout`], and [`StoreError::Backend`] for invalid settings, refused
    /// credentials, a missing or differently keyed table, or a table written by a newer layout.
    pub async fn connect(config: DynamoConfig) -> Result<Self, StoreError> {
        let resolved = config.resolve()?;
        let place = match &resolved.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => format!("AWS {}", resolved.region),
        };
        let client = aws_sdk_dynamodb::Client::from_conf(resolved.sdk);
        let table = Table::new(client, resolved.table, place, resolved.timeout);
        table.ensure(config.create_table).await?;
        let store = Self {
            table: Arc::new(table),
            clock: Arc::new(SystemClock),
        };
        store.check_layout().await?;
        Ok(store)
    }

    /// Replaces the clock that lease expiry is computed with ([`SystemClock`] by default).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The table of the store.
    pub fn table(&self) -> &str {
        self.table.name()
    }

    async fn check_layout(&self) -> Result<(), StoreError> {
        let key = Key::layout();
        let mut item = key.to_item();
        item.insert(VALUE.to_owned(), text(LAYOUT_V1));
        let absent = Expression::new(format!("attribute_not_exists(#{PK})"));
        match self.table.put(item, Some(&absent)).await {
            Ok(()) => return Ok(()),
            Err(CallError::ConditionFailed) => {}
            Err(CallError::Store(error)) => return Err(error),
        }
        let stored = self.table.get(&key, Some(&[VALUE])).await?;
        let version = stored
            .as_ref()
            .map(|item| text_of(item, VALUE, &key))
            .transpose()?;
        match version {
            Some(LAYOUT_V1) => Ok(()),
            other => Err(StoreError::Backend(format!(
                "table {} has layout version {other:?}; this rkron supports {LAYOUT_V1}",
                self.table.name()
            ))),
        }
    }

    fn now_millis(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Adds `amount` to the version counter; answers its new value.
    async fn add_to_counter(&self, amount: u64) -> Result<u64, StoreError> {
        let update =
            Expression::new(format!("ADD #{VALUE} :amount")).value(":amount", number(amount));
        let key = Key::counter();
        match self.table.update(&key, &update, None).await {
            Ok(item) => number_of(&item, VALUE, &key),
            Err(CallError::Store(error)) => Err(error),
            Err(CallError::ConditionFailed) => Err(StoreError::Backend(
                "reserving versions: unexpected condition failure".to_owned(),
            )),
        }
    }

    /// Reserves `count` versions, all greater than `floor`; answers the first (they are
    /// `first..first + count`). Every number the counter passes is handed out once.
    async fn reserve_versions(&self, count: usize, floor: u64) -> Result<u64, StoreError> {
        let count = u64::try_from(count.max(1)).unwrap_or(u64::MAX);
        let last = self.add_to_counter(count).await?;
        let first = last.saturating_sub(count).saturating_add(1);
        if first > floor {
            return Ok(first);
        }
        // The counter is behind a stored version (say the counter item was lost, or the table
        // restored from a backup): move it past `floor`. The numbers between the two additions
        // are ours, so the last `count` of the second one are above `floor` and unique.
        let last = self
            .add_to_counter((floor - first).saturating_add(1).saturating_add(count))
            .await?;
        Ok(last.saturating_sub(count).saturating_add(1))
    }

    /// Reads the stored versions of jobs `names`.
    async fn stored_versions(&self, names: &[&str]) -> Result<HashMap<String, u64>, StoreError> {
        let keys: Vec<Key> = names.iter().map(|name| Key::job(name)).collect();
        let items = self.table.batch_get(&keys, Some(&[VERSION])).await?;
        items
            .iter()
            .map(|(key, item)| Ok((key.sk.clone(), number_of(item, VERSION, key)?)))
            .collect()
    }

    /// Names the first op of `ops` whose expectation fails against what is stored now, and
    /// answers the highest stored version of the jobs `names`.
    async fn first_conflict(
        &self,
        ops: &[JobOp],
        names: &[&str],
    ) -> Result<(Option<String>, u64), StoreError> {
        let stored = self.stored_versions(names).await?;
        let conflict = plan::first_conflict(ops, &|name| stored.get(name).copied());
        let highest = stored.values().copied().max().unwrap_or(0);
        Ok((conflict, highest))
    }

    /// Reads the stored runs of `job`, keys and flags only, oldest first.
    async fn stored_runs(&self, job: &str) -> Result<Vec<StoredRun>, StoreError> {
        let partition = keys::executions_of(job);
        let items = self
            .table
            .query(Query::partition(&partition).only(&[RUNNING, HAS_OUTPUT]))
            .await?;
        items.iter().map(StoredRun::of).collect()
    }

    /// The keys of every item of `job`'s history: executions, running index entries and
    /// outputs (also any left without metadata), in [`Key::delete_rank`] order.
    async fn history_keys(&self, job: &str) -> Result<Vec<Key>, StoreError> {
        let outputs = keys::outputs_of(job);
        let (runs, output_items) = tokio::try_join!(
            self.stored_runs(job),
            self.table.query(Query::partition(&outputs).only(&[])),
        )?;
        let mut keys: Vec<Key> = output_items.iter().map(Key::of).collect::<Result<_, _>>()?;
        keys.extend(
            runs.iter()
                .filter(|run| run.running)
                .map(|run| Key::running(job, &run.run)),
        );
        keys.extend(runs.iter().map(|run| Key::execution(job, &run.run)));
        keys.sort_by_key(Key::delete_rank);
        Ok(keys)
    }

    /// Applies `writes` and as many of `deletes` as fit in one transaction, then the rest of
    /// `deletes` in batches, in [`Key::delete_rank`] order (which the transaction takes first).
    async fn write_then_delete(
        &self,
        mut writes: Vec<Write>,
        mut deletes: Vec<Key>,
    ) -> Result<(), TransactError> {
        deletes.sort_by_key(Key::delete_rank);
        let room = MAX_TRANSACT_ITEMS
            .saturating_sub(writes.len())
            .min(deletes.len());
        let rest = deletes.split_off(room);
        writes.extend(deletes.into_iter().map(Write::delete));
        self.table.transact(writes).await?;
        self.table.batch_delete(&rest).await?;
        Ok(())
    }

    async fn read_lease(&self) -> Result<Option<StoredLease>, StoreError> {
        read_lease(&self.table).await
    }

    /// Moves the expiry of `lease` to `expires_at` if it is still current; answers whether it
    /// was.
    async fn extend_lease(&self, lease: &Lease, expires_at: i64) -> Result<bool, StoreError> {
        let update = Expression::new(format!("SET #{EXPIRES_AT} = :expires"))
            .value(":expires", number(expires_at));
        let condition = Expression::new(format!(
            "#{TOKEN} = :token AND #{HOLDER} = :holder AND #{EXPIRES_AT} > :now"
        ))
        .value(":token", number(lease.token))
        .value(":holder", text(lease.holder.clone()))
        .value(":now", number(self.now_millis()));
        match self
            .table
            .update(&Key::lease(), &update, Some(&condition))
            .await
        {
            Ok(_) => Ok(true),
            Err(CallError::ConditionFailed) => Ok(false),
            Err(CallError::Store(error)) => Err(error),
        }
    }
}

/// Reads the lease item.
async fn read_lease(table: &Table) -> Result<Option<StoredLease>, StoreError> {
    table
        .get(&Key::lease(), Some(&[HOLDER, TOKEN, EXPIRES_AT]))
        .await?
        .as_ref()
        .map(decode_lease)
        .transpose()
}

/// The condition that `fence` is the token of a lease unexpired at `now` (Unix milliseconds).
fn fence_condition(fence: u64, now: i64) -> Expression {
    Expression::new(format!("#{TOKEN} = :fence AND #{EXPIRES_AT} > :now"))
        .value(":fence", number(fence))
        .value(":now", number(now))
}

/// Answers [`StoreError::Fenced`] unless `fence` is the token of a lease unexpired at `now`.
async fn check_fence(table: &Table, fence: u64, now: i64) -> Result<(), StoreError> {
    match read_lease(table).await? {
        Some(lease) if lease.token == fence && lease.expires_at > now => Ok(()),
        _ => Err(StoreError::Fenced(fence)),
    }
}

/// Reads `fires` (one chunk, distinct jobs) and writes those that move the ledger forward, in
/// one transaction fenced by `fence` as of `now`.
async fn record_fire_chunk(
    table: Arc<Table>,
    fence: u64,
    now: i64,
    fires: Vec<(String, i64)>,
) -> Result<(), StoreError> {
    let keys: Vec<Key> = fires.iter().map(|(job, _)| Key::ledger(job)).collect();
    for attempt in 0..CAS_ATTEMPTS {
        let stored = table.batch_get(&keys, Some(&[AT])).await?;
        let mut writes = vec![Write::Check {
            key: Key::lease(),
            condition: fence_condition(fence, now),
        }];
        for ((_, nanos), key) in fires.iter().zip(&keys) {
            if let Some(item) = stored.get(key) {
                let at: i64 = number_of(item, AT, key)?;
                if at >= *nanos {
                    continue;
                }
            }
            let mut item = key.to_item();
            item.insert(AT.to_owned(), number(nanos));
            writes.push(Write::Put {
                item,
                condition: Some(
                    Expression::new(format!("attribute_not_exists(#{AT}) OR #{AT} < :at"))
                        .value(":at", number(nanos)),
                ),
            });
        }
        if writes.len() == 1 {
            // Nothing moves, yet a deposed leader still learns that it is deposed.
            return check_fence(&table, fence, now).await;
        }
        match table.transact(writes).await {
            Ok(()) => return Ok(()),
            Err(TransactError::ConditionFailed(failed)) if failed.contains(&0) => {
                return Err(StoreError::Fenced(fence));
            }
            // An entry moved between the read and the write: read again.
            Err(TransactError::ConditionFailed(_)) => {}
            Err(TransactError::Contended) => back_off(attempt).await,
            Err(TransactError::Store(error)) => return Err(error),
        }
    }
    Err(StoreError::Conflict(keys::ledger().to_owned()))
}

/// The lease TTL in milliseconds, at least one.
fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

#[async_trait]
impl Store for DynamoStore {
    async fn get_job(&self, name: &str) -> Result<Option<Versioned<Job>>, StoreError> {
        let key = Key::job(name);
        let Some(item) = self.table.get(&key, None).await? else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            value: decode_job(&item)?,
            version: number_of(&item, VERSION, &key)?,
        }))
    }

    async fn list_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let items = self.table.query(Query::partition(keys::jobs())).await?;
        items.iter().map(decode_job).collect()
    }

    async fn jobs_page(&self, start: usize, end: usize) -> Result<JobPage, StoreError> {
        let total = self.table.count(keys::jobs()).await?;
        let want = end.saturating_sub(start);
        if want == 0 || start >= total {
            return Ok(JobPage {
                jobs: Vec::new(),
                total,
            });
        }
        // DynamoDB has no offsets: skip `start` jobs reading keys only.
        let after = match start {
            0 => None,
            _ => match self.table.nth_key(keys::jobs(), start).await? {
                Some(key) => Some(key),
                None => {
                    return Ok(JobPage {
                        jobs: Vec::new(),
                        total,
                    });
                }
            },
        };
        let query = Query {
            after: after.as_deref(),
            limit: Some(want),
            ..Query::partition(keys::jobs())
        };
        let items = self.table.query(query).await?;
        let jobs = items.iter().map(decode_job).collect::<Result<_, _>>()?;
        Ok(JobPage { jobs, total })
    }

    async fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let query = Query {
            after,
            limit: Some(limit),
            ..Query::partition(keys::jobs())
        };
        let items = self.table.query(query).await?;
        items.iter().map(decode_job).collect()
    }

    async fn commit_jobs(&self, ops: Vec<JobOp>) -> Result<(), StoreError> {
        let effects = plan::effects(&ops);
        let names: Vec<&str> = effects.iter().map(|effect| effect.name).collect();
        let Some(first_name) = names.first().copied() else {
            return Ok(());
        };
        if plan::conflicts_within(&ops) {
            // Doomed whatever is stored; read the jobs to name the first op that fails.
            let (name, _) = self.first_conflict(&ops, &names).await?;
            return Err(StoreError::Conflict(
                name.unwrap_or_else(|| first_name.to_owned()),
            ));
        }
        let items: usize = effects
            .iter()
            .map(|effect| if effect.deleted { 3 } else { 1 })
            .sum();
        if items > MAX_TRANSACT_ITEMS {
            return Err(StoreError::Backend(format!(
                "a commit of {} jobs needs {items} transaction items; DynamoDB allows \
                 {MAX_TRANSACT_ITEMS}",
                effects.len()
            )));
        }
        // Versions must exceed the stored ones; raised when a write lost to a newer version.
        let mut floor = 0;
        for attempt in 0..CAS_ATTEMPTS {
            let mut history = Vec::new();
            for effect in effects.iter().filter(|effect| effect.deleted) {
                history.extend(self.history_keys(effect.name).await?);
            }
            let first_version = self.reserve_versions(effects.len(), floor).await?;
            let mut writes = Vec::with_capacity(items);
            for (effect, version) in effects.iter().zip(first_version..) {
                let condition = job_condition(effect.expect, version, effect.put.is_some());
                writes.push(match effect.put {
                    Some(job) => Write::Put {
                        item: encode_job_item(job, version)?,
                        condition,
                    },
                    None => Write::Delete {
                        key: Key::job(effect.name),
                        condition,
                    },
                });
                if effect.deleted {
                    writes.push(Write::delete(Key::ledger(effect.name)));
                    writes.push(Write::delete(Key::missed(effect.name)));
                }
            }
            match self.write_then_delete(writes, history).await {
                Ok(()) => return Ok(()),
                Err(TransactError::ConditionFailed(_)) => {
                    // Either an expectation failed, or a concurrent write with a newer version
                    // won the race on a job (`ver < :version`): the stored state tells.
                    let (name, highest) = self.first_conflict(&ops, &names).await?;
                    if let Some(name) = name {
                        return Err(StoreError::Conflict(name));
                    }
                    floor = highest;
                }
                Err(TransactError::Contended) => back_off(attempt).await,
                Err(TransactError::Store(error)) => return Err(error),
            }
        }
        Err(StoreError::Conflict(first_name.to_owned()))
    }

    async fn put_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<(), StoreError> {
        let job = &execution.job_name;
        let run = run_of(execution);
        for attempt in 0..CAS_ATTEMPTS {
            let stored = self.stored_runs(job).await?;
            let stored_keys: Vec<String> = stored.iter().map(|s| s.run.clone()).collect();
            let trimmed = plan::trimmed(&stored_keys, &run, retention);
            let writes = if trimmed.contains(&run) {
                Vec::new()
            } else {
                run_writes(execution, &run)?
            };
            let deletes: Vec<Key> = stored
                .iter()
                .filter(|stored| trimmed.contains(&stored.run))
                .flat_map(|stored| stored.keys(job))
                .collect();
            match self.write_then_delete(writes, deletes).await {
                Ok(()) => return Ok(()),
                Err(TransactError::Contended) => back_off(attempt).await,
                Err(TransactError::ConditionFailed(_)) => {
                    return Err(StoreError::Backend(format!(
                        "storing execution {} of {job}: unexpected condition failure",
                        execution.id()
                    )));
                }
                Err(TransactError::Store(error)) => return Err(error),
            }
        }
        Err(StoreError::Conflict(job.clone()))
    }

    async fn finish_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<Option<Job>, StoreError> {
        let name = &execution.job_name;
        let job_key = Key::job(name);
        let run = run_of(execution);
        let partition = keys::executions_of(name);
        for attempt in 0..CAS_ATTEMPTS {
            let (job_item, run_items, reserved) = tokio::try_join!(
                self.table.get(&job_key, None),
                self.table.query(Query::partition(&partition)),
                self.reserve_versions(1, 0),
            )?;
            let Some(job_item) = job_item else {
                return Ok(None);
            };
            let stored_version: u64 = number_of(&job_item, VERSION, &job_key)?;
            let version = if reserved > stored_version {
                reserved
            } else {
                // Reserved before the write that is stored now: reserve above it.
                self.reserve_versions(1, stored_version).await?
            };
            let mut job = decode_job(&job_item)?;
            let runs = run_items
                .iter()
                .map(|item| Ok((StoredRun::of(item)?, decode_execution(item)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let stored_keys: Vec<String> = runs.iter().map(|(s, _)| s.run.clone()).collect();
            let trimmed = plan::trimmed(&stored_keys, &run, retention);
            let kept = |run: &str| !trimmed.iter().any(|t| t == run);
            let mut group: Vec<&Execution> = runs
                .iter()
                .filter(|(stored, stored_execution)| {
                    stored.run != run
                        && kept(&stored.run)
                        && stored_execution.group == execution.group
                })
                .map(|(_, stored_execution)| stored_execution)
                .collect();
            if kept(&run) {
                group.push(execution);
            }
            job.record_finished(execution, group);
            let mut writes = vec![Write::Put {
                item: encode_job_item(&job, version)?,
                condition: Some(
                    Expression::new(format!("#{VERSION} = :expected"))
                        .value(":expected", number(stored_version)),
                ),
            }];
            if kept(&run) {
                writes.extend(run_writes(execution, &run)?);
            }
            let deletes: Vec<Key> = runs
                .iter()
                .filter(|(stored, _)| !kept(&stored.run))
                .flat_map(|(stored, _)| stored.keys(name))
                .collect();
            match self.write_then_delete(writes, deletes).await {
                Ok(()) => return Ok(Some(job)),
                // The job changed since the read (another execution finished, an edit): again.
                Err(TransactError::ConditionFailed(_)) => {}
                Err(TransactError::Contended) => back_off(attempt).await,
                Err(TransactError::Store(error)) => return Err(error),
            }
        }
        Err(StoreError::Conflict(name.clone()))
    }

    async fn list_executions(
        &self,
        job: &str,
        with_output: bool,
    ) -> Result<Vec<Execution>, StoreError> {
        let partition = keys::executions_of(job);
        let metadata = Query::partition(&partition).only(&[BODY]);
        if !with_output {
            let items = self.table.query(metadata).await?;
            return items.iter().map(decode_execution).collect();
        }
        let outputs = keys::outputs_of(job);
        let (items, output_items) = tokio::try_join!(
            self.table.query(metadata),
            self.table.query(Query::partition(&outputs)),
        )?;
        let mut outputs: HashMap<String, String> = HashMap::with_capacity(output_items.len());
        for item in &output_items {
            let key = Key::of(item)?;
            let output = text_of(item, OUTPUT, &key)?.to_owned();
            outputs.insert(key.sk, output);
        }
        items
            .iter()
            .map(|item| {
                let mut execution = decode_execution(item)?;
                if let Some(output) = outputs.remove(&Key::of(item)?.sk) {
                    execution.output = output;
                }
                Ok(execution)
            })
            .collect()
    }

    async fn get_execution(&self, job: &str, id: &str) -> Result<Option<Execution>, StoreError> {
        let Some((started, node)) = parse_execution_id(id) else {
            return Ok(None);
        };
        let run = run_key(started, node);
        let Some(item) = self.table.get(&Key::execution(job, &run), None).await? else {
            return Ok(None);
        };
        let mut execution = decode_execution(&item)?;
        if flag_of(&item, HAS_OUTPUT) {
            let key = Key::output(job, &run);
            if let Some(output) = self.table.get(&key, None).await? {
                execution.output = text_of(&output, OUTPUT, &key)?.to_owned();
            }
        }
        Ok(Some(execution))
    }

    async fn delete_executions(&self, job: &str) -> Result<(), StoreError> {
        let keys = self.history_keys(job).await?;
        self.table.batch_delete(&keys).await
    }

    async fn running_executions(&self) -> Result<Vec<Execution>, StoreError> {
        let items = self
            .table
            .query(Query::partition(keys::running_index()).only(&[BODY]))
            .await?;
        let mut running = items
            .iter()
            .map(decode_execution)
            .collect::<Result<Vec<_>, _>>()?;
        running.sort_by(|a, b| {
            (unix_nanos(a.started_at), &a.job_name, &a.node_name).cmp(&(
                unix_nanos(b.started_at),
                &b.job_name,
                &b.node_name,
            ))
        });
        Ok(running)
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let meta_key = Key::meta(key);
        let item = self.table.get(&meta_key, Some(&[VALUE])).await?;
        item.as_ref()
            .map(|item| text_of(item, VALUE, &meta_key).map(str::to_owned))
            .transpose()
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut item = Key::meta(key).to_item();
        item.insert(VALUE.to_owned(), text(value));
        match self.table.put(item, None).await {
            Ok(()) => Ok(()),
            Err(CallError::Store(error)) => Err(error),
            Err(CallError::ConditionFailed) => Err(StoreError::Backend(
                "writing a setting: unexpected condition failure".to_owned(),
            )),
        }
    }

    async fn record_fires(
        &self,
        fence: u64,
        fires: &[(String, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
        for (job, scheduled_at) in fires {
            let nanos = unix_nanos(*scheduled_at);
            latest
                .entry(job.as_str())
                .and_modify(|current| *current = (*current).max(nanos))
                .or_insert(nanos);
        }
        // The slice is judged against the lease as it stands now, when the scheduler hands it
        // over (as one atomic write would be): a lease that expires during a long call keeps
        // its chunks going, while a takeover changes the token and fences every later chunk.
        let now = self.now_millis();
        if latest.is_empty() {
            return check_fence(&self.table, fence, now).await;
        }
        let entries: Vec<(String, i64)> = latest
            .into_iter()
            .map(|(job, nanos)| (job.to_owned(), nanos))
            .collect();
        let mut chunks = entries.chunks(FIRES_PER_TRANSACTION);
        // Dropping the set (on an error) aborts the chunks still in flight; each one's
        // transaction is applied entirely or not at all.
        let mut in_flight = tokio::task::JoinSet::new();
        loop {
            while in_flight.len() < FIRE_CHUNKS_IN_FLIGHT {
                let Some(chunk) = chunks.next() else { break };
                in_flight.spawn(record_fire_chunk(
                    Arc::clone(&self.table),
                    fence,
                    now,
                    chunk.to_vec(),
                ));
            }
            match in_flight.join_next().await {
                None => return Ok(()),
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(error))) => return Err(error),
                Some(Err(error)) => {
                    return Err(StoreError::Backend(format!(
                        "recording fires: a chunk's task failed: {error}"
                    )));
                }
            }
        }
    }

    async fn fire_ledger(&self) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        let items = self
            .table
            .query(Query::partition(keys::ledger()).only(&[AT]))
            .await?;
        let mut ledger = BTreeMap::new();
        for item in &items {
            let key = Key::of(item)?;
            let at: i64 = number_of(item, AT, &key)?;
            ledger.insert(key.sk, instant_of(at));
        }
        Ok(ledger)
    }

    async fn record_missed(
        &self,
        job: &str,
        instants: &[DateTime<Utc>],
        uncounted: u64,
    ) -> Result<(), StoreError> {
        if instants.is_empty() && uncounted == 0 {
            return Ok(());
        }
        let job_key = Key::job(job);
        let missed_key = Key::missed(job);
        for attempt in 0..CAS_ATTEMPTS {
            let (job_item, missed_item) = tokio::try_join!(
                self.table.get(&job_key, Some(&[])),
                self.table.get(&missed_key, None),
            )?;
            if job_item.is_none() {
                return Ok(());
            }
            let (mut missed, revision) = match &missed_item {
                Some(item) => decode_missed(item, &missed_key)?,
                None => (MissedFires::default(), 0),
            };
            missed.record(instants, uncounted);
            let mut item = missed_key.to_item();
            item.insert(TOTAL.to_owned(), number(missed.total));
            item.insert(
                RECENT.to_owned(),
                AttributeValue::L(
                    missed
                        .recent
                        .iter()
                        .map(|instant| number(unix_nanos(*instant)))
                        .collect(),
                ),
            );
            item.insert(REVISION.to_owned(), number(revision + 1));
            let condition = match missed_item {
                Some(_) => Expression::new(format!("#{REVISION} = :revision"))
                    .value(":revision", number(revision)),
                None => Expression::new(format!("attribute_not_exists(#{PK})")),
            };
            let writes = vec![
                Write::Check {
                    key: job_key.clone(),
                    condition: Expression::new(format!("attribute_exists(#{PK})")),
                },
                Write::Put {
                    item,
                    condition: Some(condition),
                },
            ];
            match self.table.transact(writes).await {
                Ok(()) => return Ok(()),
                // The job went, or another writer recorded meanwhile: read again.
                Err(TransactError::ConditionFailed(_)) => {}
                Err(TransactError::Contended) => back_off(attempt).await,
                Err(TransactError::Store(error)) => return Err(error),
            }
        }
        Err(StoreError::Conflict(job.to_owned()))
    }

    async fn missed_fires(&self, job: &str) -> Result<MissedFires, StoreError> {
        let key = Key::missed(job);
        match self.table.get(&key, None).await? {
            Some(item) => Ok(decode_missed(&item, &key)?.0),
            None => Ok(MissedFires::default()),
        }
    }

    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let ttl = ttl_millis(ttl);
        for _ in 0..CAS_ATTEMPTS {
            let current = self.read_lease().await?;
            let now = self.now_millis();
            if let Some(stored) = current.as_ref().filter(|stored| stored.expires_at > now) {
                if stored.holder != holder {
                    return Ok(None);
                }
                // Ours already: renew it, keeping the token.
                let lease = Lease {
                    holder: holder.to_owned(),
                    token: stored.token,
                };
                if self.extend_lease(&lease, now.saturating_add(ttl)).await? {
                    return Ok(Some(lease));
                }
                // It expired or changed hands meanwhile: read again.
                continue;
            }
            let token = current.as_ref().map_or(1, |stored| stored.token + 1);
            let mut item = Key::lease().to_item();
            item.insert(HOLDER.to_owned(), text(holder));
            item.insert(TOKEN.to_owned(), number(token));
            item.insert(EXPIRES_AT.to_owned(), number(now.saturating_add(ttl)));
            let condition = match &current {
                None => Expression::new(format!("attribute_not_exists(#{PK})")),
                Some(stored) => {
                    Expression::new(format!("#{TOKEN} = :old AND #{EXPIRES_AT} <= :now"))
                        .value(":old", number(stored.token))
                        .value(":now", number(now))
                }
            };
            match self.table.put(item, Some(&condition)).await {
                Ok(()) => {
                    return Ok(Some(Lease {
                        holder: holder.to_owned(),
                        token,
                    }));
                }
                // Someone took or renewed it between the read and the write: see who.
                Err(CallError::ConditionFailed) => {}
                Err(CallError::Store(error)) => return Err(error),
            }
        }
        Ok(None)
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        let expires_at = self.now_millis().saturating_add(ttl_millis(ttl));
        self.extend_lease(lease, expires_at).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        // Expired at once; the item stays so the next token still counts up from this one.
        self.extend_lease(lease, 0).await.map(|_| ())
    }

    async fn current_lease(&self) -> Result<Option<Lease>, StoreError> {
        let now = self.now_millis();
        Ok(self
            .read_lease()
            .await?
            .filter(|stored| stored.expires_at > now)
            .map(|stored| Lease {
                holder: stored.holder,
                token: stored.token,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_whole_milliseconds_and_positive() {
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2_000);
        assert_eq!(ttl_millis(Duration::from_micros(1)), 1);
        assert_eq!(ttl_millis(Duration::MAX), i64::MAX);
    }

    #[test]
    fn runs_are_deleted_index_first_and_output_last() {
        let run = StoredRun {
            run: run_key(1, "n"),
            running: true,
            has_output: true,
        };
        let other = StoredRun {
            run: run_key(2, "n"),
            ..run.clone()
        };
        let mut keys = other.keys("j");
        keys.extend(run.keys("j"));
        keys.sort_by_key(Key::delete_rank);
        assert_eq!(
            keys,
            [
                Key::running("j", &other.run),
                Key::running("j", &run.run),
                Key::execution("j", &other.run),
                Key::execution("j", &run.run),
                Key::output("j", &other.run),
                Key::output("j", &run.run),
            ]
        );
        let plain = StoredRun {
            running: false,
            has_output: false,
            ..run
        };
        assert_eq!(plain.keys("j"), [Key::execution("j", &plain.run)]);
    }

    #[test]
    fn job_conditions_follow_the_expectation() {
        let text = |expect, put| job_condition(expect, 9, put).map(|c| format!("{c:?}"));
        assert!(
            text(Expect::Absent, true)
                .unwrap()
                .contains("attribute_not_exists(#pk)")
        );
        assert!(
            text(Expect::Version(3), true)
                .unwrap()
                .contains("#ver < :version")
        );
        assert!(
            !text(Expect::Version(3), false)
                .unwrap()
                .contains(":version")
        );
        assert!(
            text(Expect::Any, true)
                .unwrap()
                .contains("OR #ver < :version")
        );
        assert!(text(Expect::Any, false).is_none());
    }
}
