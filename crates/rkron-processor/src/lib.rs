//! rkron-processor owns the `Processor` trait, the built-in `log`, `files`, `syslog` and `fluent` processors and the registry that applies a job's processors to a finished execution.
//!
//! Processors run on the leader once an execution is done, before it is stored (Dkron §6.5
//! step 8). Each gets the execution with its full output and the job's configuration for that
//! processor (string values, as in Dkron, plus the injected `reporting_node`), and answers the
//! execution to store. Every built-in processor honours `forward`: a true value (Go's
//! `strconv.ParseBool` spellings, so `"true"`, `"1"`, `"t"`, …) keeps the original output;
//! anything else replaces the stored output with a short note saying where the output went.
//! rkron keeps Dkron's note texts exactly, so scripts that grep for them keep working.
//!
//! ```text
//! finished execution ─► ProcessorRegistry::apply(job, execution)
//!                          │ for each (name, config) in job.processors, in name order:
//!                          │   config + reporting_node ─► Processor::process
//!                          │   Ok(execution)  → carried to the next processor
//!                          │   Err / unknown  → warn, execution kept as it was
//!                          ▼
//!                       execution to store
//! ```

mod files;
mod fluent;
mod log;
mod registry;
mod syslog;

use std::path::PathBuf;

use rkron_core::Execution;
use rkron_core::job::StringMap;

pub use files::{DEFAULT_LOG_DIR, FILES_LOG_DIR_KEY, FilesProcessor};
pub use fluent::{
    DEFAULT_FLUENT_HOST, DEFAULT_FLUENT_PORT, DEFAULT_FLUENT_TAG, FLUENT_REPLACEMENT,
    FLUENT_SEND_TIMEOUT, FluentProcessor,
};
pub use log::{LOG_REPLACEMENT, LogProcessor};
pub use registry::ProcessorRegistry;
pub use syslog::{
    DEFAULT_SYSLOG_ADDRESS, SYSLOG_ADDRESS_KEY, SYSLOG_MAX_DATAGRAM_BYTES, SYSLOG_REPLACEMENT,
    SYSLOG_SEND_TIMEOUT, SYSLOG_TAG, SyslogProcessor,
};

/// The configuration key that keeps the original output when true.
pub const FORWARD_KEY: &str = "forward";

/// The configuration key the registry injects with the name of the node running the processors.
pub const REPORTING_NODE_KEY: &str = "reporting_node";

/// Node-wide settings for the built-in processors.
#[derive(Debug, Clone, Default)]
pub struct ProcessorSettings {
    /// The name of this node, injected into each processor's config as `reporting_node`.
    pub node_name: String,
    /// The Fluent host when a job's `fluent` config has none (Dkron's `FLUENTBIT_HOST`).
    pub fluent_host: Option<String>,
    /// The Fluent port when a job's `fluent` config has none (Dkron's `FLUENTBIT_PORT`).
    pub fluent_port: Option<u16>,
    /// The Fluent tag when a job's `fluent` config has none (Dkron's `FLUENTBIT_TAG`).
    pub fluent_tag: Option<String>,
}

/// Why a processor could not process an execution.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// A configuration value is malformed.
    #[error("invalid processor config {key}: {reason}")]
    InvalidConfig {
        /// The configuration key.
        key: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// Writing the output to a file failed.
    #[error("failed to write {}: {source}", path.display())]
    WriteFailed {
        /// The file or directory being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Sending the output to a remote or local receiver failed.
    #[error("failed to send to {address}: {source}")]
    SendFailed {
        /// Where the output was being sent.
        address: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Processes finished executions: ships their output somewhere and answers the execution to store.
#[async_trait::async_trait]
pub trait Processor: Send + Sync + std::fmt::Debug + 'static {
    /// Processes a finished execution (its `output` is the full output); answers the execution to store.
    async fn process(
        &self,
        execution: Execution,
        config: &StringMap,
    ) -> Result<Execution, ProcessorError>;
}

/// Returns whether `config` asks to keep the original output, reading `forward` as Go's
/// `strconv.ParseBool` does; a missing or unparsable value means false, as in Dkron.
pub(crate) fn is_forwarding(config: &StringMap) -> bool {
    match config.get(FORWARD_KEY).map(String::as_str) {
        None => false,
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
        Some(other) => {
            tracing::warn!(
                value = other,
                "processor forward is not a boolean, using false"
            );
            false
        }
    }
}

/// Returns `execution` with its output replaced by `replacement`, unless `config` forwards.
pub(crate) fn replace_unless_forwarding(
    mut execution: Execution,
    config: &StringMap,
    replacement: impl Into<String>,
) -> Execution {
    if !is_forwarding(config) {
        execution.output = replacement.into();
    }
    execution
}

/// Returns the instant an execution's output belongs to: when it finished, else when it started.
///
/// Processors stamp what they send with it rather than with the current time, because
/// wall-clock time comes only from the node's `Clock`, and the finish instant is what a reader
/// of the log wants anyway.
pub(crate) fn event_time(execution: &Execution) -> chrono::DateTime<chrono::Utc> {
    execution.finished_at.unwrap_or(execution.started_at)
}

/// Returns a non-empty value of `key` in `config`.
pub(crate) fn config_value<'a>(config: &'a StringMap, key: &str) -> Option<&'a str> {
    config
        .get(key)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(forward: Option<&str>) -> StringMap {
        forward
            .map(|value| [(FORWARD_KEY.to_owned(), value.to_owned())].into())
            .unwrap_or_default()
    }

    #[test]
    fn forward_reads_go_parse_bool_spellings() {
        for value in ["1", "t", "T", "true", "TRUE", "True"] {
            assert!(is_forwarding(&config(Some(value))), "{value}");
        }
        for value in ["0", "f", "false", "FALSE", "False", "yes", ""] {
            assert!(!is_forwarding(&config(Some(value))), "{value}");
        }
        assert!(!is_forwarding(&config(None)));
    }
}
