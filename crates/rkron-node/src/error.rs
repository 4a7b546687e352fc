//! Errors the node answers to its callers, each mapping to one HTTP status in the API.

use rkron_core::job::UpsertError;
use rkron_store::StoreError;

/// Why a node operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// The job fails validation (400); the message is Dkron's.
    #[error("{0}")]
    Invalid(String),
    /// The named parent job does not exist (404).
    #[error("specified parent job not found")]
    ParentNotFound,
    /// The job does not exist (404).
    #[error("job not found")]
    JobNotFound,
    /// The execution does not exist (404).
    #[error("execution not found")]
    ExecutionNotFound,
    /// The execution is not running (409).
    #[error("execution is not running")]
    NotRunning,
    /// The node is shutting down (503).
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The job still has dependent jobs (409).
    #[error("store: could not delete job with dependent jobs, delete children first")]
    HasDependents,
    /// Job submissions are paused (503).
    #[error("New job submissions are currently paused")]
    Paused,
    /// Concurrent writers kept conflicting (409).
    #[error("the job changed concurrently too many times; retry: {0}")]
    Contended(String),
    /// The store failed or is unreachable (503).
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl From<UpsertError> for NodeError {
    fn from(e: UpsertError) -> Self {
        match e {
            UpsertError::ParentNotFound => Self::ParentNotFound,
            other => Self::Invalid(other.to_string()),
        }
    }
}
