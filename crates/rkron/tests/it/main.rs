//! Integration tests of the real `rkron` binary over HTTP.

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)]

mod api;
mod bad_input;
mod browser;
mod catchup;
mod cluster;
mod executions;
mod getting_started;
mod ha;
mod lifecycle;
mod notifications;
mod semantics;
mod support;
mod ui;
