//! rkron-node owns the runtime of a node: its role, the scheduler driver, dispatch through the
//! node-run interface, execution recording and orderly shutdown.
//!
//! ```text
//!  API ──► NodeHandle ──► jobs (validate, merge, CAS write) ──► Store
//!                 │                    │ notice
//!                 ▼                    ▼
//!             run now ──────────► Scheduler (leader only: ScheduleIndex, due fires)
//!                                      │ fire: runnable check, targets by tags
//!                                      ▼
//!                               dispatch ──AgentRun──► AgentRunner (LocalAgent / RPC)
//!                                      ▲                      │ Started / Finished
//!                                      └──── record (Store) ◄─┘ retries, children, ephemeral
//! ```

mod agent;
mod dispatch;
mod error;
mod jobs;
mod journal;
mod member;
mod scheduler;
mod watchdog;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rkron_core::{Clock, Execution};
use rkron_executor::{ExecutorRegistry, OutputBuffer};
use rkron_notify::{Notifier, NotifySettings};
use rkron_processor::ProcessorRegistry;
use rkron_store::Store;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use agent::{
    AcceptedRun, AgentRun, AgentRunner, LocalAgent, RECENT_RUNS_KEPT, RecentRuns, RunError,
    RunEvent,
};
pub use dispatch::KILLED_BY_REQUEST;
pub use error::NodeError;
pub use jobs::{JobCounts, JobQuery, SortField};
pub use member::{Member, MemberStatus, node_tags};

/// Everything a node needs to know about itself.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_name: String,
    pub server: bool,
    pub region: String,
    pub datacenter: String,
    /// User tags (reserved tags are added by the node).
    pub tags: BTreeMap<String, String>,
    /// Advertised address of this node (IP) and gossip port.
    pub advertise_ip: String,
    pub advertise_port: u16,
    /// Advertised RPC port.
    pub rpc_port: u16,
    /// Executions kept per job.
    pub execution_retention: usize,
    /// How long running executions may finish after a shutdown request before being killed.
    pub shutdown_grace_period: Duration,
    /// The software version shown in tags and `/v1`.
    pub version: String,
    /// How long past its timeout a run may go without a final report before the watchdog
    /// kills it, and again before it is recorded as failed.
    pub report_margin: Duration,
    /// The leadership lease's time to live: a leader that cannot renew stops dispatching
    /// within three quarters of it, and another server takes over once it expired.
    pub lease_ttl: Duration,
    /// How often the leader re-reads every job from the store, to pick up changes whose notice
    /// from another server was lost; `None` when this server is the store's only writer.
    pub resync_period: Option<Duration>,
    /// How many execution records this server may be writing to the store at once; `None`
    /// for no bound. On a shared store the records of a burst otherwise queue inside the store
    /// ahead of the leader's lease renewals and ledger writes, and a leader whose store is
    /// overloaded steps down again and again instead of running late; bounded, the backlog
    /// waits here and the lease's requests find a short queue.
    pub record_concurrency: Option<usize>,
    /// How long after start-up a server waits before recording, as failed, the scheduled runs
    /// its previous process accepted (journal) and nobody recorded: long enough for a leader
    /// that saw the run's stream break to have recorded it first.
    pub unreported_grace: Duration,
    /// How long after start-up this server waits before it campaigns for the leadership. Its
    /// member list comes from gossip and lacks most of the cluster until it has heard from
    /// it; a new leader asks the members in that list which fires its predecessor handed out,
    /// so one that led at once (a killed leader restarted by its service manager takes its
    /// own lease back) would run again a fire a member it does not know yet already ran.
    /// Zero for a server that joins nobody.
    pub view_settle: Duration,
}

/// The [`NodeConfig::record_concurrency`] of servers on a shared store: enough requests in
/// flight to keep a store's batching busy, few enough that a request joining the queue waits
/// for at most this many writes.
pub const SHARED_STORE_RECORD_CONCURRENCY: usize = 64;

/// The default [`NodeConfig::lease_ttl`]: 10 s, renewed every 3.3 s. Short enough for a
/// takeover within seconds, long enough that a store's GC pause or a slow fsync does not
/// depose a healthy leader.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

