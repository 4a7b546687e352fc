//! The node-run interface (what the leader asks a node to run) and its in-process implementation.
//!
//! The leader never calls an executor directly: it sends an [`AgentRun`] through an
//! [`AgentRunner`] and consumes [`RunEvent`]s. On one server the runner is [`LocalAgent`]; the
//! cluster issue carries the same exchange over gRPC (`AgentRun` server stream) without changing
//! the leader's code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rkron_core::{Clock, Execution, Job};
use rkron_executor::{
    ExecuteOutcome, ExecuteRequest, ExecutorRegistry, OutputBuffer, final_output,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::journal::RunJournal;

/// A request to run one attempt of a job on one node.
#[derive(Debug, Clone)]
pub struct AgentRun {
    /// The job as the leader sees it.
    pub job: Arc<Job>,
    /// The execution to fill in: job name, group, attempt and scheduled instant are set;
    /// the agent sets `started_at`, `node_name`, `finished_at`, `success` and `output`.
    pub execution: Execution,
    /// The lease token of the leader that dispatched this scheduled run, or 0 for a run that
    /// is not fenced (a manual run, sent by whichever server received it). A node refuses a
    /// run whose token is older than the newest it has seen (see [`AgentRunner::recent_runs`]).
    pub leader_token: u64,
}

/// A scheduled run a node accepted: the job and the instant it serves.
pub type AcceptedRun = (String, chrono::DateTime<chrono::Utc>);

/// A node's answer to [`AgentRunner::recent_runs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentRuns {
    /// The scheduled runs it accepted for instants at or after the asked `since`.
    pub runs: Vec<AcceptedRun>,
    /// The list is complete only for instants at or after this one: the node forgets what it
    /// accepted before it started (a restart) and what it dropped to stay bounded.
    pub complete_from: chrono::DateTime<chrono::Utc>,
}

/// How long a node remembers the scheduled runs it accepted, for a new leader's question
/// which fires cut off by a takeover did reach it ([`AgentRunner::recent_runs`]).
pub const RECENT_RUNS_KEPT: Duration = Duration::from_secs(120);

/// At most this many accepted runs are remembered (about 2,000 runs a second for
/// [`RECENT_RUNS_KEPT`]); the oldest go first.
const RECENT_RUNS_MAX: usize = 250_000;

/// What a node reports about a run, in order: one `Started`, then one `Finished`.
#[derive(Debug)]
pub enum RunEvent {
    /// The executor started; the buffer fills with output as it comes.
    Started(Execution, OutputBuffer),
    /// The run ended (success, failure, timeout, kill).
    Finished(Execution),
}

/// Why a run could not be handed to a node.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    #[error("node {0} is not reachable")]
    Unreachable(String),
    #[error("node is shutting down")]
    ShuttingDown,
    /// The run came from a leader older than one the node has already answered: that leader
    /// was deposed, and its runs are refused.
    #[error("refused: the run comes from a deposed leader (lease token {0})")]
    Fenced(u64),
}

/// Carries runs to nodes: in-process here, over RPC in a cluster.
#[async_trait]
pub trait AgentRunner: Send + Sync + std::fmt::Debug + 'static {
    /// Starts `run` on `node`; events go to `events` until `Finished`.
    async fn run(
        &self,
        node: &str,
        run: AgentRun,
        events: mpsc::Sender<RunEvent>,
    ) -> Result<(), RunError>;

    /// Kills a running execution by id on `node`, recording `reason`; returns whether it was found.
    async fn kill(&self, node: &str, execution_id: &str, reason: &str) -> bool;

    /// Tells `node` that the final report of `execution_id`, received through `run`, is stored,
    /// so the node need not offer it again. In-process runners need nothing.
    fn recorded(&self, _node: &str, _execution_id: &str) {}

    /// Asks `node` which scheduled runs it accepted for instants at or after `since`, and makes
    /// it refuse, from now on, runs of leaders older than `leader_token`. A new leader asks
    /// every member this at takeover: a fire its predecessor wrote to the ledger but died
    /// before handing to any node is then known to have never run. Runners that cannot ask
    /// answer [`RunError::Unreachable`] (the default).
    async fn recent_runs(
        &self,
        node: &str,
        _leader_token: u64,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> Result<RecentRuns, RunError> {
        Err(RunError::Unreachable(node.to_owned()))
    }
}

