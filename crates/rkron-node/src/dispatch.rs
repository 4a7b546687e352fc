//! Dispatch and recording: a fire becomes an execution group, runs go to their target nodes
//! through the [`AgentRunner`](crate::AgentRunner), and every report is stored. Retries,
//! dependent jobs and ephemeral deletion follow a finished execution.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rkron_core::execution::unix_nanos;
use rkron_core::tags::select_targets;
use rkron_core::{Concurrency, Execution, Job, JobStatus};
use tokio::sync::mpsc;

use crate::agent::AgentRun;
use crate::{ActiveRun, Inner, NodeError, NodeHandle, RunEvent};

/// How long a run goes before its "running" record is written to the store.
const RUNNING_RECORD_DELAY: Duration = Duration::from_millis(500);

/// A fire that was dispatched: its group and the tasks carrying its runs.
#[derive(Debug)]
pub(crate) struct Fired {
    pub(crate) group: i64,
    pub(crate) runs: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts a run of `job` for the fire at `scheduled_at` (`None` for a manual or child run).
pub(crate) async fn fire(
    inner: &Arc<Inner>,
    job: Arc<Job>,
    scheduled_at: Option<DateTime<Utc>>,
) -> Option<Fired> {
    if inner.shutdown.is_cancelled() {
        return None;
    }
    if scheduled_at.is_some()
        && job.concurrency == Concurrency::Forbid
        && has_active(inner, &job.name)
    {
        tracing::info!(job = %job.name, "skipping concurrent execution (concurrency: forbid)");
        return None;
    }
    let group = unix_nanos(scheduled_at.unwrap_or_else(|| inner.clock.now()));
    let candidates: Vec<_> = inner
        .members
        .borrow()
        .iter()
        .map(crate::Member::candidate)
        .collect();
    let targets = select_targets(
        job.tags.as_ref(),
        &candidates,
        &inner.config.region,
        &mut rand::rng(),
    );
    let template = Execution {
        job_name: job.name.clone(),
        started_at: inner.clock.now(),
        finished_at: None,
        success: false,
        output: String::new(),
        node_name: inner.config.node_name.clone(),
        group,
        attempt: 1,
        scheduled_at,
    };
    if targets.is_empty() {
        let inner2 = inner.clone();
        let run = inner.tasks.spawn(async move {
            let mut e = template;
            e.finished_at = Some(inner2.clock.now());
            e.output = format!("no target nodes found to run job {}", job.name);
            record_finished(&inner2, &job, e).await;
        });
        return Some(Fired {
            group,
            runs: vec![run],
        });
    }
    let mut runs = Vec::with_capacity(targets.len());
    for node in targets {
        let inner2 = inner.clone();
        let (job, execution) = (job.clone(), template.clone());
        if node == inner.config.node_name {
            // This node accepts the run here, inline, so every run of a tick is accepted
            // before the work of any of them competes for the CPU; following it goes on in
            // its own task.
            let accepted = send_run(inner, &node, &job, execution.clone()).await;
            runs.push(inner.tasks.spawn(async move {
                run_on(inner2, node, job, execution, Some(accepted)).await;
            }));
        } else {
            // Another member accepts it over the network, which can take up to the RPC
            // timeout when the member just became unreachable: never on the scheduler's path.
            count_sent(inner, &job.name, 1);
            runs.push(inner.tasks.spawn(async move {
                let accepted = send_counted(&inner2, &node, &job, execution.clone()).await;
                run_on(inner2, node, job, execution, Some(accepted)).await;
            }));
        }
    }
    Some(Fired { group, runs })
}

/// Fires a dependent job. Boxed as a `Send` trait object: firing a child happens inside the
/// recording of its parent, which `fire` itself spawns, and the explicit type breaks that cycle.
fn fire_child(
    inner: Arc<Inner>,
    job: Arc<Job>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Fired>> + Send>> {
    Box::pin(async move { fire(&inner, job, None).await })
}

/// An accepted (or refused) run and the stream of its events.
type Accepted = (Result<(), crate::RunError>, mpsc::Receiver<RunEvent>);

/// Hands one attempt to its node.
async fn send_run(
    inner: &Arc<Inner>,
    node: &str,
    job: &Arc<Job>,
    execution: Execution,
) -> Accepted {
    // Paired with exactly one `count_sent(-1)` in `run_once`.
    count_sent(inner, &job.name, 1);
    send_counted(inner, node, job, execution).await
}

/// [`send_run`] for a run already counted as sent (when the fire was dispatched, so a
/// `forbid` check in between sees it).
async fn send_counted(
    inner: &Arc<Inner>,
    node: &str,
    job: &Arc<Job>,
    execution: Execution,
) -> Accepted {
    let (tx, rx) = mpsc::channel(4);
    // Scheduled runs are fenced by this server's lease token; manual runs are not.
    let leader_token = if execution.scheduled_at.is_some() {
        inner.lease_token.load(std::sync::atomic::Ordering::SeqCst)
    } else {
        0
    };
    let request = AgentRun {
        job: job.clone(),
        execution,
        leader_token,
    };
    (inner.runner.run(node, request, tx).await, rx)
}

/// Whether a run of `job` is in flight: sent to a node and not yet reported as started, or
/// started and not yet finished.
fn has_active(inner: &Inner, job: &str) -> bool {
    let sent = inner
        .sent
        .lock()
        .is_ok_and(|s| s.get(job).is_some_and(|n| *n > 0));
    sent || inner
        .active
        .lock()
        .map(|a| a.values().any(|r| r.execution.job_name == job))
        .unwrap_or(false)
}

/// Counts a run of `job` as sent (`delta` +1) or as no longer only sent (-1: it started, or
/// it ended without starting).
fn count_sent(inner: &Inner, job: &str, delta: isize) {
    if let Ok(mut sent) = inner.sent.lock() {
        let n = sent.entry(job.to_owned()).or_insert(0);
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            sent.remove(job);
        }
    }
}

/// Runs one attempt on one node and records its reports; then retries if the job asks for it.
async fn run_on(
    inner: Arc<Inner>,
    node: String,
    job: Arc<Job>,
    execution: Execution,
    mut accepted: Option<Accepted>,
) {
    let mut attempt = execution;
    loop {
        let sent = match accepted.take() {
            Some(sent) => sent,
            None if !member_alive(&inner, &node) => {
                // Dkron retries on the node that failed only, and only while it is alive.
                let mut failed = attempt.clone();
                failed.node_name = node.clone();
                failed.finished_at = Some(inner.clock.now());
                failed.output = format!("retry node is gone: {node} for job {}", job.name);
                record_finished(&inner, &job, failed).await;
                return;
            }
            None => send_run(&inner, &node, &job, attempt.clone()).await,
        };
        // Boxed, so the task dispatch allocates for a run stays small (see `record_finished`).
        let finished = Box::pin(run_once(&inner, &node, &job, attempt.clone(), sent)).await;
        let Some(done) = finished else { return };
        if done.success
            || done.attempt >= job.retries.saturating_add(1)
            || inner.shutdown.is_cancelled()
        {
            return;
        }
        let next_attempt = done.attempt + 1;
        let delay = job.retry_delay(next_attempt).unwrap_or_else(|| {
            // Dkron's backoff: floor(log2(elapsed / 500ms) + attempt) × 500ms, never negative.
            let elapsed = done.finished_at.unwrap_or(done.started_at) - done.started_at;
            let ratio = (elapsed.num_milliseconds().max(1) as f64) / 500.0;
            let steps = (ratio.log2() + f64::from(next_attempt)).floor().max(0.0);
            Duration::from_millis((steps * 500.0) as u64)
        });
        let backoff = tokio::time::sleep(delay);
        tokio::select! {
            () = backoff => {}
            // Shutting down: the failed attempt is recorded; no retry is started.
            () = inner.shutdown.cancelled() => return,
        }
        attempt.attempt = next_attempt;
        attempt.started_at = inner.clock.now();
        attempt.output.clear();
    }
}

/// Whether `node` is an alive member now.
fn member_alive(inner: &Inner, node: &str) -> bool {
    inner
        .members
        .borrow()
        .iter()
        .any(|m| m.name == node && m.status == crate::MemberStatus::Alive)
}

/// Records the events of one sent run; answers the finished execution.
async fn run_once(
    inner: &Arc<Inner>,
    node: &str,
    job: &Arc<Job>,
    execution: Execution,
    (accepted, mut rx): Accepted,
) -> Option<Execution> {
    let mut counted_sent = true;
    if let Err(crate::RunError::Fenced(token)) = accepted {
        // This server was deposed: the new leader decides about this fire; nothing is
        // recorded here.
        count_sent(inner, &job.name, -1);
        tracing::warn!(job = %job.name, node, token, "a node refused a run of this deposed leader");
        return None;
    }
    if let Err(e) = accepted {
        count_sent(inner, &job.name, -1);
        let mut failed = execution;
        failed.node_name = node.to_owned();
        failed.finished_at = Some(inner.clock.now());
        failed.output = format!("rkron: could not start the run on {node}: {e}");
        record_finished(inner, job, failed.clone()).await;
        return Some(failed);
    }
    let mut last = None;
    let mut started: Option<Execution> = None;
    // The running record is written only for runs still going after RUNNING_RECORD_DELAY: a
    // burst of short runs then costs one durable write each instead of two. Until then the
    // run is visible in /v1/busy, and the fire itself is already in the fire ledger.
    let mut record_due: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        let event = tokio::select! {
            event = rx.recv() => event,
            () = async {
                match record_due.as_mut() {
                    Some(due) => due.await,
                    None => std::future::pending().await,
                }
            } => {
                record_due = None;
                let still_active = started.as_ref().is_some_and(|e| {
                    inner.active.lock().is_ok_and(|a| a.contains_key(&e.id()))
                });
                if let Some(e) = started.as_ref().filter(|_| still_active)
                    && let Err(err) = {
                        let _turn = record_turn(inner).await;
                        inner.store.put_execution(e, inner.config.execution_retention).await
                    }
                {
                    tracing::error!(job = %e.job_name, error = %err, "could not store a running execution");
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        match event {
            RunEvent::Started(e, output) => {
                started = Some(e.clone());
                record_due = Some(Box::pin(tokio::time::sleep(RUNNING_RECORD_DELAY)));
                if inner.notifier.has_pre_webhook() {
                    let (inner2, job2, e2) = (inner.clone(), job.clone(), e.clone());
                    inner.tasks.spawn(async move {
                        inner2.notifier.execution_started(&job2, &e2).await;
                    });
                }
                let id = e.id();
                if let Ok(mut active) = inner.active.lock() {
                    active.insert(
                        id,
                        ActiveRun {
                            report_by: crate::watchdog::report_by(
                                job,
                                e.started_at,
                                inner.config.report_margin,
                            ),
                            execution: e.clone(),
                            output,
                            kill_sent: false,
                        },
                    );
                }
                if std::mem::take(&mut counted_sent) {
                    count_sent(inner, &job.name, -1);
                }
            }
            RunEvent::Finished(e) => {
                record_due = None;
                // Whoever takes the run out of the active set records it, exactly once: here,
                // or the watchdog when the node never reported.
                let id = e.id();
                let ours = inner.active.lock().map(|mut a| a.remove(&id).is_some());
                if ours.unwrap_or(false) {
                    // A copy of this report that reaches this server outside the stream
                    // meanwhile is recognised and ignored (see `report_finished`).
                    if let Ok(mut recording) = inner.recording.lock() {
                        recording.insert(id.clone());
                    }
                    record_finished(inner, job, e.clone()).await;
                    if let Ok(mut recording) = inner.recording.lock() {
                        recording.remove(&id);
                    }
                    inner.runner.recorded(node, &id);
                } else {
                    tracing::warn!(job = %e.job_name, execution = %e.id(), "late report of an execution the watchdog already failed; ignored");
                }
                last = Some(e);
            }
        }
    }
    if std::mem::take(&mut counted_sent) {
        count_sent(inner, &job.name, -1);
    }
    if last.is_none() {
        // The node's stream ended without a final report (the node died or the connection
        // broke): the run is failed now rather than left "running".
        if let Some(mut e) = started {
            let ours = inner.active.lock().map(|mut a| a.remove(&e.id()).is_some());
            if ours.unwrap_or(false) {
                e.finished_at = Some(inner.clock.now());
                e.success = false;
                e.output = format!(
                    "rkron: the connection to node {} ended before the execution reported its result",
                    e.node_name
                );
                record_finished(inner, job, e.clone()).await;
                last = Some(e);
            }
        }
    }
    last
}

/// Waits for a turn to write an execution record, when this server bounds how many it writes
/// at once ([`crate::NodeConfig::record_concurrency`]).
async fn record_turn(inner: &Inner) -> Option<tokio::sync::SemaphorePermit<'_>> {
    match &inner.record_gate {
        Some(gate) => gate.acquire().await.ok(),
        None => None,
    }
}

/// Stores a finished execution, then follows up: children on a successful group, ephemeral deletion.
///
/// Boxed: its state (store calls, processors, notifications, deletion) is large, and every run
/// task awaits it at several points; inline, it made each run task about 5 kB, allocated when
/// the run is dispatched, so a tick of 1,000 runs first had to fault in 5 MB of fresh memory.
pub(crate) fn record_finished<'a>(
    inner: &'a Arc<Inner>,
    job: &'a Arc<Job>,
    execution: Execution,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
    Box::pin(record_finished_now(inner, job, execution))
}

async fn record_finished_now(inner: &Arc<Inner>, job: &Arc<Job>, execution: Execution) {
    // Processors see every finished attempt before it is stored, as in Dkron.
    let execution = if job.processors.is_empty() {
        execution
    } else {
        inner.processors.apply(job, execution).await
    };
    let final_attempt = execution.success || execution.attempt >= job.retries.saturating_add(1);
    let notify = final_attempt && inner.plugins_notify(job);
    // `recovery` needs the status of the job's previous group, read before this one lands.
    let previous_failed = if notify {
        matches!(
            inner.store.get_job(&job.name).await,
            Ok(Some(j)) if matches!(j.value.status, JobStatus::Failed | JobStatus::PartiallyFailed)
        )
    } else {
        false
    };
    // Dkron's metric names, so existing dashboards keep working.
    let outcome = if execution.success {
        "dkron_job_executions_succeeded_total"
    } else {
        "dkron_job_executions_failed_total"
    };
    metrics::counter!(outcome, "job_name" => execution.job_name.clone()).increment(1);
    let turn = record_turn(inner).await;
    let stored = inner
        .store
        .finish_execution(&execution, inner.config.execution_retention)
        .await;
    drop(turn);
    let stored = match stored {
        Ok(Some(job)) => job,
        Ok(None) => {
            tracing::warn!(job = %execution.job_name, "execution finished for a deleted job");
            return;
        }
        Err(e) => {
            tracing::error!(job = %execution.job_name, error = %e, "could not store a finished execution");
            return;
        }
    };
    if notify {
        // Notifications never delay or cancel anything (DESIGN §8): they go on their own task.
        let (inner2, job2, execution2) = (inner.clone(), stored.clone(), execution.clone());
        inner.tasks.spawn(async move {
            let group: Vec<Execution> = match inner2.store.list_executions(&job2.name, false).await {
                Ok(list) => list.into_iter().filter(|e| e.group == execution2.group).collect(),
                Err(_) => vec![execution2.clone()],
            };
            let report = inner2.notifier.execution_done(&job2, &execution2, &group, previous_failed).await;
            if report.failed > 0 {
                metrics::counter!("rkron_notifications_failed_total", "job_name" => job2.name.clone())
                    .increment(u64::from(report.failed));
                tracing::warn!(job = %job2.name, failed = report.failed, errors = ?report.errors, "notifications failed");
            }
        });
    }
    if !final_attempt || stored.status != JobStatus::Success {
        return;
    }
    let handle = NodeHandle {
        inner: inner.clone(),
    };
    for child in stored.dependent_jobs.iter().flatten() {
        match inner.store.get_job(child).await {
            Ok(Some(c)) if !c.value.disabled => {
                fire_child(inner.clone(), Arc::new(c.value)).await;
            }
            Ok(Some(_)) => tracing::info!(job = %child, "dependent job is disabled; not run"),
            Ok(None) => {
                tracing::error!(parent = %stored.name, job = %child, "dependent job not found");
            }
            Err(e) => tracing::error!(job = %child, error = %e, "could not load dependent job"),
        }
    }
    if stored.ephemeral {
        match handle.delete_job(&stored.name).await {
            Ok(_) | Err(NodeError::JobNotFound) => {}
            Err(e) => {
                tracing::error!(job = %stored.name, error = %e, "could not delete ephemeral job");
            }
        }
    }
}

impl NodeHandle {
    /// Runs a job now, whatever its schedule, `disabled` flag or concurrency policy, and returns
    /// the job at once (the run goes on in the background).
    pub async fn run_job(&self, name: &str) -> Result<Job, NodeError> {
        let job = self.get_job(name).await?;
        fire(&self.inner, Arc::new(job.clone()), None).await;
        Ok(job)
    }