impl NodeConfig {
    /// A configuration for tests: one server named `name` with fast timings.
    pub fn for_test(name: &str) -> Self {
        Self {
            node_name: name.into(),
            server: true,
            region: "global".into(),
            datacenter: "dc1".into(),
            tags: BTreeMap::new(),
            advertise_ip: "127.0.0.1".into(),
            advertise_port: 8946,
            rpc_port: 6868,
            execution_retention: 100,
            shutdown_grace_period: Duration::from_secs(2),
            version: env!("CARGO_PKG_VERSION").into(),
            report_margin: Duration::from_secs(1),
            lease_ttl: DEFAULT_LEASE_TTL,
            resync_period: None,
            record_concurrency: None,
            unreported_grace: Duration::from_millis(500),
            view_settle: Duration::ZERO,
        }
    }
}

/// How long after start-up a run on a node absent from the member list is still waited for:
/// gossip needs a few rounds to list every member after a restart.
pub(crate) const MEMBER_GRACE: Duration = Duration::from_secs(60);

/// Tells the leader that a job changed, when the change was written through another server.
#[async_trait::async_trait]
pub trait LeaderNotices: Send + Sync + std::fmt::Debug + 'static {
    /// Tells `leader` that job `job` was written (created, updated or deleted).
    async fn job_changed(&self, leader: &Member, job: &str);

    /// Asks `leader` for the executions running now, with their output so far; `None` when
    /// it cannot be asked.
    async fn busy(&self, _leader: &Member) -> Option<Vec<Execution>> {
        None
    }
}

/// What a node needs from the cluster: its own agent, the runner that reaches every member,
/// and the member list as gossip maintains it.
#[derive(Debug, Clone)]
pub struct ClusterParts {
    /// This node's agent (runs jobs here).
    pub agent: LocalAgent,
    /// Carries runs to members: this node's agent for itself, RPC for the others.
    pub runner: Arc<dyn AgentRunner>,
    /// The member list, this node included, updated as gossip learns.
    pub members: watch::Receiver<Vec<Member>>,
    /// How job changes made on this server reach the leader when it is another server.
    pub notices: Option<Arc<dyn LeaderNotices>>,
}

/// Meta key of the cluster-wide pause flag.
const META_PAUSED: &str = "paused";

/// A run in progress as the leader tracks it.
#[derive(Debug, Clone)]
struct ActiveRun {
    execution: Execution,
    output: OutputBuffer,
    /// When the run must have reported by: its executor timeout plus a margin; `None` when the
    /// job sets no timeout (a run may legitimately take forever).
    report_by: Option<DateTime<Utc>>,
    /// Whether the watchdog already asked the node to kill it.
    kill_sent: bool,
}

