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

pub use runner::{ClusterRunner, GrpcNotices, GrpcRunner};
pub use server::{AgentServer, ServeError, ServerAddresses, serve};

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

/// Asks the node whose RPC service is at `address` (`host:port`) to leave the cluster and stop
/// (`rkron leave`); answers the node's name.
pub async fn request_leave(address: &str) -> Result<String, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(std::time::Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let reply = proto::agent_service_client::AgentServiceClient::new(channel)
        .leave(proto::LeaveRequest {})
        .await
        .map_err(|status| status.message().to_owned())?;
    Ok(reply.into_inner().node_name)
}
