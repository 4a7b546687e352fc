//! Process lifecycle: durability across kill -9, the data-dir lock, graceful shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::support::{Server, wait_until};

fn job_body(i: usize) -> Value {
    json!({
        "name": format!("crash-{i:04}"),
        "schedule": "@every 1h",
        "owner": "durability",
        "executor": "shell",
        "executor_config": {"command": format!("echo {i}")},
        "metadata": {"i": i.to_string()},
    })
}

/// Every job answered 201 before a SIGKILL is present and intact after restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_jobs_survive_kill_9_mid_flight() {
    let mut server = Server::start(&[]).await;
    let http = server.client.http().clone();
    let url = server.url("/v1/jobs");
    let acked: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (http, url, acked, next) = (http.clone(), url.clone(), acked.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= 1000 {
                    return;
                }
                let Ok(resp) = http.post(&url).json(&job_body(i)).send().await else {
                    return;
                };
                if resp.status() == 201 {
                    let Ok(body) = resp.json::<Value>().await else {
                        return;
                    };
                    acked
                        .lock()
                        .await
                        .insert(body["name"].as_str().unwrap().to_owned(), body);
                }
            }
        }));
    }
    // Kill while creations are in flight: after some hundreds were acknowledged.
    let acked_probe = acked.clone();
    assert!(
        wait_until(Duration::from_secs(30), || {
            let a = acked_probe.clone();
            async move { a.lock().await.len() >= 300 }
        })
        .await,
        "creations too slow: {}",
        acked.lock().await.len()
    );
    server.kill9();
    for w in workers {
        let _ = w.await;
    }
    let acked = acked.lock().await.clone();
    assert!(
        acked.len() >= 300 && acked.len() < 1000,
        "killed mid-flight: {} acked",
        acked.len()
    );

    server.restart().await;
    for (name, before) in &acked {
        let resp = http
            .get(server.url(&format!("/v1/jobs/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "acknowledged job {name} lost after kill -9"
        );
        let after: Value = resp.json().await.unwrap();
        for key in [
            "name",
            "schedule",
            "owner",
            "executor",
            "executor_config",
            "metadata",
        ] {
            assert_eq!(after[key], before[key], "job {name} changed in {key}");
        }
    }
    let (_, total) = server.client.list_jobs(&[]).await.unwrap();
    assert!(
        total >= acked.len(),
        "listing lost jobs: {total} < {}",
        acked.len()
    );
}

/// A second process on the same data dir refuses to start and says why.
#[tokio::test]
async fn second_process_on_same_data_dir_is_refused() {
    let server = Server::start(&[]).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rkron"))
        .args([
            "agent",
            "--server",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "second server started on a locked data dir"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use"), "unclear refusal: {stderr}");
    assert!(
        server.client.healthy().await,
        "the first server must keep running"
    );
}

async fn create_and_run(server: &Server, name: &str, command: &str) {
    let job = json!({"name": name, "schedule": "@manually", "executor": "shell",
        "executor_config": {"command": command, "shell": "true"}});
    let resp = server
        .client
        .http()
        .post(server.url("/v1/jobs"))
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    server.client.run_job(name).await.unwrap();
    let client = server.client.clone();
    let name = name.to_owned();
    // Running and recorded as running in the store (the record the restart tests rely on).
    assert!(
        wait_until(Duration::from_secs(10), || {
            let (c, name) = (client.clone(), name.clone());
            async move {
                !c.busy().await.unwrap().is_empty()
                    && c.executions(&name).await.is_ok_and(|l| !l.is_empty())
            }
        })
        .await,
        "the run never started"
    );
}

/// SIGTERM lets a short execution finish within the grace period and records it.
#[tokio::test]
async fn sigterm_lets_running_executions_finish_within_grace() {
    let mut server = Server::start(&["--shutdown-grace-period", "10s"]).await;
    create_and_run(&server, "short", "sleep 1; echo finished").await;
    let status = server.terminate();
    assert!(
        status.success(),
        "graceful stop exits 0: {status:?}\n{}",
        server.log_text()
    );
    server.restart().await;
    let executions = server.client.executions("short").await.unwrap();
    assert_eq!(executions.len(), 1);
    assert!(executions[0].success, "{:?}", executions[0]);
    assert!(executions[0].output.contains("finished"));
}

/// SIGTERM kills what outlives the grace period and records it as failed, with a message.
#[tokio::test]
async fn sigterm_kills_executions_past_grace_and_records_them_failed() {
    let mut server = Server::start(&["--shutdown-grace-period", "1s"]).await;
    create_and_run(&server, "long", "echo started; sleep 300").await;
    let began = tokio::time::Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    assert!(
        began.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        began.elapsed()
    );
    server.restart().await;
    let executions = server.client.executions("long").await.unwrap();
    assert_eq!(executions.len(), 1);
    let e = &executions[0];
    assert!(!e.success);
    assert_ne!(e.finished_at, rkron_api_types::ZERO_TIME);
    assert!(e.output.contains("started"), "{}", e.output);
    assert!(
        e.output.contains("grace period"),
        "no clear message: {}",
        e.output
    );
}

/// An execution interrupted by kill -9 is recorded as failed on restart, never left running.
#[tokio::test]
async fn execution_interrupted_by_kill_9_is_failed_on_restart() {
    let mut server = Server::start(&[]).await;
    create_and_run(&server, "victim", "sleep 30").await;
    server.kill9();
    server.restart().await;
    let executions = server.client.executions("victim").await.unwrap();
    assert_eq!(executions.len(), 1);
    assert!(!executions[0].success);
    assert_ne!(executions[0].finished_at, rkron_api_types::ZERO_TIME);
    assert!(
        executions[0]
            .output
            .contains("recorded as failed on restart"),
        "{}",
        executions[0].output
    );
    assert!(server.client.busy().await.unwrap().is_empty());
}
