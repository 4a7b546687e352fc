//! The `files` processor: writes the output to one file per execution.

use std::path::{Path, PathBuf};

use rkron_core::Execution;
use rkron_core::job::StringMap;

use crate::{Processor, ProcessorError, config_value, replace_unless_forwarding};

/// The directory `files` writes to when the config has no `log_dir` (Dkron's default).
pub const DEFAULT_LOG_DIR: &str = "/var/log/dkron";

/// The configuration key naming the directory `files` writes to.
pub const FILES_LOG_DIR_KEY: &str = "log_dir";

/// Writes each execution's output to `<log_dir>/<execution id>.log`, creating the directory if
/// it is missing and replacing a file of the same name.
///
/// Unless the config forwards, the stored output becomes the file's path (Dkron's behaviour).
#[derive(Debug, Clone, Copy, Default)]
pub struct FilesProcessor;

impl FilesProcessor {
    /// Returns the processor.
    pub fn new() -> Self {
        Self
    }
}

/// Returns the file an execution's output goes to under `log_dir`.
fn output_path(log_dir: &Path, execution: &Execution) -> Result<PathBuf, ProcessorError> {
    let id = execution.id();
    // The id ends in the node name; a separator there would write outside `log_dir`.
    if id.contains(std::path::is_separator) {
        return Err(ProcessorError::WriteFailed {
            path: log_dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("execution id {id} is not a file name"),
            ),
        });
    }
    Ok(log_dir.join(format!("{id}.log")))
}

#[async_trait::async_trait]
impl Processor for FilesProcessor {
    async fn process(
        &self,
        execution: Execution,
        config: &StringMap,
    ) -> Result<Execution, ProcessorError> {
        let log_dir = Path::new(config_value(config, FILES_LOG_DIR_KEY).unwrap_or(DEFAULT_LOG_DIR));
        let path = output_path(log_dir, &execution)?;
        tokio::fs::create_dir_all(log_dir)
            .await
            .map_err(|source| ProcessorError::WriteFailed {
                path: log_dir.to_path_buf(),
                source,
            })?;
        tokio::fs::write(&path, execution.output.as_bytes())
            .await
            .map_err(|source| ProcessorError::WriteFailed {
                path: path.clone(),
                source,
            })?;
        let replacement = path.to_string_lossy().into_owned();
        Ok(replace_unless_forwarding(execution, config, replacement))
    }
}
