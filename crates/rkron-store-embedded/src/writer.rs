//! The writer thread: group commit of every write request into durable redb transactions.
//!
//! ```text
//!  async callers ──WriteRequest──▶ bounded channel ──▶ writer thread
//!        ▲                                               │ take one request, drain the queue
//!        │                                               │ one write transaction:
//!        │                                               │   apply each request in order,
//!        │                                               │   a rejected one writes nothing
//!        │                                               │ commit once (fsync)
//!        └────────────── oneshot reply per request ◀─────┘
//! ```
//!
//! Each request succeeds or fails on its own: expectations and existence checks are made against
//! the transaction as the earlier requests of the batch left it, before the request writes
//! anything, and a request that fails them is skipped. When a request fails after it may have
//! written (an I/O error, a record that cannot be decoded), the transaction is aborted, that
//! request alone is answered with its error and the rest of the batch is applied again in a new
//! transaction, so no request is ever half-applied and no other request pays for it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use rkron_core::execution::unix_nanos;
use rkron_core::{Execution, Job};
use rkron_store::{Expect, JobOp, MissedFires, StoreError, Version};
use tokio::sync::{mpsc, oneshot};

use crate::keyspace::{
    EXECUTION_COUNTS, EXECUTIONS, ExecutionKey, INTERNAL, JOBS, LAST_VERSION, LEDGER, META, MISSED,
    NameKey, OUTPUTS, RUNNING, RunningKey, decode_execution, decode_execution_group, decode_job,
    decode_job_version, decode_missed, encode_execution, encode_job, encode_missed, encode_text,
    job_bounds, job_range, runs_of_job, set_job_version, storage, without_output,
};

/// Most requests applied in one transaction, to bound the latency of a batch.
pub(crate) const MAX_BATCH: usize = 1024;

/// One write, as the store's methods hand it to the writer thread.
///
/// Records are encoded by the callers, on the runtime's threads, so the single writer thread
/// only looks up, checks and writes.
#[derive(Debug)]
pub(crate) enum WriteOp {
    CommitJobs(Vec<PreparedJobOp>),
    PutExecution {
        execution: PreparedExecution,
        retention: usize,
    },
    FinishExecution {
        execution: PreparedExecution,
        retention: usize,
    },
    DeleteExecutions {
        job: String,
    },
    PutMeta {
        key: String,
        record: Vec<u8>,
    },
    /// Fire ledger entries as `(job, scheduled Unix nanos)`: one per job (the latest of the
    /// call), in name order, so the writer walks the ledger's tree front to back.
    RecordFires(Vec<(String, i64)>),
    /// Missed fires of a job, already clamped to what the keyspace stores.
    RecordMissed {
        job: String,
        instants: Vec<DateTime<Utc>>,
        uncounted: u64,
    },
}

/// A [`JobOp`] with its record encoded (at version 0, set when the writer applies it).
#[derive(Debug)]
pub(crate) enum PreparedJobOp {
    Put {
        name: String,
        record: Vec<u8>,
        expect: Expect,
    },
    Delete {
        name: String,
        expect: Expect,
    },
}

impl PreparedJobOp {
    pub(crate) fn new(op: &JobOp) -> Result<Self, StoreError> {
        Ok(match op {
            JobOp::Put { job, expect } => PreparedJobOp::Put {
                name: job.name.clone(),
                record: encode_job(0, job)?,
                expect: *expect,
            },
            JobOp::Delete { name, expect } => PreparedJobOp::Delete {
                name: name.clone(),
                expect: *expect,
            },
        })
    }
}

/// An execution with its metadata and output records encoded.
#[derive(Debug)]
pub(crate) struct PreparedExecution {
    /// The execution without its output.
    execution: Execution,
    metadata: Vec<u8>,
    /// The output record; `None` when the output is empty.
    output: Option<Vec<u8>>,
}

impl PreparedExecution {
    pub(crate) fn new(execution: &Execution) -> Result<Self, StoreError> {
        Ok(PreparedExecution {
            execution: without_output(execution),
            metadata: encode_execution(execution)?,
            output: (!execution.output.is_empty()).then(|| encode_text(&execution.output)),
        })
    }
}

