//! The leader side of the RPC: [`GrpcRunner`] carries runs to remote nodes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rkron_executor::OutputBuffer;
use rkron_node::{AgentRun, AgentRunner, RunError, RunEvent};
use tokio::sync::mpsc;
use tonic::Code;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

use crate::convert::{execution_from_proto, execution_to_proto};
use crate::proto;
use crate::proto::agent_run_event::Event;
use crate::proto::agent_service_client::AgentServiceClient;

/// Longest wait for a connection to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a node to accept a run or answer a kill.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings on an open connection, so a node that vanishes without closing its sockets
/// breaks its streams instead of holding them open.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The [`AgentRunner`] for remote nodes: sends `AgentRun` and `Kill` over gRPC.
///
/// It knows each node's RPC address (the node runtime feeds it from the `rpc_addr` gossip tag)
/// and keeps one connection per node, opened at the first call.
#[derive(Debug)]
pub struct GrpcRunner {
    nodes: Arc<Mutex<HashMap<String, NodeAddress>>>,
    clock: Arc<dyn rkron_core::Clock>,
    /// Execution ids whose final reports were stored, per node, waiting for the next `Ack`.
    acks: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// Set once the task that sends `Ack`s runs.
    ack_sender: std::sync::OnceLock<()>,
}

/// How often stored final reports are confirmed to their nodes (one `Ack` per node).
const ACK_INTERVAL: Duration = Duration::from_millis(200);

impl Default for GrpcRunner {
    fn default() -> Self {
        Self {
            nodes: Arc::default(),
            clock: Arc::new(rkron_core::SystemClock),
            acks: Arc::default(),
            ack_sender: std::sync::OnceLock::new(),
        }
    }
}

#[derive(Debug)]
struct NodeAddress {
    address: SocketAddr,
    channel: Option<Channel>,
}

impl GrpcRunner {
    /// Creates a runner that knows no node.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the RPC address of `node`; a changed address drops the old connection.
    pub fn set_address(&self, node: &str, address: SocketAddr) {
        let mut nodes = self.lock_nodes();
        match nodes.get_mut(node) {
            Some(known) if known.address == address => {}
            _ => {
                nodes.insert(
                    node.to_owned(),
                    NodeAddress {
                        address,
                        channel: None,
                    },
                );
            }
        }
    }

    /// Forgets `node` and its connection.
    pub fn remove_address(&self, node: &str) {
        self.lock_nodes().remove(node);
    }

    /// Drops the connection to `node` (keeping its address), so the next call opens a fresh
    /// one: after a failed call, or when gossip sees the node come back, the old connection may
    /// be stuck retransmitting into a partition.
    pub fn reset_connection(&self, node: &str) {
        if let Some(known) = self.lock_nodes().get_mut(node) {
            known.channel = None;
        }
    }

    /// Returns the RPC address known for `node`.
    pub fn address(&self, node: &str) -> Option<SocketAddr> {
        self.lock_nodes().get(node).map(|known| known.address)
    }

    fn lock_nodes(&self) -> std::sync::MutexGuard<'_, HashMap<String, NodeAddress>> {
        lock(&self.nodes)
    }

    /// Returns the connection to `node`, connecting first if there is none.
    async fn channel(&self, node: &str) -> Result<Channel, RunError> {
        channel(&self.nodes, node).await
    }

    /// Starts the task that confirms stored final reports to their nodes, once.
    fn start_ack_sender(&self) {
        self.ack_sender.get_or_init(|| {
            let (nodes, acks) = (self.nodes.clone(), self.acks.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ACK_INTERVAL).await;
                    let batch: Vec<(String, Vec<String>)> = lock(&acks).drain().collect();
                    for (node, execution_ids) in batch {
                        let Ok(channel) = channel(&nodes, &node).await else {
                            continue;
                        };
                        let count = execution_ids.len();
                        let mut client = AgentServiceClient::new(channel);
                        let call = client.ack(proto::AckRequest { execution_ids });
                        match tokio::time::timeout(CALL_TIMEOUT, call).await {
                            Ok(Ok(_)) => {}
                            // The node offers those reports again; they are recognised.
                            Ok(Err(status)) => {
                                tracing::debug!(node, count, %status, "ack not delivered");
                            }
                            Err(_) => tracing::debug!(node, count, "ack timed out"),
                        }
                    }
                }
            });
        });
    }
}

/// Locks a map that every update leaves consistent (so a poisoned lock is still usable).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Returns the connection to `node`, connecting first if there is none.
async fn channel(
    nodes_map: &Mutex<HashMap<String, NodeAddress>>,
    node: &str,
) -> Result<Channel, RunError> {
    {
        let unreachable = || RunError::Unreachable(node.to_owned());
        let address = {
            let nodes = lock(nodes_map);
            let known = nodes.get(node).ok_or_else(unreachable)?;
            if let Some(channel) = &known.channel {
                return Ok(channel.clone());
            }
            known.address
        };
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|_| unreachable())?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
        let channel = match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(error)) => {
                tracing::warn!(node, %address, %error, "cannot connect to node");
                return Err(unreachable());
            }
            Err(_) => {
                tracing::warn!(node, %address, "connecting to node timed out");
                return Err(unreachable());
            }
        };
        let mut nodes = lock(nodes_map);
        match nodes.get_mut(node) {
            // Keep a connection another call made meanwhile, unless the address moved.
            Some(known) if known.address == address => {
                Ok(known.channel.get_or_insert(channel).clone())
            }
            _ => Ok(channel),
        }
    }
}

