//! rkron-executor owns the `Executor` trait, the built-in `shell` and `http` executors and the registry that names them.
//!
//! An executor runs one execution of a job: it reads the job's `executor_config`, streams the
//! job's output into an [`OutputBuffer`] (which keeps only the last [`OUTPUT_LIMIT`] bytes) and
//! reports an [`ExecuteOutcome`]. A failed job is a value (`success: false`), never an `Err`.

pub mod http;
mod output;
mod registry;
pub mod shell;

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

pub use output::{OUTPUT_LIMIT, OutputBuffer, final_output};
pub use registry::ExecutorRegistry;

/// The error text of an execution stopped through its cancellation token.
pub const KILLED_ERROR: &str = "killed";

/// One execution to run: the job's name and its executor configuration.
#[derive(Debug, Clone)]
pub struct ExecuteRequest {
    /// The name of the job being executed.
    pub job_name: String,
    /// The job's `executor_config` map.
    pub config: BTreeMap<String, String>,
}

/// The result of one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteOutcome {
    /// Whether the execution succeeded.
    pub success: bool,
    /// Why the execution failed; `None` on success.
    pub error: Option<String>,
}

impl ExecuteOutcome {
    /// Returns a successful outcome.
    pub fn succeeded() -> Self {
        Self {
            success: true,
            error: None,
        }
    }

    /// Returns a failed outcome carrying `error`.
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            success: false,
            error: Some(error.into()),
        }
    }

    /// Returns the outcome of an execution stopped through its cancellation token.
    pub fn killed() -> Self {
        Self::failed(KILLED_ERROR)
    }
}

/// Runs executions of jobs.
#[async_trait::async_trait]
pub trait Executor: Send + Sync + std::fmt::Debug + 'static {
    /// Runs the job, writing output to `output` as it comes.
    ///
    /// When `cancel` fires, the executor stops at once (shell: SIGKILL to the whole process
    /// group) and returns `success: false`, `error: Some("killed")`.
    async fn execute(
        &self,
        req: &ExecuteRequest,
        output: &OutputBuffer,
        cancel: CancellationToken,
    ) -> ExecuteOutcome;
}
