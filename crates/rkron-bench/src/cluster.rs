//! Scenario `cluster` (issue 4): local clusters of one `rkron agent --server` and several plain
//! agents (`rkron agent --join`), all on 127.0.0.1 with the `local` gossip profile.
//!
//! It measures how long the server's member list takes to show every node alive after the agents
//! are spawned, how fast runs are dispatched to agents when many jobs are due at once (each run
//! on exactly one agent, tag `bench: agent:1`), and the start lag of runs on agents under a
//! burst and under a light steady load.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rkron_api_types::{ExecutionOut, MemberOut};
use tokio::process::{Child, Command};

use crate::fire::{self, Target};
use crate::jobs::{self, Executor};
use crate::report::{Section, duration, median, millis, rate, thousands};
use crate::server::{self, BenchServer, CLUSTER_SERVER_NAME};
use crate::{BenchResult, Context};

/// The gossip timing profile every node runs with.
const PROFILE: &str = "local";
/// The tag every agent carries (`--tag bench=agent`).
pub(crate) const AGENT_TAG: (&str, &str) = ("bench", "agent");
/// The job tag that runs each fire on exactly one of the tagged agents, chosen at random.
pub(crate) const ONE_AGENT: &str = "agent:1";
/// Cluster sizes (server included) of a full run.
const SIZES: [usize; 3] = [3, 10, 30];
/// Cluster sizes of a quick run.
const QUICK_SIZES: [usize; 2] = [3, 10];
/// Convergence rounds per size in a full run.
const ROUNDS: usize = 3;
/// Convergence rounds per size in a quick run.
const QUICK_ROUNDS: usize = 1;
/// How often `/v1/members` is polled while a cluster converges.
const MEMBERS_POLL: Duration = Duration::from_millis(10);
/// How long a cluster may take to converge.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the member list is watched after convergence, for nodes that flap.
const STABLE_FOR: Duration = Duration::from_secs(2);
/// How often the member list is polled while it is watched for flaps.
const STABLE_POLL: Duration = Duration::from_millis(100);
/// Agents of the dispatch and light-load runs.
const DISPATCH_AGENTS: usize = 3;
/// Jobs due at the same instant in a full run.
const DISPATCH_SIZES: [usize; 2] = [1_000, 3_000];
/// Jobs due at the same instant in a quick run.
const QUICK_DISPATCH_SIZES: [usize; 1] = [200];
/// Job creations in flight.
const CREATE_CONCURRENCY: usize = 64;
/// Job creations per second assumed for the first attempt.
const FIRST_RATE_GUESS: f64 = 1_000.0;
/// Time added to the creation estimate before the due instant.
const FIRST_MARGIN: Duration = Duration::from_secs(2);
/// Every job must be created at least this long before the due instant.
const MIN_LEAD: TimeDelta = TimeDelta::milliseconds(500);
/// Attempts at creating every job before the due instant.
const ATTEMPTS: usize = 3;
/// `@every 1s` jobs of the light-load run (full, quick).
const LIGHT_JOBS: (usize, usize) = (100, 20);
/// Seconds of fires counted in the light-load run (full, quick).
const LIGHT_SECONDS: (i64, i64) = (10, 3);
/// Waited after the light-load window before the executions are read, so its last runs are done.
const LIGHT_SETTLE: Duration = Duration::from_millis(1_500);
/// How long an agent may take to exit after SIGTERM.
const AGENT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines shown for a node that misbehaved.
const LOG_LINES: usize = 8;
/// Failed executions whose output is shown.
const FAILURE_EXAMPLES: usize = 3;

/// A plain agent: `rkron agent --join <server gossip> --tag bench=agent`, no HTTP API.
#[derive(Debug)]
pub(crate) struct Agent {
    pub(crate) name: String,
    child: Option<Child>,
    pub(crate) log: PathBuf,
}

