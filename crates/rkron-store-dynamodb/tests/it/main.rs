//! Integration tests of the DynamoDB store against a real local DynamoDB endpoint (moto): the
//! conformance suite, DynamoDB-specific behaviour and outages. Each test starts its own
//! `moto_server` on a free port (module `server`); `scripts/test-deps` installs it.

mod behaviour;
mod conformance;
mod outage;
mod server;
