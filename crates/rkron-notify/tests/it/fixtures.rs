//! Jobs, executions and settings shared by the notification tests.

use chrono::{DateTime, TimeZone, Utc};
use rkron_core::{Execution, Job};

/// 2024-12-19 09:09:10 UTC.
pub(crate) const STARTED_SECS: i64 = 1_734_599_350;

pub(crate) fn started_at() -> DateTime<Utc> {
    Utc.timestamp_opt(STARTED_SECS, 0).unwrap()
}

pub(crate) fn job(name: &str) -> Job {
    Job {
        name: name.into(),
        schedule: "@every 1m".into(),
        executor: "shell".into(),
        ..Job::default()
    }
}

/// A finished execution of `job1` on `node-a`, 1.5 s long.
pub(crate) fn execution(success: bool) -> Execution {
    Execution {
        job_name: "job1".into(),
        started_at: started_at(),
        finished_at: Some(started_at() + chrono::TimeDelta::milliseconds(1500)),
        success,
        output: "hello".into(),
        node_name: "node-a".into(),
        group: STARTED_SECS * 1_000_000_000,
        attempt: 1,
        scheduled_at: None,
    }
}

/// The same execution while it runs.
pub(crate) fn running_execution() -> Execution {
    Execution {
        finished_at: None,
        success: false,
        output: String::new(),
        ..execution(false)
    }
}

/// A port on 127.0.0.1 that nothing listens on.
pub(crate) async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}