#[derive(Debug)]
struct Inner {
    config: NodeConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    runner: Arc<dyn AgentRunner>,
    processors: ProcessorRegistry,
    notifier: Notifier,
    agent: LocalAgent,
    self_member: Member,
    /// The cluster members as gossip sees them (this node alone without a cluster).
    members: watch::Receiver<Vec<Member>>,
    notices: Option<Arc<dyn LeaderNotices>>,
    /// When this node started: a run on a node that membership has not listed for
    /// [`MEMBER_GRACE`] since then is failed by the watchdog.
    started: tokio::time::Instant,
    scheduler_tx: mpsc::UnboundedSender<scheduler::Msg>,
    active: Mutex<HashMap<String, ActiveRun>>,
    /// Until when this server surely holds the leadership lease (`None`: it does not lead).
    lease_until: Mutex<Option<tokio::time::Instant>>,
    /// The lease token of the latest tenure this server held (0: never led); scheduled runs
    /// carry it to their nodes, which refuse runs of deposed leaders.
    lease_token: std::sync::atomic::AtomicU64,
    /// Finished executions whose final report is being stored right now.
    recording: Mutex<std::collections::HashSet<String>>,
    /// Bounds the execution records being written at once ([`NodeConfig::record_concurrency`]).
    record_gate: Option<tokio::sync::Semaphore>,
    /// Runs sent to a node whose start is not reported yet, per job (for `forbid`).
    sent: Mutex<HashMap<String, usize>>,
    paused: std::sync::atomic::AtomicBool,
    /// Set once the scheduler has indexed every job and applied the catch-up: from then on
    /// this server leads (dispatches scheduled runs).
    scheduling: std::sync::atomic::AtomicBool,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

/// The pluggable parts a node runs jobs with.
#[derive(Debug, Clone)]
pub struct Plugins {
    /// Executors by name (`shell`, `http`).
    pub executors: ExecutorRegistry,
    /// Processors applied to finished executions on the leader (`log`, `files`, …).
    pub processors: ProcessorRegistry,
    /// E-mail and webhook notifications.
    pub notifier: Notifier,
}

impl Plugins {
    /// The built-in executors and processors, for a node named `node_name`.
    pub fn builtins(node_name: &str) -> Self {
        Self {
            executors: ExecutorRegistry::with_builtins(),
            processors: ProcessorRegistry::with_builtins(rkron_processor::ProcessorSettings {
                node_name: node_name.to_owned(),
                ..Default::default()
            }),
            notifier: Notifier::new(NotifySettings::default()),
        }
    }
}

impl Inner {
    /// Whether a finished execution of `job` may notify anyone.
    fn plugins_notify(&self, job: &rkron_core::Job) -> bool {
        self.notifier.may_notify(job)
    }
}

/// A running node.
#[derive(Debug)]
pub struct Node;

impl Node {
    /// Starts a node: loads state from the store, starts the scheduler (this server leads:
    /// the embedded store allows one server) and returns the handle the API uses.
    pub async fn start(
        config: NodeConfig,
        store: Arc<dyn Store>,
        plugins: Plugins,
        clock: Arc<dyn Clock>,
    ) -> Result<NodeHandle, NodeError> {
        Self::start_with_runner(config, store, plugins, clock, None).await
    }

    /// Starts a node whose runs go through `runner` instead of this node's own agent (the
    /// cluster's RPC runner; tests use a runner whose node never answers).
    pub async fn start_with_runner(
        config: NodeConfig,
        store: Arc<dyn Store>,
        plugins: Plugins,
        clock: Arc<dyn Clock>,
        runner: Option<Arc<dyn AgentRunner>>,
    ) -> Result<NodeHandle, NodeError> {
        let self_member = self_member(&config);
        let agent = LocalAgent::new(
            config.node_name.clone(),
            plugins.executors.clone(),
            clock.clone(),
        );
        // Nothing changes a lone node's member list: the receiver keeps the last value.
        let (_, members) = watch::channel(vec![self_member]);
        let parts = ClusterParts {
            runner: runner.unwrap_or_else(|| Arc::new(agent.clone())),
            agent,
            members,
            notices: None,
        };
        Self::start_in_cluster(config, store, plugins, clock, parts).await
    }