#[async_trait]
impl AgentRunner for GrpcRunner {
    async fn run(
        &self,
        node: &str,
        run: AgentRun,
        events: mpsc::Sender<RunEvent>,
    ) -> Result<(), RunError> {
        let channel = self.channel(node).await?;
        // A request stuck in a partition may arrive long after this side gave up on it and
        // recorded the run as failed: the node refuses it past this instant.
        let not_after = self.clock.now() + CALL_TIMEOUT;
        let request = proto::AgentRunRequest {
            node_name: node.to_owned(),
            job_json: serde_json::to_vec(&*run.job)
                .expect("a job serializes to JSON: its maps have string keys"),
            execution: Some(execution_to_proto(&run.execution)),
            not_after: not_after.timestamp_nanos_opt().unwrap_or(i64::MAX),
            leader_token: run.leader_token,
        };
        let mut client = AgentServiceClient::new(channel);
        let response = match tokio::time::timeout(CALL_TIMEOUT, client.agent_run(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(status)) if status.code() == Code::FailedPrecondition => {
                return Err(RunError::ShuttingDown);
            }
            Ok(Err(status)) if status.code() == Code::Aborted => {
                return Err(RunError::Fenced(run.leader_token));
            }
            Ok(Err(status)) => {
                tracing::warn!(node, %status, "node refused a run");
                self.reset_connection(node);
                return Err(RunError::Unreachable(node.to_owned()));
            }
            Err(_) => {
                tracing::warn!(node, "node did not accept a run in time");
                self.reset_connection(node);
                return Err(RunError::Unreachable(node.to_owned()));
            }
        };
        tokio::spawn(forward_run(node.to_owned(), response.into_inner(), events));
        Ok(())
    }

    fn recorded(&self, node: &str, execution_id: &str) {
        lock(&self.acks)
            .entry(node.to_owned())
            .or_default()
            .push(execution_id.to_owned());
        self.start_ack_sender();
    }

    async fn kill(&self, node: &str, execution_id: &str, reason: &str) -> bool {
        let Ok(channel) = self.channel(node).await else {
            return false;
        };
        let request = proto::KillRequest {
            node_name: node.to_owned(),
            execution_id: execution_id.to_owned(),
            reason: reason.to_owned(),
        };
        let mut client = AgentServiceClient::new(channel);
        match tokio::time::timeout(CALL_TIMEOUT, client.kill(request)).await {
            Ok(Ok(reply)) => reply.into_inner().found,
            Ok(Err(status)) => {
                tracing::warn!(node, execution = execution_id, %status, "kill failed");
                self.reset_connection(node);
                false
            }
            Err(_) => {
                tracing::warn!(node, execution = execution_id, "kill timed out");
                self.reset_connection(node);
                false
            }
        }
    }

    async fn recent_runs(
        &self,
        node: &str,
        leader_token: u64,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<rkron_node::RecentRuns, RunError> {
        let channel = self.channel(node).await?;
        let request = proto::RecentRunsRequest {
            leader_token,
            since: since.timestamp_nanos_opt().unwrap_or(i64::MIN),
        };
        let mut client = AgentServiceClient::new(channel);
        match tokio::time::timeout(CALL_TIMEOUT, client.recent_runs(request)).await {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                Ok(rkron_node::RecentRuns {
                    runs: reply
                        .runs
                        .into_iter()
                        .map(|run| {
                            (
                                run.job_name,
                                chrono::DateTime::from_timestamp_nanos(run.scheduled_at),
                            )
                        })
                        .collect(),
                    complete_from: chrono::DateTime::from_timestamp_nanos(reply.complete_from),
                })
            }
            Ok(Err(status)) => {
                tracing::warn!(node, %status, "could not ask a node which runs it accepted");
                self.reset_connection(node);
                Err(RunError::Unreachable(node.to_owned()))
            }
            Err(_) => {
                tracing::warn!(node, "a node did not say in time which runs it accepted");
                self.reset_connection(node);
                Err(RunError::Unreachable(node.to_owned()))
            }
        }
    }
}

