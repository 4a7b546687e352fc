//! The registry that maps executor names (`shell`, `http`, …) to executors.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Executor;
use crate::http::HttpExecutor;
use crate::shell::ShellExecutor;

/// Executors by the name a job's `executor` field uses.
#[derive(Debug, Clone, Default)]
pub struct ExecutorRegistry {
    executors: BTreeMap<String, Arc<dyn Executor>>,
}

impl ExecutorRegistry {
    /// Returns a registry holding the built-in `shell` and `http` executors.
    pub fn with_builtins() -> Self {
        let mut registry = Self::default();
        registry.register("shell", Arc::new(ShellExecutor::new()));
        registry.register("http", Arc::new(HttpExecutor::new()));
        registry
    }

    /// Returns the executor registered under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Executor>> {
        self.executors.get(name).cloned()
    }

    /// Registers `executor` under `name`, replacing any executor of that name.
    pub fn register(&mut self, name: &str, executor: Arc<dyn Executor>) {
        self.executors.insert(name.to_owned(), executor);
    }

    /// Returns the registered names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.executors.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_shell_and_http() {
        let registry = ExecutorRegistry::with_builtins();
        assert_eq!(registry.names().collect::<Vec<_>>(), ["http", "shell"]);
        assert!(registry.get("shell").is_some());
        assert!(registry.get("http").is_some());
        assert!(registry.get("grpc").is_none());
    }

    #[test]
    fn register_replaces_by_name() {
        let mut registry = ExecutorRegistry::default();
        registry.register("custom", Arc::new(ShellExecutor::new()));
        registry.register("custom", Arc::new(HttpExecutor::new()));
        assert_eq!(registry.names().count(), 1);
        assert!(format!("{:?}", registry.get("custom").unwrap()).contains("HttpExecutor"));
    }
}
