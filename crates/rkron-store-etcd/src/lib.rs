//! rkron-store-etcd owns rkron's etcd store: the [`Store`] trait over etcd's gRPC-gateway JSON
//! API (`POST /v3/...` over HTTP), so any number of servers share one etcd cluster.
//!
//! It speaks JSON through reqwest rather than gRPC through the `etcd-client` crate, whose build
//! script needs a system `protoc`. The key layout is in module `keyspace`.
//!
//! # Atomicity
//!
//! Each trait operation maps onto one etcd transaction where the trait asks for atomicity:
//! `commit_jobs` (compares and writes in one transaction), `finish_execution` (the execution and
//! the job, guarded by the job's `mod_revision`, retried on a race), `record_missed` (guarded by
//! the job's and the record's revisions). etcd refuses transactions of more than 128 operations
//! per branch (its default `--max-txn-ops`), which shapes three operations:
//!
//! - `commit_jobs` sends one transaction: a compare for the first op on each job (later ops on
//!   the same job are checked against the earlier ones client-side, since etcd evaluates every
//!   compare before any write and refuses writing a key twice), a put per job written and six
//!   deletes per job deleted (the job and its history). A commit needing more than 128 answers
//!   [`StoreError::Backend`] and writes nothing; the node commits at most three ops at a time.
//! - `record_fires` writes its slice in chunks of [`FIRES_PER_TXN`] ledger entries. **Each chunk
//!   is atomic and fenced; the slice as a whole is not.** Every chunk's transaction compares the
//!   leader key's `create_revision` with the fence, so a deposed leader records nothing from the
//!   moment it is deposed. A crash between chunks leaves some fires of the tick recorded and
//!   others not; the scheduler records fires before dispatching them, so that only means some
//!   recorded fires were not dispatched: the same window as a crash right after one atomic write.
//!   Each chunk reads the entries first and writes only those that move forward, comparing each
//!   written entry's `mod_revision` with the one read (a race re-reads), so no entry moves back.
//! - Trimming beyond the retention limit deletes 3 keys per execution; when a write trims more
//!   than fits the write's transaction (retention lowered by many), the rest goes in later
//!   transactions.
//!
//! Listings (`list_jobs`, `fire_ledger`, `running_executions`, …) read page by page, every page
//! at the revision of the first, so they are a consistent snapshot; if etcd compacts that
//! revision meanwhile, the listing starts over.
//!
//! # Leadership
//!
//! The lease is the key `<ks>/leader` holding the holder's node name, attached to an etcd lease
//! of the requested TTL (rounded up to whole seconds; etcd raises TTLs below its minimum, about
//! 2 s). The fencing token is the key's `create_revision`: a new tenure creates the key anew at
//! a later revision. Renewal keeps the etcd lease alive after checking that the key still has the
//! token's revision. The lease id is read from the leader key itself (etcd reports it), so a
//! restarted server, or a second store instance, can renew or re-acquire its own lease. An etcd
//! lease keeps the TTL it was granted with, so a renewal asking for a longer TTL moves the key to
//! a new, longer etcd lease (a put keeps the key's `create_revision`, hence the token). etcd
//! deletes the key of an expired lease within about half a second of expiry; until then
//! `current_lease` still reports it.
//!
//! # Errors
//!
//! Transport failures and timeouts (per request, [`EtcdConfig::request_timeout`]) answer
//! [`StoreError::Unavailable`]; so do etcd's own "unavailable" and "deadline exceeded" answers.
//! Failed compares answer [`StoreError::Conflict`], undecodable records
//! [`StoreError::Corrupt`], anything else etcd refuses [`StoreError::Backend`].

mod gateway;
mod keyspace;

mod wire;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rkron_core::execution::{parse_execution_id, unix_nanos};
use rkron_core::{Execution, Job};
use rkron_store::plan;
use rkron_store::{
    Expect, JobOp, JobPage, Lease, MissedFires, Store, StoreError, Version, Versioned,
};

use crate::gateway::{CallError, Credentials, Gateway, code};
use crate::keyspace::{
    Keys, corrupt, decode_execution, decode_instant, decode_job, decode_missed, decode_text,
    encode_execution, encode_job, encode_missed, encode_nanos, run_of, run_suffix, strip,
};
use crate::wire::{
    Compare, KeyValue, PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse, b64,
    prefix_end,
};

/// etcd's default limit on the operations of one transaction branch (`--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// Ledger entries per `record_fires` transaction: one compare slot goes to the fence.
pub const FIRES_PER_TXN: usize = MAX_TXN_OPS - 1;

/// The default per-request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The default keyspace (key prefix).
pub const DEFAULT_KEYSPACE: &str = "rkron";

/// Attempts of a read-modify-write before answering [`StoreError::Conflict`].
const CAS_ATTEMPTS: usize = 64;