    /// Starts a server that is a member of a cluster: runs go to the members gossip lists,
    /// through `parts.runner`.
    pub async fn start_in_cluster(
        config: NodeConfig,
        store: Arc<dyn Store>,
        plugins: Plugins,
        clock: Arc<dyn Clock>,
        parts: ClusterParts,
    ) -> Result<NodeHandle, NodeError> {
        let self_member = self_member(&config);
        let paused = store
            .get_meta(META_PAUSED)
            .await?
            .is_some_and(|v| v == "true");
        let (scheduler_tx, scheduler_rx) = mpsc::unbounded_channel();
        let record_gate = config
            .record_concurrency
            .map(|permits| tokio::sync::Semaphore::new(permits.max(1)));
        let inner = Arc::new(Inner {
            runner: parts.runner,
            processors: plugins.processors,
            notifier: plugins.notifier,
            agent: parts.agent,
            config,
            store,
            clock,
            members: parts.members,
            notices: parts.notices,
            started: tokio::time::Instant::now(),
            self_member,
            scheduler_tx,
            active: Mutex::new(HashMap::new()),
            recording: Mutex::default(),
            record_gate,
            lease_until: Mutex::new(None),
            lease_token: std::sync::atomic::AtomicU64::new(0),
            sent: Mutex::new(HashMap::new()),
            paused: paused.into(),
            scheduling: false.into(),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        });
        let handle = NodeHandle {
            inner: inner.clone(),
        };
        handle.recover_interrupted().await?;
        let inherited = inner.agent.take_inherited();
        if !inherited.is_empty() {
            inner.tasks.spawn(record_unreported(
                inner.clone(),
                inherited,
                inner.shutdown.child_token(),
            ));
        }
        let scheduler = scheduler::Scheduler::new(inner.clone());
        let token = inner.shutdown.child_token();
        inner.tasks.spawn(scheduler.run(scheduler_rx, token));
        inner
            .tasks
            .spawn(watchdog::run(inner.clone(), inner.shutdown.child_token()));
        Ok(handle)
    }
}

/// Records as failed each scheduled run an earlier process of this node accepted (its journal
/// names it) of which no execution on this node is stored, after
/// [`NodeConfig::unreported_grace`]. Such a run's process stopped (killed, crashed) after
/// taking it and before anything recorded it; no leader runs it again, since this node says
/// it took it (at most once), so without this record it would vanish without a trace. Whether
/// its command ran is unknown, and the record says so.
async fn record_unreported(inner: Arc<Inner>, runs: Vec<AcceptedRun>, cancel: CancellationToken) {
    tokio::select! {
        () = cancel.cancelled() => return,
        () = tokio::time::sleep(inner.config.unreported_grace) => {}
    }
    let mut by_job: BTreeMap<String, Vec<DateTime<Utc>>> = BTreeMap::new();
    for (job, at) in runs {
        by_job.entry(job).or_default().push(at);
    }
    let me = inner.config.node_name.clone();
    let mut recorded: Vec<(String, DateTime<Utc>)> = Vec::new();
    for (name, mut instants) in by_job {
        if cancel.is_cancelled() {
            return;
        }
        let stored = match inner.store.list_executions(&name, false).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "could not read executions to find runs left unrecorded by this node's previous process");
                continue;
            }
        };
        let job = match inner.store.get_job(&name).await {
            Ok(Some(job)) => Arc::new(job.value),
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "could not read a job to record a run left unrecorded");
                continue;
            }
        };
        instants.sort();
        instants.dedup();
        for at in instants {
            let known = stored
                .iter()
                .any(|e| e.scheduled_at == Some(at) && e.node_name == me);
            if known {
                continue;
            }
            let execution = Execution {
                job_name: name.clone(),
                started_at: at,
                finished_at: Some(inner.clock.now()),
                success: false,
                output: "rkron: this node accepted the run and stopped (killed or crashed) before \
                         it was recorded; whether its command ran is unknown. Recorded as failed \
                         when the node started again."
                    .to_owned(),
                node_name: me.clone(),
                group: rkron_core::execution::unix_nanos(at),
                attempt: 1,
                scheduled_at: Some(at),
            };
            dispatch::record_finished(&inner, &job, execution).await;
            recorded.push((name.clone(), at));
        }
    }
    if let Some((job, at)) = recorded.first() {
        tracing::warn!(
            runs = recorded.len(),
            first_job = %job,
            first_scheduled_at = %at,
            "scheduled runs this node's previous process accepted and nobody recorded were \
             recorded as failed (outcome unknown)"
        );
    }
}

/// This node as a member, with its reserved tags.
fn self_member(config: &NodeConfig) -> Member {
    let rpc_addr = format!("{}:{}", config.advertise_ip, config.rpc_port);
    let tags = node_tags(
        &config.tags,
        config.server,
        &config.datacenter,
        &config.region,
        &config.version,
        &rpc_addr,
        config.rpc_port,
    );
    Member {
        name: config.node_name.clone(),
        addr: config.advertise_ip.clone(),
        port: config.advertise_port,
        tags,
        status: MemberStatus::Alive,
    }
}

