//! rkron-store-consul owns rkron's Consul store: the [`Store`] trait over Consul's KV store and
//! transactions (`/v1/kv`, `/v1/txn` over HTTP), so any number of servers share one Consul
//! datacenter.
//!
//! **Unverified against a real Consul.** No Consul server can be installed on the machines this
//! was built on; the store follows Consul's documented HTTP API and its tests run against an
//! in-process fake of the documented endpoints (`tests/it/fake.rs`). Run the conformance suite
//! against a real Consul before relying on it.
//!
//! The key layout is in module `keyspace`; the HTTP calls in module `gateway`.
//!
//! # Atomicity
//!
//! Each trait operation that must be atomic is one Consul transaction (`PUT /v1/txn`), which
//! applies every operation or none. Consul's KV docs give the limit as 64 operations per
//! transaction (the current transaction page says 128); the store keeps to [`MAX_TXN_OPS`] = 64,
//! which every release accepts. That shapes three operations:
//!
//! - `commit_jobs` sends one transaction: a check for the first op on each job
//!   (`check-not-exists` or `check-index`; later ops on the same job are checked client-side
//!   against the earlier ones), then a `set` or `delete` per job, and for each deleted job a
//!   `delete-tree` of each of its exact history prefixes (ending in `/`) and `delete`s of its
//!   ledger entry and missed fires. A commit needing more than [`MAX_TXN_OPS`] answers
//!   [`StoreError::Backend`] and writes nothing; the node commits at most three ops at a time.
//! - `record_fires` writes its slice in chunks of [`FIRES_PER_TXN`] ledger entries. **Each chunk
//!   is atomic and fenced; the slice as a whole is not** (see Leadership). A crash between
//!   chunks leaves some fires of the tick recorded and others not; the scheduler records fires
//!   before dispatching them, so that only means some recorded fires were not dispatched. The
//!   ledger is read first, and each chunk writes only entries that move forward, each with `cas`
//!   on the `ModifyIndex` read (0: must not exist), so no entry ever moves back; a chunk that
//!   loses a race reads again.
//! - Trimming beyond the retention limit deletes 3 keys per execution; a write that trims more
//!   than fits its transaction deletes the rest in later transactions.
//!
//! `finish_execution` reads the job and the job's executions in one read-only transaction
//! (`get`, `get-tree`), then writes the job with `cas` on the `ModifyIndex` read together with
//! the execution, retrying when the job changed meanwhile. `record_missed` writes the missed
//! fires with `cas`, guarded by `check-index` on the job.
//!
//! Consul has no range reads with a start key or a limit: `jobs_page` and `jobs_after` list the
//! job keys (`?keys`, no values) and then read only the page's jobs with `get` operations (64 per
//! transaction). Listings use Consul's default consistency mode.
//!
//! # Leadership
//!
//! The lease is the key `<ks>/leader` holding `{"holder", "expires_at_ms"}`: a compare-and-swap
//! record, not a Consul session. Consul sessions cannot carry the trait's TTL: their TTL is at
//! least 10 s, Consul may reap them up to twice the TTL late, and a lock released by session
//! invalidation stays blocked for the session's lock delay. So **expiry uses the clients' wall
//! clocks** (as the DynamoDB store does): the holder writes `expires_at_ms = now + ttl` from its
//! clock, and another server takes the lease only once that instant has passed by its own clock.
//! This assumes the servers' clocks agree (NTP) to well within the TTL; fencing keeps a skewed
//! takeover safe for the ledger.
//!
//! - **Token**: the leader key's `CreateIndex`. A new tenure deletes the previous record
//!   (`delete-cas` on its `ModifyIndex`, when expired) and creates the key anew (`cas` with index
//!   0); Consul's Raft index only grows, so each tenure's token exceeds every earlier one, with
//!   no counter to keep. Renewals rewrite the record with `cas`, keeping the `CreateIndex`.
//!   Release deletes the record (`delete-cas`).
//! - **Fence**: `record_fires` reads the leader key and requires its `CreateIndex` to be the
//!   fence and its expiry to lie after the call's start (judged on the caller's clock, against
//!   the lease as it stood when the scheduler handed the slice over); every chunk's transaction
//!   then starts with `check-index` on the leader key at the `ModifyIndex` read. Renewals move
//!   that index, so a chunk that fails on it re-reads the leader key: the same tenure (same
//!   `CreateIndex`) carries on at the new index, anything else answers [`StoreError::Fenced`].
//!   A deposed leader therefore records nothing from the moment another server takes over. A
//!   lease that merely expires during a long call (nobody took it) keeps its chunks going.
//!
//! # Errors
//!
//! Transport failures and timeouts (per request, [`ConsulConfig::timeout`]) answer
//! [`StoreError::Unavailable`]; so do Consul's HTTP 5xx answers ("No cluster leader"). Failed
//! checks answer [`StoreError::Conflict`], undecodable records [`StoreError::Corrupt`], refused
//! tokens and anything else [`StoreError::Backend`]. A call that timed out may still have been
//! applied (entirely or not at all).