    /// Runs a job now and waits until every node of the run has finished, retries included;
    /// answers the executions of that run (dependent jobs run after, in their own groups).
    pub async fn run_job_and_wait(&self, name: &str) -> Result<Vec<Execution>, NodeError> {
        let job = self.get_job(name).await?;
        let Some(fired) = fire(&self.inner, Arc::new(job), None).await else {
            return Err(NodeError::ShuttingDown);
        };
        for run in fired.runs {
            let _ = run.await;
        }
        let executions = self.inner.store.list_executions(name, true).await?;
        Ok(executions
            .into_iter()
            .filter(|e| e.group == fired.group)
            .collect())
    }

    /// Kills a running execution (the whole process group on its node); it is recorded as failed
    /// with "killed by request". Answers the execution as it was when killed.
    pub async fn kill_execution(&self, job: &str, id: &str) -> Result<Execution, NodeError> {
        self.get_job(job).await?;
        let running = self
            .inner
            .active
            .lock()
            .ok()
            .and_then(|a| a.get(id).cloned());
        let Some(run) = running.filter(|r| r.execution.job_name == job) else {
            return match self.inner.store.get_execution(job, id).await? {
                Some(_) => Err(NodeError::NotRunning),
                None => Err(NodeError::ExecutionNotFound),
            };
        };
        let node = run.execution.node_name.clone();
        if !self.inner.runner.kill(&node, id, KILLED_BY_REQUEST).await {
            return Err(NodeError::NotRunning);
        }
        let mut execution = run.execution;
        execution.output = run.output.snapshot();
        Ok(execution)
    }
}

/// The text recorded on an execution killed through the API.
pub const KILLED_BY_REQUEST: &str = "killed by request";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Node, NodeConfig, Plugins};
    use rkron_core::{Clock as _, SystemClock};

    /// The task dispatch spawns for each run is allocated on the scheduler's path, once per run
    /// of a tick: the recording's large state must not be part of it (see `record_finished`).
    #[tokio::test]
    async fn a_run_task_does_not_hold_the_recording_state_inline() {
        let handle = Node::start(
            NodeConfig::for_test("n1"),
            Arc::new(rkron_store::MemoryStore::new()),
            Plugins::builtins("n1"),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        let job = Arc::new(Job::default());
        let execution = Execution {
            job_name: job.name.clone(),
            started_at: SystemClock.now(),
            finished_at: None,
            success: false,
            output: String::new(),
            node_name: "n1".to_owned(),
            group: 0,
            attempt: 1,
            scheduled_at: None,
        };
        let (_events, rx) = mpsc::channel(1);
        let task = run_on(
            handle.inner.clone(),
            "n1".to_owned(),
            job.clone(),
            execution.clone(),
            Some((Ok(()), rx)),
        );
        let recording = record_finished_now(&handle.inner, &job, execution);
        assert!(
            std::mem::size_of_val(&task) < std::mem::size_of_val(&recording),
            "a run task of {} bytes holds the recording's {} bytes inline",
            std::mem::size_of_val(&task),
            std::mem::size_of_val(&recording)
        );
    }
}
