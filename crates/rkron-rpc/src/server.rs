//! The node side of the RPC: [`AgentServer`] serves a node's [`LocalAgent`] over gRPC.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rkron_core::Job;
use rkron_executor::OutputBuffer;
use rkron_node::{AgentRun, AgentRunner, LocalAgent, NodeError, NodeHandle, RunError, RunEvent};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::convert::{execution_from_proto, execution_to_proto};
use crate::proto;
use crate::proto::agent_run_event::Event;
use crate::proto::agent_service_server::{AgentService, AgentServiceServer};

/// Longest wait between two output chunks while a run writes output.
const OUTPUT_INTERVAL: Duration = Duration::from_millis(250);
/// Output pending at which a chunk goes at once, and the largest chunk sent.
const OUTPUT_CHUNK: usize = 64 * 1024;
/// How often the output buffer is checked: it has no change notification.
const OUTPUT_POLL: Duration = Duration::from_millis(50);
/// Wait between two rounds of trying every server with a report whose stream broke.
const REPORT_RETRY: Duration = Duration::from_secs(2);
/// How long a report whose stream broke is offered to the servers before it is given up.
const REPORT_GIVE_UP: Duration = Duration::from_secs(60 * 60);
/// Longest wait for one server to take a report.
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The RPC addresses of the cluster's live servers, as gossip knows them now.
pub type ServerAddresses = Arc<dyn Fn() -> Vec<SocketAddr> + Send + Sync>;

/// Why the RPC server stopped.
#[derive(Debug, thiserror::Error)]
#[error("rpc server failed: {0}")]
pub struct ServeError(String);

/// Serves `agent` over gRPC on `listener` until `shutdown` completes.
///
/// After `shutdown` the listener closes and streams in flight are served to their end, so drain
/// the agent (which kills what outlives its grace period) to bound the wait.
pub async fn serve(
    listener: TcpListener,
    agent: LocalAgent,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    AgentServer::new(agent).serve(listener, shutdown).await
}

/// The gRPC `AgentService` of one node: runs and kills executions on its [`LocalAgent`],
/// takes final reports for the leader (on servers) and leave requests.
#[derive(Clone)]
pub struct AgentServer {
    agent: LocalAgent,
    /// Where a run's final report goes when its stream broke.
    servers: Option<ServerAddresses>,
    /// The node runtime, on servers: records reports that come outside a run stream.
    node: Option<NodeHandle>,
    /// Cancelled by a `Leave` request.
    leave: Option<CancellationToken>,
    /// Final reports sent on a stream that the leader has not confirmed storing yet.
    unacked: Arc<std::sync::Mutex<std::collections::HashMap<String, Unacked>>>,
}

/// A final report waiting for the leader's `Ack`.
#[derive(Debug)]
struct Unacked {
    execution: rkron_core::Execution,
    sent_at: Instant,
}

/// How long a final report sent on a stream waits for the leader's `Ack` before it is offered
/// to the servers again (the leader confirms every 200 ms).
const ACK_WAIT: Duration = Duration::from_secs(10);

impl fmt::Debug for AgentServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentServer")
            .field("agent", &self.agent)
            .field("server", &self.node.is_some())
            .finish_non_exhaustive()
    }
}

impl AgentServer {
    /// Creates the service for `agent`.
    pub fn new(agent: LocalAgent) -> Self {
        Self {
            agent,
            servers: None,
            node: None,
            leave: None,
            unacked: Arc::default(),
        }
    }

    /// Sends the final report of a run whose stream broke to one of `servers`.
    pub fn with_servers(mut self, servers: ServerAddresses) -> Self {
        self.servers = Some(servers);
        self
    }

    /// Records final reports that come outside a run stream on `node` (servers only).
    pub fn with_node(mut self, node: NodeHandle) -> Self {
        self.node = Some(node);
        self
    }

    /// Cancels `leave` when a `Leave` request comes.
    pub fn with_leave(mut self, leave: CancellationToken) -> Self {
        self.leave = Some(leave);
        self
    }

