//! Scenario `ha` (issue 5): three `rkron agent --server` processes sharing one store (a real
//! etcd, Redis, ZooKeeper and DynamoDB (moto) in turn, each started by the bench on 127.0.0.1;
//! `--backends` picks some) and plain agents, all with the `local` gossip profile.
//!
//! 1. Takeover: the leader (the server whose `GET /v1/isleader` answers 200) is killed with
//!    SIGKILL, again and again; the figure is the time from the kill until another server
//!    answers 200. The killed server is restarted (joining a live server's gossip) before the
//!    next kill. Ten `@every 1s` probe jobs run on the agent meanwhile, and their records show
//!    whether any instant ran twice or was lost.
//! 2. Sustained fires (etcd and Redis only): many `@every 1s` http jobs on the agent for a window
//!    of whole seconds: executions recorded per second, start lag, missed and duplicated fires.
//! 3. Store requests per fire (etcd and Redis only): the store's own counters (etcd's Prometheus
//!    metrics, Redis's `INFO commandstats`) over the same window, less the background measured
//!    while idle, divided by the fires.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rkron_api_types::{ExecutionOut, MemberOut, MissedOut};
use tokio::process::{Child, Command};

use crate::cluster::{self, Agent};
use crate::fire::{self, Target};
use crate::jobs::{self, Executor};
use crate::load::{self, LoadResult};
use crate::report::{Section, duration, median, millis, rate, thousands};
use crate::server;
use crate::stores::{Backend, Ops, StoreProcess};
use crate::{BenchResult, Context};

/// The servers' node names.
const SERVERS: [&str; 3] = ["s1", "s2", "s3"];
/// The gossip timing profile every node runs with.
const PROFILE: &str = "local";
/// The short lease of the takeover runs.
const SHORT_TTL: Ttl = Ttl {
    flag: Some("3s"),
    seconds: 3.0,
};
/// rkron's default lease (no `--lease-ttl` flag).
const DEFAULT_TTL: Ttl = Ttl {
    flag: None,
    seconds: 10.0,
};
/// Kills with the short lease (full, quick).
const SHORT_TTL_KILLS: (usize, usize) = (10, 2);
/// Kills with the default lease (full, quick).
const DEFAULT_TTL_KILLS: (usize, usize) = (3, 1);
/// The takeover target: at most the TTL plus this.
const TAKEOVER_SLACK: Duration = Duration::from_secs(2);
/// Probe jobs `@every 1s` that run on the agent while the leaders are killed.
const PROBE_JOBS: usize = 10;
/// Time the probe jobs fire before the first kill.
const PROBE_WARMUP: Duration = Duration::from_secs(3);
/// After the last kill: time for the last catch-up to be recorded and for an agent to offer
/// again a report the killed leader read but never stored (after 10 s unconfirmed).
const FINAL_SETTLE: Duration = Duration::from_secs(12);
/// How often `/v1/isleader` is polled while nobody leads.
const LEADER_POLL: Duration = Duration::from_millis(20);
/// How often every server is polled for two leaders while the cluster settles.
const WATCH_POLL: Duration = Duration::from_millis(100);
/// How long a takeover may take before the kill counts as "nobody took over".
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(60);
/// Kills after which nobody took over, before the run is abandoned.
const MAX_FAILED_TAKEOVERS: usize = 2;
/// How long a server may take to answer `/health` after its spawn.
const UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fresh cluster may take to elect a leader and see every node alive.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);
/// Waited after the restarted server answers, before the next kill.
const AFTER_RESTART: Duration = Duration::from_secs(2);
/// How long a node may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// `@every 1s` jobs of the sustained runs (full, quick).
const FIRE_SIZES: [usize; 3] = [500, 1_000, 2_000];
const QUICK_FIRE_SIZES: [usize; 1] = [100];
/// Seconds of fires counted (full, quick).
const FIRE_SECONDS: (i64, i64) = (15, 5);
/// Agents of the sustained runs.
const FIRE_AGENTS: usize = 1;
/// From the last job creation to the first counted second, at least.
const FIRE_WARMUP: TimeDelta = TimeDelta::seconds(3);
/// Store counters, CPU and hits are read this long before the first and after the last counted
/// second: between bursts.
const SNAPSHOT_BEFORE: TimeDelta = TimeDelta::milliseconds(500);
/// Waited after the window before the records are read, so its last runs are recorded and an
/// agent has offered again any report a leader did not confirm (after 10 s).
const FIRE_SETTLE: Duration = Duration::from_secs(12);
/// The idle window over which the store's background requests are counted.
const IDLE: Duration = Duration::from_secs(5);
/// A run started later than this after its instant counts as late.
const LATE_MS: f64 = 1_000.0;
/// Job creations in flight.
const CREATE_CONCURRENCY: usize = 64;
/// Rounds of reading failed listings again.
const READ_RETRIES: usize = 5;
/// Record and missed listings in flight.
const READ_CONCURRENCY: usize = 32;
/// Log lines shown for a node that misbehaved.
const LOG_LINES: usize = 8;
/// Failed executions whose output is shown.
const FAILURE_EXAMPLES: usize = 3;
/// Lost (job, instant) pairs listed.
const LOST_EXAMPLES: usize = 12;
/// Store counters listed per fire.
const DETAIL_COUNTERS: usize = 8;

/// The log line in which a server names its HTTP address.
const HTTP_LINE: &str = "HTTP API listening on ";
/// The log line of a server that took the leadership lease.
const TOOK_LEASE: &str = "took the leadership lease";

/// A leadership lease setting.
#[derive(Debug, Clone, Copy)]
struct Ttl {
    /// The `--lease-ttl` value, none for the default.
    flag: Option<&'static str>,
    seconds: f64,
}

impl Ttl {
    fn label(self) -> String {
        match self.flag {
            Some(flag) => format!("lease-ttl {flag}"),
            None => format!("default lease-ttl ({}s)", self.seconds),
        }
    }

