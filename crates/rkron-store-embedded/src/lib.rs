//! rkron-store-embedded owns rkron's default single-server store: one redb file,
//! `<data-dir>/rkron.redb`, written by one thread with group commit.
//!
//! Every write goes to the writer thread (module `writer`), which commits whatever is queued in
//! one durable transaction; a write's future resolves only after its transaction is on disk, so
//! an acknowledged write survives `kill -9`. Reads run redb read transactions on tokio's blocking
//! pool and never wait for the writer.
//!
//! redb's default `ExclusiveWriter` mode locks the file for as long as it is open, with locks
//! that belong to the open file (not to the process), so a second process and a second open in
//! the same process both fail with [`OpenError::InUse`]; the kernel drops the lock when the
//! process dies, even by `kill -9`. The tests check all three.

mod keyspace;
mod writer;

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{
    Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata,
};
use rkron_core::execution::{parse_execution_id, unix_nanos};
use rkron_core::{Execution, Job};
use rkron_store::{JobOp, JobPage, Lease, LocalLease, MissedFires, Store, StoreError, Versioned};
use tokio::sync::{mpsc, oneshot};

use crate::keyspace::{
    EXECUTION_COUNTS, EXECUTIONS, INTERNAL, JOBS, KEYSPACE_V1, KEYSPACE_VERSION, LEDGER, META,
    MISSED, OUTPUTS, RUNNING, decode_execution, decode_job, decode_missed, decode_name,
    decode_text, encode_text, from_nanos, job_bounds, job_range, ledger_label, meta_label,
    output_label, storable, storage,
};
use crate::writer::{Applied, PreparedExecution, PreparedJobOp, WriteOp, WriteRequest};

/// Name of the store file inside the data dir.
pub const FILE_NAME: &str = "rkron.redb";

/// Write requests that may wait for the writer before callers are held back.
const QUEUE_CAPACITY: usize = 4 * writer::MAX_BATCH;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process (or another open in this process) holds the store file.
    #[error("data dir {} is already in use by another rkron process", .data_dir.display())]
    InUse { data_dir: PathBuf },
    /// The data dir could not be created.
    #[error("failed to create data dir {}: {source}", .data_dir.display())]
    CreateDir {
        data_dir: PathBuf,
        source: std::io::Error,
    },
    /// The store file is damaged or was written by an incompatible version.
    #[error("store file {} cannot be used: {reason}", .path.display())]
    Unusable { path: PathBuf, reason: String },
    /// The store file could not be opened or initialised.
    #[error("failed to open store file {}: {reason}", .path.display())]
    Open { path: PathBuf, reason: String },
    /// The writer thread could not be started.
    #[error("failed to start the store writer thread: {0}")]
    Writer(std::io::Error),
}

/// rkron's embedded [`Store`]: one redb file with group commit.
///
/// Dropping the store (or [`EmbeddedStore::close`]) lets the writer commit every queued write,
/// stops it and releases the file.
pub struct EmbeddedStore {
    db: Arc<Database>,
    requests: Option<mpsc::Sender<WriteRequest>>,
    writer: Option<JoinHandle<()>>,
    path: PathBuf,
    /// The leadership lease. The file lock already makes this process the only user of the
    /// store, so the lease lives in memory; only the last token is persisted (meta
    /// [`LEASE_TOKEN_KEY`]) so tokens keep increasing across restarts. `None` until read.
    lease: std::sync::Mutex<Option<LocalLease>>,
}