    /// Serves on `listener` until `shutdown` completes (see [`serve`]).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let sweeper = tokio::spawn(offer_unacked(self.unacked.clone(), self.servers.clone()));
        let served = Server::builder()
            .serve_with_incoming_shutdown(self.into_service(), incoming, shutdown)
            .await
            .map_err(|error| ServeError(error.to_string()));
        sweeper.abort();
        served
    }

    /// Returns the tonic service, for a server that hosts other services too.
    pub fn into_service(self) -> AgentServiceServer<Self> {
        AgentServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl AgentService for AgentServer {
    type AgentRunStream = ReceiverStream<Result<proto::AgentRunEvent, Status>>;

    async fn agent_run(
        &self,
        request: Request<proto::AgentRunRequest>,
    ) -> Result<Response<Self::AgentRunStream>, Status> {
        let request = request.into_inner();
        if request.not_after != 0 {
            let now = self
                .agent
                .clock()
                .now()
                .timestamp_nanos_opt()
                .unwrap_or(i64::MAX);
            if now > request.not_after {
                let late = std::time::Duration::from_nanos(
                    u64::try_from(now - request.not_after).unwrap_or(0),
                );
                tracing::warn!(late = ?late, "refused a run that arrived after the leader stopped waiting for it (a partition, or clocks more than 10 s apart)");
                return Err(Status::deadline_exceeded(
                    "the run arrived after the leader stopped waiting for it",
                ));
            }
        }
        let job: Job = serde_json::from_slice(&request.job_json)
            .map_err(|error| Status::invalid_argument(format!("job is not valid: {error}")))?;
        let execution = request
            .execution
            .ok_or_else(|| Status::invalid_argument("execution is missing"))?;
        let run = AgentRun {
            job: Arc::new(job),
            execution: execution_from_proto(execution),
            leader_token: request.leader_token,
        };
        let (run_events, run_events_receiver) = mpsc::channel(4);
        self.agent
            .run(&request.node_name, run, run_events)
            .await
            .map_err(|error| status_of_run_error(&error))?;
        let (stream_events, stream_events_receiver) = mpsc::channel(16);
        tokio::spawn(stream_run(
            run_events_receiver,
            stream_events,
            self.servers.clone(),
            self.unacked.clone(),
        ));
        Ok(Response::new(ReceiverStream::new(stream_events_receiver)))
    }

    async fn kill(
        &self,
        request: Request<proto::KillRequest>,
    ) -> Result<Response<proto::KillReply>, Status> {
        let request = request.into_inner();
        let found = self
            .agent
            .kill(&request.node_name, &request.execution_id, &request.reason)
            .await;
        Ok(Response::new(proto::KillReply { found }))
    }

    async fn execution_done(
        &self,
        request: Request<proto::ExecutionDoneRequest>,
    ) -> Result<Response<proto::ExecutionDoneReply>, Status> {
        let Some(node) = &self.node else {
            return Err(Status::unavailable("this node is not a server"));
        };
        if !node.is_leader() {
            return Err(Status::unavailable("this server does not lead"));
        }
        let execution = request
            .into_inner()
            .execution
            .ok_or_else(|| Status::invalid_argument("execution is missing"))?;
        match node.report_finished(execution_from_proto(execution)).await {
            Ok(()) => Ok(Response::new(proto::ExecutionDoneReply {})),
            // Dkron's text for a report on a job deleted meanwhile; nothing left to retry.
            Err(NodeError::JobNotFound) => Err(Status::not_found(
                "Received execution done for a deleted job",
            )),
            Err(error) => Err(Status::unavailable(error.to_string())),
        }
    }

    async fn job_changed(
        &self,
        request: Request<proto::JobChangedRequest>,
    ) -> Result<Response<proto::JobChangedReply>, Status> {
        let Some(node) = &self.node else {
            return Err(Status::unavailable("this node is not a server"));
        };
        if !node.is_leader() {
            return Err(Status::unavailable("this server does not lead"));
        }
        node.job_changed(&request.into_inner().job_name)
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?;
        Ok(Response::new(proto::JobChangedReply {}))
    }

    async fn busy(
        &self,
        _request: Request<proto::BusyRequest>,
    ) -> Result<Response<proto::BusyReply>, Status> {
        let Some(node) = &self.node else {
            return Err(Status::unavailable("this node is not a server"));
        };
        if !node.is_leader() {
            return Err(Status::unavailable("this server does not lead"));
        }
        let executions = node.busy().iter().map(execution_to_proto).collect();
        Ok(Response::new(proto::BusyReply { executions }))
    }

    async fn recent_runs(
        &self,
        request: Request<proto::RecentRunsRequest>,
    ) -> Result<Response<proto::RecentRunsReply>, Status> {
        let request = request.into_inner();
        let since = chrono::DateTime::from_timestamp_nanos(request.since);
        let recent = self.agent.recent_since(request.leader_token, since);
        let runs = recent
            .runs
            .into_iter()
            .map(|(job_name, at)| proto::AcceptedRun {
                job_name,
                scheduled_at: at.timestamp_nanos_opt().unwrap_or(i64::MAX),
            })
            .collect();
        Ok(Response::new(proto::RecentRunsReply {
            runs,
            complete_from: recent
                .complete_from
                .timestamp_nanos_opt()
                .unwrap_or(i64::MAX),
        }))
    }

    async fn ack(
        &self,
        request: Request<proto::AckRequest>,
    ) -> Result<Response<proto::AckReply>, Status> {
        let ids = request.into_inner().execution_ids;
        if let Ok(mut unacked) = self.unacked.lock() {
            for id in &ids {
                unacked.remove(id);
            }
        }
        Ok(Response::new(proto::AckReply {}))
    }

    async fn leave(
        &self,
        _request: Request<proto::LeaveRequest>,
    ) -> Result<Response<proto::LeaveReply>, Status> {
        let Some(leave) = &self.leave else {
            return Err(Status::unimplemented("this node cannot be asked to leave"));
        };
        tracing::info!("leave requested over RPC");
        leave.cancel();
        Ok(Response::new(proto::LeaveReply {
            node_name: self.agent.node_name().to_owned(),
        }))
    }
}

/// Maps a refused run to a status; the runner maps `FailedPrecondition` back to `ShuttingDown`.
fn status_of_run_error(error: &RunError) -> Status {
    match error {
        RunError::ShuttingDown => Status::failed_precondition(error.to_string()),
        RunError::Unreachable(node) => Status::not_found(format!("node {node} is not served here")),
        RunError::Fenced(_) => Status::aborted(error.to_string()),
    }
}

type StreamSender = mpsc::Sender<Result<proto::AgentRunEvent, Status>>;

/// Forwards one run's events to the stream: `Started`, output chunks, then `Finished`.
///
/// When the leader goes away (the stream closes), the run goes on and its final report goes to
/// any server that takes it (see [`report_elsewhere`]).
async fn stream_run(
    mut run_events: mpsc::Receiver<RunEvent>,
    stream: StreamSender,
    servers: Option<ServerAddresses>,
    unacked: UnackedReports,
) {
    let output = match run_events.recv().await {
        Some(RunEvent::Started(execution, output)) => {
            let started = Event::Started(proto::Started {
                execution: Some(execution_to_proto(&execution)),
            });
            if !send(&stream, started).await {
                finish_elsewhere(run_events, servers).await;
                return;
            }
            output
        }
        Some(RunEvent::Finished(execution)) => {
            if send_finished(&stream, &execution).await {
                await_ack(&unacked, execution);
            } else {
                report_elsewhere(execution, servers).await;
            }
            return;
        }
        None => return,
    };
    let mut cursor = OutputCursor::default();
    let mut last_chunk_at = Instant::now();
    let mut poll = tokio::time::interval(OUTPUT_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = run_events.recv() => match event {
                Some(RunEvent::Finished(execution)) => {
                    let sent = send_output(&stream, cursor.take_new(&output)).await
                        && send_finished(&stream, &execution).await;
                    if sent {
                        await_ack(&unacked, execution);
                    } else {
                        report_elsewhere(execution, servers).await;
                    }
                    return;
                }
                Some(RunEvent::Started(..)) => {
                    tracing::warn!("a run reported Started twice; ignored");
                }
                None => return,
            },
            _ = poll.tick() => {
                let pending = cursor.pending(&output);
                let due = pending >= OUTPUT_CHUNK as u64
                    || (pending > 0 && last_chunk_at.elapsed() >= OUTPUT_INTERVAL);
                if due {
                    if !send_output(&stream, cursor.take_new(&output)).await {
                        finish_elsewhere(run_events, servers).await;
                        return;
                    }
                    last_chunk_at = Instant::now();
                }
            }
            () = stream.closed() => {
                tracing::warn!("the leader closed a run stream; the run goes on and will report to any server");
                finish_elsewhere(run_events, servers).await;
                return;
            }
        }
    }
}