mod gateway;
mod keyspace;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rkron_core::execution::{parse_execution_id, unix_nanos};
use rkron_core::{Clock, Execution, Job, SystemClock};
use rkron_store::plan;
use rkron_store::{Expect, JobOp, JobPage, Lease, MissedFires, Store, StoreError, Versioned};

use crate::gateway::{CallError, Gateway, KvEntry, TxnError, TxnOp, TxnOutcome};
use crate::keyspace::{
    Keys, LeaseRecord, corrupt, decode_execution, decode_instant, decode_job, decode_lease,
    decode_missed, decode_text, encode_execution, encode_job, encode_lease, encode_missed,
    encode_nanos, run_of, run_suffix, strip,
};

/// The most operations the store puts in one Consul transaction.
pub const MAX_TXN_OPS: usize = 64;

/// Ledger entries per `record_fires` transaction: one operation goes to the fence.
pub const FIRES_PER_TXN: usize = MAX_TXN_OPS - 1;

/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default keyspace (key prefix).
pub const DEFAULT_KEYSPACE: &str = "rkron";

/// The default address of the Consul agent.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8500";

/// Attempts of a read-modify-write before answering [`StoreError::Conflict`].
const CAS_ATTEMPTS: usize = 64;

/// Operations per transaction when deleting trimmed executions (3 keys each).
const TRIM_OPS_PER_TXN: usize = MAX_TXN_OPS / 3 * 3;

/// How to reach Consul.
#[derive(Clone)]
pub struct ConsulConfig {
    /// The agent's address (`backend-machine`): `host:port`, `http://host:port` or
    /// `https://host:port`.
    pub address: String,
    /// Prefix of every key (`keyspace`); servers of one cluster share it.
    pub keyspace: String,
    /// ACL token (`backend-password`), sent as `X-Consul-Token`.
    pub token: Option<String>,
    /// Use `https` for an address given without a scheme.
    pub tls: bool,
    /// Timeout of each request to Consul.
    pub timeout: Duration,
}

