//! Tests of the Redis store against real `redis-server` processes: each test starts its own
//! server on a free port in a temporary directory (module `server`).

#![allow(clippy::unwrap_used)]

mod auth;
mod behaviour;
mod conformance;
mod outage;
mod server;
mod tls;
