//! Missed runs: a server stopped for 30 s runs each job's last missed fire within its starting
//! deadline once, records the rest as missed, and never runs a scheduled instant twice.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::support::Server;

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn job(name: &str, deadline: &str) -> Value {
    json!({"name": name, "schedule": "@every 5s", "starting_deadline": deadline,
        "executor": "shell", "executor_config": {"command": "true"}})
}

async fn scheduled_instants(server: &Server, name: &str) -> Vec<DateTime<Utc>> {
    let list = server
        .http_get(&format!("/v1/jobs/{name}/executions"))
        .await
        .json();
    list.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["scheduled_at"].is_string())
        .map(|e| time(&e["scheduled_at"]))
        .collect()
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // compares the server's instants with the real clock
async fn restart_after_30s_runs_the_last_missed_fire_once_and_records_the_rest() {
    let mut server = Server::start(&["--enable-prometheus"]).await;
    server.create_job_ok(&job("lenient", "")).await;
    server.create_job_ok(&job("strict", "1ms")).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    // A one-shot whose instant passes while the server is down still runs, once, on restart.
    let at = (Utc::now() + chrono::TimeDelta::seconds(10))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut one_shot = job("one-shot", "");
    one_shot["schedule"] = json!(format!("@at {at}"));
    server.create_job_ok(&one_shot).await;
    // Fires due while the server shuts down (it leaves the cluster gracefully, which takes a
    // moment) may run or be caught up: the outage is counted from the SIGTERM for missed
    // fires, and from the exit for the one catch-up run.
    let stopping = Utc::now();
    assert!(server.terminate().success());
    let stopped = Utc::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let restarted = Utc::now();
    server.restart().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // lenient (default deadline, 1 h): exactly one run for the outage, its latest fire.
    let all = scheduled_instants(&server, "lenient").await;
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "a scheduled instant ran twice: {all:?}"
    );
    let during: Vec<_> = all
        .iter()
        .filter(|t| **t > stopped && **t < restarted)
        .collect();
    assert_eq!(during.len(), 1, "one catch-up run for the outage: {all:?}");
    assert!(
        *during[0] > restarted - chrono::TimeDelta::seconds(5),
        "it serves the latest missed fire"
    );
    let missed = server.http_get("/v1/jobs/lenient/missed").await.json();
    let total = missed["total"].as_u64().unwrap();
    assert!((4..=7).contains(&total), "about 30/5 - 1 missed: {missed}");
    for t in missed["recent"].as_array().unwrap() {
        let t = time(t);
        assert!(
            t > stopping && t < restarted && !during.contains(&&t),
            "{t} is not a missed fire (stopping {stopping}, restarted {restarted}): {missed}\n{}",
            server.log_text()
        );
    }

    // strict (1 ms deadline): nothing from the outage runs; every fire is recorded as missed.
    let all = scheduled_instants(&server, "strict").await;
    assert!(
        all.iter().all(|t| *t <= stopped || *t >= restarted),
        "{all:?}"
    );
    let missed = server.http_get("/v1/jobs/strict/missed").await.json();
    let total = missed["total"].as_u64().unwrap();
    assert!((5..=8).contains(&total), "about 30/5 missed: {missed}");
    let metrics = server.http_get("/metrics").await.text;
    assert!(
        metrics.contains(&format!(
            r#"rkron_missed_fires_total{{job_name="strict"}} {total}"#
        )),
        "missed fires are counted in metrics: {metrics}"
    );

    let one = scheduled_instants(&server, "one-shot").await;
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0].format("%Y-%m-%dT%H:%M:%SZ").to_string(), at);

    // Scheduling goes on after the catch-up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = scheduled_instants(&server, "strict").await;
    assert!(
        after.iter().any(|t| *t >= restarted),
        "no run after the restart: {after:?}"
    );
}

#[tokio::test]
async fn missed_of_unknown_job_is_404_and_of_a_fresh_job_is_empty() {
    let server = Server::start(&[]).await;
    assert_eq!(server.http_get("/v1/jobs/nope/missed").await.status, 404);
    server.create_job_ok(&job("fresh", "")).await;
    let missed = server.http_get("/v1/jobs/fresh/missed").await.json();
    assert_eq!(missed, json!({"total": 0, "recent": []}));
    let bad = server.http_post_json("/v1/jobs", &job("bad", "soon")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.error().contains("starting_deadline"), "{}", bad.text);
}