impl Agent {
    /// Spawns agent `name` joining `join`, its log in `dir/<name>.log`.
    pub(crate) fn spawn(binary: &Path, dir: &Path, name: &str, join: &str) -> BenchResult<Self> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(binary)
            .args(["agent", "--node-name", name])
            .args(["--bind-addr", "127.0.0.1:0", "--rpc-port", "0"])
            .args(["--join", join, "--profile", PROFILE])
            .arg("--tag")
            .arg(format!("{}={}", AGENT_TAG.0, AGENT_TAG.1))
            .args(["--log-level", "info"])
            .env_remove("RKRON_LOG_LEVEL")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            log,
        })
    }

    /// CPU seconds (user + system) used so far; 0 when the process is gone.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .and_then(|pid| server::cpu_of(&format!("/proc/{pid}/stat")).ok())
            .map_or(0.0, |cpu| cpu.own)
    }

    /// The last `lines` lines of the agent's log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends SIGTERM (when the process still runs).
    pub(crate) fn terminate(&mut self) -> BenchResult<()> {
        if let Some(child) = self.child.as_mut() {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if let Some(pid) = child.id() {
                kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGTERM)?;
            }
        }
        Ok(())
    }

    /// Waits for the exit after [`Agent::terminate`]; kills the agent after
    /// [`AGENT_STOP_TIMEOUT`]. Answers a problem, if any.
    pub(crate) async fn wait_exit(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        match tokio::time::timeout(AGENT_STOP_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) if status.success() => None,
            Ok(Ok(status)) => Some(format!(
                "agent {} exited with {status} after SIGTERM; log:\n{}",
                self.name,
                self.log_tail(LOG_LINES)
            )),
            Ok(Err(error)) => Some(format!("waiting for agent {}: {error}", self.name)),
            Err(_) => {
                let _ = child.kill().await;
                Some(format!(
                    "agent {} did not exit within {AGENT_STOP_TIMEOUT:?} of SIGTERM; killed",
                    self.name
                ))
            }
        }
    }
}

/// A running local cluster: the server and its agents, all spawned by this process.
struct Cluster {
    server: BenchServer,
    agents: Vec<Agent>,
    /// Agent logs live here; removed when the cluster is dropped.
    dir: tempfile::TempDir,
    /// From the first agent spawn to the last.
    spawn_took: Duration,
    /// When the first agent was spawned.
    spawned: Instant,
}

/// The name of agent `i` (counting from 1): `a01`.
fn agent_name(i: usize) -> String {
    format!("a{i:02}")
}

impl Cluster {
    /// Starts the server, waits until it leads, then spawns `agents` agents at once, all joining
    /// the server's gossip address.
    async fn start(context: &Context, agents: usize) -> BenchResult<Self> {
        let mut server = BenchServer::cluster(&context.rkron)?;
        server.start().await?;
        let join = server.gossip_addr()?.to_owned();
        let dir = tempfile::Builder::new()
            .prefix("rkron-bench-agents-")
            .tempdir()?;
        let spawned = Instant::now();
        let mut started = Vec::with_capacity(agents);
        for i in 1..=agents {
            started.push(Agent::spawn(
                &context.rkron,
                dir.path(),
                &agent_name(i),
                &join,
            )?);
        }
        Ok(Self {
            server,
            agents: started,
            dir,
            spawn_took: spawned.elapsed(),
            spawned,
        })
    }

    /// Every node name: the server's and the agents'.
    fn names(&self) -> BTreeSet<String> {
        std::iter::once(CLUSTER_SERVER_NAME.to_owned())
            .chain(self.agents.iter().map(|a| a.name.clone()))
            .collect()
    }