/// Meta key of the last fencing token handed out.
const LEASE_TOKEN_KEY: &str = "lease_token";

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating it and the data dir if needed) the store file `<data_dir>/rkron.redb` and
    /// starts its writer thread.
    pub fn open(data_dir: &Path) -> Result<EmbeddedStore, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OpenError::CreateDir {
            data_dir: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = open_database(data_dir, &path)?;
        initialize(&db).map_err(|error| match error {
            StoreError::Corrupt { reason, .. } => OpenError::Unusable {
                path: path.clone(),
                reason,
            },
            other => OpenError::Open {
                path: path.clone(),
                reason: other.to_string(),
            },
        })?;
        let db = Arc::new(db);
        let (requests, queue) = mpsc::channel(QUEUE_CAPACITY);
        let writer_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("rkron-store-writer".to_owned())
            .spawn(move || writer::run(&writer_db, queue))
            .map_err(OpenError::Writer)?;
        Ok(EmbeddedStore {
            db,
            requests: Some(requests),
            writer: Some(writer),
            path,
            lease: std::sync::Mutex::new(None),
        })
    }

    /// Returns the path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the lease state under its lock (never held across an `.await`).
    fn with_lease<T>(&self, f: impl FnOnce(&mut Option<LocalLease>) -> T) -> T {
        // The state is consistent after every call, so a poisoned lock is still usable.
        let mut guard = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Commits every queued write, stops the writer thread and closes the file.
    ///
    /// Reads still running on the blocking pool keep the file open until they finish.
    pub async fn close(mut self) -> Result<(), StoreError> {
        self.requests = None;
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let joined = tokio::task::spawn_blocking(move || writer.join())
            .await
            .map_err(|error| {
                StoreError::Backend(format!("failed to stop the store writer: {error}"))
            })?;
        joined.map_err(|_| StoreError::Backend("the store writer thread panicked".to_owned()))
    }

    async fn write(&self, op: WriteOp) -> Result<Applied, StoreError> {
        let stopped = || StoreError::Unavailable("the store writer has stopped".to_owned());
        let requests = self.requests.as_ref().ok_or_else(stopped)?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(WriteRequest { op, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let transaction = db.begin_read().map_err(storage)?;
            read(&transaction)
        })
        .await
        .map_err(|error| StoreError::Backend(format!("store read task failed: {error}")))?
    }
}

impl Drop for EmbeddedStore {
    /// Lets the writer commit every queued write and waits for it, so the file is released when
    /// the drop returns (blocks for at most one commit).
    fn drop(&mut self) {
        self.requests = None;
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!(path = %self.path.display(), "the store writer thread panicked");
        }
    }
}

/// redb's page cache. Its default (1 GiB) would keep every page read at start-up (the whole job
/// table) resident for good; the hot pages of a scheduler are few and the OS page cache backs
/// the rest.
const CACHE_SIZE: usize = 4 * 1024 * 1024;

/// Opens the redb file, mapping redb's lock conflict onto [`OpenError::InUse`].
fn open_database(data_dir: &Path, path: &Path) -> Result<Database, OpenError> {
    // redb documents that opening a file damaged outside redb may panic; report it instead.
    let opened = catch_unwind(AssertUnwindSafe(|| {
        Database::builder().set_cache_size(CACHE_SIZE).create(path)
    }));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => Err(OpenError::InUse {
            data_dir: data_dir.to_path_buf(),
        }),
        Ok(Err(DatabaseError::UpgradeRequired(version))) => Err(OpenError::Unusable {
            path: path.to_path_buf(),
            reason: format!("unsupported redb file format {version}"),
        }),
        Ok(Err(DatabaseError::Storage(redb::StorageError::Corrupted(reason)))) => {
            Err(OpenError::Unusable {
                path: path.to_path_buf(),
                reason,
            })
        }
        Ok(Err(error)) => Err(OpenError::Open {
            path: path.to_path_buf(),
            reason: error.to_string(),
        }),
        Err(_) => Err(OpenError::Unusable {
            path: path.to_path_buf(),
            reason: "the file is damaged (redb panicked while opening it)".to_owned(),
        }),
    }
}