/// What a successful write answers.
#[derive(Debug)]
pub(crate) enum Applied {
    Done,
    /// The job as updated by a finished execution; `None` when the job does not exist.
    Finished(Option<Box<Job>>),
}

/// A write and the channel its outcome goes back on.
#[derive(Debug)]
pub(crate) struct WriteRequest {
    pub(crate) op: WriteOp,
    pub(crate) reply: oneshot::Sender<Result<Applied, StoreError>>,
}

/// Why a request did not apply.
enum OpError {
    /// The request wrote nothing; the rest of the batch can go on.
    Rejected(StoreError),
    /// The request may have written part of its changes; the transaction must be aborted.
    Failed(StoreError),
}

fn failed(error: impl Into<redb::Error>) -> OpError {
    OpError::Failed(storage(error))
}

fn rejected(error: impl Into<redb::Error>) -> OpError {
    OpError::Rejected(storage(error))
}

/// How many times the writer yields for more requests before committing a busy batch.
const LINGER_YIELDS: u32 = 64;

/// Runs the writer loop until every sender is gone and the queue is empty.
pub(crate) fn run(db: &Database, mut requests: mpsc::Receiver<WriteRequest>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Under a steady stream of small writes each commit would carry one or two of them and pay
    // a whole fsync; when the previous batch was not alone, the writer yields briefly to let
    // more requests arrive (at most LINGER_YIELDS times), trading a few microseconds of
    // latency for far fewer fsyncs.
    let mut busy = false;
    while let Some(first) = requests.blocking_recv() {
        batch.push(first);
        let mut yields = 0;
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) if busy && yields < LINGER_YIELDS => {
                    yields += 1;
                    std::thread::yield_now();
                }
                Err(_) => break,
            }
        }
        busy = batch.len() > 1;
        commit_batch(db, &mut batch);
    }
    tracing::debug!("store writer stopped");
}

/// Applies and commits `batch` (emptying it), then answers every request.
fn commit_batch(db: &Database, batch: &mut Vec<WriteRequest>) {
    loop {
        match apply_in_one_transaction(db, batch) {
            Ok(outcomes) => {
                for (request, outcome) in batch.drain(..).zip(outcomes) {
                    // A caller that stopped waiting does not need the answer.
                    let _ = request.reply.send(outcome);
                }
                return;
            }
            Err(BatchError::Request { index, error }) => {
                // Nothing was committed: fail that request alone and apply the others again.
                tracing::warn!(%error, requests = batch.len(), "store write failed inside a batch");
                let failed = batch.remove(index);
                let _ = failed.reply.send(Err(error));
                if batch.is_empty() {
                    return;
                }
            }
            Err(BatchError::Transaction(error)) => {
                tracing::error!(%error, requests = batch.len(), "store commit failed");
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(error.clone()));
                }
                return;
            }
        }
    }
}

/// Why a batch committed nothing.
enum BatchError {
    /// The request at `index` failed after it may have written.
    Request { index: usize, error: StoreError },
    /// The transaction itself could not be started or committed.
    Transaction(StoreError),
}

/// Applies `batch` in one durable transaction and answers one outcome per request, or fails as
/// a whole (nothing committed).
fn apply_in_one_transaction(
    db: &Database,
    batch: &[WriteRequest],
) -> Result<Vec<Result<Applied, StoreError>>, BatchError> {
    let transaction = begin(db).map_err(BatchError::Transaction)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let mut tables = Tables::open(&transaction).map_err(BatchError::Transaction)?;
        for (index, request) in batch.iter().enumerate() {
            match tables.apply(&request.op) {
                Ok(applied) => outcomes.push(Ok(applied)),
                Err(OpError::Rejected(error)) => outcomes.push(Err(error)),
                Err(OpError::Failed(error)) => return Err(BatchError::Request { index, error }),
            }
        }
        tables
            .save_last_version()
            .map_err(BatchError::Transaction)?;
    }
    transaction
        .commit()
        .map_err(|error| BatchError::Transaction(storage(error)))?;
    Ok(outcomes)
}