/// The scheduled runs a node accepted lately, and the newest leader token it has seen.
#[derive(Debug)]
struct Accepted {
    fence: u64,
    runs: std::collections::VecDeque<(tokio::time::Instant, AcceptedRun)>,
    /// See [`RecentRuns::complete_from`].
    complete_from: chrono::DateTime<chrono::Utc>,
    /// Where accepted runs and fences are also written, to be known after a restart.
    journal: Option<RunJournal>,
}

impl Accepted {
    fn new(started: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            fence: 0,
            runs: std::collections::VecDeque::new(),
            complete_from: started,
            journal: None,
        }
    }

    /// Takes a run's token: false (refuse it) when a newer leader has been seen.
    fn admit(&mut self, leader_token: u64) -> bool {
        if leader_token != 0 && leader_token < self.fence {
            return false;
        }
        self.fence = self.fence.max(leader_token);
        true
    }

    /// Remembers an admitted scheduled run, in memory and queued for the journal; answers the
    /// journal line to [`Accepted::flush`] before the run's executor starts.
    fn accept(&mut self, leader_token: u64, run: AcceptedRun) -> Option<u64> {
        let line = match self
            .journal
            .as_mut()
            .map(|j| j.queue_run(leader_token, &run))
        {
            Some(Ok(line)) => Some(line),
            Some(Err(error)) => {
                self.drop_journal(&error);
                None
            }
            None => None,
        };
        self.remember(run);
        line
    }

    /// Writes the journal up to `line`.
    fn flush(&mut self, line: u64) {
        if let Some(journal) = self.journal.as_mut()
            && let Err(error) = journal.flush(line)
        {
            self.drop_journal(&error);
        }
    }

    /// Raises the fence to a new leader's token, in memory and in the journal.
    fn raise_fence(&mut self, leader_token: u64) {
        if leader_token <= self.fence {
            return;
        }
        self.fence = leader_token;
        if let Some(journal) = self.journal.as_mut()
            && let Err(error) = journal.record_fence(leader_token)
        {
            self.drop_journal(&error);
        }
    }

    /// Stops journaling after a failed write, removing the files a restart must not trust.
    fn drop_journal(&mut self, error: &std::io::Error) {
        tracing::error!(
            "cannot write the accepted-runs journal: {error}; this node stops journaling, so \
             after a restart it cannot tell a new leader which runs it took before"
        );
        if let Some(journal) = self.journal.take() {
            journal.discard();
        }
    }

    fn remember(&mut self, run: AcceptedRun) {
        let now = tokio::time::Instant::now();
        while self
            .runs
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RECENT_RUNS_KEPT)
            || self.runs.len() >= RECENT_RUNS_MAX
        {
            if let Some((_, (_, at))) = self.runs.pop_front() {
                self.complete_from = self
                    .complete_from
                    .max(at + chrono::TimeDelta::nanoseconds(1));
            }
        }
        self.runs.push_back((now, run));
    }
}

