//! The `shell` executor: runs a command line as a local process group (Dkron §7.1).
//!
//! Config keys: `command`, `shell`, `env`, `cwd`, `timeout`, `mem_limit`, `payload`, `su`.
//! Each execution runs in its own process group so that a timeout, a cancellation or an exceeded
//! memory limit kills the whole tree with one `SIGKILL`, grandchildren included.

mod config;
mod executor;
mod spawner;
#[cfg(test)]
mod tests;

pub use config::{ShellConfig, split_command_line};
pub use executor::ShellExecutor;
pub use spawner::start as start_spawner;