/// Begins a write transaction that is durable once committed.
fn begin(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut transaction = db.begin_write().map_err(storage)?;
    transaction
        .set_durability(Durability::Immediate)
        .map_err(|error| StoreError::Backend(error.to_string()))?;
    // Quick repair (saving the allocator state in every commit so that the open after a crash
    // need not walk the file) measured about 15% fewer writes/s here; the crash-time repair is
    // paid once, at start-up, instead.
    transaction.set_quick_repair(false);
    Ok(transaction)
}

/// Every table of the keyspace, open in one write transaction.
struct Tables<'txn> {
    jobs: Table<'txn, NameKey, &'static [u8]>,
    executions: Table<'txn, ExecutionKey, &'static [u8]>,
    outputs: Table<'txn, ExecutionKey, &'static [u8]>,
    running: Table<'txn, RunningKey, ()>,
    execution_counts: Table<'txn, NameKey, u64>,
    meta: Table<'txn, NameKey, &'static [u8]>,
    ledger: Table<'txn, NameKey, i64>,
    missed: Table<'txn, NameKey, &'static [u8]>,
    internal: Table<'txn, &'static str, u64>,
    /// The last version handed out, in this transaction.
    last_version: Version,
    stored_last_version: Version,
}

impl<'txn> Tables<'txn> {
    fn open(transaction: &'txn WriteTransaction) -> Result<Self, StoreError> {
        let internal = transaction.open_table(INTERNAL).map_err(storage)?;
        let last_version = internal
            .get(LAST_VERSION)
            .map_err(storage)?
            .map_or(0, |v| v.value());
        Ok(Self {
            jobs: transaction.open_table(JOBS).map_err(storage)?,
            executions: transaction.open_table(EXECUTIONS).map_err(storage)?,
            outputs: transaction.open_table(OUTPUTS).map_err(storage)?,
            running: transaction.open_table(RUNNING).map_err(storage)?,
            execution_counts: transaction.open_table(EXECUTION_COUNTS).map_err(storage)?,
            meta: transaction.open_table(META).map_err(storage)?,
            ledger: transaction.open_table(LEDGER).map_err(storage)?,
            missed: transaction.open_table(MISSED).map_err(storage)?,
            internal,
            last_version,
            stored_last_version: last_version,
        })
    }

    fn save_last_version(&mut self) -> Result<(), StoreError> {
        if self.last_version != self.stored_last_version {
            self.internal
                .insert(LAST_VERSION, self.last_version)
                .map_err(storage)?;
            self.stored_last_version = self.last_version;
        }
        Ok(())
    }

    fn apply(&mut self, op: &WriteOp) -> Result<Applied, OpError> {
        match op {
            WriteOp::CommitJobs(ops) => self.commit_jobs(ops).map(|()| Applied::Done),
            WriteOp::PutExecution {
                execution,
                retention,
            } => {
                self.write_execution(execution, *retention)
                    .map_err(OpError::Failed)?;
                Ok(Applied::Done)
            }
            WriteOp::FinishExecution {
                execution,
                retention,
            } => self
                .finish_execution(execution, *retention)
                .map(|job| Applied::Finished(job.map(Box::new))),
            WriteOp::DeleteExecutions { job } => {
                self.delete_executions(job.as_bytes())
                    .map_err(OpError::Failed)?;
                Ok(Applied::Done)
            }
            WriteOp::PutMeta { key, record } => {
                self.meta
                    .insert(key.as_bytes(), record.as_slice())
                    .map_err(failed)?;
                Ok(Applied::Done)
            }
            WriteOp::RecordFires(fires) => {
                self.record_fires(fires).map_err(OpError::Failed)?;
                Ok(Applied::Done)
            }
            WriteOp::RecordMissed {
                job,
                instants,
                uncounted,
            } => self
                .record_missed(job.as_bytes(), instants, *uncounted)
                .map(|()| Applied::Done),
        }
    }

    /// Moves each job's ledger entry forward to its fire, never back.
    fn record_fires(&mut self, fires: &[(String, i64)]) -> Result<(), StoreError> {
        for (job, scheduled) in fires {
            let job = job.as_bytes();
            let current = self.ledger.get(job).map_err(storage)?.map(|v| v.value());
            if current.is_none_or(|current| current < *scheduled) {
                self.ledger.insert(job, *scheduled).map_err(storage)?;
            }
        }
        Ok(())
    }