    fn duration(self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

/// The `host:port` logged after `marker` (the last such line).
fn logged_addr(log: &str, marker: &str) -> Option<String> {
    let rest = &log[log.rfind(marker)? + marker.len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    (!addr.is_empty()).then_some(addr)
}

/// One `rkron agent --server` on the shared store; it keeps its data dir across restarts and
/// writes one log per launch.
#[derive(Debug)]
struct HaServer {
    name: String,
    binary: PathBuf,
    data_dir: PathBuf,
    dir: PathBuf,
    args: Vec<String>,
    logs: Vec<PathBuf>,
    child: Option<Child>,
    base: Option<String>,
    gossip: Option<String>,
}

impl HaServer {
    fn new(binary: &Path, dir: &Path, name: &str, args: &[String]) -> Self {
        Self {
            name: name.to_owned(),
            binary: binary.to_owned(),
            data_dir: dir.join(format!("{name}-data")),
            dir: dir.to_owned(),
            args: args.to_vec(),
            logs: Vec::new(),
            child: None,
            base: None,
            gossip: None,
        }
    }

    /// Spawns the process, joining `join` when given; the HTTP, gossip and RPC ports are its own.
    fn spawn(&mut self, join: Option<&str>) -> BenchResult<()> {
        if self.child.is_some() {
            return Err(format!("{} is already running", self.name).into());
        }
        let log = self
            .dir
            .join(format!("{}-{}.log", self.name, self.logs.len() + 1));
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(&self.binary);
        command
            .args(["agent", "--server", "--node-name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--http-addr", "127.0.0.1:0"])
            .args(["--bind-addr", "127.0.0.1:0", "--rpc-port", "0"])
            .args(["--profile", PROFILE, "--log-level", "info"])
            .args(&self.args);
        if let Some(join) = join {
            command.args(["--join", join]);
        }
        let child = command
            .env_remove("RKRON_LOG_LEVEL")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()?;
        self.logs.push(log);
        self.child = Some(child);
        self.base = None;
        self.gossip = None;
        Ok(())
    }

    /// Waits until the process logged its addresses and `GET /health` answers 200.
    async fn wait_up(&mut self, http: &reqwest::Client) -> BenchResult<()> {
        let since = Instant::now();
        loop {
            if self.base.is_none() || self.gossip.is_none() {
                let log = self.log_text();
                self.base = logged_addr(&log, HTTP_LINE).map(|addr| format!("http://{addr}"));
                self.gossip = server::gossip_addr_in(&log);
            }
            if let Some(base) = &self.base
                && self.gossip.is_some()
                && matches!(http.get(format!("{base}/health")).send().await, Ok(r) if r.status().is_success())
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(format!(
                    "{} exited before it answered ({status}); log:\n{}",
                    self.name,
                    self.log_tail(LOG_LINES * 4)
                )
                .into());
            }
            if since.elapsed() > UP_TIMEOUT {
                return Err(format!(
                    "{} did not answer /health within {UP_TIMEOUT:?}; log:\n{}",
                    self.name,
                    self.log_tail(LOG_LINES * 4)
                )
                .into());
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
    }

    fn running(&self) -> bool {
        self.child.is_some()
    }

    /// `http://127.0.0.1:<port>` of the running process.
    fn base(&self) -> BenchResult<&str> {
        self.base
            .as_deref()
            .ok_or_else(|| format!("{} is not up", self.name).into())
    }

    fn pid(&self) -> Option<Pid> {
        let pid = self.child.as_ref()?.id()?;
        i32::try_from(pid).ok().map(Pid::from_raw)
    }

    /// Sends SIGKILL and reaps the process.
    async fn kill9(&mut self) -> BenchResult<()> {
        let pid = self
            .pid()
            .ok_or_else(|| format!("{} is not running", self.name))?;
        kill(pid, Signal::SIGKILL)?;
        if let Some(mut child) = self.child.take() {
            child.wait().await?;
        }
        self.base = None;
        Ok(())
    }

    /// Sends SIGTERM (when the process still runs).
    fn terminate(&mut self) -> BenchResult<()> {
        if let Some(pid) = self.pid() {
            kill(pid, Signal::SIGTERM)?;
        }
        Ok(())
    }

    /// Waits for the exit after [`HaServer::terminate`]; kills the process after
    /// [`STOP_TIMEOUT`]. Answers a problem, if any.
    async fn wait_exit(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) if status.success() => None,
            Ok(Ok(status)) => Some(format!(
                "server {} exited with {status} after SIGTERM; log:\n{}",
                self.name,
                self.log_tail(LOG_LINES)
            )),
            Ok(Err(error)) => Some(format!("waiting for server {}: {error}", self.name)),
            Err(_) => {
                let _ = child.kill().await;
                Some(format!(
                    "server {} did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed",
                    self.name
                ))
            }
        }
    }

    /// CPU seconds (user + system) of the running process; 0 when it is gone.
    fn cpu_seconds(&self) -> f64 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .and_then(|pid| server::cpu_of(&format!("/proc/{pid}/stat")).ok())
            .map_or(0.0, |cpu| cpu.own)
    }

    /// The log of the current (last) launch.
    fn log_text(&self) -> String {
        self.logs
            .last()
            .and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default()
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// How many lines of every launch's log contain `needle`.
    fn count_in_logs(&self, needle: &str) -> usize {
        self.logs
            .iter()
            .filter_map(|log| std::fs::read_to_string(log).ok())
            .map(|text| text.lines().filter(|line| line.contains(needle)).count())
            .sum()
    }

    /// WARN and ERROR lines of every launch, prefixed by `name#launch`.
    fn problem_lines(&self) -> Vec<String> {
        self.logs
            .iter()
            .enumerate()
            .flat_map(|(i, log)| {
                server::problem_lines_of(log)
                    .into_iter()
                    .map(move |line| format!("{}#{}: {line}", self.name, i + 1))
            })
            .collect()
    }
}

/// Three servers on the shared store and their agents, all spawned by this process.
struct HaCluster {
    servers: Vec<HaServer>,
    agents: Vec<Agent>,
    /// Short timeouts, for `/health` and `/v1/isleader`.
    probe: reqwest::Client,
    /// Pooled, for benchmark traffic.
    api: reqwest::Client,
    /// Moments at which more than one server answered `/v1/isleader` 200.
    two_leaders: Vec<String>,
    /// Logs and data dirs; removed when the cluster is dropped.
    _dir: tempfile::TempDir,
}

impl HaCluster {
    /// Starts s1, then s2 and s3 joining s1's gossip, then `agents` agents; waits until one
    /// server leads and every node is alive in its member list.
    async fn start(
        context: &Context,
        store: &StoreProcess,
        keyspace: &str,
        ttl: Ttl,
        agents: usize,
    ) -> BenchResult<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rkron-bench-ha-")
            .tempdir()?;
        let mut args = store.rkron_args(keyspace);
        if let Some(flag) = ttl.flag {
            args.extend(["--lease-ttl".to_owned(), flag.to_owned()]);
        }
        let mut cluster = Self {
            servers: SERVERS
                .iter()
                .map(|name| HaServer::new(&context.rkron, dir.path(), name, &args))
                .collect(),
            agents: Vec::new(),
            probe: reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()?,
            api: server::http_client(),
            two_leaders: Vec::new(),
            _dir: dir,
        };
        cluster.servers[0].spawn(None)?;
        cluster.servers[0].wait_up(&cluster.probe).await?;
        let join = cluster.servers[0]
            .gossip
            .clone()
            .ok_or("s1 logged no gossip address")?;
        for server in &mut cluster.servers[1..] {
            server.spawn(Some(&join))?;
        }
        for i in 1..cluster.servers.len() {
            let probe = cluster.probe.clone();
            cluster.servers[i].wait_up(&probe).await?;
        }
        for i in 1..=agents {
            cluster.agents.push(Agent::spawn(
                &context.rkron,
                cluster._dir.path(),
                &format!("a{i}"),
                &join,
            )?);
        }
        let leader = cluster.wait_leader(FORM_TIMEOUT).await?;
        cluster.converge(leader).await?;
        Ok(cluster)
    }

    /// The servers that answer `/v1/isleader` with 200 now (polled one after the other); more
    /// than one is recorded in [`HaCluster::two_leaders`].
    async fn leaders(&mut self) -> Vec<usize> {
        let mut leaders = Vec::new();
        for (i, server) in self.servers.iter().enumerate() {
            let Some(base) = server.base.as_deref().filter(|_| server.running()) else {
                continue;
            };
            if matches!(self.probe.get(format!("{base}/v1/isleader")).send().await, Ok(r) if r.status().as_u16() == 200)
            {
                leaders.push(i);
            }
        }
        if leaders.len() > 1 {
            let names: Vec<&str> = leaders
                .iter()
                .map(|i| self.servers[*i].name.as_str())
                .collect();
            self.two_leaders.push(format!(
                "{} at {}",
                names.join(" and "),
                Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
            ));
        }
        leaders
    }

    /// Polls until a server leads; answers it.
    async fn wait_leader(&mut self, timeout: Duration) -> BenchResult<usize> {
        let since = Instant::now();
        loop {
            if let Some(&leader) = self.leaders().await.first() {
                return Ok(leader);
            }
            if since.elapsed() > timeout {
                return Err(format!(
                    "no server answered /v1/isleader 200 within {timeout:?}; s1 log:\n{}",
                    self.servers[0].log_tail(LOG_LINES * 2)
                )
                .into());
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
    }

    /// Polls every server for `period`, so that two leaders at once would be seen.
    async fn watch(&mut self, period: Duration) {
        let since = Instant::now();
        while since.elapsed() < period {
            self.leaders().await;
            tokio::time::sleep(WATCH_POLL).await;
        }
    }

    /// Every node's name.
    fn names(&self) -> BTreeSet<String> {
        self.servers
            .iter()
            .map(|s| s.name.clone())
            .chain(self.agents.iter().map(|a| a.name.clone()))
            .collect()
    }

    /// Polls `leader`'s `/v1/members` until every node is alive (Status 1).
    async fn converge(&self, leader: usize) -> BenchResult<()> {
        let since = Instant::now();
        let names = self.names();
        let url = format!("{}/v1/members", self.servers[leader].base()?);
        loop {
            let alive: BTreeSet<String> = match self.api.get(&url).send().await {
                Ok(response) if response.status().is_success() => response
                    .json::<Vec<MemberOut>>()
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|m| m.status == 1)
                    .map(|m| m.name)
                    .collect(),
                _ => BTreeSet::new(),
            };
            if names.is_subset(&alive) {
                return Ok(());
            }
            if since.elapsed() > FORM_TIMEOUT {
                let absent: Vec<&String> = names.difference(&alive).collect();
                return Err(format!(
                    "not every node is alive in /v1/members after {FORM_TIMEOUT:?}: {absent:?} are not"
                )
                .into());
            }
            tokio::time::sleep(WATCH_POLL).await;
        }
    }

    /// Copies every node's logs to a directory that outlives the bench; answers its path.
    fn keep_logs(&self) -> BenchResult<PathBuf> {
        let kept = tempfile::Builder::new()
            .prefix("rkron-bench-ha-logs-")
            .tempdir()?
            .keep();
        for entry in std::fs::read_dir(self._dir.path())? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "log")
                && let Some(name) = path.file_name()
            {
                std::fs::copy(&path, kept.join(name))?;
            }
        }
        Ok(kept)
    }