/// The narrow surface the API uses: jobs, runs, executions, members, leader, shutdown.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    inner: Arc<Inner>,
}

impl NodeHandle {
    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.inner.config.node_name
    }

    /// The version this node runs.
    pub fn version(&self) -> &str {
        &self.inner.config.version
    }

    /// This node's tags (reserved and user).
    pub fn tags(&self) -> &BTreeMap<String, String> {
        &self.inner.self_member.tags
    }

    /// The current instant, from the node's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The cluster members known to this node, sorted by name.
    pub fn members(&self) -> Vec<Member> {
        self.inner.members.borrow().clone()
    }

    /// The current leader, if any: this server once its scheduler has loaded every job, else
    /// the holder of the store's lease, as the member list shows it.
    pub async fn leader(&self) -> Option<Member> {
        let name = if self.is_leader() {
            self.inner.config.node_name.clone()
        } else {
            match self.inner.store.current_lease().await {
                Ok(Some(lease)) => lease.holder,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the lease to find the leader");
                    return None;
                }
            }
        };
        let listed = self
            .inner
            .members
            .borrow()
            .iter()
            .find(|m| m.name == name)
            .cloned();
        if let Some(member) = listed {
            return Some(member);
        }
        if name == self.inner.config.node_name {
            return Some(self.inner.self_member.clone());
        }
        // The holder is not in the member list (yet): name it without gossip details.
        Some(Member {
            name,
            addr: String::new(),
            port: 0,
            tags: BTreeMap::new(),
            status: MemberStatus::Alive,
        })
    }

    /// Applies a job change another server wrote (its notice came over RPC): the job is read
    /// back from the store and rescheduled, or unscheduled if it is gone.
    pub async fn job_changed(&self, name: &str) -> Result<(), NodeError> {
        let msg = match self.inner.store.get_job(name).await? {
            Some(job) => scheduler::Msg::Upsert(Box::new(job.value)),
            None => scheduler::Msg::Remove(name.to_owned()),
        };
        let _ = self.inner.scheduler_tx.send(msg);
        Ok(())
    }

    /// Whether this node leads: it is a server, its scheduler is running, and its lease is
    /// surely still held (a leader cut off from its store stops saying so before the lease can
    /// expire and another server take over).
    pub fn is_leader(&self) -> bool {
        self.inner.config.server
            && self
                .inner
                .scheduling
                .load(std::sync::atomic::Ordering::SeqCst)
            && self
                .inner
                .lease_until
                .lock()
                .is_ok_and(|until| until.is_some_and(|t| tokio::time::Instant::now() < t))
    }

    /// Whether job submissions are paused. The flag lives in the store, so every server sees
    /// a pause set through any of them; when the store cannot be read, the last value this
    /// server saw answers.
    pub async fn is_paused(&self) -> bool {
        match self.inner.store.get_meta(META_PAUSED).await {
            Ok(value) => {
                let paused = value.is_some_and(|v| v == "true");
                self.inner
                    .paused
                    .store(paused, std::sync::atomic::Ordering::SeqCst);
                paused
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the pause flag; using the last one seen");
                self.inner.paused.load(std::sync::atomic::Ordering::SeqCst)
            }
        }
    }

    /// Pauses or resumes job submissions; persisted in the store.
    pub async fn set_paused(&self, paused: bool) -> Result<bool, NodeError> {
        self.inner
            .store
            .put_meta(META_PAUSED, if paused { "true" } else { "false" })
            .await?;
        self.inner
            .paused
            .store(paused, std::sync::atomic::Ordering::SeqCst);
        Ok(paused)
    }

    /// Executions running now across the cluster, oldest first, each with the output so far:
    /// the runs this server dispatched (manual runs can be dispatched by any server) and, when
    /// another server leads, the leader's (asked over RPC).
    pub async fn busy_in_cluster(&self) -> Vec<Execution> {
        let mut list = self.busy();
        if self.is_leader() {
            return list;
        }
        let (Some(notices), Some(leader)) = (self.inner.notices.clone(), self.leader().await)
        else {
            return list;
        };
        if leader.name == self.inner.config.node_name {
            return list;
        }
        let mine: std::collections::HashSet<String> = list.iter().map(Execution::id).collect();
        list.extend(
            notices
                .busy(&leader)
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|e| !mine.contains(&e.id())),
        );
        list.sort_by(|a, b| (a.started_at, &a.node_name).cmp(&(b.started_at, &b.node_name)));
        list
    }

    /// Executions running now (on the nodes this leader dispatched to), oldest first, each with
    /// the output accumulated so far.
    pub fn busy(&self) -> Vec<Execution> {
        let active = self
            .inner
            .active
            .lock()
            .map(|a| a.values().cloned().collect::<Vec<_>>());
        let mut list: Vec<Execution> = active
            .unwrap_or_default()
            .into_iter()
            .map(|run| {
                let mut e = run.execution;
                e.output = run.output.snapshot();
                e
            })
            .collect();
        list.sort_by(|a, b| (a.started_at, &a.node_name).cmp(&(b.started_at, &b.node_name)));
        list
    }

    /// Stops the node in order: the scheduler stops, running executions get the grace period,
    /// then are killed and recorded as failed; every pending store write completes.
    pub async fn shutdown(&self) {
        tracing::info!("shutting down: scheduler stops, running executions drain");
        self.inner.shutdown.cancel();
        self.inner
            .agent
            .drain(self.inner.config.shutdown_grace_period)
            .await;
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        tracing::info!("shutdown complete");
    }

    /// Marks executions that were running on this node when it last stopped (a crash or
    /// kill -9) as failed, so that `forbid` is never blocked by a stale record. Executions
    /// running on other nodes are adopted: their node reports them to this server when they
    /// finish, and the watchdog fails them if the node is gone or misses the job's timeout.
    async fn recover_interrupted(&self) -> Result<(), NodeError> {
        let stale = self.inner.store.running_executions().await?;
        for mut e in stale {
            if e.node_name != self.inner.config.node_name {
                let job = self.inner.store.get_job(&e.job_name).await?;
                let report_by = job.as_ref().and_then(|j| {
                    watchdog::report_by(&j.value, e.started_at, self.inner.config.report_margin)
                });
                if let Ok(mut active) = self.inner.active.lock() {
                    active.insert(
                        e.id(),
                        ActiveRun {
                            output: OutputBuffer::new(),
                            execution: e,
                            report_by,
                            kill_sent: false,
                        },
                    );
                }
                continue;
            }
            e.finished_at = Some(self.now());
            e.success = false;
            e.output.push_str("\nrkron: the node stopped while this execution was running; it was recorded as failed on restart");
            self.inner
                .store
                .finish_execution(&e, self.inner.config.execution_retention)
                .await?;
        }
        Ok(())
    }

    /// Records the final report of a run that reached this server outside its run stream: the
    /// node lost the stream (this server restarted, or the connection broke) and reported to
    /// any server. A report for a run already recorded as finished is ignored.
    pub async fn report_finished(&self, execution: Execution) -> Result<(), NodeError> {
        let id = execution.id();
        if self
            .inner
            .recording
            .lock()
            .is_ok_and(|recording| recording.contains(&id))
        {
            tracing::debug!(execution = %id, "report of an execution being recorded; ignored");
            return Ok(());
        }
        let was_active = self
            .inner
            .active
            .lock()
            .map(|mut a| a.remove(&id).is_some())
            .unwrap_or(false);
        if !was_active {
            match self
                .inner
                .store
                .get_execution(&execution.job_name, &id)
                .await?
            {
                Some(stored) if stored.finished_at.is_some() => {
                    tracing::info!(execution = %id, "report of an execution already recorded as finished; ignored");
                    return Ok(());
                }
                _ => {}
            }
        }
        let Some(job) = self.inner.store.get_job(&execution.job_name).await? else {
            return Err(NodeError::JobNotFound);
        };
        tracing::info!(execution = %id, node = %execution.node_name, "final report received outside the run stream");
        dispatch::record_finished(&self.inner, &Arc::new(job.value), execution).await;
        Ok(())
    }
}
