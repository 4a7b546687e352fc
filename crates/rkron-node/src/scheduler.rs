//! The scheduler driver: runs on the leader, keeps every schedulable job in the core's
//! [`ScheduleIndex`] and fires due jobs. It sleeps until the earliest next fire or until a job
//! change arrives; it never scans all jobs per tick.

use std::sync::Arc;

use chrono::TimeDelta;
use rkron_core::Job;
use rkron_core::index::ScheduleIndex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Inner;

/// Longest sleep when nothing is scheduled; a change wakes the loop earlier.
const IDLE_SLEEP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Job changes the scheduler hears about.
#[derive(Debug)]
pub(crate) enum Msg {
    Upsert(Box<Job>),
    Remove(String),
}

/// The leader's scheduler.
#[derive(Debug)]
pub(crate) struct Scheduler {
    inner: Arc<Inner>,
    index: ScheduleIndex<Job>,
}

impl Scheduler {
    /// Builds the index from every stored job.
    pub(crate) fn new(inner: Arc<Inner>, jobs: Vec<Job>) -> Self {
        let mut scheduler = Self {
            inner,
            index: ScheduleIndex::new(),
        };
        for job in jobs {
            scheduler.apply(Msg::Upsert(Box::new(job)));
        }
        tracing::info!(jobs = scheduler.index.len(), "scheduler started");
        scheduler
    }

    fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Remove(name) => {
                self.index.remove(&name);
            }
            Msg::Upsert(job) => {
                let job = *job;
                if job.disabled || job.is_child() {
                    self.index.remove(&job.name);
                    return;
                }
                let Some(Ok(schedule)) = job.parsed_schedule() else {
                    self.index.remove(&job.name);
                    return;
                };
                let now = self.inner.clock.now();
                let after = match job.starts_at {
                    Some(s) if s > now => s - TimeDelta::nanoseconds(1),
                    _ => now,
                };
                let name = job.name.clone();
                self.index.upsert(&name, schedule, after, job);
            }
        }
    }

    /// Runs until `cancel` fires.
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        cancel: CancellationToken,
    ) {
        loop {
            let now = self.inner.clock.now();
            for due in self.index.pop_due(now) {
                if due.missed > 0 {
                    tracing::warn!(job = %due.name, missed = due.missed, "scheduler was behind; older due fires were skipped");
                }
                let job = due.payload.clone();
                if !job.is_schedulable_at(due.scheduled_at) {
                    tracing::debug!(job = %due.name, "not runnable now (starts_at/expires_at)");
                    continue;
                }
                crate::dispatch::fire(&self.inner, job, Some(due.scheduled_at));
            }
            let sleep = match self.index.peek_deadline() {
                Some(deadline) => (deadline - self.inner.clock.now())
                    .to_std()
                    .unwrap_or_default(),
                None => IDLE_SLEEP,
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    self.apply(msg);
                    while let Ok(more) = rx.try_recv() {
                        self.apply(more);
                    }
                }
                () = tokio::time::sleep(sleep) => {}
            }
        }
        tracing::info!("scheduler stopped");
    }
}