    /// How many times a server took the leadership lease, from every launch's log.
    fn lease_takes(&self) -> usize {
        self.servers
            .iter()
            .map(|s| s.count_in_logs(TOOK_LEASE))
            .sum()
    }

    /// WARN and ERROR lines of every node's logs.
    fn problem_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .servers
            .iter()
            .flat_map(HaServer::problem_lines)
            .collect();
        for agent in &self.agents {
            lines.extend(
                server::problem_lines_of(&agent.log)
                    .into_iter()
                    .map(|line| format!("{}: {line}", agent.name)),
            );
        }
        lines
    }

    /// CPU seconds of the agents so far.
    fn agents_cpu_seconds(&self) -> f64 {
        self.agents.iter().map(Agent::cpu_seconds).sum()
    }

    /// Stops the agents, then the servers (SIGTERM, all at once); answers the problems seen.
    async fn stop(mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for agent in &mut self.agents {
            if let Err(error) = agent.terminate() {
                problems.push(format!("SIGTERM to agent {}: {error}", agent.name));
            }
        }
        for agent in &mut self.agents {
            problems.extend(agent.wait_exit().await);
        }
        for server in &mut self.servers {
            if let Err(error) = server.terminate() {
                problems.push(format!("SIGTERM to server {}: {error}", server.name));
            }
        }
        for server in &mut self.servers {
            problems.extend(server.wait_exit().await);
        }
        problems
    }
}

/// Runs the whole scenario on each of `backends` in turn (every one when empty): takeovers, then
/// the sustained fires where the store's counters are read (etcd and Redis).
pub(crate) async fn run(
    context: &Context,
    backends: &[Backend],
    parts: Parts,
) -> Vec<BenchResult<Section>> {
    let target = match Target::start().await {
        Ok(target) => target,
        Err(error) => return vec![Err(format!("cannot start the http target: {error}").into())],
    };
    let backends = if backends.is_empty() {
        &Backend::ALL[..]
    } else {
        backends
    };
    let mut sections = Vec::new();
    for &backend in backends {
        let mut store = match StoreProcess::start(backend).await {
            Ok(store) => store,
            Err(error) => {
                sections.push(Err(
                    format!("cannot start {}: {error}", backend.name()).into()
                ));
                continue;
            }
        };
        println!(
            "\n[ha] {} at {} (started by the bench)",
            backend.name(),
            store.machine()
        );
        let pick = |counts: (usize, usize)| if context.quick { counts.1 } else { counts.0 };
        let takeovers = if parts.takeover {
            vec![
                (SHORT_TTL, pick(SHORT_TTL_KILLS)),
                (DEFAULT_TTL, pick(DEFAULT_TTL_KILLS)),
            ]
        } else {
            Vec::new()
        };
        for (ttl, kills) in takeovers {
            sections.push(report(
                takeover(context, &store, &target, ttl, kills).await,
                &format!("{} takeover, {}", backend.name(), ttl.label()),
            ));
        }
        if !parts.sustained {
            store.stop().await;
            continue;
        }
        if !backend.has_counters() {
            println!(
                "\n[ha] {}: takeover only; the sustained fires and store requests per fire are measured on etcd and Redis only",
                backend.name()
            );
            store.stop().await;
            continue;
        }
        let sizes: &[usize] = if context.quick {
            &QUICK_FIRE_SIZES
        } else {
            &FIRE_SIZES
        };
        let seconds = if context.quick {
            FIRE_SECONDS.1
        } else {
            FIRE_SECONDS.0
        };
        for &count in sizes {
            sections.push(report(
                sustained(context, &store, &target, count, seconds).await,
                &format!("{} sustained fires, {count} jobs", backend.name()),
            ));
        }
        store.stop().await;
    }
    sections
}

/// Which parts of the scenario run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts {
    /// Takeovers after SIGKILL of the leader.
    pub(crate) takeover: bool,
    /// Sustained fires and store requests per fire.
    pub(crate) sustained: bool,
}

/// Prints a failed part at once (the summary comes at the end).
fn report(result: BenchResult<Section>, what: &str) -> BenchResult<Section> {
    if let Err(error) = &result {
        println!("\n[ha] {what} failed: {error}");
    }
    result
}