/// Records decoded per range read when walking a prefix.
const VALUE_PAGE: usize = 500;

/// Keys per range read when skipping keys without values (`jobs_page`).
const KEY_PAGE: usize = 10_000;

/// Oldest execution keys read before a write, enough to plan the usual trim of one.
const TRIM_PROBE: usize = 4;

/// Operations per transaction when deleting trimmed executions (3 keys each).
const TRIM_OPS_PER_TXN: usize = MAX_TXN_OPS / 3 * 3;

/// Restarts of a paged read whose pinned revision was compacted meanwhile.
const COMPACTION_RETRIES: usize = 3;

/// How to reach etcd.
#[derive(Clone)]
pub struct EtcdConfig {
    /// Client endpoints (`backend-machine`): `host:port`, `http://host:port` or
    /// `https://host:port`. Tried in turn when one cannot be reached.
    pub endpoints: Vec<String>,
    /// Prefix of every key (`keyspace`); servers of one cluster share it.
    pub keyspace: String,
    /// User for etcd's authentication, if enabled.
    pub username: Option<String>,
    /// Password of `username`.
    pub password: Option<String>,
    /// Use `https` for endpoints given without a scheme.
    pub tls: bool,
    /// Timeout of each request to etcd.
    pub request_timeout: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["127.0.0.1:2379".to_owned()],
            keyspace: DEFAULT_KEYSPACE.to_owned(),
            username: None,
            password: None,
            tls: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("keyspace", &self.keyspace)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Why the store could not connect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The configuration is unusable.
    #[error("invalid etcd configuration: {0}")]
    Config(String),
    /// No endpoint answered.
    #[error("etcd unavailable: {0}")]
    Unavailable(String),
    /// etcd refused the credentials, or asks for some and none are configured.
    #[error("etcd authentication failed: {0}")]
    Auth(String),
    /// etcd answered something else than expected.
    #[error("etcd error: {0}")]
    Backend(String),
}

impl From<CallError> for ConnectError {
    fn from(error: CallError) -> Self {
        if error.is_auth_failure() {
            return Self::Auth(error.to_string());
        }
        match error {
            CallError::Unavailable(_) => Self::Unavailable(error.to_string()),
            CallError::Status { code, .. }
                if code == code::UNAVAILABLE || code == code::DEADLINE_EXCEEDED =>
            {
                Self::Unavailable(error.to_string())
            }
            CallError::Status { .. } | CallError::Protocol(_) => Self::Backend(error.to_string()),
        }
    }
}

/// Turns an endpoint of the configuration into a base URL.
fn base_url(endpoint: &str, tls: bool) -> Result<String, ConnectError> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Ok(trimmed.to_owned());
    }
    if trimmed.is_empty() || trimmed.contains("://") || trimmed.contains('/') {
        return Err(ConnectError::Config(format!(
            "endpoint {endpoint:?} is not host:port, http://host:port or https://host:port"
        )));
    }
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{trimmed}"))
}

/// Why a paged read failed: its pinned revision was compacted (start again), or anything else.
enum ScanError {
    Compacted,
    Store(StoreError),
}

impl From<StoreError> for ScanError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<CallError> for ScanError {
    fn from(error: CallError) -> Self {
        if error.is(code::OUT_OF_RANGE) {
            Self::Compacted
        } else {
            Self::Store(error.into())
        }
    }
}

/// What a paged read found.
struct Scanned {
    kvs: Vec<KeyValue>,
    /// Keys in the range of the first read (from its start key to the range end).
    count: usize,
    /// The revision every page was read at.
    revision: i64,
}