    /// Merges missed fires into the job's record; writes nothing when the job does not exist.
    fn record_missed(
        &mut self,
        job: &[u8],
        instants: &[DateTime<Utc>],
        uncounted: u64,
    ) -> Result<(), OpError> {
        // Existence only: the job record is not decoded.
        if self.jobs.get(job).map_err(rejected)?.is_none() {
            return Ok(());
        }
        let mut missed = match self.missed.get(job).map_err(rejected)? {
            Some(record) => decode_missed(job, record.value()).map_err(OpError::Rejected)?,
            None => MissedFires::default(),
        };
        missed.record(instants, uncounted);
        self.missed
            .insert(job, encode_missed(&missed).as_slice())
            .map_err(failed)?;
        Ok(())
    }

    fn job_version(&self, name: &str) -> Result<Option<Version>, StoreError> {
        let Some(record) = self.jobs.get(name.as_bytes()).map_err(storage)? else {
            return Ok(None);
        };
        decode_job_version(name.as_bytes(), record.value()).map(Some)
    }

    /// Checks every expectation (in order, against the state the earlier ops leave) before
    /// writing anything, then writes.
    fn commit_jobs(&mut self, ops: &[PreparedJobOp]) -> Result<(), OpError> {
        let mut pending: HashMap<&str, Option<Version>> = HashMap::new();
        let mut version = self.last_version;
        let mut writes: Vec<(&str, Option<Vec<u8>>)> = Vec::with_capacity(ops.len());
        for op in ops {
            let (name, expect, record) = match op {
                PreparedJobOp::Put {
                    name,
                    record,
                    expect,
                } => (name.as_str(), *expect, Some(record)),
                PreparedJobOp::Delete { name, expect } => (name.as_str(), *expect, None),
            };
            // `Any` reads nothing, so it can also replace or delete a record that is damaged.
            if expect != Expect::Any {
                let current = match pending.get(name) {
                    Some(written) => *written,
                    None => self.job_version(name).map_err(OpError::Rejected)?,
                };
                if !expectation_holds(expect, current) {
                    return Err(OpError::Rejected(StoreError::Conflict(name.to_owned())));
                }
            }
            let record = record.map(|record| {
                version += 1;
                let mut record = record.clone();
                set_job_version(&mut record, version);
                record
            });
            pending.insert(name, record.as_ref().map(|_| version));
            writes.push((name, record));
        }
        for (name, record) in writes {
            match record {
                Some(bytes) => {
                    self.jobs
                        .insert(name.as_bytes(), bytes.as_slice())
                        .map_err(failed)?;
                }
                None => {
                    self.jobs.remove(name.as_bytes()).map_err(failed)?;
                    self.delete_executions(name.as_bytes())
                        .map_err(OpError::Failed)?;
                    // A job re-created with the same name starts with no fire history.
                    self.ledger.remove(name.as_bytes()).map_err(failed)?;
                    self.missed.remove(name.as_bytes()).map_err(failed)?;
                }
            }
        }
        self.last_version = version;
        Ok(())
    }

