//! rkron-store owns the storage keyspace contract: the [`Store`] trait, [`StoreError`], the
//! in-memory store and (feature `testsuite`) the conformance suite every backend runs.
//!
//! Backends map their client errors into [`StoreError`] and never leak client types.

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rkron_core::{Execution, Job};

pub mod kv;
pub mod lease;
pub mod memory;
pub mod plan;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use lease::{Lease, LocalLease};
pub use memory::MemoryStore;

/// A record version, for compare-and-swap. Strictly increases on every write of the record.
pub type Version = u64;

/// A record together with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: Version,
}

/// What a write expects to find, for compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No record of that name exists.
    Absent,
    /// The record exists at exactly this version.
    Version(Version),
    /// No expectation.
    Any,
}

/// One write of a [`Store::commit_jobs`] transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // a transaction holds a handful of ops, briefly
pub enum JobOp {
    /// Creates or replaces a job.
    Put { job: Job, expect: Expect },
    /// Deletes a job, every execution of exactly that job, its fire ledger entry and its missed
    /// fires, so a job later created with the same name starts clean.
    Delete { name: String, expect: Expect },
}

/// One page of jobs ordered by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Number of jobs in the store.
    pub total: usize,
}

/// Missed fires of one job: how many, and the most recent instants (ascending, at most
/// [`MISSED_KEPT`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MissedFires {
    /// Every missed fire ever recorded for the job, including those not kept in `recent`.
    pub total: u64,
    /// The newest missed instants, ascending, without duplicates.
    pub recent: Vec<DateTime<Utc>>,
}

/// How many missed instants are kept per job.
pub const MISSED_KEPT: usize = 100;

impl MissedFires {
    /// Adds missed fires as [`Store::record_missed`] describes: `total` grows by
    /// `instants.len() + uncounted` (saturating), and `recent` keeps the newest [`MISSED_KEPT`]
    /// of the old and new instants, deduplicated and ascending. Every backend merges with it.
    pub fn record(&mut self, instants: &[DateTime<Utc>], uncounted: u64) {
        let counted = u64::try_from(instants.len()).unwrap_or(u64::MAX);
        self.total = self.total.saturating_add(counted).saturating_add(uncounted);
        self.recent.extend_from_slice(instants);
        self.recent.sort_unstable();
        self.recent.dedup();
        let excess = self.recent.len().saturating_sub(MISSED_KEPT);
        self.recent.drain(..excess);
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A compare-and-swap expectation did not hold; nothing was written. Names the record.
    #[error("conflicting write on {0}")]
    Conflict(String),
    /// The store cannot be reached or is shutting down; the caller may retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be decoded.
    #[error("corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// A leader write carried a fencing token that is no longer the current lease's: the
    /// writer was deposed. Nothing was written.
    #[error("fenced: lease token {0} is not the current leader's")]
    Fenced(u64),
    /// Any other backend failure.
    #[error("store error: {0}")]
    Backend(String),
}

/// The storage contract shared by every backend.
///
/// Executions are keyed by `(job, started_at, node)`; the output is stored apart from the
/// metadata, so listings without output and trimming never read outputs.
#[async_trait]
pub trait Store: Send + Sync + Debug + 'static {
    /// Reads one job.
    async fn get_job(&self, name: &str) -> Result<Option<Versioned<Job>>, StoreError>;

    /// Reads every job, ordered by name.
    async fn list_jobs(&self) -> Result<Vec<Job>, StoreError>;

    /// Reads the jobs at positions `start..end` in name order (clamped), with the total count.
    /// Never decodes jobs outside the page.
    async fn jobs_page(&self, start: usize, end: usize) -> Result<JobPage, StoreError>;

    /// Reads up to `limit` jobs whose names come strictly after `after` (from the first job
    /// when `None`), in name order: a cursor for scanning every job a page at a time without
    /// holding them all, and without the O(start) walk of [`Store::jobs_page`].
    async fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError>;