impl Default for ConsulConfig {
    fn default() -> Self {
        Self {
            address: DEFAULT_ADDRESS.to_owned(),
            keyspace: DEFAULT_KEYSPACE.to_owned(),
            token: None,
            tls: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for ConsulConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulConfig")
            .field("address", &self.address)
            .field("keyspace", &self.keyspace)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why the store could not connect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The configuration is unusable.
    #[error("invalid Consul configuration: {0}")]
    Config(String),
    /// Consul did not answer.
    #[error("Consul unavailable: {0}")]
    Unavailable(String),
    /// Consul refused the token, or asks for one and none is configured.
    #[error("Consul refused the token: {0}")]
    Auth(String),
    /// Consul answered something else than expected.
    #[error("Consul error: {0}")]
    Backend(String),
}

impl From<CallError> for ConnectError {
    fn from(error: CallError) -> Self {
        match &error {
            CallError::Denied(_) => Self::Auth(error.to_string()),
            CallError::Unavailable(_) => Self::Unavailable(error.to_string()),
            CallError::Status { status, .. } if *status >= 500 => {
                Self::Unavailable(error.to_string())
            }
            CallError::Status { .. } | CallError::Protocol(_) => Self::Backend(error.to_string()),
        }
    }
}

/// Turns the configured address into a base URL.
fn base_url(address: &str, tls: bool) -> Result<String, ConnectError> {
    let trimmed = address.trim().trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Ok(trimmed.to_owned());
    }
    if trimmed.is_empty() || trimmed.contains("://") || trimmed.contains('/') {
        return Err(ConnectError::Config(format!(
            "address {address:?} is not host:port, http://host:port or https://host:port"
        )));
    }
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{trimmed}"))
}

/// The TTL in milliseconds, at least one.
fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// Decodes a job from its entry.
fn job_of(entry: &KvEntry) -> Result<Job, StoreError> {
    decode_job(&entry.key, &entry.bytes()?)
}

/// Decodes an execution's metadata from its entry.
fn execution_of(entry: &KvEntry) -> Result<Execution, StoreError> {
    decode_execution(&entry.key, &entry.bytes()?)
}

/// Describes the errors of a rolled-back transaction.
fn describe_errors(errors: &[TxnError]) -> String {
    errors
        .iter()
        .map(|error| format!("op {}: {}", error.op_index, error.what))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether one of `errors` is about an operation before `count`.
fn failed_before(errors: &[TxnError], count: usize) -> bool {
    errors.iter().any(|error| error.op_index < count)
}

/// The leader key as read: its record and indexes.
struct LeaderEntry {
    record: LeaseRecord,
    create_index: u64,
    modify_index: u64,
}

/// rkron's Consul [`Store`]: every server of a cluster connects to the same Consul datacenter
/// and keyspace.
#[derive(Debug)]
pub struct ConsulStore {
    gateway: Gateway,
    keys: Keys,
    clock: Arc<dyn Clock>,
}

impl ConsulStore {
    /// Connects to Consul: checks the configuration and reads once, so an unreachable agent or
    /// a refused token fails here.
    pub async fn connect(config: ConsulConfig) -> Result<Self, ConnectError> {
        let base = base_url(&config.address, config.tls)?;
        let keyspace = config.keyspace.trim_end_matches('/');
        if keyspace.is_empty() {
            return Err(ConnectError::Config("the keyspace is empty".to_owned()));
        }
        if config.timeout.is_zero() {
            return Err(ConnectError::Config("the timeout is zero".to_owned()));
        }
        let token = config.token.filter(|token| !token.is_empty());
        let gateway = Gateway::new(base, token, config.timeout).map_err(ConnectError::Config)?;
        let keys = Keys::new(keyspace);
        gateway.get(&keys.leader()).await?;
        Ok(Self {
            gateway,
            keys,
            clock: Arc::new(SystemClock),
        })
    }

    /// Replaces the clock that lease expiry is computed with ([`SystemClock`] by default).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The key prefix of this store, `<keyspace>/`.
    pub fn key_prefix(&self) -> &str {
        self.keys.root()
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    async fn txn(&self, ops: &[TxnOp]) -> Result<TxnOutcome, StoreError> {
        if ops.len() > MAX_TXN_OPS {
            return Err(StoreError::Backend(format!(
                "a transaction of {} operations exceeds Consul's limit of {MAX_TXN_OPS}",
                ops.len()
            )));
        }
        Ok(self.gateway.txn(ops).await?)
    }

    /// Runs a transaction that must not roll back (no checks in it).
    async fn txn_unchecked(&self, ops: &[TxnOp]) -> Result<Vec<KvEntry>, StoreError> {
        match self.txn(ops).await? {
            TxnOutcome::Committed(results) => Ok(results),
            TxnOutcome::RolledBack(errors) => Err(StoreError::Backend(format!(
                "Consul rolled back an unconditional transaction: {}",
                describe_errors(&errors)
            ))),
        }
    }

    /// Reads the jobs at `keys` (job keys), in that order, skipping any deleted meanwhile.
    async fn jobs_at(&self, keys: &[String]) -> Result<Vec<Job>, StoreError> {
        let mut jobs = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_TXN_OPS) {
            let ops: Vec<TxnOp> = chunk.iter().map(TxnOp::get).collect();
            let entries: HashMap<String, KvEntry> = match self.txn(&ops).await? {
                TxnOutcome::Committed(results) => results
                    .into_iter()
                    .map(|entry| (entry.key.clone(), entry))
                    .collect(),
                // A job was deleted since the listing: read them one by one.
                TxnOutcome::RolledBack(_) => {
                    let mut entries = HashMap::new();
                    for key in chunk {
                        if let Some(entry) = self.gateway.get(key).await? {
                            entries.insert(key.clone(), entry);
                        }
                    }
                    entries
                }
            };
            for key in chunk {
                if let Some(entry) = entries.get(key) {
                    jobs.push(job_of(entry)?);
                }
            }
        }
        Ok(jobs)
    }

    /// Sends `ops` (the write, then trim deletes of 3 keys per execution) in transactions of at
    /// most [`MAX_TXN_OPS`], the first one led by `guard`; answers whether the guard held.
    async fn write_chunks(
        &self,
        guard: Vec<TxnOp>,
        mut ops: Vec<TxnOp>,
    ) -> Result<bool, StoreError> {
        let room = MAX_TXN_OPS.saturating_sub(guard.len());
        let mut head = ops.len().min(room);
        while !(ops.len() - head).is_multiple_of(3) {
            head -= 1;
        }
        let rest = ops.split_off(head);
        let guarded = guard.len();
        let mut first = guard;
        first.extend(ops);
        match self.txn(&first).await? {
            TxnOutcome::Committed(_) => {}
            TxnOutcome::RolledBack(errors) if failed_before(&errors, guarded) => return Ok(false),
            TxnOutcome::RolledBack(errors) => {
                return Err(StoreError::Backend(format!(
                    "Consul rolled back a write: {}",
                    describe_errors(&errors)
                )));
            }
        }
        for chunk in rest.chunks(TRIM_OPS_PER_TXN) {
            self.txn_unchecked(chunk).await?;
        }
        Ok(true)
    }

    /// The writes that store `execution` (metadata, output, running index) under `run`.
    fn run_writes(&self, execution: &Execution, run: &str) -> Result<Vec<TxnOp>, StoreError> {
        let job = &execution.job_name;
        let metadata = encode_execution(execution)?;
        let output_key = format!("{}{run}", self.keys.outputs_of(job));
        let running_key = format!("{}{run}", self.keys.running_of(job));
        Ok(vec![
            TxnOp::set(format!("{}{run}", self.keys.executions_of(job)), &metadata),
            if execution.output.is_empty() {
                TxnOp::delete(output_key)
            } else {
                TxnOp::set(output_key, execution.output.as_bytes())
            },
            if execution.is_running() {
                TxnOp::set(running_key, &metadata)
            } else {
                TxnOp::delete(running_key)
            },
        ])
    }

    /// The deletes that remove run `run` of `job`.
    fn run_deletes(&self, job: &str, run: &str) -> [TxnOp; 3] {
        [
            TxnOp::delete(format!("{}{run}", self.keys.executions_of(job))),
            TxnOp::delete(format!("{}{run}", self.keys.outputs_of(job))),
            TxnOp::delete(format!("{}{run}", self.keys.running_of(job))),
        ]
    }

    /// The writes of `execution` followed by the deletes of the runs `trim` removes.
    fn execution_ops(
        &self,
        execution: &Execution,
        run: &str,
        trim: &[String],
    ) -> Result<Vec<TxnOp>, StoreError> {
        let job = &execution.job_name;
        let mut ops = if trim.iter().any(|trimmed| trimmed == run) {
            // Older than every kept run: trimmed at once, so never written.
            self.run_deletes(job, run).into()
        } else {
            self.run_writes(execution, run)?
        };
        for trimmed in trim.iter().filter(|trimmed| *trimmed != run) {
            ops.extend(self.run_deletes(job, trimmed));
        }
        Ok(ops)
    }

    /// Reads the leader key.
    async fn leader(&self) -> Result<Option<LeaderEntry>, StoreError> {
        let key = self.keys.leader();
        let Some(entry) = self.gateway.get(&key).await? else {
            return Ok(None);
        };
        let record = decode_lease(&key, &entry.bytes()?)?;
        if entry.create_index == 0 {
            return Err(corrupt(key, "the leader key has no CreateIndex"));
        }
        Ok(Some(LeaderEntry {
            record,
            create_index: entry.create_index,
            modify_index: entry.modify_index,
        }))
    }

    /// Answers the leader key's `ModifyIndex` when `fence` is the token of a lease unexpired at
    /// `now_ms`; otherwise [`StoreError::Fenced`].
    async fn fence_index(&self, fence: u64, now_ms: i64) -> Result<u64, StoreError> {
        match self.leader().await? {
            Some(leader)
                if leader.create_index == fence && leader.record.expires_at_ms > now_ms =>
            {
                Ok(leader.modify_index)
            }
            _ => Err(StoreError::Fenced(fence)),
        }
    }

    /// Reads the ledger: key → (instant as Unix nanos, `ModifyIndex`).
    async fn ledger_entries(&self) -> Result<HashMap<String, (i64, u64)>, StoreError> {
        let entries = self.gateway.get_prefix(&self.keys.ledger()).await?;
        entries
            .into_iter()
            .map(|entry| {
                let instant = decode_instant(&entry.key, &entry.bytes()?)?;
                Ok((entry.key, (unix_nanos(instant), entry.modify_index)))
            })
            .collect()
    }

    /// Writes one chunk of distinct ledger entries, fenced; `leader_index` follows renewals.
    async fn record_fire_chunk(
        &self,
        fence: u64,
        now_ms: i64,
        leader_index: &mut u64,
        stored: &mut HashMap<String, (i64, u64)>,
        chunk: &[(&str, i64)],
    ) -> Result<(), StoreError> {
        let leader = self.keys.leader();
        for _ in 0..CAS_ATTEMPTS {
            let mut ops = vec![TxnOp::check_index(&leader, *leader_index)];
            let mut written = Vec::new();
            for (job, nanos) in chunk {
                let key = self.keys.ledger_of(job);
                let index = match stored.get(&key) {
                    Some((current, _)) if *current >= *nanos => continue,
                    Some((_, index)) => *index,
                    None => 0,
                };
                ops.push(TxnOp::cas(&key, encode_nanos(*nanos), index));
                written.push((key, *nanos));
            }
            if written.is_empty() {
                return Ok(());
            }
            match self.txn(&ops).await? {
                TxnOutcome::Committed(results) => {
                    let indexes: HashMap<String, u64> = results
                        .into_iter()
                        .map(|entry| (entry.key, entry.modify_index))
                        .collect();
                    for (key, nanos) in written {
                        let index = indexes.get(&key).copied().unwrap_or(0);
                        stored.insert(key, (nanos, index));
                    }
                    return Ok(());
                }
                TxnOutcome::RolledBack(errors) => {
                    if failed_before(&errors, 1) {
                        // The leader key moved: a renewal carries on, a takeover fences.
                        *leader_index = self.fence_index(fence, now_ms).await?;
                    }
                    if errors.iter().any(|error| error.op_index > 0) {
                        // A ledger entry moved between the read and the write: read again.
                        *stored = self.ledger_entries().await?;
                    }
                }
            }
        }
        Err(StoreError::Conflict(self.keys.ledger()))
    }
}

#[async_trait]
impl Store for ConsulStore {
    async fn get_job(&self, name: &str) -> Result<Option<Versioned<Job>>, StoreError> {
        let Some(entry) = self.gateway.get(&self.keys.job(name)).await? else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            value: job_of(&entry)?,
            version: entry.modify_index,
        }))
    }

    async fn list_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let entries = self.gateway.get_prefix(&self.keys.jobs()).await?;
        entries.iter().map(job_of).collect()
    }

    async fn jobs_page(&self, start: usize, end: usize) -> Result<JobPage, StoreError> {
        let keys = self.gateway.keys(&self.keys.jobs()).await?;
        let total = keys.len();
        let from = start.min(total);
        let to = end.clamp(from, total);
        let jobs = self.jobs_at(&keys[from..to]).await?;
        Ok(JobPage { jobs, total })
    }

    async fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = self.keys.jobs();
        let keys = self.gateway.keys(&prefix).await?;
        let mut page = Vec::new();
        for key in keys {
            let name = strip(&key, &prefix)?;
            if after.is_none_or(|after| name > after) {
                page.push(key);
                if page.len() == limit {
                    break;
                }
            }
        }
        self.jobs_at(&page).await
    }

    async fn commit_jobs(&self, ops: Vec<JobOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let effects = plan::effects(&ops);
        if plan::conflicts_within(&ops) {
            // Doomed whatever is stored; read the jobs to name the first op that fails.
            let mut stored = HashMap::new();
            for effect in &effects {
                if let Some(entry) = self.gateway.get(&self.keys.job(effect.name)).await? {
                    stored.insert(effect.name, entry.modify_index);
                }
            }
            let name = plan::first_conflict(&ops, &|name| stored.get(name).copied())
                .or_else(|| effects.first().map(|effect| effect.name.to_owned()))
                .unwrap_or_default();
            return Err(StoreError::Conflict(name));
        }
        let mut checks = Vec::new();
        let mut checked = Vec::new();
        let mut writes = Vec::new();
        for effect in &effects {
            let key = self.keys.job(effect.name);
            match effect.expect {
                Expect::Any => {}
                Expect::Absent => {
                    checks.push(TxnOp::check_not_exists(&key));
                    checked.push(effect.name);
                }
                Expect::Version(version) => {
                    checks.push(TxnOp::check_index(&key, version));
                    checked.push(effect.name);
                }
            }
            if effect.deleted {
                writes.push(TxnOp::delete_tree(self.keys.executions_of(effect.name)));
                writes.push(TxnOp::delete_tree(self.keys.outputs_of(effect.name)));
                writes.push(TxnOp::delete_tree(self.keys.running_of(effect.name)));
                writes.push(TxnOp::delete(self.keys.ledger_of(effect.name)));
                writes.push(TxnOp::delete(self.keys.missed(effect.name)));
            }
            writes.push(match effect.put {
                Some(job) => TxnOp::set(&key, encode_job(job)?),
                None => TxnOp::delete(&key),
            });
        }
        let mut txn = checks;
        txn.extend(writes);
        match self.txn(&txn).await? {
            TxnOutcome::Committed(_) => Ok(()),
            TxnOutcome::RolledBack(errors) => {
                // Checks come first, in the order of the jobs' first ops: the lowest failed
                // check is the first op whose expectation fails.
                let first = errors
                    .iter()
                    .map(|error| error.op_index)
                    .filter(|index| *index < checked.len())
                    .min()
                    .and_then(|index| checked.get(index))
                    .map(|name| (*name).to_owned());
                match first {
                    Some(name) => Err(StoreError::Conflict(name)),
                    None => Err(StoreError::Backend(format!(
                        "Consul rolled back a commit: {}",
                        describe_errors(&errors)
                    ))),
                }
            }
        }
    }

    async fn put_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<(), StoreError> {
        let prefix = self.keys.executions_of(&execution.job_name);
        let run = run_of(execution);
        let stored = self.gateway.keys(&prefix).await?;
        let suffixes = stored
            .iter()
            .map(|key| strip(key, &prefix).map(str::to_owned))
            .collect::<Result<Vec<String>, StoreError>>()?;
        let exists = suffixes.contains(&run);
        let excess = plan::excess(suffixes.len(), exists, retention);
        let trim = plan::trimmed(&suffixes, &run, excess);
        let ops = self.execution_ops(execution, &run, &trim)?;
        self.write_chunks(Vec::new(), ops).await?;
        Ok(())
    }

    async fn finish_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<Option<Job>, StoreError> {
        let name = &execution.job_name;
        let job_key = self.keys.job(name);
        let prefix = self.keys.executions_of(name);
        let run = run_of(execution);
        let read = [TxnOp::get(&job_key), TxnOp::get_tree(&prefix)];
        for _ in 0..CAS_ATTEMPTS {
            let results = match self.txn(&read).await? {
                TxnOutcome::Committed(results) => results,
                // `get` fails the transaction when the job does not exist.
                TxnOutcome::RolledBack(errors) if failed_before(&errors, 1) => return Ok(None),
                TxnOutcome::RolledBack(errors) => {
                    return Err(StoreError::Backend(format!(
                        "Consul rolled back a read: {}",
                        describe_errors(&errors)
                    )));
                }
            };
            let Some(job_entry) = results.iter().find(|entry| entry.key == job_key) else {
                return Ok(None);
            };
            let mut job = job_of(job_entry)?;
            let mut runs = Vec::new();
            for entry in results
                .iter()
                .filter(|entry| entry.key.starts_with(&prefix))
            {
                runs.push((strip(&entry.key, &prefix)?.to_owned(), execution_of(entry)?));
            }
            runs.sort_by(|a, b| a.0.cmp(&b.0));
            let exists = runs.iter().any(|(stored, _)| *stored == run);
            let excess = plan::excess(runs.len(), exists, retention);
            let suffixes: Vec<String> = runs.iter().map(|(suffix, _)| suffix.clone()).collect();
            let trim = plan::trimmed(&suffixes, &run, excess);
            let kept = |suffix: &String| !trim.contains(suffix);
            let mut group: Vec<&Execution> = runs
                .iter()
                .filter(|(suffix, stored)| {
                    *suffix != run && kept(suffix) && stored.group == execution.group
                })
                .map(|(_, stored)| stored)
                .collect();
            if kept(&run) {
                group.push(execution);
            }
            job.record_finished(execution, group);
            let guard = vec![TxnOp::cas(
                &job_key,
                encode_job(&job)?,
                job_entry.modify_index,
            )];
            let ops = self.execution_ops(execution, &run, &trim)?;
            if self.write_chunks(guard, ops).await? {
                return Ok(Some(job));
            }
            // The job changed since the read (another execution finished, an edit): again.
        }
        Err(StoreError::Conflict(name.clone()))
    }

    async fn list_executions(
        &self,
        job: &str,
        with_output: bool,
    ) -> Result<Vec<Execution>, StoreError> {
        let prefix = self.keys.executions_of(job);
        if !with_output {
            let entries = self.gateway.get_prefix(&prefix).await?;
            return entries.iter().map(execution_of).collect();
        }
        let outputs_prefix = self.keys.outputs_of(job);
        let read = [TxnOp::get_tree(&prefix), TxnOp::get_tree(&outputs_prefix)];
        let mut results = self.txn_unchecked(&read).await?;
        results.sort_by(|a, b| a.key.cmp(&b.key));
        let mut outputs: HashMap<String, String> = HashMap::new();
        let mut runs = Vec::new();
        for entry in &results {
            if let Some(run) = entry.key.strip_prefix(&outputs_prefix) {
                let output = decode_text(&entry.key, entry.bytes()?)?;
                outputs.insert(run.to_owned(), output);
            } else if let Some(run) = entry.key.strip_prefix(&prefix) {
                runs.push((run.to_owned(), execution_of(entry)?));
            }
        }
        Ok(runs
            .into_iter()
            .map(|(run, mut execution)| {
                if let Some(output) = outputs.remove(&run) {
                    execution.output = output;
                }
                execution
            })
            .collect())
    }

    async fn get_execution(&self, job: &str, id: &str) -> Result<Option<Execution>, StoreError> {
        let Some((started, node)) = parse_execution_id(id) else {
            return Ok(None);
        };
        let run = run_suffix(started, node);
        let key = format!("{}{run}", self.keys.executions_of(job));
        let Some(entry) = self.gateway.get(&key).await? else {
            return Ok(None);
        };
        let mut execution = execution_of(&entry)?;
        let output_key = format!("{}{run}", self.keys.outputs_of(job));
        if let Some(output) = self.gateway.get(&output_key).await? {
            execution.output = decode_text(&output.key, output.bytes()?)?;
        }
        Ok(Some(execution))
    }

    async fn delete_executions(&self, job: &str) -> Result<(), StoreError> {
        self.txn_unchecked(&[
            TxnOp::delete_tree(self.keys.executions_of(job)),
            TxnOp::delete_tree(self.keys.outputs_of(job)),
            TxnOp::delete_tree(self.keys.running_of(job)),
        ])
        .await?;
        Ok(())
    }

    async fn running_executions(&self) -> Result<Vec<Execution>, StoreError> {
        let entries = self.gateway.get_prefix(&self.keys.running()).await?;
        let mut running = entries
            .iter()
            .map(execution_of)
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
        let meta_key = self.keys.meta(key);
        let Some(entry) = self.gateway.get(&meta_key).await? else {
            return Ok(None);
        };
        decode_text(&meta_key, entry.bytes()?).map(Some)
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.gateway
            .put(&self.keys.meta(key), value.as_bytes())
            .await?;
        Ok(())
    }

    async fn record_fires(
        &self,
        fence: u64,
        fires: &[(String, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        // The slice is judged against the lease as it stands when the scheduler hands it over.
        let now_ms = self.now_ms();
        let mut leader_index = self.fence_index(fence, now_ms).await?;
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
        let mut stored = self.ledger_entries().await?;
        let entries: Vec<(&str, i64)> = latest.into_iter().collect();
        for chunk in entries.chunks(FIRES_PER_TXN) {
            self.record_fire_chunk(fence, now_ms, &mut leader_index, &mut stored, chunk)
                .await?;
        }
        Ok(())
    }

    async fn fire_ledger(&self) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        let prefix = self.keys.ledger();
        let entries = self.gateway.get_prefix(&prefix).await?;
        let mut ledger = BTreeMap::new();
        for entry in entries {
            let job = strip(&entry.key, &prefix)?.to_owned();
            let instant = decode_instant(&entry.key, &entry.bytes()?)?;
            ledger.insert(job, instant);
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
        let job_key = self.keys.job(job);
        let missed_key = self.keys.missed(job);
        for _ in 0..CAS_ATTEMPTS {
            let Some(job_entry) = self.gateway.get(&job_key).await? else {
                return Ok(());
            };
            let (mut missed, index) = match self.gateway.get(&missed_key).await? {
                Some(entry) => (
                    decode_missed(&missed_key, &entry.bytes()?)?,
                    entry.modify_index,
                ),
                None => (MissedFires::default(), 0),
            };
            missed.record(instants, uncounted);
            let write = [
                TxnOp::check_index(&job_key, job_entry.modify_index),
                TxnOp::cas(&missed_key, encode_missed(&missed)?, index),
            ];
            if let TxnOutcome::Committed(_) = self.txn(&write).await? {
                return Ok(());
            }
            // The job or its missed fires changed since the read: again.
        }
        Err(StoreError::Conflict(job.to_owned()))
    }

    async fn missed_fires(&self, job: &str) -> Result<MissedFires, StoreError> {
        let key = self.keys.missed(job);
        match self.gateway.get(&key).await? {
            Some(entry) => decode_missed(&key, &entry.bytes()?),
            None => Ok(MissedFires::default()),
        }
    }

    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let key = self.keys.leader();
        for _ in 0..CAS_ATTEMPTS {
            let now = self.now_ms();
            let record = LeaseRecord {
                holder: holder.to_owned(),
                expires_at_ms: now.saturating_add(ttl_millis(ttl)),
            };
            if let Some(current) = self.leader().await? {
                if current.record.expires_at_ms > now {
                    if current.record.holder != holder {
                        return Ok(None);
                    }
                    // Ours already: renew it, keeping the token.
                    let renew = [TxnOp::cas(
                        &key,
                        encode_lease(&record)?,
                        current.modify_index,
                    )];
                    if let TxnOutcome::Committed(_) = self.txn(&renew).await? {
                        return Ok(Some(Lease {
                            holder: holder.to_owned(),
                            token: current.create_index,
                        }));
                    }
                    continue;
                }
                // Expired: remove exactly that record, so the key is created anew.
                let remove = [TxnOp::delete_cas(&key, current.modify_index)];
                if let TxnOutcome::RolledBack(_) = self.txn(&remove).await? {
                    continue;
                }
            }
            let create = [TxnOp::cas(&key, encode_lease(&record)?, 0)];
            match self.txn(&create).await? {
                TxnOutcome::Committed(results) => {
                    let token = results
                        .iter()
                        .find(|entry| entry.key == key)
                        .map(|entry| entry.create_index)
                        .filter(|token| *token > 0)
                        .ok_or_else(|| corrupt(&key, "no CreateIndex in the acquisition result"))?;
                    return Ok(Some(Lease {
                        holder: holder.to_owned(),
                        token,
                    }));
                }
                // Someone took it between the read and the write: see who.
                TxnOutcome::RolledBack(_) => {}
            }
        }
        Ok(None)
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        let key = self.keys.leader();
        for _ in 0..CAS_ATTEMPTS {
            let now = self.now_ms();
            let Some(current) = self.leader().await? else {
                return Ok(false);
            };
            if current.create_index != lease.token
                || current.record.holder != lease.holder
                || current.record.expires_at_ms <= now
            {
                return Ok(false);
            }
            let record = LeaseRecord {
                holder: lease.holder.clone(),
                expires_at_ms: now.saturating_add(ttl_millis(ttl)),
            };
            let renew = [TxnOp::cas(
                &key,
                encode_lease(&record)?,
                current.modify_index,
            )];
            if let TxnOutcome::Committed(_) = self.txn(&renew).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let key = self.keys.leader();
        for _ in 0..CAS_ATTEMPTS {
            let Some(current) = self.leader().await? else {
                return Ok(());
            };
            if current.create_index != lease.token || current.record.holder != lease.holder {
                return Ok(());
            }
            let release = [TxnOp::delete_cas(&key, current.modify_index)];
            if let TxnOutcome::Committed(_) = self.txn(&release).await? {
                return Ok(());
            }
        }
        Err(StoreError::Conflict(key))
    }

    async fn current_lease(&self) -> Result<Option<Lease>, StoreError> {
        let now = self.now_ms();
        Ok(self
            .leader()
            .await?
            .filter(|leader| leader.record.expires_at_ms > now)
            .map(|leader| Lease {
                holder: leader.record.holder,
                token: leader.create_index,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_base_urls() {
        assert_eq!(
            base_url("10.0.0.1:8500", false).unwrap(),
            "http://10.0.0.1:8500"
        );
        assert_eq!(
            base_url("consul:8501", true).unwrap(),
            "https://consul:8501"
        );
        assert_eq!(
            base_url(" http://consul:8500/ ", true).unwrap(),
            "http://consul:8500"
        );
        for bad in ["", "unix://sock", "consul:8500/v1"] {
            assert!(
                matches!(base_url(bad, false), Err(ConnectError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn ttls_are_whole_milliseconds_at_least_one() {
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2_000);
        assert_eq!(ttl_millis(Duration::from_micros(10)), 1);
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::MAX), i64::MAX);
    }

    #[test]
    fn debug_hides_the_token() {
        let config = ConsulConfig {
            token: Some("s3cret".to_owned()),
            ..ConsulConfig::default()
        };
        let printed = format!("{config:?}");
        assert!(
            printed.contains("127.0.0.1:8500") && !printed.contains("s3cret"),
            "{printed}"
        );
    }
}
