//! Integration tests of the embedded store: conformance, persistence, the data dir lock,
//! durability across `kill -9`, and throughput and paging figures.

mod child;
mod conformance;
mod lock;
mod persistence;
mod scale;