    /// Applies every op atomically when every expectation holds; otherwise writes nothing and
    /// answers [`StoreError::Conflict`]. Durable when it returns `Ok`.
    async fn commit_jobs(&self, ops: Vec<JobOp>) -> Result<(), StoreError>;

    /// Inserts or replaces an execution (same job, `started_at` and node replace), then deletes
    /// the job's oldest executions (by `started_at`) beyond `retention`.
    async fn put_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<(), StoreError>;

    /// Stores a finished execution like [`Store::put_execution`] and, in the same atomic write,
    /// updates the job: `success_count`/`error_count` +1, `last_success`/`last_error` =
    /// `finished_at`, and `status` = [`rkron_core::group_status`] of the stored executions of
    /// the execution's group. Answers the updated job, or `None` (and stores nothing) when the
    /// job does not exist.
    async fn finish_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<Option<Job>, StoreError>;

    /// Lists a job's executions ordered by `started_at` ascending (then node); outputs are
    /// loaded only when `with_output` (otherwise `output` is empty).
    async fn list_executions(
        &self,
        job: &str,
        with_output: bool,
    ) -> Result<Vec<Execution>, StoreError>;

    /// Reads one execution by its id (`<started nanos>-<node>`), with its full output.
    async fn get_execution(&self, job: &str, id: &str) -> Result<Option<Execution>, StoreError>;

    /// Deletes every execution of exactly `job` (never those of `jobfoo`).
    async fn delete_executions(&self, job: &str) -> Result<(), StoreError>;

    /// Lists every execution of every job that is still running (`finished_at` is `None`),
    /// oldest first. Backends keep a separate index of running executions so this never scans
    /// all executions. (Added by the node runtime: it marks executions interrupted by a crash
    /// as failed at start-up, so `forbid` is never blocked by a stale record.)
    async fn running_executions(&self) -> Result<Vec<Execution>, StoreError>;

    /// Reads a small cluster-wide setting.
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Writes a small cluster-wide setting durably.
    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Records dispatched fires in the fire ledger: for each `(job, scheduled_at)`, the job's
    /// entry becomes the later of its current value and `scheduled_at` (never moves back). One
    /// atomic, durable write for the whole slice (it is called once per scheduler tick with every
    /// fire of the tick, possibly 10,000 entries).
    ///
    /// Fenced: written only if `fence` is the token of the current, unexpired lease, checked
    /// atomically with the write; otherwise nothing is written and the answer is
    /// [`StoreError::Fenced`]. A deposed leader therefore cannot record (and so never
    /// dispatches) a fire.
    async fn record_fires(
        &self,
        fence: u64,
        fires: &[(String, DateTime<Utc>)],
    ) -> Result<(), StoreError>;

    /// Reads the whole fire ledger: job → latest dispatched scheduled instant.
    async fn fire_ledger(&self) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError>;

    /// Records missed fires of a job: `total` grows by `instants.len() + uncounted`; `recent`
    /// keeps the newest [`MISSED_KEPT`] of the old and new instants (deduplicated, ascending).
    /// Recording for a job that does not exist is a no-op (`Ok`).
    async fn record_missed(
        &self,
        job: &str,
        instants: &[DateTime<Utc>],
        uncounted: u64,
    ) -> Result<(), StoreError>;

    /// Reads a job's missed fires (the default when none were recorded).
    async fn missed_fires(&self, job: &str) -> Result<MissedFires, StoreError>;

    /// Takes the leadership lease for `holder` for `ttl` if no one else holds an unexpired one,
    /// with a fencing token greater than every token handed out before; when `holder` already
    /// holds it, renews it and keeps its token. Answers `None` while another holder's lease
    /// is live.
    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>, StoreError>;

    /// Extends `lease` by `ttl` from now if it is still the current, unexpired lease; answers
    /// `false` (and changes nothing) if it expired or another holder took over.
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError>;

    /// Gives `lease` up at once (if it is still current), so another server can take over
    /// without waiting for it to expire.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Reads the current, unexpired lease, if any: who leads.
    async fn current_lease(&self) -> Result<Option<Lease>, StoreError>;
}
