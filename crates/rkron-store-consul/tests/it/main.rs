//! Integration tests of the Consul store against an in-process fake of Consul's documented HTTP
//! API (module `fake`): the conformance suite, token auth, keyspace isolation, damaged records
//! and an outage. No real Consul is involved: no Consul server can be installed here.

mod auth;
mod conformance;
mod corrupt;
mod fake;
mod isolation;
mod limits;
mod outage;
