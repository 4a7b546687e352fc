//! The `log` processor: writes the output into the node's log.

use rkron_core::Execution;
use rkron_core::job::StringMap;

use crate::{Processor, ProcessorError, replace_unless_forwarding};

/// The stored output when `log` does not forward (Dkron's text).
pub const LOG_REPLACEMENT: &str = "Output in dkron log";

/// Writes each execution's output, framed by `----- BEGIN OUTPUT job=<job> execution=<id> -----`
/// and `----- END OUTPUT -----`, as one `tracing` event.
///
/// Dkron prints the block to stdout (success) or stderr (failure). rkron logs through `tracing`
/// instead, which the binary writes to stderr: the block is an `info` event for a successful
/// execution and a `warn` event for a failed one, with the same framing lines as Dkron's.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogProcessor;

impl LogProcessor {
    /// Returns the processor.
    pub fn new() -> Self {
        Self
    }
}

/// Returns the output framed as Dkron frames it.
fn framed_output(execution: &Execution) -> String {
    format!(
        "----- BEGIN OUTPUT job={} execution={} -----\n{}\n----- END OUTPUT -----",
        execution.job_name,
        execution.id(),
        execution.output
    )
}

#[async_trait::async_trait]
impl Processor for LogProcessor {
    async fn process(
        &self,
        execution: Execution,
        config: &StringMap,
    ) -> Result<Execution, ProcessorError> {
        let block = framed_output(&execution);
        if execution.success {
            tracing::info!(job = %execution.job_name, "{block}");
        } else {
            tracing::warn!(job = %execution.job_name, "{block}");
        }
        Ok(replace_unless_forwarding(
            execution,
            config,
            LOG_REPLACEMENT,
        ))
    }
}