#[derive(Debug)]
struct Running {
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

/// Runs jobs on this node with the executor registry.
#[derive(Debug, Clone)]
pub struct LocalAgent {
    node_name: String,
    executors: Arc<ExecutorRegistry>,
    clock: Arc<dyn Clock>,
    running: Arc<Mutex<HashMap<String, Running>>>,
    tracker: TaskTracker,
    accepting: CancellationToken,
    /// Unix nanoseconds of the latest run start, for [`LocalAgent::unique_start`].
    last_start: Arc<std::sync::atomic::AtomicI64>,
    /// Scheduled runs accepted lately and the leader fence (see [`AgentRunner::recent_runs`]).
    recent: Arc<Mutex<Accepted>>,
    /// The scheduled runs an earlier process of this node accepted (from its journal), until
    /// a server takes them to record those nobody recorded.
    inherited: Arc<Mutex<Vec<AcceptedRun>>>,
}

impl LocalAgent {
    /// Creates an agent named `node_name`.
    pub fn new(node_name: String, executors: ExecutorRegistry, clock: Arc<dyn Clock>) -> Self {
        Self {
            node_name,
            executors: Arc::new(executors),
            running: Arc::default(),
            tracker: TaskTracker::new(),
            accepting: CancellationToken::new(),
            last_start: Arc::default(),
            recent: Arc::new(Mutex::new(Accepted::new(clock.now()))),
            inherited: Arc::default(),
            clock,
        }
    }

    /// Keeps the scheduled runs this node accepts, and the leader fence, in a journal under
    /// `dir` as well (module `journal`), and takes in what an earlier process of this
    /// node wrote there: after a crash and restart the node can still tell a new leader which
    /// runs it took. Fails when the journal cannot be opened or another process uses it; the
    /// agent then works on without one.
    pub fn open_journal(&self, dir: &std::path::Path) -> std::io::Result<()> {
        let (journal, loaded) = RunJournal::open(dir, &self.node_name, self.clock.now())?;
        if let Ok(mut recent) = self.recent.lock() {
            if let Some(complete_from) = loaded.complete_from {
                recent.complete_from = complete_from;
            }
            recent.fence = recent.fence.max(loaded.fence);
            for run in &loaded.runs {
                recent.remember(run.clone());
            }
            recent.journal = Some(journal);
        }
        if let Ok(mut inherited) = self.inherited.lock() {
            *inherited = loaded.runs;
        }
        Ok(())
    }

    /// Takes the scheduled runs an earlier process of this node accepted, as its journal named
    /// them when [`LocalAgent::open_journal`] opened it (once: later calls answer none).
    pub(crate) fn take_inherited(&self) -> Vec<AcceptedRun> {
        self.inherited
            .lock()
            .map(|mut runs| std::mem::take(&mut *runs))
            .unwrap_or_default()
    }

    /// The start instant of a new run: the clock's time, moved on by a nanosecond when another
    /// run of this node started in the same nanosecond, so execution ids (`<started nanos>-<node>`)
    /// never collide.
    fn unique_start(&self) -> chrono::DateTime<chrono::Utc> {
        let now = self.clock.now();
        let wanted = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let mut last = self.last_start.load(std::sync::atomic::Ordering::SeqCst);
        loop {
            let next = wanted.max(last.saturating_add(1));
            match self.last_start.compare_exchange(
                last,
                next,
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
            ) {
                Ok(_) => {
                    return if next == wanted {
                        now
                    } else {
                        chrono::DateTime::from_timestamp_nanos(next)
                    };
                }
                Err(seen) => last = seen,
            }
        }
    }

    /// The agent's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The name of the node this agent runs jobs for.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Number of executions running on this node.
    pub fn running_count(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Stops accepting runs, waits up to `grace` for running executions, then kills the rest
    /// with a message naming the grace period, and waits for their final reports.
    pub async fn drain(&self, grace: Duration) {
        self.accepting.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return;
        }
        let reason = format!(
            "rkron: execution killed: the node shut down and the grace period of {}s ran out",
            grace.as_secs_f64()
        );
        let ids: Vec<String> = self
            .running
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            self.kill_local(&id, &reason);
        }
        self.tracker.wait().await;
    }