/// Returns the key bytes right after `key` (for reading on from it).
fn after_key(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// A readable name for the key of `kv`.
fn label(kv: &KeyValue) -> String {
    kv.key_bytes().map_or_else(
        |_| kv.key.clone(),
        |key| String::from_utf8_lossy(&key).into_owned(),
    )
}

fn count_of(count: i64) -> usize {
    usize::try_from(count).unwrap_or(0)
}

/// Converts a revision to a version (etcd revisions are positive).
fn version_of(kv: &KeyValue) -> Result<Version, StoreError> {
    u64::try_from(kv.mod_revision)
        .ok()
        .filter(|revision| *revision > 0)
        .ok_or_else(|| corrupt(label(kv), format!("revision {}", kv.mod_revision)))
}

/// Decodes a job from its key-value.
fn job_of(kv: &KeyValue) -> Result<Job, StoreError> {
    let key = label(kv);
    let bytes = kv.value_bytes(|| key.clone())?;
    decode_job(&key, &bytes)
}

/// Decodes an execution's metadata from its key-value.
fn execution_of(kv: &KeyValue) -> Result<Execution, StoreError> {
    let key = label(kv);
    let bytes = kv.value_bytes(|| key.clone())?;
    decode_execution(&key, &bytes)
}

/// Returns an etcd lease TTL for `ttl`: whole seconds, rounded up, at least one.
fn ttl_seconds(ttl: Duration) -> i64 {
    let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(seconds.max(1)).unwrap_or(i64::MAX)
}

/// rkron's etcd [`Store`]: every server of a cluster connects to the same etcd and keyspace.
#[derive(Debug)]
pub struct EtcdStore {
    gateway: Gateway,
    keys: Keys,
}

impl EtcdStore {
    /// Connects to etcd: checks the configuration, authenticates when credentials are given,
    /// and reads once, so an unreachable cluster or refused credentials fail here.
    pub async fn connect(config: EtcdConfig) -> Result<Self, ConnectError> {
        if config.endpoints.is_empty() {
            return Err(ConnectError::Config("no endpoints".to_owned()));
        }
        let endpoints = config
            .endpoints
            .iter()
            .map(|endpoint| base_url(endpoint, config.tls))
            .collect::<Result<Vec<_>, _>>()?;
        let keyspace = config.keyspace.trim_end_matches('/');
        if keyspace.is_empty() {
            return Err(ConnectError::Config("the keyspace is empty".to_owned()));
        }
        let credentials = match (config.username, config.password) {
            (Some(username), password) => Some(Credentials {
                username,
                password: password.unwrap_or_default(),
            }),
            (None, Some(_)) => {
                return Err(ConnectError::Config(
                    "a password is configured without a username".to_owned(),
                ));
            }
            (None, None) => None,
        };
        if config.request_timeout.is_zero() {
            return Err(ConnectError::Config(
                "the request timeout is zero".to_owned(),
            ));
        }
        let gateway = Gateway::new(endpoints, credentials, config.request_timeout)
            .map_err(ConnectError::Config)?;
        let keys = Keys::new(keyspace);
        gateway
            .range(&RangeRequest::key(keys.leader()).count_only())
            .await?;
        Ok(Self { gateway, keys })
    }

    /// The key prefix of this store, `<keyspace>/`.
    pub fn key_prefix(&self) -> &str {
        self.keys.root()
    }

    async fn txn(&self, txn: &TxnRequest) -> Result<TxnResponse, StoreError> {
        if txn.size() > MAX_TXN_OPS {
            return Err(StoreError::Backend(format!(
                "a transaction of {} operations exceeds etcd's limit of {MAX_TXN_OPS}",
                txn.size()
            )));
        }
        Ok(self.gateway.txn(txn).await?)
    }

    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let response = self.gateway.range(&RangeRequest::key(key)).await?;
        Ok(response.kvs.into_iter().next())
    }

    /// Reads up to `want` keys of `[start, end)` in pages of `page`, all at one revision
    /// (`revision`, or that of the first page when 0).
    async fn scan_from(
        &self,
        start: Vec<u8>,
        end: &[u8],
        want: usize,
        page: usize,
        revision: i64,
        keys_only: bool,
    ) -> Result<Scanned, ScanError> {
        let mut from = start;
        let mut scanned = Scanned {
            kvs: Vec::new(),
            count: 0,
            revision,
        };
        let mut first = true;
        while scanned.kvs.len() < want {
            let limit = page.min(want - scanned.kvs.len());
            let mut request = RangeRequest::between(&from, end)
                .limit(limit)
                .at(scanned.revision);
            request.keys_only = keys_only;
            let response = self.gateway.range(&request).await?;
            if first {
                scanned.count = count_of(response.count);
                if scanned.revision == 0 {
                    scanned.revision = response.header.revision;
                }
                first = false;
            }
            let Some(last) = response.kvs.last() else {
                break;
            };
            from = after_key(&last.key_bytes()?);
            scanned.kvs.extend(response.kvs);
            if !response.more {
                break;
            }
        }
        Ok(scanned)
    }

    /// Reads every key starting with `prefix`, at one revision.
    async fn scan(&self, prefix: &str, page: usize) -> Result<Vec<KeyValue>, StoreError> {
        let end = prefix_end(prefix);
        let mut compacted = 0;
        loop {
            let start = prefix.as_bytes().to_vec();
            match self
                .scan_from(start, &end, usize::MAX, page, 0, false)
                .await
            {
                Ok(scanned) => return Ok(scanned.kvs),
                Err(ScanError::Compacted) if compacted < COMPACTION_RETRIES => compacted += 1,
                Err(ScanError::Compacted) => return Err(compacted_too_often(prefix)),
                Err(ScanError::Store(error)) => return Err(error),
            }
        }
    }

    async fn jobs_page_once(&self, start: usize, end: usize) -> Result<JobPage, ScanError> {
        let prefix = self.keys.jobs();
        let range_end = prefix_end(&prefix);
        let want = end.saturating_sub(start);
        if want == 0 {
            let request = RangeRequest::prefix(&prefix).count_only();
            let response = self.gateway.range(&request).await?;
            return Ok(JobPage {
                jobs: Vec::new(),
                total: count_of(response.count),
            });
        }
        // etcd has no offsets: skip `start` keys, reading keys only.
        let (from, total, revision) = if start == 0 {
            (prefix.as_bytes().to_vec(), None, 0)
        } else {
            let skipped = self
                .scan_from(
                    prefix.as_bytes().to_vec(),
                    &range_end,
                    start,
                    KEY_PAGE,
                    0,
                    true,
                )
                .await?;
            let Some(last) = skipped.kvs.last().filter(|_| skipped.kvs.len() == start) else {
                return Ok(JobPage {
                    jobs: Vec::new(),
                    total: skipped.count,
                });
            };
            (
                after_key(&last.key_bytes()?),
                Some(skipped.count),
                skipped.revision,
            )
        };
        let read = self
            .scan_from(from, &range_end, want, VALUE_PAGE, revision, false)
            .await?;
        let jobs = read.kvs.iter().map(job_of).collect::<Result<_, _>>()?;
        Ok(JobPage {
            jobs,
            total: total.unwrap_or(read.count),
        })
    }

    /// Sends `ops` (already planned, first chunk guarded by `compare`) in transactions of at most
    /// [`MAX_TXN_OPS`]; answers whether the first one's compares held.
    async fn write_chunks(
        &self,
        compare: Vec<Compare>,
        mut ops: Vec<RequestOp>,
    ) -> Result<bool, StoreError> {
        // The ops are the write itself, then trim deletes of 3 keys per execution: the first
        // transaction takes as many as fit, cut where the rest is whole executions.
        let mut head = ops.len().min(MAX_TXN_OPS);
        while !(ops.len() - head).is_multiple_of(3) {
            head -= 1;
        }
        let rest = ops.split_off(head);
        let first = TxnRequest {
            compare,
            success: ops,
            failure: Vec::new(),
        };
        if !self.txn(&first).await?.succeeded {
            return Ok(false);
        }
        for chunk in rest.chunks(TRIM_OPS_PER_TXN) {
            self.txn(&TxnRequest::always(chunk.to_vec())).await?;
        }
        Ok(true)
    }

    /// The writes that store `execution` (metadata, output, running index) under `run`.
    fn run_writes(&self, execution: &Execution, run: &str) -> Result<Vec<RequestOp>, StoreError> {
        let job = &execution.job_name;
        let metadata = encode_execution(execution)?;
        let output_key = format!("{}{run}", self.keys.outputs_of(job));
        let running_key = format!("{}{run}", self.keys.running_of(job));
        Ok(vec![
            RequestOp::put(format!("{}{run}", self.keys.executions_of(job)), &metadata),
            if execution.output.is_empty() {
                RequestOp::delete(output_key)
            } else {
                RequestOp::put(output_key, execution.output.as_bytes())
            },
            if execution.is_running() {
                RequestOp::put(running_key, &metadata)
            } else {
                RequestOp::delete(running_key)
            },
        ])
    }

    /// The deletes that remove run `run` of `job`.
    fn run_deletes(&self, job: &str, run: &str) -> [RequestOp; 3] {
        [
            RequestOp::delete(format!("{}{run}", self.keys.executions_of(job))),
            RequestOp::delete(format!("{}{run}", self.keys.outputs_of(job))),
            RequestOp::delete(format!("{}{run}", self.keys.running_of(job))),
        ]
    }

    /// The writes of `execution` followed by the deletes of the runs `trim` removes.
    fn execution_ops(
        &self,
        execution: &Execution,
        run: &str,
        trim: &[String],
    ) -> Result<Vec<RequestOp>, StoreError> {
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

    /// Reads the stored runs of `job` as run suffixes, in key order, with their executions.
    fn runs_of(&self, job: &str, kvs: &[KeyValue]) -> Result<Vec<(String, Execution)>, StoreError> {
        let prefix = self.keys.executions_of(job);
        kvs.iter()
            .map(|kv| {
                let key = kv.key_bytes()?;
                Ok((strip(&key, &prefix)?.to_owned(), execution_of(kv)?))
            })
            .collect()
    }

    /// Reads `fires` (one chunk, distinct jobs) and writes those that move the ledger forward,
    /// fenced by `fence`.
    async fn record_fire_chunk(
        &self,
        fence: u64,
        fence_revision: i64,
        fires: &[(&str, i64)],
    ) -> Result<(), StoreError> {
        let leader = self.keys.leader();
        let keys: Vec<String> = fires
            .iter()
            .map(|(job, _)| self.keys.ledger_of(job))
            .collect();
        let reads = TxnRequest::always(keys.iter().map(RequestOp::get).collect());
        for _ in 0..CAS_ATTEMPTS {
            let mut read = self.txn(&reads).await?;
            let mut compare = vec![Compare::created_at(&leader, fence_revision)];
            let mut success = Vec::new();
            for (index, ((_, nanos), key)) in fires.iter().zip(&keys).enumerate() {
                let current = read.take_range(index).kvs.into_iter().next();
                let mod_revision = match &current {
                    Some(kv) => {
                        let stored = decode_instant(key, &kv.value_bytes(|| key.clone())?)?;
                        if unix_nanos(stored) >= *nanos {
                            continue;
                        }
                        kv.mod_revision
                    }
                    None => 0,
                };
                compare.push(Compare::modified_at(key, mod_revision));
                success.push(RequestOp::put(key, encode_nanos(*nanos)));
            }
            let write = TxnRequest {
                compare,
                success,
                failure: vec![RequestOp::get(&leader)],
            };
            let mut answer = self.txn(&write).await?;
            if answer.succeeded {
                return Ok(());
            }
            let holder = answer.take_range(0).kvs.into_iter().next();
            if holder.is_none_or(|kv| kv.create_revision != fence_revision) {
                return Err(StoreError::Fenced(fence));
            }
            // A ledger entry moved between the read and the write: read again.
        }
        Err(StoreError::Conflict(self.keys.ledger()))
    }

    /// Decodes the lease the leader key `kv` describes.
    fn lease_of(&self, kv: &KeyValue) -> Result<Lease, StoreError> {
        let key = self.keys.leader();
        let holder = decode_text(&key, kv.value_bytes(|| key.clone())?)?;
        let token = u64::try_from(kv.create_revision)
            .ok()
            .filter(|token| *token > 0)
            .ok_or_else(|| corrupt(&key, format!("create revision {}", kv.create_revision)))?;
        Ok(Lease { holder, token })
    }

    /// Keeps alive the etcd lease of the leader key `kv` for at least `ttl` seconds; answers
    /// `false` when that lease has expired.
    async fn keep_alive(&self, kv: &KeyValue, ttl: i64) -> Result<bool, StoreError> {
        let leader = self.keys.leader();
        if kv.lease == 0 {
            return Err(corrupt(leader, "the leader key has no etcd lease"));
        }
        let granted = self.gateway.lease_keepalive(kv.lease).await?;
        if granted <= 0 {
            return Ok(false);
        }
        if granted >= ttl {
            return Ok(true);
        }
        // An etcd lease keeps the TTL it was granted with: move the key to a longer lease. The
        // put keeps the key's create revision, so the token stays.
        let (longer, _) = self.gateway.lease_grant(ttl).await?;
        let moved = TxnRequest {
            compare: vec![Compare::created_at(&leader, kv.create_revision)],
            success: vec![RequestOp::Put(PutRequest {
                key: b64(&leader),
                value: kv.value.clone(),
                lease: longer,
            })],
            failure: Vec::new(),
        };
        let succeeded = match self.txn(&moved).await {
            Ok(answer) => answer.succeeded,
            Err(error) => {
                self.revoke_quietly(longer).await;
                return Err(error);
            }
        };
        self.revoke_quietly(if succeeded { kv.lease } else { longer })
            .await;
        Ok(succeeded)
    }

    /// Revokes an etcd lease, logging a failure: the lease then simply expires.
    async fn revoke_quietly(&self, lease: i64) {
        if let Err(error) = self.gateway.lease_revoke(lease).await {
            tracing::warn!(%error, lease, "could not revoke an etcd lease; it will expire");
        }
    }
}

fn compacted_too_often(what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "etcd compacted the revision of a paged read of {what} {COMPACTION_RETRIES} times"
    ))
}

