//! Dkron's getting-started, unchanged, against a fresh server on the embedded store.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::Server;

#[tokio::test]
async fn dkron_getting_started_job_runs_date() {
    let server = Server::start(&[]).await;
    let job = json!({
        "name": "job1",
        "schedule": "@every 10s",
        "timezone": "Europe/Berlin",
        "owner": "Platform Team",
        "owner_email": "platform@example.com",
        "disabled": false,
        "tags": {"dkron_server": "true:1"},
        "metadata": {"user": "12345"},
        "concurrency": "allow",
        "executor": "shell",
        "executor_config": {"command": "date"}
    });
    let http = server.client.http();
    let created = http
        .post(server.url("/v1/jobs"))
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/v1/jobs/job1");
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["id"], "job1");
    assert_eq!(body["timezone"], "Europe/Berlin");
    assert_ne!(body["next"], "0001-01-01T00:00:00Z");

    let url = server.url("/v1/jobs/job1/executions");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    let seen = loop {
        let list: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        if list
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["success"] == true)
        {
            break list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no successful execution within 25 s: {list}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    #[allow(clippy::disallowed_methods)] // comparing with the real date the job printed
    let year = chrono::Utc::now().format("%Y").to_string();
    let ok = seen
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["success"] == true)
        .unwrap();
    let output = ok["output"].as_str().unwrap();
    assert!(output.contains(&year), "output is not the date: {output:?}");
    assert_eq!(ok["job_name"], "job1");
    assert_eq!(ok["node_name"], "test-node");
    assert_eq!(ok["attempt"], 1);
    assert!(
        ok["scheduled_at"].is_string(),
        "scheduled runs carry their instant"
    );

    let job: Value = http
        .get(server.url("/v1/jobs/job1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(job["success_count"].as_u64().unwrap() >= 1);
    assert_eq!(job["status"], "success");
    assert!(job["last_success"].is_string());
}
