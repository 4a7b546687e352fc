//! rkron-store owns the storage keyspace contract: the [`Store`] trait, [`StoreError`], the
//! in-memory store and (feature `testsuite`) the conformance suite every backend runs.
//!
//! Backends map their client errors into [`StoreError`] and never leak client types.

use std::fmt::Debug;

use async_trait::async_trait;
use rkron_core::{Execution, Job};

pub mod memory;
#[cfg(feature = "testsuite")]
pub mod testsuite;

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
    /// Deletes a job and every execution of exactly that job.
    Delete { name: String, expect: Expect },
}

/// One page of jobs ordered by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Number of jobs in the store.
    pub total: usize,
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
}