#[async_trait]
impl Store for EtcdStore {
    async fn get_job(&self, name: &str) -> Result<Option<Versioned<Job>>, StoreError> {
        let Some(kv) = self.get(&self.keys.job(name)).await? else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            value: job_of(&kv)?,
            version: version_of(&kv)?,
        }))
    }

    async fn list_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let kvs = self.scan(&self.keys.jobs(), VALUE_PAGE).await?;
        kvs.iter().map(job_of).collect()
    }

    async fn jobs_page(&self, start: usize, end: usize) -> Result<JobPage, StoreError> {
        for _ in 0..=COMPACTION_RETRIES {
            match self.jobs_page_once(start, end).await {
                Ok(page) => return Ok(page),
                Err(ScanError::Compacted) => {}
                Err(ScanError::Store(error)) => return Err(error),
            }
        }
        Err(compacted_too_often("jobs"))
    }

    async fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = self.keys.jobs();
        let start = match after {
            Some(name) => after_key(self.keys.job(name).as_bytes()),
            None => prefix.as_bytes().to_vec(),
        };
        let end = prefix_end(&prefix);
        for _ in 0..=COMPACTION_RETRIES {
            match self
                .scan_from(start.clone(), &end, limit, VALUE_PAGE, 0, false)
                .await
            {
                Ok(scanned) => return scanned.kvs.iter().map(job_of).collect(),
                Err(ScanError::Compacted) => {}
                Err(ScanError::Store(error)) => return Err(error),
            }
        }
        Err(compacted_too_often("jobs"))
    }

    async fn commit_jobs(&self, ops: Vec<JobOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let effects = plan::effects(&ops);
        let reads: Vec<RequestOp> = effects
            .iter()
            .map(|effect| RequestOp::get(self.keys.job(effect.name)))
            .collect();
        let name_conflict = |answer: &TxnResponse| -> StoreError {
            let stored: HashMap<&str, Version> = effects
                .iter()
                .enumerate()
                .filter_map(|(index, effect)| {
                    let kv = answer.range(index).kvs.into_iter().next()?;
                    Some((effect.name, u64::try_from(kv.mod_revision).ok()?))
                })
                .collect();
            let name = plan::first_conflict(&ops, &|name| stored.get(name).copied())
                .unwrap_or_else(|| {
                    effects
                        .first()
                        .map(|e| e.name)
                        .unwrap_or_default()
                        .to_owned()
                });
            StoreError::Conflict(name)
        };
        if plan::conflicts_within(&ops) {
            // Doomed whatever is stored; read the jobs to name the first op that fails.
            let answer = self.txn(&TxnRequest::always(reads)).await?;
            return Err(name_conflict(&answer));
        }
        let mut compare = Vec::new();
        let mut success = Vec::new();
        for effect in &effects {
            let key = self.keys.job(effect.name);
            match effect.expect {
                Expect::Any => {}
                Expect::Absent => compare.push(Compare::created_at(&key, 0)),
                Expect::Version(version) => match i64::try_from(version) {
                    Ok(revision) if revision > 0 => {
                        compare.push(Compare::modified_at(&key, revision));
                    }
                    // No record has such a version: two compares that cannot both hold.
                    _ => {
                        compare.push(Compare::exists(&key));
                        compare.push(Compare::modified_at(&key, 0));
                    }
                },
            }
            if effect.deleted {
                success.push(RequestOp::delete_prefix(
                    &self.keys.executions_of(effect.name),
                ));
                success.push(RequestOp::delete_prefix(&self.keys.outputs_of(effect.name)));
                success.push(RequestOp::delete_prefix(&self.keys.running_of(effect.name)));
                success.push(RequestOp::delete(self.keys.ledger_of(effect.name)));
                success.push(RequestOp::delete(self.keys.missed(effect.name)));
            }
            success.push(match effect.put {
                Some(job) => RequestOp::put(&key, encode_job(job)?),
                None => RequestOp::delete(&key),
            });
        }
        let txn = TxnRequest {
            compare,
            success,
            failure: reads,
        };
        let answer = self.txn(&txn).await?;
        if answer.succeeded {
            Ok(())
        } else {
            Err(name_conflict(&answer))
        }
    }

    async fn put_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<(), StoreError> {
        let job = &execution.job_name;
        let run = run_of(execution);
        let prefix = self.keys.executions_of(job);
        let probe = TxnRequest::always(vec![
            RequestOp::Range(RangeRequest::prefix(&prefix).keys_only().limit(TRIM_PROBE)),
            RequestOp::Range(RangeRequest::key(format!("{prefix}{run}")).count_only()),
        ]);
        let mut answer = self.txn(&probe).await?;
        let stored = answer.take_range(0);
        let count = count_of(stored.count);
        let exists = answer.range(1).count > 0;
        let excess = plan::excess(count, exists, retention);
        let mut oldest = stored.kvs;
        if oldest.len() < excess.min(count) {
            let request = RangeRequest::prefix(&prefix).keys_only().limit(excess);
            oldest = self.gateway.range(&request).await?.kvs;
        }
        let oldest = oldest
            .iter()
            .map(|kv| Ok(strip(&kv.key_bytes()?, &prefix)?.to_owned()))
            .collect::<Result<Vec<String>, StoreError>>()?;
        let trim = plan::trimmed(&oldest, &run, excess);
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
        let run = run_of(execution);
        let read = TxnRequest::always(vec![
            RequestOp::get(&job_key),
            RequestOp::Range(RangeRequest::prefix(&self.keys.executions_of(name))),
        ]);
        for _ in 0..CAS_ATTEMPTS {
            let mut answer = self.txn(&read).await?;
            let Some(job_kv) = answer.take_range(0).kvs.into_iter().next() else {
                return Ok(None);
            };
            let mut job = job_of(&job_kv)?;
            let runs = self.runs_of(name, &answer.take_range(1).kvs)?;
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
            let mut ops = vec![RequestOp::put(&job_key, encode_job(&job)?)];
            ops.extend(self.execution_ops(execution, &run, &trim)?);
            let guard = vec![Compare::modified_at(&job_key, job_kv.mod_revision)];
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
            let kvs = self.scan(&prefix, VALUE_PAGE).await?;
            return kvs.iter().map(execution_of).collect();
        }
        let outputs_prefix = self.keys.outputs_of(job);
        let read = TxnRequest::always(vec![
            RequestOp::Range(RangeRequest::prefix(&prefix)),
            RequestOp::Range(RangeRequest::prefix(&outputs_prefix)),
        ]);
        let mut answer = self.txn(&read).await?;
        let runs = self.runs_of(job, &answer.take_range(0).kvs)?;
        let mut outputs: HashMap<String, String> = HashMap::new();
        for kv in answer.take_range(1).kvs {
            let key = kv.key_bytes()?;
            let run = strip(&key, &outputs_prefix)?.to_owned();
            let label = label(&kv);
            let output = decode_text(&label, kv.value_bytes(|| label.clone())?)?;
            outputs.insert(run, output);
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
        let read = TxnRequest::always(vec![
            RequestOp::get(format!("{}{run}", self.keys.executions_of(job))),
            RequestOp::get(format!("{}{run}", self.keys.outputs_of(job))),
        ]);
        let mut answer = self.txn(&read).await?;
        let Some(kv) = answer.take_range(0).kvs.into_iter().next() else {
            return Ok(None);
        };
        let mut execution = execution_of(&kv)?;
        if let Some(output) = answer.take_range(1).kvs.into_iter().next() {
            let label = label(&output);
            execution.output = decode_text(&label, output.value_bytes(|| label.clone())?)?;
        }
        Ok(Some(execution))
    }

    async fn delete_executions(&self, job: &str) -> Result<(), StoreError> {
        let txn = TxnRequest::always(vec![
            RequestOp::delete_prefix(&self.keys.executions_of(job)),
            RequestOp::delete_prefix(&self.keys.outputs_of(job)),
            RequestOp::delete_prefix(&self.keys.running_of(job)),
        ]);
        self.txn(&txn).await?;
        Ok(())
    }

    async fn running_executions(&self) -> Result<Vec<Execution>, StoreError> {
        let kvs = self.scan(&self.keys.running(), VALUE_PAGE).await?;
        let mut running = kvs
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
        let Some(kv) = self.get(&meta_key).await? else {
            return Ok(None);
        };
        let bytes = kv.value_bytes(|| meta_key.clone())?;
        decode_text(&meta_key, bytes).map(Some)
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let txn = TxnRequest::always(vec![RequestOp::put(self.keys.meta(key), value)]);
        self.txn(&txn).await?;
        Ok(())
    }

    async fn record_fires(
        &self,
        fence: u64,
        fires: &[(String, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        let fence_revision = match i64::try_from(fence) {
            Ok(revision) if revision > 0 => revision,
            _ => return Err(StoreError::Fenced(fence)),
        };
        let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
        for (job, scheduled_at) in fires {
            let nanos = unix_nanos(*scheduled_at);
            latest
                .entry(job.as_str())
                .and_modify(|current| *current = (*current).max(nanos))
                .or_insert(nanos);
        }
        if latest.is_empty() {
            // Nothing to write, yet a deposed leader still learns that it is deposed.
            let holder = self.get(&self.keys.leader()).await?;
            if holder.is_none_or(|kv| kv.create_revision != fence_revision) {
                return Err(StoreError::Fenced(fence));
            }
            return Ok(());
        }
        let entries: Vec<(&str, i64)> = latest.into_iter().collect();
        for chunk in entries.chunks(FIRES_PER_TXN) {
            self.record_fire_chunk(fence, fence_revision, chunk).await?;
        }
        Ok(())
    }

    async fn fire_ledger(&self) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        let prefix = self.keys.ledger();
        let kvs = self.scan(&prefix, KEY_PAGE).await?;
        let mut ledger = BTreeMap::new();
        for kv in kvs {
            let key = kv.key_bytes()?;
            let job = strip(&key, &prefix)?.to_owned();
            let label = label(&kv);
            let instant = decode_instant(&label, &kv.value_bytes(|| label.clone())?)?;
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
        let read = TxnRequest::always(vec![
            RequestOp::Range(RangeRequest::key(&job_key).keys_only()),
            RequestOp::get(&missed_key),
        ]);
        for _ in 0..CAS_ATTEMPTS {
            let mut answer = self.txn(&read).await?;
            let Some(job_kv) = answer.take_range(0).kvs.into_iter().next() else {
                return Ok(());
            };
            let (mut missed, mod_revision) = match answer.take_range(1).kvs.into_iter().next() {
                Some(kv) => {
                    let bytes = kv.value_bytes(|| missed_key.clone())?;
                    (decode_missed(&missed_key, &bytes)?, kv.mod_revision)
                }
                None => (MissedFires::default(), 0),
            };
            missed.record(instants, uncounted);
            let write = TxnRequest {
                compare: vec![
                    Compare::created_at(&job_key, job_kv.create_revision),
                    Compare::modified_at(&missed_key, mod_revision),
                ],
                success: vec![RequestOp::put(&missed_key, encode_missed(&missed)?)],
                failure: Vec::new(),
            };
            if self.txn(&write).await?.succeeded {
                return Ok(());
            }
        }
        Err(StoreError::Conflict(job.to_owned()))
    }

    async fn missed_fires(&self, job: &str) -> Result<MissedFires, StoreError> {
        let key = self.keys.missed(job);
        match self.get(&key).await? {
            Some(kv) => decode_missed(&key, &kv.value_bytes(|| key.clone())?),
            None => Ok(MissedFires::default()),
        }
    }

    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let leader = self.keys.leader();
        let seconds = ttl_seconds(ttl);
        for _ in 0..CAS_ATTEMPTS {
            if let Some(kv) = self.get(&leader).await? {
                let lease = self.lease_of(&kv)?;
                if lease.holder != holder {
                    return Ok(None);
                }
                // Ours already: renew it. If it just expired, its key is about to go; the
                // caller campaigns again.
                return Ok(self.keep_alive(&kv, seconds).await?.then_some(lease));
            }
            let (etcd_lease, _) = self.gateway.lease_grant(seconds).await?;
            let take = TxnRequest {
                compare: vec![Compare::created_at(&leader, 0)],
                success: vec![RequestOp::Put(PutRequest {
                    key: b64(&leader),
                    value: b64(holder),
                    lease: etcd_lease,
                })],
                failure: Vec::new(),
            };
            let answer = match self.txn(&take).await {
                Ok(answer) => answer,
                Err(error) => {
                    self.revoke_quietly(etcd_lease).await;
                    return Err(error);
                }
            };
            if answer.succeeded {
                // The transaction's revision is the one that created the key.
                let token = u64::try_from(answer.header.revision)
                    .ok()
                    .filter(|token| *token > 0)
                    .ok_or_else(|| {
                        corrupt(&leader, format!("revision {}", answer.header.revision))
                    })?;
                return Ok(Some(Lease {
                    holder: holder.to_owned(),
                    token,
                }));
            }
            // Someone took it between the read and the write: see who.
            self.revoke_quietly(etcd_lease).await;
        }
        Ok(None)
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        let Ok(token) = i64::try_from(lease.token) else {
            return Ok(false);
        };
        let Some(kv) = self.get(&self.keys.leader()).await? else {
            return Ok(false);
        };
        if kv.create_revision != token || self.lease_of(&kv)?.holder != lease.holder {
            return Ok(false);
        }
        self.keep_alive(&kv, ttl_seconds(ttl)).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let Ok(token) = i64::try_from(lease.token) else {
            return Ok(());
        };
        let leader = self.keys.leader();
        let release = TxnRequest {
            compare: vec![Compare::created_at(&leader, token)],
            success: vec![RequestOp::DeleteRange(wire::DeleteRangeRequest {
                key: b64(&leader),
                range_end: None,
                prev_kv: true,
            })],
            failure: Vec::new(),
        };
        let answer = self.txn(&release).await?;
        let released = answer
            .responses
            .first()
            .and_then(|op| op.response_delete_range.as_ref())
            .and_then(|deleted| deleted.prev_kvs.first());
        if let Some(kv) = released.filter(|kv| kv.lease != 0) {
            self.revoke_quietly(kv.lease).await;
        }
        Ok(())
    }

    async fn current_lease(&self) -> Result<Option<Lease>, StoreError> {
        match self.get(&self.keys.leader()).await? {
            Some(kv) => self.lease_of(&kv).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_base_urls() {
        assert_eq!(
            base_url("10.0.0.1:2379", false).unwrap(),
            "http://10.0.0.1:2379"
        );
        assert_eq!(base_url("etcd:2379", true).unwrap(), "https://etcd:2379");
        assert_eq!(
            base_url(" http://etcd:2379/ ", true).unwrap(),
            "http://etcd:2379"
        );
        assert_eq!(
            base_url("https://etcd:2379", false).unwrap(),
            "https://etcd:2379"
        );
        for bad in ["", "unix://sock", "etcd:2379/v3"] {
            assert!(
                matches!(base_url(bad, false), Err(ConnectError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(ttl_seconds(Duration::from_secs(2)), 2);
        assert_eq!(ttl_seconds(Duration::from_millis(2_001)), 3);
        assert_eq!(ttl_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn debug_hides_the_password() {
        let config = EtcdConfig {
            username: Some("root".to_owned()),
            password: Some("s3cret".to_owned()),
            ..EtcdConfig::default()
        };
        let printed = format!("{config:?}");
        assert!(
            printed.contains("root") && !printed.contains("s3cret"),
            "{printed}"
        );
    }
}
