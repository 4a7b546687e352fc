//! Integration tests of the etcd store against real etcd servers: the conformance suite,
//! authentication, keyspace isolation and an outage. Each test starts its own `etcd` on free
//! ports in a temporary directory (module `server`); `scripts/test-deps` installs it.

mod auth;
mod conformance;
mod isolation;
mod limits;
mod outage;
mod server;