    fn kill_local(&self, execution_id: &str, reason: &str) -> bool {
        let guard = self.running.lock();
        let Ok(running) = guard else { return false };
        match running.get(execution_id) {
            Some(r) => {
                if let Ok(mut slot) = r.reason.lock() {
                    slot.get_or_insert_with(|| reason.to_owned());
                }
                r.cancel.cancel();
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl AgentRunner for LocalAgent {
    async fn run(
        &self,
        node: &str,
        run: AgentRun,
        events: mpsc::Sender<RunEvent>,
    ) -> Result<(), RunError> {
        if node != self.node_name {
            return Err(RunError::Unreachable(node.to_owned()));
        }
        if self.accepting.is_cancelled() {
            return Err(RunError::ShuttingDown);
        }
        // Admitted and remembered under one lock, so a new leader's question (which raises
        // the fence) either sees this run or makes it refused: never neither.
        let mut journal_line = None;
        if let Ok(mut recent) = self.recent.lock() {
            if !recent.admit(run.leader_token) {
                return Err(RunError::Fenced(run.leader_token));
            }
            if let Some(at) = run.execution.scheduled_at {
                journal_line =
                    recent.accept(run.leader_token, (run.execution.job_name.clone(), at));
            }
        }
        let mut execution = run.execution;
        execution.node_name = self.node_name.clone();
        execution.started_at = self.unique_start();
        execution.finished_at = None;
        execution.success = false;
        let id = execution.id();
        let cancel = CancellationToken::new();
        let reason = Arc::new(Mutex::new(None));
        if let Ok(mut running) = self.running.lock() {
            running.insert(
                id.clone(),
                Running {
                    cancel: cancel.clone(),
                    reason: reason.clone(),
                },
            );
        }
        let output = OutputBuffer::new();
        let agent = self.clone();
        let job = run.job;
        self.tracker.spawn(async move {
            // In the journal before the executor starts (with the other runs queued since).
            if let Some(line) = journal_line
                && let Ok(mut recent) = agent.recent.lock()
            {
                recent.flush(line);
            }
            let _ = events
                .send(RunEvent::Started(execution.clone(), output.clone()))
                .await;
            let outcome = match agent.executors.get(&job.executor) {
                Some(executor) => {
                    let request = ExecuteRequest {
                        job_name: job.name.clone(),
                        config: job.executor_config.clone().unwrap_or_default(),
                    };
                    executor.execute(&request, &output, cancel).await
                }
                None if job.executor.is_empty() => ExecuteOutcome {
                    success: false,
                    error: Some("rkron: No executor defined, nothing to do".into()),
                },
                None => ExecuteOutcome {
                    success: false,
                    error: Some(format!(
                        "rkron: Specified executor is not present: {}",
                        job.executor
                    )),
                },
            };
            let killed_reason = reason.lock().ok().and_then(|r| r.clone());
            let mut text = final_output(&outcome, &output);
            if let Some(why) = killed_reason {
                text.push_str(if text.ends_with('\n') || text.is_empty() {
                    ""
                } else {
                    "\n"
                });
                text.push_str(&why);
            }
            execution.finished_at = Some(agent.clock.now());
            execution.success = outcome.success;
            execution.output = text;
            if let Ok(mut running) = agent.running.lock() {
                running.remove(&id);
            }
            let _ = events.send(RunEvent::Finished(execution)).await;
        });
        Ok(())
    }

    async fn kill(&self, node: &str, execution_id: &str, reason: &str) -> bool {
        node == self.node_name && self.kill_local(execution_id, reason)
    }

    async fn recent_runs(
        &self,
        node: &str,
        leader_token: u64,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<RecentRuns, RunError> {
        if node != self.node_name {
            return Err(RunError::Unreachable(node.to_owned()));
        }
        Ok(self.recent_since(leader_token, since))
    }
}

impl LocalAgent {
    /// [`AgentRunner::recent_runs`] of this node.
    pub fn recent_since(
        &self,
        leader_token: u64,
        since: chrono::DateTime<chrono::Utc>,
    ) -> RecentRuns {
        let Ok(mut recent) = self.recent.lock() else {
            // A poisoned lock: claim to know nothing, so nothing is caught up on this answer.
            return RecentRuns {
                runs: Vec::new(),
                complete_from: chrono::DateTime::<chrono::Utc>::MAX_UTC,
            };
        };
        recent.raise_fence(leader_token);
        RecentRuns {
            runs: recent
                .runs
                .iter()
                .filter(|(_, (_, at))| *at >= since)
                .map(|(_, run)| run.clone())
                .collect(),
            complete_from: recent.complete_from,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scheduled run of job `job` for instant `at`, from the leader with lease `token`.
    fn scheduled(job: &str, at: chrono::DateTime<chrono::Utc>, token: u64) -> AgentRun {
        let job = Job {
            name: job.to_owned(),
            // No such executor: the run is accepted and fails at once, which is all this needs.
            executor: "none".to_owned(),
            ..Job::default()
        };
        AgentRun {
            execution: Execution {
                job_name: job.name.clone(),
                started_at: at,
                finished_at: None,
                success: false,
                output: String::new(),
                node_name: String::new(),
                group: at.timestamp_nanos_opt().expect("a representable instant"),
                attempt: 1,
                scheduled_at: Some(at),
            },
            job: Arc::new(job),
            leader_token: token,
        }
    }

    #[tokio::test]
    async fn a_restarted_node_remembers_its_accepted_runs_and_fence_through_its_journal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first_start = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("instant");
        let clock = Arc::new(rkron_core::clock::ManualClock::new(first_start));
        let agent = LocalAgent::new("a1".into(), ExecutorRegistry::default(), clock.clone());
        agent.open_journal(dir.path()).expect("journal");
        let at = first_start + chrono::TimeDelta::seconds(10);
        let (events, mut received) = mpsc::channel(4);
        agent
            .run("a1", scheduled("nightly", at, 5), events)
            .await
            .expect("accepted");
        while let Some(event) = received.recv().await {
            if matches!(event, RunEvent::Finished(_)) {
                break;
            }
        }
        // A new leader (token 7) asks: the fence rises.
        assert_eq!(agent.recent_since(7, at).runs, vec![("nightly".into(), at)]);
        agent.drain(Duration::from_secs(1)).await;
        drop(agent);

        clock.advance(chrono::TimeDelta::seconds(60));
        let restarted = LocalAgent::new("a1".into(), ExecutorRegistry::default(), clock.clone());
        restarted
            .open_journal(dir.path())
            .expect("journal after the restart");
        let answer = restarted.recent_since(0, at);
        assert_eq!(answer.runs, vec![("nightly".into(), at)]);
        assert_eq!(
            answer.complete_from, first_start,
            "the journal reaches back to the first process's start"
        );
        let (events, _received) = mpsc::channel(4);
        let refused = restarted
            .run("a1", scheduled("nightly", at, 6), events)
            .await;
        assert!(
            matches!(refused, Err(RunError::Fenced(6))),
            "the deposed leader's run after the restart: {refused:?}"
        );

        // Without the journal, the same restart knows nothing before its own start.
        let forgetful = LocalAgent::new("a2".into(), ExecutorRegistry::default(), clock.clone());
        assert_eq!(
            forgetful.recent_since(0, at).complete_from,
            first_start + chrono::TimeDelta::seconds(60)
        );
    }

    #[test]
    fn runs_started_in_the_same_nanosecond_get_distinct_start_instants() {
        let start = chrono::DateTime::from_timestamp_nanos(1_700_000_000_000_000_000);
        let clock = Arc::new(rkron_core::clock::ManualClock::new(start));
        let agent = LocalAgent::new(
            "a1".into(),
            ExecutorRegistry::with_builtins(),
            clock.clone(),
        );
        let instants: Vec<_> = (0..5).map(|_| agent.unique_start()).collect();
        assert_eq!(instants[0], start);
        for pair in instants.windows(2) {
            assert_eq!(pair[1] - pair[0], chrono::TimeDelta::nanoseconds(1));
        }
        // Once the clock is ahead again, its own time is used.
        clock.advance(chrono::TimeDelta::seconds(1));
        assert_eq!(agent.unique_start(), start + chrono::TimeDelta::seconds(1));
    }
}
