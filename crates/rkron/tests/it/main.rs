//! Integration tests of the real `rkron` binary over HTTP.

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)]

mod getting_started;
mod support;
