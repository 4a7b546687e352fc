//! The rkron binary's library: the composition root. `main` parses the command line and calls
//! in here; tests and benchmarks call the same functions.

pub mod agent;
pub mod cli;
pub mod config;