/// Reads `GET /v1/jobs/{job}/missed` of jobs `prefix-000001` … `prefix-<count>`.
async fn read_missed(
    http: &reqwest::Client,
    base: &str,
    prefix: &str,
    count: usize,
) -> (Vec<Option<MissedOut>>, LoadResult) {
    let slots: Arc<Mutex<Vec<Option<MissedOut>>>> = Arc::new(Mutex::new(vec![None; count]));
    let filled = slots.clone();
    let http = http.clone();
    let base = base.to_owned();
    let prefix = prefix.to_owned();
    let result = load::drive(count, READ_CONCURRENCY, move |i| {
        let request = http.get(format!(
            "{base}/v1/jobs/{}/missed",
            jobs::name(&prefix, i + 1)
        ));
        let filled = filled.clone();
        async move {
            let response = request
                .send()
                .await
                .map_err(|e| format!("transport: {e}"))?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
            }
            let missed: MissedOut =
                serde_json::from_slice(&body).map_err(|e| format!("bad JSON: {e}"))?;
            if let Ok(mut slots) = filled.lock() {
                slots[i] = Some(missed);
            }
            Ok(())
        }
    })
    .await;
    let missed = slots.lock().map(|s| s.clone()).unwrap_or_default();
    (missed, result)
}

/// Every job's records and missed list, as finally read.
struct ReadBack {
    records: Vec<Option<Vec<ExecutionOut>>>,
    missed: Vec<Option<MissedOut>>,
    /// Listings that failed at first and were read again.
    retried: usize,
    /// The first few errors.
    errors: Vec<String>,
}

/// Reads the records and missed lists of jobs `prefix-000001` …; listings that fail (the store
/// may still be working through a backlog) are read again, one at a time, up to
/// [`READ_RETRIES`] times a second apart.
async fn read_all(http: &reqwest::Client, base: &str, prefix: &str, count: usize) -> ReadBack {
    let (mut records, first) = fire::read_executions_at(http, base, prefix, count).await;
    let (mut missed, first_missed) = read_missed(http, base, prefix, count).await;
    let mut errors: Vec<String> = first
        .error_examples
        .into_iter()
        .chain(first_missed.error_examples)
        .collect();
    let mut retried = 0;
    for _ in 0..READ_RETRIES {
        let pending: Vec<usize> = (0..count)
            .filter(|i| records[*i].is_none() || missed[*i].is_none())
            .collect();
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        for i in pending {
            retried += 1;
            let job = jobs::name(prefix, i + 1);
            if records[i].is_none() {
                let body = get_body(http, &format!("{base}/v1/jobs/{job}/executions")).await;
                match body.and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
                    Ok(list) => records[i] = Some(list),
                    Err(error) => errors.push(error),
                }
            }
            if missed[i].is_none() {
                let body = get_body(http, &format!("{base}/v1/jobs/{job}/missed")).await;
                match body.and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
                    Ok(list) => missed[i] = Some(list),
                    Err(error) => errors.push(error),
                }
            }
        }
    }
    errors.truncate(FAILURE_EXAMPLES);
    ReadBack {
        records,
        missed,
        retried,
        errors,
    }
}

/// The body of `GET url`, which must answer 2xx.
async fn get_body(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(body.to_vec())
}

/// A note when listings had to be read again.
fn add_read_notes(section: &mut Section, read: &ReadBack) {
    if read.retried > 0 {
        section.note(format!(
            "{} listings failed at first and were read again; errors seen: {:?}",
            read.retried, read.errors
        ));
    }
}

/// What the records say about a set of `@every 1s` jobs over a set of instants.
#[derive(Debug, Default)]
struct Window {
    /// (job, instant) pairs due.
    due: usize,
    /// Finished executions for the instants.
    finished: usize,
    /// Executions for the instants without a finish.
    unfinished: usize,
    /// Pairs with more than one execution record.
    duplicated: usize,
    /// Pairs with more than one successful execution record.
    duplicated_successful: usize,
    /// Pairs listed missed (and not run).
    missed: usize,
    /// Pairs not run, not listed, but covered by the job's missed total (fires recorded missed
    /// only as a count, e.g. while the scheduler was behind).
    missed_counted: usize,
    /// Pairs listed missed and also run.
    missed_and_ran: usize,
    /// Pairs neither run nor recorded missed (listed or counted).
    lost: usize,
    /// The first few of them: `job @ instant`.
    lost_examples: Vec<String>,
    /// The first few pairs with more than one record, with each record.
    duplicate_examples: Vec<String>,
    /// Jobs whose records or missed list could not be read.
    unreadable: usize,
    /// Executions that started more than [`LATE_MS`] after their instant.
    late: usize,
    failed: usize,
    failures: Vec<String>,
    /// Sum of every job's missed total (all time).
    missed_total: u64,
    /// `started_at − scheduled_at`, ms, sorted.
    start_ms: Vec<f64>,
    /// `finished_at − scheduled_at`, ms, sorted.
    finish_ms: Vec<f64>,
    /// Executions per node.
    per_node: BTreeMap<String, usize>,
}

/// `a1 ok` or `a1 failed "rkron: …"`: one record of a duplicated pair.
fn record_text(execution: &ExecutionOut) -> String {
    if execution.success {
        format!("{} ok", execution.node_name)
    } else {
        let output: String = execution.output.chars().take(100).collect();
        format!("{} failed {output:?}", execution.node_name)
    }
}