/// Creates every table and checks (or records) the keyspace layout version.
fn initialize(db: &Database) -> Result<(), StoreError> {
    let transaction = db.begin_write().map_err(storage)?;
    {
        transaction.open_table(JOBS).map_err(storage)?;
        transaction.open_table(EXECUTIONS).map_err(storage)?;
        transaction.open_table(OUTPUTS).map_err(storage)?;
        transaction.open_table(RUNNING).map_err(storage)?;
        transaction.open_table(EXECUTION_COUNTS).map_err(storage)?;
        transaction.open_table(META).map_err(storage)?;
        // Added after layout version 1 without a new version: an older file gains them empty.
        transaction.open_table(LEDGER).map_err(storage)?;
        transaction.open_table(MISSED).map_err(storage)?;
        let mut internal = transaction.open_table(INTERNAL).map_err(storage)?;
        let layout = internal
            .get(KEYSPACE_VERSION)
            .map_err(storage)?
            .map(|v| v.value());
        match layout {
            None => {
                internal
                    .insert(KEYSPACE_VERSION, KEYSPACE_V1)
                    .map_err(storage)?;
            }
            Some(KEYSPACE_V1) => {}
            Some(other) => {
                return Err(StoreError::Corrupt {
                    key: KEYSPACE_VERSION.to_owned(),
                    reason: format!(
                        "keyspace version {other} is newer than this rkron supports ({KEYSPACE_V1})"
                    ),
                });
            }
        }
    }
    transaction.commit().map_err(storage)
}

fn read_job(
    transaction: &ReadTransaction,
    name: &str,
) -> Result<Option<Versioned<Job>>, StoreError> {
    let jobs = transaction.open_table(JOBS).map_err(storage)?;
    let Some(record) = jobs.get(name.as_bytes()).map_err(storage)? else {
        return Ok(None);
    };
    decode_job(name.as_bytes(), record.value()).map(Some)
}

fn read_page(
    transaction: &ReadTransaction,
    start: usize,
    end: usize,
) -> Result<JobPage, StoreError> {
    let jobs = transaction.open_table(JOBS).map_err(storage)?;
    // redb keeps the entry count in the tree's root, so this is O(1).
    let total = usize::try_from(jobs.len().map_err(storage)?).unwrap_or(usize::MAX);
    let mut page = Vec::with_capacity(end.saturating_sub(start).min(total));
    // Skipping walks keys without decoding any job.
    for entry in jobs
        .iter()
        .map_err(storage)?
        .skip(start)
        .take(end.saturating_sub(start))
    {
        let (name, record) = entry.map_err(storage)?;
        page.push(decode_job(name.value(), record.value())?.value);
    }
    Ok(JobPage { jobs: page, total })
}

fn read_executions(
    transaction: &ReadTransaction,
    job: &str,
    with_output: bool,
) -> Result<Vec<Execution>, StoreError> {
    let executions = transaction.open_table(EXECUTIONS).map_err(storage)?;
    let outputs = transaction.open_table(OUTPUTS).map_err(storage)?;
    let (lower, upper) = job_bounds(job.as_bytes());
    let mut listed = Vec::new();
    for entry in executions
        .range(job_range(&lower, &upper))
        .map_err(storage)?
    {
        let (key, record) = entry.map_err(storage)?;
        let mut execution = decode_execution(key.value(), record.value())?;
        if with_output {
            let (job, started, node) = key.value();
            if let Some(output) = outputs.get(key.value()).map_err(storage)? {
                execution.output =
                    decode_text(|| output_label(job, started, node), output.value())?;
            }
        }
        listed.push(execution);
    }
    Ok(listed)
}

fn read_execution(
    transaction: &ReadTransaction,
    job: &str,
    started: i64,
    node: &str,
) -> Result<Option<Execution>, StoreError> {
    let key = (job.as_bytes(), started, node.as_bytes());
    let executions = transaction.open_table(EXECUTIONS).map_err(storage)?;
    let Some(record) = executions.get(key).map_err(storage)? else {
        return Ok(None);
    };
    let mut execution = decode_execution(key, record.value())?;
    let outputs = transaction.open_table(OUTPUTS).map_err(storage)?;
    if let Some(output) = outputs.get(key).map_err(storage)? {
        execution.output = decode_text(|| output_label(key.0, started, key.2), output.value())?;
    }
    Ok(Some(execution))
}