/// Turns one run's stream into `RunEvent`s: `Started` with a leader-side output buffer that
/// the `Output` chunks fill, then `Finished`.
///
/// A stream that breaks or ends before `Finished` just ends: the node runtime fails a run whose
/// events end without a result.
async fn forward_run(
    node: String,
    mut stream: Streaming<proto::AgentRunEvent>,
    events: mpsc::Sender<RunEvent>,
) {
    let mut output: Option<OutputBuffer> = None;
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            () = events.closed() => return,
        };
        let event = match message {
            Ok(Some(message)) => message.event,
            Ok(None) => {
                tracing::warn!(node, "run stream ended without a final report");
                return;
            }
            Err(status) => {
                tracing::warn!(node, %status, "run stream broke");
                return;
            }
        };
        match event {
            Some(Event::Started(proto::Started {
                execution: Some(execution),
            })) => {
                let buffer = OutputBuffer::new();
                let started = RunEvent::Started(execution_from_proto(execution), buffer.clone());
                if events.send(started).await.is_err() {
                    return;
                }
                output = Some(buffer);
            }
            Some(Event::Output(proto::Output { chunk })) => {
                if let Some(buffer) = &output {
                    buffer.push(&chunk);
                }
            }
            Some(Event::Finished(proto::Finished {
                execution: Some(execution),
            })) => {
                let _ = events
                    .send(RunEvent::Finished(execution_from_proto(execution)))
                    .await;
                // Read the stream to its end (the node closes it right after `Finished`):
                // dropping it early resets the HTTP/2 stream, and at a thousand runs a second
                // those resets reach h2's limit and the whole connection is torn down.
                let drained = tokio::time::timeout(CALL_TIMEOUT, async {
                    while let Ok(Some(_)) = stream.message().await {}
                });
                let _ = drained.await;
                return;
            }
            Some(Event::Started(_) | Event::Finished(_)) => {
                tracing::warn!(node, "run event without its execution");
                return;
            }
            // An event a newer node knows and this one does not.
            None => {}
        }
    }
}

/// The leader's runner in a cluster: this node's own agent for runs on itself, gRPC for runs
/// on any other member.
#[derive(Debug)]
pub struct ClusterRunner {
    local: rkron_node::LocalAgent,
    remote: std::sync::Arc<GrpcRunner>,
}

impl ClusterRunner {
    /// Runs on `local.node_name()` go to `local`, the others through `remote`.
    pub fn new(local: rkron_node::LocalAgent, remote: std::sync::Arc<GrpcRunner>) -> Self {
        Self { local, remote }
    }
}

#[async_trait]
impl AgentRunner for ClusterRunner {
    async fn run(
        &self,
        node: &str,
        run: AgentRun,
        events: mpsc::Sender<RunEvent>,
    ) -> Result<(), RunError> {
        if node == self.local.node_name() {
            self.local.run(node, run, events).await
        } else {
            self.remote.run(node, run, events).await
        }
    }

    async fn kill(&self, node: &str, execution_id: &str, reason: &str) -> bool {
        if node == self.local.node_name() {
            self.local.kill(node, execution_id, reason).await
        } else {
            self.remote.kill(node, execution_id, reason).await
        }
    }

    fn recorded(&self, node: &str, execution_id: &str) {
        if node != self.local.node_name() {
            self.remote.recorded(node, execution_id);
        }
    }

    async fn recent_runs(
        &self,
        node: &str,
        leader_token: u64,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<rkron_node::RecentRuns, RunError> {
        if node == self.local.node_name() {
            self.local.recent_runs(node, leader_token, since).await
        } else {
            self.remote.recent_runs(node, leader_token, since).await
        }
    }
}

/// Sends job-change notices to the leader over gRPC, at the `rpc_addr` its tags advertise.
#[derive(Debug, Default)]
pub struct GrpcNotices;

/// A client of `leader`'s RPC service, or why there is none.
async fn leader_client(leader: &rkron_node::Member) -> Result<AgentServiceClient<Channel>, String> {
    let address = leader
        .tags
        .get("rpc_addr")
        .ok_or_else(|| format!("the RPC address of {} is not known yet", leader.name))?;
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(AgentServiceClient::new(channel))
}

#[async_trait]
impl rkron_node::LeaderNotices for GrpcNotices {
    async fn busy(&self, leader: &rkron_node::Member) -> Option<Vec<rkron_core::Execution>> {
        let call = async {
            let mut client = leader_client(leader).await?;
            client
                .busy(proto::BusyRequest {})
                .await
                .map_err(|status| status.to_string())
        };
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(reply)) => Some(
                reply
                    .into_inner()
                    .executions
                    .into_iter()
                    .map(execution_from_proto)
                    .collect(),
            ),
            Ok(Err(error)) => {
                tracing::warn!(leader = %leader.name, %error, "could not ask the leader for running executions");
                None
            }
            Err(_) => {
                tracing::warn!(leader = %leader.name, "the leader did not list running executions in time");
                None
            }
        }
    }

    async fn job_changed(&self, leader: &rkron_node::Member, job: &str) {
        let call = async {
            let mut client = leader_client(leader).await?;
            client
                .job_changed(proto::JobChangedRequest {
                    job_name: job.to_owned(),
                })
                .await
                .map_err(|status| status.to_string())
        };
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(leader = %leader.name, job, %error, "job-change notice not delivered; the leader's resync will pick it up");
            }
            Err(_) => {
                tracing::warn!(leader = %leader.name, job, "job-change notice timed out; the leader's resync will pick it up");
            }
        }
    }
}
