//! Integration tests of the ZooKeeper store against real ZooKeeper servers: the conformance
//! suite, keyspace isolation, authentication, leases across sessions, limits and an outage.
//! Each test starts its own standalone ZooKeeper on a free port in a temporary directory
//! (module `server`); `scripts/test-deps` installs Java and ZooKeeper.

mod auth;
mod behaviour;
mod conformance;
mod isolation;
mod leases;
mod outage;
mod server;