fn read_ledger(
    transaction: &ReadTransaction,
) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
    let ledger = transaction.open_table(LEDGER).map_err(storage)?;
    let mut read = BTreeMap::new();
    for entry in ledger.iter().map_err(storage)? {
        let (job, scheduled) = entry.map_err(storage)?;
        let name = decode_name(|| ledger_label(job.value()), job.value())?;
        read.insert(name, from_nanos(scheduled.value()));
    }
    Ok(read)
}

fn read_running(transaction: &ReadTransaction) -> Result<Vec<Execution>, StoreError> {
    let running = transaction.open_table(RUNNING).map_err(storage)?;
    let executions = transaction.open_table(EXECUTIONS).map_err(storage)?;
    let mut listed = Vec::new();
    for entry in running.iter().map_err(storage)? {
        let (key, _) = entry.map_err(storage)?;
        let (started, job, node) = key.value();
        // The index and the executions are written in the same transactions, so a missing
        // record cannot happen; skipping it keeps a damaged index from failing every listing.
        if let Some(record) = executions.get((job, started, node)).map_err(storage)? {
            listed.push(decode_execution((job, started, node), record.value())?);
        }
    }
    Ok(listed)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get_job(&self, name: &str) -> Result<Option<Versioned<Job>>, StoreError> {
        let name = name.to_owned();
        self.read(move |transaction| read_job(transaction, &name))
            .await
    }

    async fn list_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.read(|transaction| {
            let jobs = transaction.open_table(JOBS).map_err(storage)?;
            let mut listed = Vec::new();
            for entry in jobs.iter().map_err(storage)? {
                let (name, record) = entry.map_err(storage)?;
                listed.push(decode_job(name.value(), record.value())?.value);
            }
            Ok(listed)
        })
        .await
    }

    async fn jobs_page(&self, start: usize, end: usize) -> Result<JobPage, StoreError> {
        self.read(move |transaction| read_page(transaction, start, end))
            .await
    }

    async fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
        let after = after.map(|a| a.as_bytes().to_vec());
        self.read(move |transaction| {
            use std::ops::Bound;
            let jobs = transaction.open_table(JOBS).map_err(storage)?;
            let lower = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let mut listed = Vec::new();
            for entry in jobs
                .range::<&[u8]>((lower, Bound::Unbounded))
                .map_err(storage)?
                .take(limit)
            {
                let (name, record) = entry.map_err(storage)?;
                listed.push(decode_job(name.value(), record.value())?.value);
            }
            Ok(listed)
        })
        .await
    }

    async fn commit_jobs(&self, ops: Vec<JobOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let prepared = ops
            .iter()
            .map(PreparedJobOp::new)
            .collect::<Result<_, _>>()?;
        self.write(WriteOp::CommitJobs(prepared)).await.map(|_| ())
    }

    async fn put_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<(), StoreError> {
        let op = WriteOp::PutExecution {
            execution: PreparedExecution::new(execution)?,
            retention,
        };
        self.write(op).await.map(|_| ())
    }

    async fn finish_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<Option<Job>, StoreError> {
        let op = WriteOp::FinishExecution {
            execution: PreparedExecution::new(execution)?,
            retention,
        };
        match self.write(op).await? {
            Applied::Finished(job) => Ok(job.map(|job| *job)),
            Applied::Done => Err(StoreError::Backend(
                "the writer answered the wrong request".to_owned(),
            )),
        }
    }

    async fn list_executions(
        &self,
        job: &str,
        with_output: bool,
    ) -> Result<Vec<Execution>, StoreError> {
        let job = job.to_owned();
        self.read(move |transaction| read_executions(transaction, &job, with_output))
            .await
    }

    async fn get_execution(&self, job: &str, id: &str) -> Result<Option<Execution>, StoreError> {
        let Some((started, node)) = parse_execution_id(id) else {
            return Ok(None);
        };
        let (job, node) = (job.to_owned(), node.to_owned());
        self.read(move |transaction| read_execution(transaction, &job, started, &node))
            .await
    }

    async fn delete_executions(&self, job: &str) -> Result<(), StoreError> {
        self.write(WriteOp::DeleteExecutions {
            job: job.to_owned(),
        })
        .await
        .map(|_| ())
    }

    async fn running_executions(&self) -> Result<Vec<Execution>, StoreError> {
        self.read(read_running).await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.read(move |transaction| {
            let meta = transaction.open_table(META).map_err(storage)?;
            let Some(record) = meta.get(key.as_bytes()).map_err(storage)? else {
                return Ok(None);
            };
            decode_text(|| meta_label(key.as_bytes()), record.value()).map(Some)
        })
        .await
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let op = WriteOp::PutMeta {
            key: key.to_owned(),
            record: encode_text(value),
        };
        self.write(op).await.map(|_| ())
    }

    async fn record_fires(
        &self,
        fence: u64,
        fires: &[(String, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        // One process uses the file (it is locked), so the check cannot race another writer.
        if !self.with_lease(|lease| lease.as_ref().is_some_and(|l| l.is_current(fence))) {
            return Err(StoreError::Fenced(fence));
        }
        // Only the latest fire of each job reaches the writer, in name order.
        let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
        for (job, scheduled_at) in fires {
            let nanos = unix_nanos(*scheduled_at);
            latest
                .entry(job.as_str())
                .and_modify(|current| *current = (*current).max(nanos))
                .or_insert(nanos);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let fires = latest
            .into_iter()
            .map(|(job, nanos)| (job.to_owned(), nanos))
            .collect();
        self.write(WriteOp::RecordFires(fires)).await.map(|_| ())
    }

    async fn fire_ledger(&self) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        self.read(read_ledger).await
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
        let op = WriteOp::RecordMissed {
            job: job.to_owned(),
            // Clamped before merging, so duplicates are found as they will be stored.
            instants: instants.iter().copied().map(storable).collect(),
            uncounted,
        };
        self.write(op).await.map(|_| ())
    }

    async fn missed_fires(&self, job: &str) -> Result<MissedFires, StoreError> {
        let job = job.to_owned();
        self.read(move |transaction| {
            let missed = transaction.open_table(MISSED).map_err(storage)?;
            match missed.get(job.as_bytes()).map_err(storage)? {
                Some(record) => decode_missed(job.as_bytes(), record.value()),
                None => Ok(MissedFires::default()),
            }
        })
        .await
    }

    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>, StoreError> {
        if self.with_lease(|lease| lease.is_none()) {
            let last = match self.get_meta(LEASE_TOKEN_KEY).await? {
                Some(text) => text.parse::<u64>().map_err(|e| StoreError::Corrupt {
                    key: format!("meta/{LEASE_TOKEN_KEY}"),
                    reason: e.to_string(),
                })?,
                None => 0,
            };
            self.with_lease(|lease| {
                lease.get_or_insert_with(|| LocalLease::starting_after(last));
            });
        }
        let (granted, fresh) = self.with_lease(|lease| {
            let lease = lease.get_or_insert_with(LocalLease::default);
            let before = lease.last_token();
            let granted = lease.acquire(holder, ttl);
            (granted, lease.last_token() != before)
        });
        if let Some(granted) = granted.as_ref().filter(|_| fresh)
            && let Err(error) = self
                .put_meta(LEASE_TOKEN_KEY, &granted.token.to_string())
                .await
        {
            // A token that is not durable could be handed out again after a restart.
            self.with_lease(|lease| {
                if let Some(lease) = lease {
                    lease.release(granted);
                }
            });
            return Err(error);
        }
        Ok(granted)
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.with_lease(|state| state.as_mut().is_some_and(|s| s.renew(lease, ttl))))
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.with_lease(|state| {
            if let Some(state) = state {
                state.release(lease);
            }
        });
        Ok(())
    }

    async fn current_lease(&self) -> Result<Option<Lease>, StoreError> {
        Ok(self.with_lease(|state| state.as_ref().and_then(|s| s.current().cloned())))
    }
}

#[cfg(test)]
mod tests;