    /// Upserts an execution, then trims its job to the newest `retention`.
    fn write_execution(
        &mut self,
        prepared: &PreparedExecution,
        retention: usize,
    ) -> Result<(), StoreError> {
        let execution = &prepared.execution;
        let job = execution.job_name.as_bytes();
        let started = unix_nanos(execution.started_at);
        let node = execution.node_name.as_bytes();
        let key = (job, started, node);
        let replaced = self
            .executions
            .insert(key, prepared.metadata.as_slice())
            .map_err(storage)?
            .is_some();
        match &prepared.output {
            Some(output) => {
                self.outputs
                    .insert(key, output.as_slice())
                    .map_err(storage)?;
            }
            None => {
                self.outputs.remove(key).map_err(storage)?;
            }
        }
        if execution.is_running() {
            self.running
                .insert((started, job, node), ())
                .map_err(storage)?;
        } else {
            self.running.remove((started, job, node)).map_err(storage)?;
        }
        let mut stored = self.execution_count(job)?;
        if !replaced {
            stored += 1;
        }
        let excess = stored.saturating_sub(u64::try_from(retention).unwrap_or(u64::MAX));
        if excess > 0 {
            let (lower, upper) = job_bounds(job);
            let mut oldest = Vec::new();
            let range = self
                .executions
                .range(job_range(&lower, &upper))
                .map_err(storage)?;
            for entry in range.take(usize::try_from(excess).unwrap_or(usize::MAX)) {
                let (key, _) = entry.map_err(storage)?;
                let (_, started, node) = key.value();
                oldest.push((started, node.to_vec()));
            }
            for (started, node) in &oldest {
                self.remove_execution(job, *started, node)?;
            }
            stored -= u64::try_from(oldest.len()).unwrap_or(u64::MAX).min(stored);
        }
        self.set_execution_count(job, stored)
    }

    /// Returns how many executions of `job` are stored, from the counter kept beside them.
    fn execution_count(&self, job: &[u8]) -> Result<u64, StoreError> {
        Ok(self
            .execution_counts
            .get(job)
            .map_err(storage)?
            .map_or(0, |count| count.value()))
    }

    fn set_execution_count(&mut self, job: &[u8], count: u64) -> Result<(), StoreError> {
        if count == 0 {
            self.execution_counts.remove(job).map_err(storage)?;
        } else {
            self.execution_counts.insert(job, count).map_err(storage)?;
        }
        Ok(())
    }

    fn delete_executions(&mut self, job: &[u8]) -> Result<(), StoreError> {
        for (started, node) in runs_of_job(&self.executions, job)? {
            self.remove_execution(job, started, &node)?;
        }
        self.set_execution_count(job, 0)
    }

    /// Removes one execution, its output and its running entry (not its job's count).
    fn remove_execution(
        &mut self,
        job: &[u8],
        started: i64,
        node: &[u8],
    ) -> Result<(), StoreError> {
        self.executions
            .remove((job, started, node))
            .map_err(storage)?;
        self.outputs.remove((job, started, node)).map_err(storage)?;
        self.running.remove((started, job, node)).map_err(storage)?;
        Ok(())
    }

    fn finish_execution(
        &mut self,
        prepared: &PreparedExecution,
        retention: usize,
    ) -> Result<Option<Job>, OpError> {
        let execution = &prepared.execution;
        let name = execution.job_name.as_bytes();
        let mut job = match self.jobs.get(name).map_err(rejected)? {
            Some(record) => {
                decode_job(name, record.value())
                    .map_err(OpError::Rejected)?
                    .value
            }
            None => return Ok(None),
        };

        self.write_execution(prepared, retention)
            .map_err(OpError::Failed)?;
        job.record_finished(
            execution,
            &self.group_of(execution).map_err(OpError::Failed)?,
        );
        let version = self.last_version + 1;
        let bytes = encode_job(version, &job).map_err(OpError::Failed)?;
        self.jobs.insert(name, bytes.as_slice()).map_err(failed)?;
        self.last_version = version;
        Ok(Some(job))
    }

    /// Reads the stored executions of `execution`'s job and group, decoding only that group.
    fn group_of(&self, execution: &Execution) -> Result<Vec<Execution>, StoreError> {
        let (lower, upper) = job_bounds(execution.job_name.as_bytes());
        let mut group = Vec::new();
        for entry in self
            .executions
            .range(job_range(&lower, &upper))
            .map_err(storage)?
        {
            let (key, value) = entry.map_err(storage)?;
            if decode_execution_group(key.value(), value.value())? == execution.group {
                group.push(decode_execution(key.value(), value.value())?);
            }
        }
        Ok(group)
    }
}

/// Returns true when a record currently at `current` (`None`: absent) satisfies `expect`.
fn expectation_holds(expect: Expect, current: Option<Version>) -> bool {
    match (expect, current) {
        (Expect::Any, _) => true,
        (Expect::Absent, current) => current.is_none(),
        (Expect::Version(expected), Some(current)) => expected == current,
        (Expect::Version(_), None) => false,
    }
}