/// Accounts for every `(job, instant)` of `instants` from the jobs' records and missed lists.
/// The jobs are `prefix-000001` … in the order of `records` and `missed`.
fn analyse(
    prefix: &str,
    records: &[Option<Vec<ExecutionOut>>],
    missed: &[Option<MissedOut>],
    instants: &BTreeSet<DateTime<Utc>>,
) -> Window {
    let mut window = Window::default();
    for (i, (list, missed)) in records.iter().zip(missed).enumerate() {
        let job = jobs::name(prefix, i + 1);
        window.due += instants.len();
        let (Some(list), Some(missed)) = (list, missed) else {
            window.unreadable += 1;
            continue;
        };
        window.missed_total += missed.total;
        // Missed fires the list does not name: counted only, or older than the list keeps.
        let mut unlisted =
            usize::try_from(missed.total).map_or(0, |t| t.saturating_sub(missed.recent.len()));
        let missed: BTreeSet<DateTime<Utc>> = missed
            .recent
            .iter()
            .filter_map(|t| fire::parse_time(t))
            .filter(|t| instants.contains(t))
            .collect();
        let mut ran: BTreeMap<DateTime<Utc>, Vec<&ExecutionOut>> = BTreeMap::new();
        for execution in list {
            let Some(scheduled) = execution
                .scheduled_at
                .as_deref()
                .and_then(fire::parse_time)
                .filter(|s| instants.contains(s))
            else {
                continue;
            };
            ran.entry(scheduled).or_default().push(execution);
            *window
                .per_node
                .entry(execution.node_name.clone())
                .or_default() += 1;
            if let Some(started) = fire::parse_time(&execution.started_at) {
                let lag = fire::ms_between(scheduled, started);
                if lag > LATE_MS {
                    window.late += 1;
                }
                window.start_ms.push(lag);
            }
            match fire::parse_time(&execution.finished_at) {
                Some(finished) => {
                    window.finished += 1;
                    window.finish_ms.push(fire::ms_between(scheduled, finished));
                }
                None => window.unfinished += 1,
            }
            if !execution.success {
                window.failed += 1;
                if window.failures.len() < FAILURE_EXAMPLES {
                    let output: String = execution.output.chars().take(300).collect();
                    window.failures.push(format!(
                        "{} on {}: {output:?}",
                        execution.job_name, execution.node_name
                    ));
                }
            }
        }
        for (t, runs) in ran.iter().filter(|(_, runs)| runs.len() > 1) {
            window.duplicated += 1;
            if runs.iter().filter(|e| e.success).count() > 1 {
                window.duplicated_successful += 1;
            }
            if window.duplicate_examples.len() < FAILURE_EXAMPLES {
                window.duplicate_examples.push(format!(
                    "{job} @ {}: {}",
                    t.to_rfc3339_opts(SecondsFormat::Secs, true),
                    runs.iter()
                        .map(|e| record_text(e))
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
        }
        window.missed_and_ran += missed.iter().filter(|t| ran.contains_key(t)).count();
        window.missed += missed.iter().filter(|t| !ran.contains_key(t)).count();
        for t in instants
            .iter()
            .filter(|t| !ran.contains_key(t) && !missed.contains(t))
        {
            if unlisted > 0 {
                unlisted -= 1;
                window.missed_counted += 1;
                continue;
            }
            window.lost += 1;
            if window.lost_examples.len() < LOST_EXAMPLES {
                window.lost_examples.push(format!(
                    "{job} @ {}",
                    t.to_rfc3339_opts(SecondsFormat::Secs, true)
                ));
            }
        }
    }
    window.start_ms.sort_by(f64::total_cmp);
    window.finish_ms.sort_by(f64::total_cmp);
    window
}

/// The whole seconds in `[from, until)`.
fn seconds_between(from: DateTime<Utc>, until: DateTime<Utc>) -> BTreeSet<DateTime<Utc>> {
    let mut instants = BTreeSet::new();
    let mut t = fire::whole_second_at_or_after(from);
    while t < until {
        instants.insert(t);
        t += TimeDelta::seconds(1);
    }
    instants
}

/// `a1 7,500 / s2 3`.
fn per_node_text(window: &Window) -> String {
    if window.per_node.is_empty() {
        return "none".to_owned();
    }
    window
        .per_node
        .iter()
        .map(|(node, n)| format!("{node} {}", thousands(*n as u64)))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Rows every window shares: duplicates, losses, failures.
fn add_window_rows(section: &mut Section, window: &Window, subject: &str) {
    section.target(
        format!("{subject}: (job, instant) with more than one execution record"),
        thousands(window.duplicated as u64),
        "0",
        window.duplicated == 0,
    );
    section.target(
        format!("{subject}:   of which more than one successful"),
        thousands(window.duplicated_successful as u64),
        "0",
        window.duplicated_successful == 0,
    );
    section.info(
        format!("{subject}: (job, instant) recorded missed: listed / counted only"),
        format!(
            "{} / {}",
            thousands(window.missed as u64),
            thousands(window.missed_counted as u64)
        ),
    );
    section.target(
        format!("{subject}: (job, instant) neither run nor recorded missed"),
        thousands((window.lost + window.unreadable) as u64),
        "0",
        window.lost == 0 && window.unreadable == 0,
    );
    section.target(
        format!("{subject}: (job, instant) recorded missed and also run"),
        thousands(window.missed_and_ran as u64),
        "0",
        window.missed_and_ran == 0,
    );
    section.target(
        format!("{subject}: failed or unfinished executions"),
        thousands((window.failed + window.unfinished) as u64),
        "0",
        window.failed == 0 && window.unfinished == 0,
    );
    for failure in &window.failures {
        section.note(format!("failed: {failure}"));
    }
    if !window.lost_examples.is_empty() {
        section.note(format!(
            "{subject}: neither run nor recorded missed, e.g. {}",
            window.lost_examples.join(", ")
        ));
    }
    for example in &window.duplicate_examples {
        section.note(format!("{subject}: more than one record: {example}"));
    }
    if window.unreadable > 0 {
        section.note(format!(
            "{} jobs' records or missed lists could not be read",
            window.unreadable
        ));
    }
}

/// Notes with the WARN/ERROR lines of the cluster's logs.
fn add_problem_notes(section: &mut Section, cluster: &HaCluster) {
    let problems = cluster.problem_lines();
    if problems.is_empty() {
        return;
    }
    // Kind → (count, first time seen).
    let mut kinds: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for line in &problems {
        let (kind, time) = problem_kind(line);
        kinds.entry(kind).or_insert((0, time)).0 += 1;
    }
    let mut kinds: Vec<(String, (usize, String))> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.1.1.cmp(&b.1.1)));
    section.note(format!(
        "{} WARN/ERROR log lines; by kind (count, first seen):\n{}",
        problems.len(),
        kinds
            .iter()
            .take(LOG_LINES)
            .map(|(kind, (n, first))| format!("    {n} × {kind} (first {first})"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
}

/// Fields that differ from one line of a kind to the next.
const VARYING_FIELDS: [&str; 8] = [
    "job=",
    "execution=",
    "token=",
    "missed=",
    "since=",
    "fires=",
    "caught_up=",
    "node=",
];
/// Longest kind shown.
const KIND_CHARS: usize = 240;

/// `s1#2: 2026-…Z  WARN target: message job=x` as the kind `s1: WARN target: message` and the
/// time of day `20:16:45.502`.
fn problem_kind(line: &str) -> (String, String) {
    let (node, rest) = line.split_once(": ").unwrap_or(("?", line));
    let node = node.split('#').next().unwrap_or(node);
    let mut words = rest.split_whitespace();
    let time = words
        .next()
        .and_then(|t| t.split_once('T'))
        .map(|(_, clock)| clock.trim_end_matches('Z').chars().take(12).collect())
        .unwrap_or_default();
    let kind: String = words
        .filter(|w| !VARYING_FIELDS.iter().any(|f| w.starts_with(f)))
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(KIND_CHARS)
        .collect();
    (format!("{node}: {kind}"), time)
}

/// `12.3 ms (min 10.1 ms, max 15.0 ms)`.
fn median_and_range(values: &[f64]) -> String {
    let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
    let highest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{} ({} – {})",
        millis(median(values)),
        millis(lowest),
        millis(highest)
    )
}

/// A pseudo-random duration below `max`, from the clock's nanoseconds.
fn jitter(max: Duration) -> Duration {
    let nanos = u64::from(Utc::now().timestamp_subsec_nanos());
    // A multiplicative hash spreads nearby clock readings over the range.
    let mixed = nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    let max_nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(mixed % max_nanos)
}

/// One kill of the leader.
#[derive(Debug)]
struct Kill {
    victim: String,
    /// When the SIGKILL was sent.
    at: DateTime<Utc>,
    /// The new leader and the time from the kill until it answered 200.
    taken: Option<(String, Duration)>,
    /// From the restart of the killed server until it answered `/health`.
    back: Duration,
}

/// Part 1: kill the leader `kills` times with lease `ttl`.
async fn takeover(
    context: &Context,
    store: &StoreProcess,
    target: &Target,
    ttl: Ttl,
    kills: usize,
) -> BenchResult<Section> {
    let backend = store.backend().name();
    println!(
        "\n[ha] {backend}, {}: 3 servers + 1 agent, {PROBE_JOBS} probe jobs @every 1s, {kills} SIGKILLs of the leader",
        ttl.label()
    );
    let mut section = Section::new(format!(
        "ha takeover, {backend}, {}, {kills} kills",
        ttl.label()
    ));
    let keyspace = format!("bench-ha-{}s", ttl.seconds);
    let mut cluster = HaCluster::start(context, store, &keyspace, ttl, 1).await?;
    let leader = cluster.wait_leader(FORM_TIMEOUT).await?;
    let created = jobs::create_tagged_at(
        &cluster.api,
        cluster.servers[leader].base()?,
        "probe",
        PROBE_JOBS,
        PROBE_JOBS,
        "@every 1s",
        &Executor::HttpGetExpect200(target.url.clone()),
        &cluster::one_agent_tags(),
    )
    .await;
    if created.errors > 0 {
        let _ = cluster.stop().await;
        return Err(format!(
            "creating the probe jobs failed: {:?}",
            created.error_examples
        )
        .into());
    }
    cluster.watch(PROBE_WARMUP).await;

    let mut done: Vec<Kill> = Vec::new();
    let mut first_kill = None;
    let mut last_kill = Utc::now();
    let mut failed_takeovers = 0;
    for round in 1..=kills {
        // A random moment within one renewal period, so the kills do not all fall at the same
        // point of the lease's renewal cycle.
        tokio::time::sleep(jitter(ttl.duration() / 3)).await;
        let leader = cluster.wait_leader(TAKEOVER_TIMEOUT).await?;
        let victim = cluster.servers[leader].name.clone();
        last_kill = Utc::now();
        first_kill.get_or_insert(last_kill);
        let killed = Instant::now();
        cluster.servers[leader].kill9().await?;
        let mut taken = None;
        while killed.elapsed() < TAKEOVER_TIMEOUT {
            if let Some(&taker) = cluster.leaders().await.first() {
                taken = Some((taker, killed.elapsed()));
                break;
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
        let join = match taken {
            Some((taker, _)) => cluster.servers[taker].gossip.clone(),
            None => cluster
                .servers
                .iter()
                .find(|s| s.running())
                .and_then(|s| s.gossip.clone()),
        }
        .ok_or("no live server to join")?;
        if taken.is_none() {
            failed_takeovers += 1;
            for server in cluster.servers.iter().filter(|s| s.running()) {
                section.note(format!(
                    "kill {round}: nobody took over from {victim} within {TAKEOVER_TIMEOUT:?}; log of {}:\n{}",
                    server.name,
                    server.log_tail(LOG_LINES)
                ));
            }
        }
        let relaunched = Instant::now();
        let probe = cluster.probe.clone();
        cluster.servers[leader].spawn(Some(&join))?;
        cluster.servers[leader].wait_up(&probe).await?;
        let back = relaunched.elapsed();
        let taken = taken.map(|(taker, took)| (cluster.servers[taker].name.clone(), took));
        println!(
            "[ha]   kill {round}/{kills}: {victim} killed; {}; {victim} back up in {}",
            match &taken {
                Some((taker, took)) => format!("{taker} leads after {}", duration(*took)),
                None => format!("nobody leads after {TAKEOVER_TIMEOUT:?}"),
            },
            duration(back)
        );
        done.push(Kill {
            victim,
            at: last_kill,
            taken,
            back,
        });
        if failed_takeovers >= MAX_FAILED_TAKEOVERS {
            section.note(format!(
                "stopped after {failed_takeovers} kills without a takeover"
            ));
            break;
        }
        cluster.watch(AFTER_RESTART).await;
    }
    let kills_ended = Utc::now();
    cluster.watch(FINAL_SETTLE).await;
    let reader = cluster.wait_leader(TAKEOVER_TIMEOUT).await?;
    let base = cluster.servers[reader].base()?.to_owned();
    let read = read_all(&cluster.api, &base, "probe", PROBE_JOBS).await;
    let (records, missed) = (&read.records, &read.missed);
    let first_kill = first_kill.unwrap_or(last_kill);
    // Every instant from 2 s before the first kill until the last restarted server had run
    // for AFTER_RESTART: all the takeover gaps.
    let instants = seconds_between(first_kill - TimeDelta::seconds(2), kills_ended);
    let window = analyse("probe", records, missed, &instants);

    let took: Vec<f64> = done
        .iter()
        .filter_map(|k| k.taken.as_ref())
        .map(|(_, took)| took.as_secs_f64() * 1000.0)
        .collect();
    let bound = ttl.duration() + TAKEOVER_SLACK;
    let max = took.iter().copied().fold(f64::NAN, f64::max);
    section.info("kills of the leader (SIGKILL)", done.len().to_string());
    section.info(
        "takeover: kill → another server answers /v1/isleader 200, median (min – max)",
        if took.is_empty() {
            "none".to_owned()
        } else {
            median_and_range(&took)
        },
    );
    section.target(
        "takeover max",
        millis(max),
        format!("≤ TTL + 2 s = {}", duration(bound)),
        !took.is_empty() && max <= bound.as_secs_f64() * 1000.0,
    );
    section.info(
        "expected bound: TTL + campaign poll (TTL/4)",
        duration(ttl.duration() + ttl.duration() / 4),
    );
    section.target(
        format!("kills after which nobody led within {TAKEOVER_TIMEOUT:?}"),
        failed_takeovers.to_string(),
        "0",
        failed_takeovers == 0,
    );
    section.target(
        "polls that saw two servers answer /v1/isleader 200",
        cluster.two_leaders.len().to_string(),
        "0",
        cluster.two_leaders.is_empty(),
    );
    for seen in cluster.two_leaders.iter().take(LOG_LINES) {
        section.note(format!("two leaders: {seen}"));
    }
    let backs: Vec<f64> = done.iter().map(|k| k.back.as_secs_f64() * 1000.0).collect();
    section.info(
        "restart of the killed server → /health 200, median (min – max)",
        median_and_range(&backs),
    );
    section.info(
        format!("{PROBE_JOBS} probe jobs: (job, instant) from 2 s before the first kill to 2 s after the last restart"),
        format!(
            "{} ({} runs, {} recorded missed, {} runs > 1 s late)",
            thousands(window.due as u64),
            thousands((window.finished + window.unfinished) as u64),
            thousands((window.missed + window.missed_counted) as u64),
            thousands(window.late as u64)
        ),
    );
    add_window_rows(&mut section, &window, "probe jobs");
    section.info("probe runs per node", per_node_text(&window));
    add_read_notes(&mut section, &read);
    section.note(format!(
        "kills: {}",
        done.iter()
            .map(|k| match &k.taken {
                Some((taker, took)) => format!(
                    "{}→{} {} (at {})",
                    k.victim,
                    taker,
                    duration(*took),
                    k.at.format("%H:%M:%S%.3f")
                ),
                None => format!("{}→nobody (at {})", k.victim, k.at.format("%H:%M:%S%.3f")),
            })
            .collect::<Vec<_>>()
            .join(", ")
    ));
    section.note(format!(
        "the lease is renewed every TTL/3 and lapses at most TTL after the last renewal; the other servers campaign every TTL/4; /v1/isleader answers 200 once the new leader has loaded its jobs and caught up; polled every {} ms; each kill waits a random part of TTL/3 first",
        LEADER_POLL.as_millis()
    ));
    add_problem_notes(&mut section, &cluster);
    let suspicious = window.duplicated > 0
        || window.lost > 0
        || window.failed > 0
        || window.missed_and_ran > 0
        || failed_takeovers > 0
        || !cluster.two_leaders.is_empty();
    keep_logs_if(&mut section, &cluster, suspicious);
    for problem in cluster.stop().await {
        section.note(format!("stopping: {problem}"));
    }
    section.print();
    Ok(section)
}

/// When `suspicious`, keeps the cluster's logs and names their directory in a note.
fn keep_logs_if(section: &mut Section, cluster: &HaCluster, suspicious: bool) {
    if suspicious {
        match cluster.keep_logs() {
            Ok(dir) => section.note(format!("every node's log kept in {}", dir.display())),
            Err(error) => section.note(format!("could not keep the logs: {error}")),
        }
    }
}

/// CPU seconds of the cluster's processes and the store at one moment.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    leader: f64,
    followers: f64,
    agents: f64,
    store: f64,
    bench: f64,
}

fn cpu_now(cluster: &HaCluster, leader: usize, store: &StoreProcess) -> Cpu {
    Cpu {
        leader: cluster.servers[leader].cpu_seconds(),
        followers: cluster
            .servers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leader)
            .map(|(_, s)| s.cpu_seconds())
            .sum(),
        agents: cluster.agents_cpu_seconds(),
        store: store.cpu_seconds(),
        bench: server::cpu_of("/proc/self/stat").map_or(0.0, |cpu| cpu.own),
    }
}

/// Sleeps until the wall clock reads `t`.
async fn sleep_until(t: DateTime<Utc>) {
    tokio::time::sleep((t - Utc::now()).to_std().unwrap_or_default()).await;
}

/// `1.23 / 4.56`.
fn pair(a: f64, b: f64) -> String {
    format!("{a:.2} / {b:.2}")
}

/// Part 2 and 3: `count` jobs `@every 1s` on the agent for `seconds` seconds.
async fn sustained(
    context: &Context,
    store: &StoreProcess,
    target: &Target,
    count: usize,
    seconds: i64,
) -> BenchResult<Section> {
    let backend = store.backend();
    println!(
        "\n[ha] {}: 3 servers + {FIRE_AGENTS} agent, {} http jobs @every 1s, {seconds} s counted",
        backend.name(),
        thousands(count as u64)
    );
    let mut section = Section::new(format!(
        "ha sustained fires, {}, 3 servers + {FIRE_AGENTS} agent, {} jobs @every 1s, {seconds} s",
        backend.name(),
        thousands(count as u64)
    ));
    let keyspace = format!("bench-fire-{count}");
    let mut cluster = HaCluster::start(context, store, &keyspace, DEFAULT_TTL, FIRE_AGENTS).await?;
    let leader = cluster.wait_leader(FORM_TIMEOUT).await?;
    let base = cluster.servers[leader].base()?.to_owned();

    // The store's background while the cluster holds no job.
    let idle_before = store.counters().await?;
    let idle_since = Instant::now();
    cluster.watch(IDLE).await;
    let idle = Ops::of(backend, &store.counters().await?.since(&idle_before))
        .per(idle_since.elapsed().as_secs_f64());

    let created = jobs::create_tagged_at(
        &cluster.api,
        &base,
        "ha",
        count,
        CREATE_CONCURRENCY,
        "@every 1s",
        &Executor::HttpGetExpect200(target.url.clone()),
        &cluster::one_agent_tags(),
    )
    .await;
    if created.errors > 0 {
        let _ = cluster.stop().await;
        return Err(format!(
            "{} of {count} job creations failed, e.g. {:?}",
            created.errors, created.error_examples
        )
        .into());
    }
    let from = fire::whole_second_at_or_after(Utc::now() + FIRE_WARMUP);
    let until = from + TimeDelta::seconds(seconds);
    println!(
        "[ha] created in {} ({}); counting {} – {}",
        duration(created.elapsed),
        rate(created.per_second()),
        from.to_rfc3339_opts(SecondsFormat::Secs, true),
        until.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    // Counters are read half-way between bursts, so the window holds exactly the bursts of its
    // seconds (each burst lasting less than half a second).
    sleep_until(from - SNAPSHOT_BEFORE).await;
    let counters_from = store.counters().await?;
    let cpu_from = cpu_now(&cluster, leader, store);
    let hits_from = target.hits();
    let measured = Instant::now();
    sleep_until(until - SNAPSHOT_BEFORE).await;
    let counters_until = store.counters().await?;
    let cpu_until = cpu_now(&cluster, leader, store);
    let hits = target.hits() - hits_from;
    let window_s = measured.elapsed().as_secs_f64();
    cluster.watch(FIRE_SETTLE).await;

    let reader = cluster.wait_leader(TAKEOVER_TIMEOUT).await?;
    let read_base = cluster.servers[reader].base()?.to_owned();
    let read = read_all(&cluster.api, &read_base, "ha", count).await;
    let (records, missed) = (&read.records, &read.missed);
    let window = analyse("ha", records, missed, &seconds_between(from, until));
    let fires = (window.finished + window.unfinished) as f64;
    let ops = Ops::of(backend, &counters_until.since(&counters_from));
    let per_fire = ops.minus_background(&idle, window_s).per(fires);

    section.info(
        format!(
            "create {} jobs ({CREATE_CONCURRENCY} in flight), tags {{{}: {}}}",
            thousands(count as u64),
            cluster::AGENT_TAG.0,
            cluster::ONE_AGENT
        ),
        format!(
            "{} ({})",
            duration(created.elapsed),
            rate(created.per_second())
        ),
    );
    section.info(
        "window (scheduled_at in [from, until))",
        format!(
            "{} – {}",
            from.to_rfc3339_opts(SecondsFormat::Secs, true),
            until.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
    );
    section.info(
        "executions recorded per second: runs scheduled in the window ÷ its seconds",
        format!(
            "{} of {} due ({} of {})",
            rate(fires / seconds as f64),
            rate(count as f64),
            thousands(fires as u64),
            thousands(window.due as u64)
        ),
    );
    section.info(
        "start lag min / p50 / p99 / max (started_at − scheduled_at)",
        fire::quantiles(&window.start_ms),
    );
    section.info(
        "finish lag min / p50 / p99 / max (finished_at − scheduled_at)",
        fire::quantiles(&window.finish_ms),
    );
    section.info(
        "runs started more than 1 s after their instant",
        thousands(window.late as u64),
    );
    section.target(
        "missed fires: sum of GET /v1/jobs/{job}/missed totals",
        thousands(window.missed_total),
        "0",
        window.missed_total == 0 && window.unreadable == 0,
    );
    add_window_rows(&mut section, &window, "window");
    section.info("runs per node", per_node_text(&window));
    let takes = cluster.lease_takes();
    section.target(
        "leadership lease taken (servers' logs, the first election included)",
        takes.to_string(),
        "1",
        takes == 1,
    );
    section.target(
        "polls that saw two servers answer /v1/isleader 200",
        cluster.two_leaders.len().to_string(),
        "0",
        cluster.two_leaders.is_empty(),
    );
    if reader != leader {
        section.note(format!(
            "the leader changed from {} to {} during the run",
            cluster.servers[leader].name, cluster.servers[reader].name
        ));
    }
    section.info(
        "requests the http target received per second in the window",
        rate(hits as f64 / window_s),
    );
    section.info(
        format!(
            "store {} per fire (less the idle background)",
            Ops::requests_label(backend)
        ),
        format!("{:.2}", per_fire.requests),
    );
    if let Some(writes) = per_fire.write_requests {
        section.info(
            "store write requests per fire (raft proposals committed)",
            format!("{writes:.2}"),
        );
    }
    section.info(
        format!("store {} per fire", Ops::writes_label(backend)),
        pair(per_fire.writes, per_fire.reads),
    );
    if let Some(fsyncs) = per_fire.fsyncs {
        section.info("store WAL fsyncs per fire", format!("{fsyncs:.3}"));
    }
    section.info(
        "store counters per fire (window, background included)",
        ops.per(fires).detail_text(DETAIL_COUNTERS),
    );
    section.info(
        format!(
            "store background while idle, per second: {} / writes / reads",
            match backend {
                Backend::Redis => "scripts",
                Backend::Etcd | Backend::Zookeeper | Backend::DynamoDb => "requests",
            }
        ),
        format!(
            "{:.1} / {:.1} / {:.1}",
            idle.requests, idle.writes, idle.reads
        ),
    );
    let cpu = |pick: fn(&Cpu) -> f64| (pick(&cpu_until) - pick(&cpu_from)) / window_s * 1000.0;
    section.info(
        "CPU per second of the window: leader / other servers / agent / store / bench",
        format!(
            "{:.0} / {:.0} / {:.0} / {:.0} / {:.0} ms",
            cpu(|c| c.leader),
            cpu(|c| c.followers),
            cpu(|c| c.agents),
            cpu(|c| c.store),
            cpu(|c| c.bench)
        ),
    );
    add_read_notes(&mut section, &read);
    section.note(
        "@every 1s fires on whole seconds, so every second is a burst of all the jobs at once; all processes share the machine's 2 cores",
    );
    if backend == Backend::Redis {
        section.note(
            "Redis runs without persistence (--save '' --appendonly no), as in the tests; commandstats counts the commands inside scripts too, so writes and reads are key operations, not round trips",
        );
    }
    add_problem_notes(&mut section, &cluster);
    let suspicious = window.duplicated > 0
        || window.lost > 0
        || window.failed > 0
        || window.missed_total > 0
        || takes != 1
        || !cluster.two_leaders.is_empty();
    keep_logs_if(&mut section, &cluster, suspicious);
    for problem in cluster.stop().await {
        section.note(format!("stopping: {problem}"));
    }
    section.print();
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        fire::parse_time(text).unwrap()
    }

    fn execution(job: &str, scheduled: &str, started: &str, success: bool) -> ExecutionOut {
        ExecutionOut {
            id: format!("{started}-{job}"),
            job_name: job.to_owned(),
            started_at: started.to_owned(),
            finished_at: started.to_owned(),
            success,
            output: String::new(),
            node_name: "a1".to_owned(),
            group: 0,
            attempt: 1,
            output_truncated: None,
            scheduled_at: Some(scheduled.to_owned()),
        }
    }

    #[test]
    fn every_instant_is_run_once_missed_or_lost() {
        let instants = seconds_between(at("2030-01-01T00:00:00.5Z"), at("2030-01-01T00:00:04Z"));
        assert_eq!(instants.len(), 3, "{instants:?}");
        let records = vec![
            Some(vec![
                execution(
                    "j1",
                    "2030-01-01T00:00:01Z",
                    "2030-01-01T00:00:01.010Z",
                    true,
                ),
                execution(
                    "j1",
                    "2030-01-01T00:00:02Z",
                    "2030-01-01T00:00:02.010Z",
                    true,
                ),
                execution(
                    "j1",
                    "2030-01-01T00:00:02Z",
                    "2030-01-01T00:00:04.010Z",
                    false,
                ),
                execution(
                    "j1",
                    "2030-01-01T00:00:09Z",
                    "2030-01-01T00:00:09.010Z",
                    true,
                ),
            ]),
            Some(vec![execution(
                "j2",
                "2030-01-01T00:00:03Z",
                "2030-01-01T00:00:03.002Z",
                true,
            )]),
            None,
        ];
        let missed = vec![
            Some(MissedOut {
                total: 0,
                recent: Vec::new(),
            }),
            Some(MissedOut {
                total: 4,
                recent: vec!["2030-01-01T00:00:01Z".to_owned()],
            }),
            Some(MissedOut {
                total: 0,
                recent: Vec::new(),
            }),
        ];
        let window = analyse("j", &records, &missed, &instants);
        assert_eq!(window.due, 9);
        assert_eq!(window.finished, 4);
        assert_eq!(window.duplicated, 1);
        assert_eq!(window.late, 1);
        assert_eq!(window.failed, 1);
        assert_eq!(window.missed, 1);
        // j1 lacks 00:03: lost. j2 lacks 00:02, covered by its missed total (4, one listed).
        assert_eq!(window.missed_counted, 1);
        assert_eq!(window.lost, 1);
        assert_eq!(
            window.lost_examples,
            vec!["j-000001 @ 2030-01-01T00:00:03Z"]
        );
        assert_eq!(window.duplicated, 1);
        assert_eq!(window.duplicated_successful, 0);
        assert_eq!(window.missed_total, 4);
        assert_eq!(window.unreadable, 1);
        assert_eq!(window.start_ms, vec![2.0, 10.0, 10.0, 2010.0]);
    }

    #[test]
    fn logged_addresses_are_read() {
        let log = "INFO rkron::agent: rkron server started; HTTP API listening on 127.0.0.1:41234 node=s1\n";
        assert_eq!(
            logged_addr(log, HTTP_LINE).as_deref(),
            Some("127.0.0.1:41234")
        );
        assert_eq!(logged_addr("nothing", HTTP_LINE), None);
    }

    #[test]
    fn problem_lines_are_grouped_by_kind() {
        let (kind, time) = problem_kind(
            "s1#2: 2026-11-27T20:16:45.502264Z  WARN rkron_node::scheduler: scheduler was behind; older due fires are recorded as missed job=ha-000001 missed=2",
        );
        assert_eq!(
            kind,
            "s1: WARN rkron_node::scheduler: scheduler was behind; older due fires are recorded as missed"
        );
        assert_eq!(time, "20:16:45.502");
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(1)) < Duration::from_secs(1));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn ttl_labels() {
        assert_eq!(SHORT_TTL.label(), "lease-ttl 3s");
        assert_eq!(DEFAULT_TTL.label(), "default lease-ttl (10s)");
        assert_eq!(SHORT_TTL.duration(), Duration::from_secs(3));
    }
}