async fn send(stream: &StreamSender, event: Event) -> bool {
    let message = proto::AgentRunEvent { event: Some(event) };
    stream.send(Ok(message)).await.is_ok()
}

/// Sends the final report on the stream; false if the stream is gone.
async fn send_finished(stream: &StreamSender, execution: &rkron_core::Execution) -> bool {
    let finished = Event::Finished(proto::Finished {
        execution: Some(execution_to_proto(execution)),
    });
    let sent = send(stream, finished).await;
    if !sent {
        tracing::warn!(
            execution = %execution.id(),
            "the leader went away before the final report"
        );
    }
    sent
}

type UnackedReports = Arc<std::sync::Mutex<std::collections::HashMap<String, Unacked>>>;

/// Keeps a final report sent on a stream until the leader confirms storing it.
fn await_ack(unacked: &UnackedReports, execution: rkron_core::Execution) {
    if let Ok(mut unacked) = unacked.lock() {
        unacked.insert(
            execution.id(),
            Unacked {
                execution,
                sent_at: Instant::now(),
            },
        );
    }
}

/// Every second, offers the final reports that waited [`ACK_WAIT`] for the leader's
/// confirmation to the servers again (a leader that died between reading a report and storing
/// it never confirms; the next leader records it, and a leader that had stored it ignores it).
async fn offer_unacked(unacked: UnackedReports, servers: Option<ServerAddresses>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let due: Vec<rkron_core::Execution> = match unacked.lock() {
            Ok(mut unacked) => {
                let ids: Vec<String> = unacked
                    .iter()
                    .filter(|(_, u)| u.sent_at.elapsed() >= ACK_WAIT)
                    .map(|(id, _)| id.clone())
                    .collect();
                ids.iter()
                    .filter_map(|id| unacked.remove(id))
                    .map(|u| u.execution)
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        for execution in due {
            tracing::warn!(execution = %execution.id(), "the leader did not confirm storing a final report; offering it to the servers again");
            tokio::spawn(report_elsewhere(execution, servers.clone()));
        }
    }
}

/// Waits for the run's end after its stream broke, then reports it to any server.
async fn finish_elsewhere(
    mut run_events: mpsc::Receiver<RunEvent>,
    servers: Option<ServerAddresses>,
) {
    while let Some(event) = run_events.recv().await {
        if let RunEvent::Finished(execution) = event {
            report_elsewhere(execution, servers).await;
            return;
        }
    }
}

/// Offers a final report to every live server in turn, every [`REPORT_RETRY`], until one takes
/// it (the leader, which records it) or [`REPORT_GIVE_UP`] passes. Dkron's agent does the same
/// with `ExecutionDone` when the leader's stream is gone.
async fn report_elsewhere(execution: rkron_core::Execution, servers: Option<ServerAddresses>) {
    let id = execution.id();
    let Some(servers) = servers else {
        tracing::error!(execution = %id, "the final report is lost: this node knows no server to send it to");
        return;
    };
    let request = proto::ExecutionDoneRequest {
        execution: Some(execution_to_proto(&execution)),
    };
    let give_up = Instant::now() + REPORT_GIVE_UP;
    let mut rounds = 0u32;
    while Instant::now() < give_up {
        rounds += 1;
        for address in servers() {
            match report_to(address, request.clone()).await {
                Ok(()) => {
                    tracing::info!(execution = %id, server = %address, rounds, "final report delivered to a server");
                    return;
                }
                Err(status) if status.code() == tonic::Code::NotFound => {
                    tracing::warn!(execution = %id, server = %address, %status, "final report refused; dropped");
                    return;
                }
                Err(status) => {
                    tracing::debug!(execution = %id, server = %address, %status, "server did not take the final report");
                }
            }
        }
        if rounds == 1 {
            tracing::warn!(execution = %id, "no server took the final report yet; retrying every {}s", REPORT_RETRY.as_secs());
        }
        tokio::time::sleep(REPORT_RETRY).await;
    }
    tracing::error!(execution = %id, "no server took the final report within {}s; it is lost", REPORT_GIVE_UP.as_secs());
}

async fn report_to(
    address: SocketAddr,
    request: proto::ExecutionDoneRequest,
) -> Result<(), Status> {
    let call = async {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|error| Status::internal(error.to_string()))?
            .connect_timeout(REPORT_TIMEOUT);
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?;
        proto::agent_service_client::AgentServiceClient::new(channel)
            .execution_done(request)
            .await
            .map(|_| ())
    };
    tokio::time::timeout(REPORT_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("server did not answer in time")))
}

