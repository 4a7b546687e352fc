//! rkron-rpc owns the gRPC between nodes: the AgentRun stream and result reporting.
//!
//! ```text
//!  leader                                         node (agent or server)
//!  dispatch ─► GrpcRunner ──AgentRun──────────► AgentServer ─► LocalAgent ─► executor
//!                 │        ◄─ Started ─────────      │
//!   RunEvent ◄────┤        ◄─ Output chunks ◄──── polls the OutputBuffer (250 ms / 64 KiB)
//!                 │        ◄─ Finished ────────      │
//!  kill ──────► GrpcRunner ──Kill──────────────► LocalAgent::kill
//! ```
//!
//! [`GrpcRunner`] is the leader's [`rkron_node::AgentRunner`] for remote nodes: it turns the
//! stream back into the `RunEvent`s the node runtime consumes, with a leader-side output buffer
//! that fills as chunks arrive (so `/v1/busy` shows the output so far). [`AgentServer`] serves
//! a node's [`rkron_node::LocalAgent`]; [`serve`] runs it on a listener.

mod convert;
mod runner;
mod server;

pub use runner::GrpcRunner;
pub use server::{AgentServer, ServeError, serve};

/// The generated protobuf messages and gRPC client and server of `proto/rkron.proto`.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    missing_debug_implementations,
    rust_2018_idioms
)]
pub mod proto {
    tonic::include_proto!("rkron.v1");
}
