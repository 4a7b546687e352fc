//! Integration tests of rkron-notify against real local SMTP and HTTP servers.

#![allow(clippy::unwrap_used)]

mod fixtures;
mod mail;
mod notify_on;
mod smtp_sink;
mod webhook;
mod webhook_server;