    /// The server's `/v1/members`.
    async fn members(&self) -> BenchResult<Vec<MemberOut>> {
        let response = self
            .server
            .http()
            .get(self.server.url("/v1/members"))
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(format!(
                "GET /v1/members answered {status}: {}",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// How many of the cluster's nodes `/v1/members` lists as alive (Status 1).
    fn alive_of(&self, members: &[MemberOut]) -> usize {
        let names = self.names();
        members
            .iter()
            .filter(|m| m.status == 1 && names.contains(&m.name))
            .map(|m| m.name.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Polls `/v1/members` until every node is alive; answers the time from the first agent
    /// spawn, or `None` after [`CONVERGE_TIMEOUT`] (with the last member list seen).
    async fn converge(&self) -> BenchResult<(Option<Duration>, Vec<MemberOut>)> {
        let want = self.agents.len() + 1;
        loop {
            let members = self.members().await?;
            if self.alive_of(&members) == want {
                return Ok((Some(self.spawned.elapsed()), members));
            }
            if self.spawned.elapsed() > CONVERGE_TIMEOUT {
                return Ok((None, members));
            }
            tokio::time::sleep(MEMBERS_POLL).await;
        }
    }

    /// Watches the member list for [`STABLE_FOR`]; answers the fewest alive nodes seen.
    async fn fewest_alive_for(&self, period: Duration) -> BenchResult<usize> {
        let since = Instant::now();
        let mut fewest = usize::MAX;
        while since.elapsed() < period {
            tokio::time::sleep(STABLE_POLL).await;
            fewest = fewest.min(self.alive_of(&self.members().await?));
        }
        Ok(fewest)
    }

    /// What is wrong with the member list: nodes absent or not alive, with their status.
    fn not_alive(&self, members: &[MemberOut]) -> Vec<String> {
        self.names()
            .into_iter()
            .filter_map(|name| match members.iter().find(|m| m.name == name) {
                None => Some(format!("{name}: absent")),
                Some(m) if m.status != 1 => Some(format!("{name}: Status {}", m.status)),
                Some(_) => None,
            })
            .collect()
    }

    /// CPU seconds (user + system) all agents have used so far.
    fn agents_cpu_seconds(&self) -> f64 {
        self.agents.iter().map(Agent::cpu_seconds).sum()
    }

    /// The `gossip started … profile=…` value in the server's log.
    fn profile_in_log(&self) -> Option<String> {
        let log = self.server.log_text();
        log.lines()
            .find(|line| line.contains("gossip started"))
            .and_then(|line| line.split_once("profile="))
            .map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").to_owned())
    }

    /// WARN and ERROR lines of every node's log, prefixed by the node's name.
    fn problem_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .server
            .problem_lines()
            .into_iter()
            .map(|line| format!("{CLUSTER_SERVER_NAME}: {line}"))
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

    /// Stops every agent (SIGTERM to all at once, then waits), then the server; answers how
    /// long the agents and then the server took to exit, and the problems seen.
    async fn stop(mut self) -> (Duration, Duration, Vec<String>) {
        let asked = Instant::now();
        let mut problems = Vec::new();
        for agent in &mut self.agents {
            if let Err(error) = agent.terminate() {
                problems.push(format!("SIGTERM to agent {}: {error}", agent.name));
            }
        }
        for agent in &mut self.agents {
            if let Some(problem) = agent.wait_exit().await {
                problems.push(problem);
            }
        }
        let agents_took = asked.elapsed();
        let server_took = match self.server.stop().await {
            Ok(took) => took,
            Err(error) => {
                problems.push(format!("server: {error}"));
                Duration::ZERO
            }
        };
        drop(self.dir);
        (agents_took, server_took, problems)
    }
}

/// Runs the whole scenario: convergence, dispatch of bursts, light load.
pub(crate) async fn run(context: &Context) -> Vec<BenchResult<Section>> {
    let mut sections = vec![convergence(context).await];
    let target = match Target::start().await {
        Ok(target) => target,
        Err(error) => {
            sections.push(Err(format!("cannot start the http target: {error}").into()));
            return sections;
        }
    };
    let sizes: &[usize] = if context.quick {
        &QUICK_DISPATCH_SIZES
    } else {
        &DISPATCH_SIZES
    };
    for &count in sizes {
        let result = dispatch(context, &target, count).await;
        if let Err(error) = &result {
            println!(
                "\n[cluster] dispatch of {} jobs failed: {error}",
                thousands(count as u64)
            );
        }
        sections.push(result);
    }
    let light = light_load(context, &target).await;
    if let Err(error) = &light {
        println!("\n[cluster] light load failed: {error}");
    }
    sections.push(light);
    sections
}

/// One convergence round.
struct Round {
    spawn_took: Duration,
    converged: Option<Duration>,
    fewest_alive_after: Option<usize>,
    agents_stop_took: Duration,
    server_stop_took: Duration,
}

/// Part 1: for each size, spawn the agents at once and time the server's member list.
async fn convergence(context: &Context) -> BenchResult<Section> {
    let sizes: &[usize] = if context.quick { &QUICK_SIZES } else { &SIZES };
    let rounds = if context.quick { QUICK_ROUNDS } else { ROUNDS };
    let mut section = Section::new(format!("cluster convergence, profile {PROFILE}"));
    let mut profile_seen = None;
    for &size in sizes {
        println!(
            "\n[cluster] {size} nodes (1 server + {} agents joining it), {rounds} rounds",
            size - 1
        );
        let mut results = Vec::new();
        for round in 1..=rounds {
            let cluster = Cluster::start(context, size - 1).await?;
            let (converged, members) = cluster.converge().await?;
            profile_seen = profile_seen.or_else(|| cluster.profile_in_log());
            let fewest_alive_after = match converged {
                Some(_) => Some(cluster.fewest_alive_for(STABLE_FOR).await?),
                None => None,
            };
            let spawn_took = cluster.spawn_took;
            match converged {
                Some(took) => println!(
                    "[cluster]   round {round}: all {size} alive after {}{}",
                    duration(took),
                    match fewest_alive_after {
                        Some(fewest) if fewest < size => {
                            format!("; then only {fewest} alive at one poll")
                        }
                        _ => String::new(),
                    }
                ),
                None => {
                    let alive = cluster.alive_of(&members);
                    let wrong = cluster.not_alive(&members);
                    println!(
                        "[cluster]   round {round}: only {alive} of {size} alive after {CONVERGE_TIMEOUT:?}"
                    );
                    section.note(format!(
                        "{size} nodes, round {round}: did not converge in {CONVERGE_TIMEOUT:?}: {alive} of {size} alive; {}",
                        wrong.join(", ")
                    ));
                    if let Some(agent) = cluster
                        .agents
                        .iter()
                        .find(|a| wrong.iter().any(|w| w.starts_with(&format!("{}:", a.name))))
                    {
                        section.note(format!(
                            "log of {}:\n{}",
                            agent.name,
                            agent.log_tail(LOG_LINES)
                        ));
                    }
                }
            }
            let problems = cluster.problem_lines();
            if !problems.is_empty() {
                section.note(format!(
                    "{size} nodes, round {round}: {} WARN/ERROR log lines, e.g.\n{}",
                    problems.len(),
                    problems
                        .iter()
                        .take(LOG_LINES)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n")
                ));
            }
            let (agents_stop_took, server_stop_took, stop_problems) = cluster.stop().await;
            for problem in stop_problems {
                section.note(format!("{size} nodes, round {round}, stopping: {problem}"));
            }
            results.push(Round {
                spawn_took,
                converged,
                fewest_alive_after,
                agents_stop_took,
                server_stop_took,
            });
        }
        add_convergence_rows(&mut section, size, &results);
    }
    section.info(
        "gossip profile (flag / as the server logged it)",
        format!(
            "{PROFILE} / {}",
            profile_seen.unwrap_or_else(|| "not logged".to_owned())
        ),
    );
    section.note(
        "time is from spawning the first agent (the server already leads) until the server's GET /v1/members lists every node with Status 1, polled every 10 ms",
    );
    section.print();
    Ok(section)
}

/// `12.3 ms (min 10.1 ms, max 15.0 ms)` for a list of durations.
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

fn add_convergence_rows(section: &mut Section, size: usize, rounds: &[Round]) {
    let converged: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r.converged)
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    let prefix = format!("{size} nodes");
    section.target(
        format!("{prefix}: rounds in which all nodes were seen alive"),
        format!("{} of {}", converged.len(), rounds.len()),
        format!("all, within {CONVERGE_TIMEOUT:?}"),
        converged.len() == rounds.len(),
    );
    if !converged.is_empty() {
        section.info(
            format!("{prefix}: spawn → all alive in /v1/members, median (min – max)"),
            median_and_range(&converged),
        );
    }
    let spawns: Vec<f64> = rounds
        .iter()
        .map(|r| r.spawn_took.as_secs_f64() * 1000.0)
        .collect();
    section.info(
        format!("{prefix}:   spawning the {} agent processes", size - 1),
        median_and_range(&spawns),
    );
    let flapped = rounds
        .iter()
        .filter(|r| r.fewest_alive_after.is_some_and(|f| f < size))
        .count();
    section.target(
        format!(
            "{prefix}: rounds with a node not alive in the {} s after",
            STABLE_FOR.as_secs()
        ),
        format!("{flapped}"),
        "0",
        flapped == 0,
    );
    let stops: Vec<f64> = rounds
        .iter()
        .map(|r| r.agents_stop_took.as_secs_f64() * 1000.0)
        .collect();
    section.info(
        format!("{prefix}:   SIGTERM to every agent → all exited"),
        median_and_range(&stops),
    );
    let stops: Vec<f64> = rounds
        .iter()
        .map(|r| r.server_stop_took.as_secs_f64() * 1000.0)
        .collect();
    section.info(
        format!("{prefix}:   then SIGTERM to the server → exited"),
        median_and_range(&stops),
    );
}

/// A fresh 1 + [`DISPATCH_AGENTS`] cluster, converged.
async fn converged_cluster(context: &Context) -> BenchResult<Cluster> {
    let cluster = Cluster::start(context, DISPATCH_AGENTS).await?;
    let (converged, members) = cluster.converge().await?;
    if converged.is_none() {
        let wrong = cluster.not_alive(&members).join(", ");
        let _ = cluster.stop().await;
        return Err(format!(
            "the {} node cluster did not converge in {CONVERGE_TIMEOUT:?}: {wrong}",
            DISPATCH_AGENTS + 1
        )
        .into());
    }
    Ok(cluster)
}

/// The tags that run each fire on exactly one agent.
pub(crate) fn one_agent_tags() -> Vec<(String, String)> {
    vec![(AGENT_TAG.0.to_owned(), ONE_AGENT.to_owned())]
}

/// A converged cluster holding `count` jobs due at `due`, created at least [`MIN_LEAD`] before.
struct Prepared {
    cluster: Cluster,
    due: DateTime<Utc>,
    created: crate::load::LoadResult,
    lead: TimeDelta,
    attempts: usize,
}

async fn prepare(context: &Context, count: usize, executor: &Executor) -> BenchResult<Prepared> {
    let mut rate_guess = FIRST_RATE_GUESS;
    let mut margin = FIRST_MARGIN;
    for attempt in 1..=ATTEMPTS {
        let cluster = converged_cluster(context).await?;
        let lead = Duration::from_secs_f64(count as f64 / rate_guess) + margin;
        let due = fire::whole_second_at_or_after(Utc::now() + TimeDelta::from_std(lead)?);
        let schedule = format!("@at {}", due.to_rfc3339_opts(SecondsFormat::Secs, true));
        let created = jobs::create_tagged(
            &cluster.server,
            "clu",
            count,
            CREATE_CONCURRENCY,
            &schedule,
            executor,
            &one_agent_tags(),
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
        let left = due - Utc::now();
        if left >= MIN_LEAD {
            return Ok(Prepared {
                cluster,
                due,
                created,
                lead: left,
                attempts: attempt,
            });
        }
        println!(
            "[cluster] attempt {attempt}: creating took {}, only {} ms before T; retrying with a larger margin",
            duration(created.elapsed),
            left.num_milliseconds()
        );
        rate_guess = created.per_second() / 2.0;
        margin *= 2;
        // Stopping the cluster at once: its jobs may be due any moment.
        let _ = cluster.stop().await;
    }
    Err(
        format!("could not create {count} jobs before their due time in {ATTEMPTS} attempts")
            .into(),
    )
}

/// Figures from the execution records of runs on a cluster.
#[derive(Debug, Default)]
struct Runs {
    /// Start lag (started_at − scheduled_at) of runs on agents, in ms, sorted.
    start_ms: Vec<f64>,
    /// Finish lag (finished_at − scheduled_at) of runs on agents, in ms, sorted.
    finish_ms: Vec<f64>,
    /// Finished runs per node.
    per_node: BTreeMap<String, usize>,
    last_finished: Option<DateTime<Utc>>,
    /// Finished runs counted.
    finished: usize,
    /// (job, instant) pairs without a run.
    missing: usize,
    /// (job, instant) pairs with more than one run.
    duplicated: usize,
    unfinished: usize,
    unreadable: usize,
    /// Runs on the server itself (the job tags select agents only).
    on_server: usize,
    failed: usize,
    failures: Vec<String>,
}

/// Reads the records of the runs for the instants `wanted(scheduled_at)` accepts; each job must
/// have exactly one run for each of `instants_per_job` instants.
fn analyse(
    lists: &[Option<Vec<ExecutionOut>>],
    instants_per_job: usize,
    wanted: impl Fn(DateTime<Utc>) -> bool,
) -> Runs {
    let mut runs = Runs::default();
    for list in lists {
        let Some(list) = list else {
            runs.unreadable += 1;
            continue;
        };
        let mut per_instant: BTreeMap<DateTime<Utc>, usize> = BTreeMap::new();
        for execution in list {
            let Some(scheduled) = execution
                .scheduled_at
                .as_deref()
                .and_then(fire::parse_time)
                .filter(|s| wanted(*s))
            else {
                continue;
            };
            *per_instant.entry(scheduled).or_default() += 1;
            let on_agent = execution.node_name != CLUSTER_SERVER_NAME;
            if !on_agent {
                runs.on_server += 1;
            }
            if let (true, Some(started)) = (on_agent, fire::parse_time(&execution.started_at)) {
                runs.start_ms.push(fire::ms_between(scheduled, started));
            }
            match fire::parse_time(&execution.finished_at) {
                Some(finished) => {
                    runs.finished += 1;
                    *runs
                        .per_node
                        .entry(execution.node_name.clone())
                        .or_default() += 1;
                    if on_agent {
                        runs.finish_ms.push(fire::ms_between(scheduled, finished));
                    }
                    runs.last_finished = runs.last_finished.max(Some(finished));
                }
                None => runs.unfinished += 1,
            }
            if !execution.success {
                runs.failed += 1;
                if runs.failures.len() < FAILURE_EXAMPLES {
                    let output: String = execution.output.chars().take(300).collect();
                    runs.failures.push(format!(
                        "{} on {}: {output:?}",
                        execution.job_name, execution.node_name
                    ));
                }
            }
        }
        runs.missing += instants_per_job.saturating_sub(per_instant.len());
        runs.duplicated += per_instant.values().filter(|n| **n > 1).count();
    }
    runs.start_ms.sort_by(f64::total_cmp);
    runs.finish_ms.sort_by(f64::total_cmp);
    runs
}

/// `a01 334 / a02 333 / a03 333`.
fn per_node_text(runs: &Runs) -> String {
    if runs.per_node.is_empty() {
        return "none".to_owned();
    }
    runs.per_node
        .iter()
        .map(|(node, n)| format!("{node} {}", thousands(*n as u64)))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Rows every run analysis shares: failures, losses, duplicates, runs on the server.
fn add_correctness_rows(section: &mut Section, runs: &Runs, read_errors: usize) {
    section.target(
        "failed executions",
        thousands(runs.failed as u64),
        "0",
        runs.failed == 0,
    );
    for failure in &runs.failures {
        section.note(format!("failed: {failure}"));
    }
    let lost = runs.missing + runs.unreadable + runs.unfinished;
    section.target(
        "missing, unfinished or unreadable executions",
        thousands(lost as u64),
        "0",
        lost == 0,
    );
    section.target(
        "instants with more than one execution",
        thousands(runs.duplicated as u64),
        "0",
        runs.duplicated == 0,
    );
    section.target(
        "executions on the server (jobs select agents only)",
        thousands(runs.on_server as u64),
        "0",
        runs.on_server == 0,
    );
    if read_errors > 0 {
        section.note(format!("{read_errors} execution listings failed"));
    }
}

/// Notes with the WARN/ERROR lines of the cluster's logs.
fn add_problem_notes(section: &mut Section, cluster: &Cluster) {
    let problems = cluster.problem_lines();
    if !problems.is_empty() {
        section.note(format!(
            "{} WARN/ERROR log lines, e.g.\n{}",
            problems.len(),
            problems
                .iter()
                .take(LOG_LINES)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
}

/// Part 2 and 3: `count` http jobs due at one instant, each run on one of the agents.
async fn dispatch(context: &Context, target: &Target, count: usize) -> BenchResult<Section> {
    println!(
        "\n[cluster] 1 server + {DISPATCH_AGENTS} agents: {} http jobs due on the same second, each on one agent",
        thousands(count as u64)
    );
    let mut section = Section::new(format!(
        "cluster dispatch, 1 server + {DISPATCH_AGENTS} agents, {} jobs",
        thousands(count as u64)
    ));
    let executor = Executor::HttpGetExpect200(target.url.clone());
    let Prepared {
        cluster,
        due,
        created,
        lead,
        attempts,
    } = prepare(context, count, &executor).await?;
    let first = cluster
        .server
        .client()
        .get_job(&jobs::name("clu", 1))
        .await?;
    let next_ok = fire::parse_time(&first.next) == Some(due);
    let hits_before = target.hits();
    let server_cpu_before = cluster.server.cpu_seconds()?;
    let agents_cpu_before = cluster.agents_cpu_seconds();
    println!(
        "[cluster] created in {}; T = {}; waiting for T and for every execution",
        duration(created.elapsed),
        due.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    tokio::time::sleep((due - Utc::now()).to_std().unwrap_or_default()).await;
    let completion = fire::wait_for_completion(&cluster.server, count).await?;
    let server_cpu = cluster.server.cpu_seconds()? - server_cpu_before;
    let agents_cpu = cluster.agents_cpu_seconds() - agents_cpu_before;
    let hits = target.hits() - hits_before;
    let (lists, read) = fire::read_executions(&cluster.server, "clu", count).await;
    let runs = analyse(&lists, 1, |s| s == due);

    section.info(
        format!(
            "create {} jobs ({CREATE_CONCURRENCY} in flight), tags {{{}: {ONE_AGENT}}}",
            thousands(count as u64),
            AGENT_TAG.0
        ),
        format!(
            "{} ({}), done {} before T{}",
            duration(created.elapsed),
            rate(created.per_second()),
            millis(lead.num_milliseconds() as f64),
            if attempts > 1 {
                format!(", attempt {attempts}")
            } else {
                String::new()
            }
        ),
    );
    section.target(
        "job next = T (schedule @at T)",
        if next_ok { "yes" } else { first.next.as_str() },
        "yes",
        next_ok,
    );
    let span = runs
        .last_finished
        .map(|last| fire::ms_between(due, last) / 1000.0);
    section.info(
        "fires completed per second: finished / (last finished_at − T)",
        span.map_or_else(
            || "none finished".to_owned(),
            |s| {
                format!(
                    "{} ({} in {})",
                    rate(runs.finished as f64 / s.max(1e-3)),
                    thousands(runs.finished as u64),
                    millis(s * 1000.0)
                )
            },
        ),
    );
    section.info("runs per agent", per_node_text(&runs));
    section.info(
        "start lag on agents min / p50 / p99 / max (started_at − scheduled_at)",
        fire::quantiles(&runs.start_ms),
    );
    if let (Some(first), Some(last)) = (runs.start_ms.first(), runs.start_ms.last()) {
        section.info(
            "  start spread per run: (max − min start lag) ÷ runs",
            format!(
                "{:.0} µs",
                (last - first) * 1000.0 / runs.start_ms.len() as f64
            ),
        );
    }
    section.info(
        "finish lag on agents min / p50 / p99 / max (finished_at − scheduled_at)",
        fire::quantiles(&runs.finish_ms),
    );
    section.info(
        "all recorded in the store (seen by polling every 500 ms, from T)",
        completion
            .all_recorded
            .map_or_else(|| "never (stalled)".to_owned(), duration),
    );
    section.target(
        "jobs without a finished execution",
        thousands(completion.pending as u64),
        "0",
        completion.pending == 0,
    );
    add_correctness_rows(&mut section, &runs, read.errors);
    section.target(
        "requests the http target received",
        thousands(hits),
        format!("= {}", thousands(count as u64)),
        hits == count as u64,
    );
    section.info(
        "CPU from T until all recorded: server / all agents",
        format!("{server_cpu:.2} s / {agents_cpu:.2} s"),
    );
    section.note(
        "started_at is set by the agent when it accepts the run, before the request is sent; every node runs on the same machine and clock",
    );
    add_problem_notes(&mut section, &cluster);
    let (_, _, problems) = cluster.stop().await;
    for problem in problems {
        section.note(format!("stopping: {problem}"));
    }
    section.print();
    Ok(section)
}

/// Part 3, light load: jobs `@every 1s` on agents for a few seconds.
async fn light_load(context: &Context, target: &Target) -> BenchResult<Section> {
    let (count, seconds) = if context.quick {
        (LIGHT_JOBS.1, LIGHT_SECONDS.1)
    } else {
        (LIGHT_JOBS.0, LIGHT_SECONDS.0)
    };
    println!(
        "\n[cluster] 1 server + {DISPATCH_AGENTS} agents: {count} http jobs @every 1s, {seconds} s counted"
    );
    let mut section = Section::new(format!(
        "cluster light load, 1 server + {DISPATCH_AGENTS} agents, {count} jobs @every 1s, {seconds} s"
    ));
    let cluster = converged_cluster(context).await?;
    let executor = Executor::HttpGetExpect200(target.url.clone());
    let created = jobs::create_tagged(
        &cluster.server,
        "light",
        count,
        CREATE_CONCURRENCY,
        "@every 1s",
        &executor,
        &one_agent_tags(),
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
    // The window starts at the first whole second at least 1 s after the last creation, so
    // every job is scheduled for each of its instants.
    let from = fire::whole_second_at_or_after(Utc::now() + TimeDelta::seconds(1));
    let until = from + TimeDelta::seconds(seconds);
    let server_cpu_before = cluster.server.cpu_seconds()?;
    let agents_cpu_before = cluster.agents_cpu_seconds();
    let read_at = until + TimeDelta::from_std(LIGHT_SETTLE)?;
    tokio::time::sleep((read_at - Utc::now()).to_std().unwrap_or_default()).await;
    let server_cpu = cluster.server.cpu_seconds()? - server_cpu_before;
    let agents_cpu = cluster.agents_cpu_seconds() - agents_cpu_before;
    let (lists, read) = fire::read_executions(&cluster.server, "light", count).await;
    let runs = analyse(&lists, usize::try_from(seconds)?, |s| {
        s >= from && s < until
    });

    section.info(
        "window (scheduled_at in [from, until))",
        format!(
            "{} – {}",
            from.to_rfc3339_opts(SecondsFormat::Secs, true),
            until.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
    );
    section.info(
        "runs finished in the window",
        format!(
            "{} of {}",
            thousands(runs.finished as u64),
            thousands(count as u64 * seconds.unsigned_abs())
        ),
    );
    section.info("runs per agent", per_node_text(&runs));
    section.info(
        "start lag on agents min / p50 / p99 / max (started_at − scheduled_at)",
        fire::quantiles(&runs.start_ms),
    );
    section.info(
        "finish lag on agents min / p50 / p99 / max (finished_at − scheduled_at)",
        fire::quantiles(&runs.finish_ms),
    );
    add_correctness_rows(&mut section, &runs, read.errors);
    let window = (read_at - from).num_milliseconds() as f64 / 1000.0;
    section.info(
        "CPU per second of the window: server / all agents",
        format!(
            "{:.1} ms / {:.1} ms",
            server_cpu / window * 1000.0,
            agents_cpu / window * 1000.0
        ),
    );
    section.note(
        "@every 1s fires on whole seconds, so every second is a burst of all the jobs at once",
    );
    add_problem_notes(&mut section, &cluster);
    let (_, _, problems) = cluster.stop().await;
    for problem in problems {
        section.note(format!("stopping: {problem}"));
    }
    section.print();
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execution(
        job: &str,
        node: &str,
        scheduled: &str,
        started: &str,
        finished: &str,
    ) -> ExecutionOut {
        ExecutionOut {
            id: format!("{started}-{node}"),
            job_name: job.to_owned(),
            started_at: started.to_owned(),
            finished_at: finished.to_owned(),
            success: true,
            output: String::new(),
            node_name: node.to_owned(),
            group: 0,
            attempt: 1,
            output_truncated: None,
            scheduled_at: Some(scheduled.to_owned()),
        }
    }

    #[test]
    fn agent_names_sort_by_number() {
        assert_eq!(agent_name(1), "a01");
        assert_eq!(agent_name(29), "a29");
        assert!(agent_name(2) < agent_name(10));
    }

    #[test]
    fn runs_are_counted_per_node_and_instant() {
        let due = fire::parse_time("2030-01-01T00:00:01Z").unwrap();
        let lists = vec![
            Some(vec![execution(
                "j1",
                "a01",
                "2030-01-01T00:00:01Z",
                "2030-01-01T00:00:01.002Z",
                "2030-01-01T00:00:01.010Z",
            )]),
            Some(vec![
                execution(
                    "j2",
                    "a02",
                    "2030-01-01T00:00:01Z",
                    "2030-01-01T00:00:01.004Z",
                    "2030-01-01T00:00:01.020Z",
                ),
                execution(
                    "j2",
                    "s1",
                    "2030-01-01T00:00:01Z",
                    "2030-01-01T00:00:01.001Z",
                    "2030-01-01T00:00:01.030Z",
                ),
            ]),
            Some(Vec::new()),
            None,
        ];
        let runs = analyse(&lists, 1, |s| s == due);
        assert_eq!(runs.finished, 3);
        assert_eq!(runs.per_node.get("a01"), Some(&1));
        assert_eq!(runs.on_server, 1);
        assert_eq!(runs.duplicated, 1);
        assert_eq!(runs.missing, 1);
        assert_eq!(runs.unreadable, 1);
        assert_eq!(runs.start_ms, vec![2.0, 4.0]);
        assert_eq!(
            runs.last_finished,
            fire::parse_time("2030-01-01T00:00:01.030Z")
        );
    }
}
