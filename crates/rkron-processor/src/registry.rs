//! The registry that maps processor names (`log`, `files`, `syslog`, `fluent`, …) to processors and applies a job's processors.

use std::collections::BTreeMap;
use std::sync::Arc;

use rkron_core::{Execution, Job};

use crate::{
    FilesProcessor, FluentProcessor, LogProcessor, Processor, ProcessorSettings,
    REPORTING_NODE_KEY, SyslogProcessor,
};

/// Processors by the name a job's `processors` map uses, and the node they report as.
#[derive(Debug, Clone, Default)]
pub struct ProcessorRegistry {
    node_name: String,
    processors: BTreeMap<String, Arc<dyn Processor>>,
}

impl ProcessorRegistry {
    /// Returns a registry with no processors, reporting as `node_name`.
    pub fn new(node_name: &str) -> Self {
        Self {
            node_name: node_name.to_owned(),
            processors: BTreeMap::new(),
        }
    }

    /// Returns a registry holding the built-in `log`, `files`, `syslog` and `fluent` processors.
    pub fn with_builtins(settings: ProcessorSettings) -> Self {
        let mut registry = Self::new(&settings.node_name);
        registry.register("log", Arc::new(LogProcessor::new()));
        registry.register("files", Arc::new(FilesProcessor::new()));
        registry.register("syslog", Arc::new(SyslogProcessor::new()));
        registry.register("fluent", Arc::new(FluentProcessor::new(settings)));
        registry
    }

    /// Registers `processor` under `name`, replacing any processor of that name.
    pub fn register(&mut self, name: &str, processor: Arc<dyn Processor>) {
        self.processors.insert(name.to_owned(), processor);
    }

    /// Returns the processor registered under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Processor>> {
        self.processors.get(name).cloned()
    }

    /// Returns the registered names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.processors.keys().map(String::as_str)
    }

    /// Applies the job's processors (`job.processors`: name → config map) in name order; unknown
    /// processors and processor errors are logged (tracing::warn) and skipped, keeping the
    /// execution as it was before that processor.
    ///
    /// Each processor gets its config with `reporting_node` set to this registry's node name,
    /// replacing any value the job gave. Dkron walks the map in random order; rkron's order is
    /// the names' order, so chained processors behave the same on every run.
    pub async fn apply(&self, job: &Job, execution: Execution) -> Execution {
        let mut current = execution;
        for (name, job_config) in &job.processors {
            let Some(processor) = self.processors.get(name) else {
                tracing::warn!(job = %job.name, processor = %name, "processor not found, skipping it");
                continue;
            };
            let mut config = job_config.clone();
            config.insert(REPORTING_NODE_KEY.to_owned(), self.node_name.clone());
            match processor.process(current.clone(), &config).await {
                Ok(processed) => current = processed,
                Err(error) => {
                    tracing::warn!(job = %job.name, processor = %name, %error, "processor failed, keeping the execution as it was");
                }
            }
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_files_fluent_log_and_syslog() {
        let registry = ProcessorRegistry::with_builtins(ProcessorSettings::default());
        assert_eq!(
            registry.names().collect::<Vec<_>>(),
            ["files", "fluent", "log", "syslog"]
        );
        assert!(registry.get("log").is_some());
        assert!(registry.get("elasticsearch").is_none());
    }
}
