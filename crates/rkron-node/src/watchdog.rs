//! The watchdog: a run that outlives its timeout without a final report (a hung executor, or in
//! a cluster a node that vanished) is killed, then finished as failed with a clear message, so
//! `concurrency: forbid` can never be blocked by a stale "running" record (Dkron issue 1939).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rkron_core::Job;
use tokio_util::sync::CancellationToken;

use crate::Inner;

/// How often active runs are checked.
const PERIOD: Duration = Duration::from_secs(2);
/// The http executor's default timeout, in seconds (Dkron's).
const HTTP_DEFAULT_TIMEOUT_SECS: i64 = 30;

/// When a run of `job` started at `started_at` must have reported by, if the job has a timeout.
///
/// `margin` (`NodeConfig::report_margin`) comes on top of the timeout: executors enforce the
/// timeout themselves, so the watchdog only acts when something failed to report.
pub(crate) fn report_by(
    job: &Job,
    started_at: DateTime<Utc>,
    margin: Duration,
) -> Option<DateTime<Utc>> {
    let config = job.executor_config.as_ref();
    let timeout = match job.executor.as_str() {
        "shell" => config
            .and_then(|c| c.get("timeout"))
            .filter(|t| !t.is_empty())
            .and_then(|t| rkron_core::duration::parse_go_duration(t).ok())
            .and_then(|d| TimeDelta::from_std(d).ok())
            .filter(|d| *d > TimeDelta::zero()),
        "http" => {
            let secs = config
                .and_then(|c| c.get("timeout"))
                .and_then(|t| t.trim().parse::<i64>().ok())
                .unwrap_or(HTTP_DEFAULT_TIMEOUT_SECS);
            Some(TimeDelta::seconds(secs.max(1)))
        }
        _ => None,
    }?;
    Some(started_at + timeout + TimeDelta::from_std(margin).unwrap_or(TimeDelta::MAX))
}

/// Checks active runs every [`PERIOD`] until `cancel` fires.
pub(crate) async fn run(inner: Arc<Inner>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(PERIOD) => {}
        }
        check(&inner).await;
    }
}

async fn check(inner: &Arc<Inner>) {
    let now = inner.clock.now();
    // After the kill request, the node gets the same margin again to report.
    let kill_wait = TimeDelta::from_std(inner.config.report_margin).unwrap_or(TimeDelta::MAX);
    let mut to_kill = Vec::new();
    let mut to_fail = Vec::new();
    let mut node_gone = Vec::new();
    let members: std::collections::HashMap<String, crate::MemberStatus> = inner
        .members
        .borrow()
        .iter()
        .map(|m| (m.name.clone(), m.status))
        .collect();
    let listing_settled = inner.started.elapsed() >= crate::MEMBER_GRACE;
    if let Ok(mut active) = inner.active.lock() {
        for (id, run) in active.iter_mut() {
            let node = run.execution.node_name.as_str();
            if node != inner.config.node_name {
                match members.get(node) {
                    Some(status @ (crate::MemberStatus::Failed | crate::MemberStatus::Left)) => {
                        node_gone.push((
                            id.clone(),
                            format!("its node {node} {} (gossip)", status.as_str()),
                        ));
                        continue;
                    }
                    None if listing_settled => {
                        node_gone.push((
                            id.clone(),
                            format!("its node {node} is not a cluster member"),
                        ));
                        continue;
                    }
                    _ => {}
                }
            }
            let Some(deadline) = run.report_by else {
                continue;
            };
            if now > deadline + kill_wait && run.kill_sent {
                to_fail.push(id.clone());
            } else if now > deadline && !run.kill_sent {
                run.kill_sent = true;
                to_kill.push((run.execution.node_name.clone(), id.clone()));
            }
        }
    }
    for (node, id) in to_kill {
        tracing::warn!(execution = %id, node = %node, "execution outlived its timeout without reporting; asking its node to kill it");
        inner
            .runner
            .kill(
                &node,
                &id,
                "rkron: execution outlived its timeout and was killed by the watchdog",
            )
            .await;
    }
    for (id, why) in node_gone {
        let taken = inner.active.lock().ok().and_then(|mut a| a.remove(&id));
        let Some(run) = taken else { continue };
        let mut execution = run.execution;
        execution.output = run.output.snapshot();
        execution.output.push_str(&format!(
            "\nrkron: execution recorded as failed: {why} while it was running"
        ));
        execution.finished_at = Some(now);
        execution.success = false;
        tracing::error!(execution = %id, job = %execution.job_name, reason = %why, "execution recorded as failed: its node is gone");
        let job = match inner.store.get_job(&execution.job_name).await {
            Ok(Some(j)) => Arc::new(j.value),
            _ => continue,
        };
        crate::dispatch::record_finished(inner, &job, execution).await;
    }
    for id in to_fail {
        let taken = inner.active.lock().ok().and_then(|mut a| a.remove(&id));
        let Some(run) = taken else { continue };
        let mut execution = run.execution;
        execution.output = run.output.snapshot();
        execution.output.push_str(&format!(
            "\nrkron: no final report from node {} within the job's timeout; recorded as failed",
            execution.node_name
        ));
        execution.finished_at = Some(now);
        execution.success = false;
        tracing::error!(execution = %id, job = %execution.job_name, "no final report; execution recorded as failed");
        let job = match inner.store.get_job(&execution.job_name).await {
            Ok(Some(j)) => Arc::new(j.value),
            _ => continue,
        };
        crate::dispatch::record_finished(inner, &job, execution).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn job(executor: &str, timeout: Option<&str>) -> Job {
        let mut config = std::collections::BTreeMap::new();
        if let Some(t) = timeout {
            config.insert("timeout".to_owned(), t.to_owned());
        }
        Job {
            executor: executor.into(),
            executor_config: Some(config),
            ..Job::default()
        }
    }

    #[test]
    fn deadlines_follow_each_executors_timeout() {
        let t0 = Utc.timestamp_opt(1_000, 0).unwrap();
        let m = Duration::from_secs(30);
        assert_eq!(
            report_by(&job("shell", Some("10s")), t0, m),
            Some(t0 + TimeDelta::seconds(40))
        );
        assert_eq!(
            report_by(&job("shell", None), t0, m),
            None,
            "no timeout, no deadline"
        );
        assert_eq!(
            report_by(&job("shell", Some("0s")), t0, m),
            None,
            "zero means no timeout"
        );
        assert_eq!(
            report_by(&job("http", Some("5")), t0, m),
            Some(t0 + TimeDelta::seconds(35))
        );
        assert_eq!(
            report_by(&job("http", None), t0, m),
            Some(t0 + TimeDelta::seconds(60))
        );
        assert_eq!(report_by(&job("other", Some("5s")), t0, m), None);
    }
}