/// Sends `bytes` in chunks of at most [`OUTPUT_CHUNK`]; returns false if the stream is gone.
async fn send_output(stream: &StreamSender, bytes: Vec<u8>) -> bool {
    for chunk in bytes.chunks(OUTPUT_CHUNK) {
        let output = Event::Output(proto::Output {
            chunk: chunk.to_vec(),
        });
        if !send(stream, output).await {
            return false;
        }
    }
    true
}

/// How much of an [`OutputBuffer`] was already sent.
///
/// The buffer offers its tail as text and a count of bytes ever written, so the new bytes are
/// the last `written - sent` bytes of the tail. That is exact for UTF-8 output; for other bytes
/// the text's replacement characters make the chunks approximate, which only affects progress:
/// the final report carries the agent's own output.
#[derive(Debug, Default)]
struct OutputCursor {
    sent: u64,
}

impl OutputCursor {
    /// Returns the number of bytes written since the last chunk.
    fn pending(&self, output: &OutputBuffer) -> u64 {
        output.total_written().saturating_sub(self.sent)
    }

    /// Returns the bytes written since the last call (empty if none) and marks them sent.
    fn take_new(&mut self, output: &OutputBuffer) -> Vec<u8> {
        // A push between reading the count and the text would shift the slice: read the
        // count on both sides and retry if it moved.
        for _ in 0..3 {
            let written = output.total_written();
            if written == self.sent {
                return Vec::new();
            }
            let text = output.snapshot();
            if output.total_written() != written {
                continue;
            }
            let new = usize::try_from(written - self.sent).unwrap_or(usize::MAX);
            let mut bytes = text.into_bytes();
            let start = bytes.len().saturating_sub(new);
            self.sent = written;
            return bytes.split_off(start);
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_returns_only_new_output() {
        let output = OutputBuffer::new();
        let mut cursor = OutputCursor::default();
        assert!(cursor.take_new(&output).is_empty());
        output.push(b"one\n");
        assert_eq!(cursor.pending(&output), 4);
        assert_eq!(cursor.take_new(&output), b"one\n");
        assert_eq!(cursor.pending(&output), 0);
        output.push(b"two\n");
        output.push(b"three\n");
        assert_eq!(cursor.take_new(&output), b"two\nthree\n");
        assert!(cursor.take_new(&output).is_empty());
    }

    #[test]
    fn the_cursor_sends_the_tail_when_output_overflowed() {
        let output = OutputBuffer::new();
        let mut cursor = OutputCursor::default();
        output.push(&vec![b'a'; rkron_executor::OUTPUT_LIMIT + 10]);
        let bytes = cursor.take_new(&output);
        assert_eq!(bytes.len(), rkron_executor::OUTPUT_LIMIT);
    }
}
