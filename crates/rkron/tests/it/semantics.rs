//! Job semantics beyond Dkron: kill a running execution, run-and-wait, retry intervals,
//! chains, forbid after a killed process, and the client commands of the CLI.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::support::{Server, shell_job, wait_until};

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn pid_alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).is_dir()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

async fn running_execution(server: &Server, job: &str) -> Value {
    let client = server.client.clone();
    let job = job.to_owned();
    let mut found = Value::Null;
    for _ in 0..100 {
        let busy: Value = client
            .http()
            .get(client.url("/v1/busy"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let with_output = busy.as_array().unwrap().iter().find(|e| {
            e["job_name"] == job.as_str() && !e["output"].as_str().unwrap_or("").is_empty()
        });
        if let Some(e) = with_output {
            found = e.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !found.is_null(),
        "{job} never showed up running with output"
    );
    found
}

#[tokio::test]
async fn kill_ends_the_process_group_and_records_killed_by_request() {
    let server = Server::start(&[]).await;
    // The shell prints the pid of its background sleep, a grandchild of rkron.
    server
        .create_job_ok(&shell_job("long", "sleep 300 & echo $!; wait"))
        .await;
    assert_eq!(server.http_post("/v1/jobs/long/run").await.status, 200);
    let running = running_execution(&server, "long").await;
    let pid: i32 = running["output"].as_str().unwrap().trim().parse().unwrap();
    assert!(pid_alive(pid));
    let id = running["id"].as_str().unwrap();

    let began = tokio::time::Instant::now();
    let reply = server
        .http_post(&format!("/v1/jobs/long/executions/{id}/kill"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["id"], id);
    let list = server
        .wait_finished_executions("long", 1, Duration::from_secs(2))
        .await;
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "kill took {:?}",
        began.elapsed()
    );
    assert!(
        !pid_alive(pid),
        "the grandchild sleep {pid} survived the kill"
    );
    assert_eq!(list[0]["success"], false);
    assert!(
        list[0]["output"]
            .as_str()
            .unwrap()
            .contains("killed by request"),
        "{}",
        list[0]
    );

    // Killing it again, or an unknown execution, is refused clearly.
    let again = server
        .http_post(&format!("/v1/jobs/long/executions/{id}/kill"))
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    let unknown = server
        .http_post("/v1/jobs/long/executions/1-nobody/kill")
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
}

#[tokio::test]
async fn retries_with_an_interval_fail_twice_then_succeed() {
    let server = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let command = format!(
        "n=$(cat {f} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {f}; echo attempt $n; [ $n -ge 3 ]",
        f = counter.display()
    );
    let mut job = shell_job("flaky", &command);
    job["retries"] = json!(2);
    job["retry_interval"] = json!("1s");
    server.create_job_ok(&job).await;

    let reply = server.http_post("/v1/jobs/flaky/run?wait=true").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut runs = reply.json().as_array().unwrap().clone();
    runs.sort_by_key(|e| e["attempt"].as_u64());
    let attempts: Vec<u64> = runs
        .iter()
        .map(|e| e["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3], "{runs:?}");
    let outcomes: Vec<bool> = runs
        .iter()
        .map(|e| e["success"].as_bool().unwrap())
        .collect();
    assert_eq!(outcomes, [false, false, true]);
    assert!(
        runs.iter().all(|e| e["group"] == runs[0]["group"]),
        "one group for all attempts"
    );
    // The interval doubles: ~1 s before attempt 2, ~2 s before attempt 3.
    let gap1 = time(&runs[1]["started_at"]) - time(&runs[0]["finished_at"]);
    let gap2 = time(&runs[2]["started_at"]) - time(&runs[1]["finished_at"]);
    assert!(
        gap1 >= chrono::TimeDelta::milliseconds(950) && gap1 < chrono::TimeDelta::seconds(2),
        "{gap1}"
    );
    assert!(
        gap2 >= chrono::TimeDelta::milliseconds(1950) && gap2 < chrono::TimeDelta::seconds(3),
        "{gap2}"
    );

    let job = server.http_get("/v1/jobs/flaky").await.json();
    assert_eq!(
        job["status"], "success",
        "a retry that succeeds makes the group success"
    );
    assert_eq!(job["error_count"], 2);
    assert_eq!(job["success_count"], 1);
    assert_eq!(
        server
            .http_get("/v1/jobs/flaky/executions")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn a_chain_runs_in_order_and_a_failed_parent_stops_it() {
    let server = Server::start(&[]).await;
    server
        .create_job_ok(&shell_job("parent", "echo parent"))
        .await;
    let mut child = shell_job("child", "echo child");
    child["parent_job"] = json!("parent");
    child["schedule"] = json!("");
    server.create_job_ok(&child).await;
    let mut grandchild = shell_job("grandchild", "echo grandchild");
    grandchild["parent_job"] = json!("child");
    grandchild["schedule"] = json!("");
    server.create_job_ok(&grandchild).await;

    assert_eq!(server.http_post("/v1/jobs/parent/run").await.status, 200);
    let g = server
        .wait_finished_executions("grandchild", 1, Duration::from_secs(10))
        .await;
    let c = server
        .wait_finished_executions("child", 1, Duration::from_secs(1))
        .await;
    let p = server
        .wait_finished_executions("parent", 1, Duration::from_secs(1))
        .await;
    assert!(time(&p[0]["finished_at"]) <= time(&c[0]["started_at"]));
    assert!(time(&c[0]["finished_at"]) <= time(&g[0]["started_at"]));
    assert_eq!(g[0]["output"].as_str().unwrap().trim(), "grandchild");

    // Now make the parent fail: neither child nor grandchild runs again.
    let mut failing = shell_job("parent", "exit 1");
    failing["dependent_jobs"] = json!(["child"]);
    server.create_job_ok(&failing).await;
    assert_eq!(server.http_post("/v1/jobs/parent/run").await.status, 200);
    server
        .wait_finished_executions("parent", 2, Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        server
            .http_get("/v1/jobs/child/executions")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        server
            .http_get("/v1/jobs/grandchild/executions")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn forbid_job_runs_again_after_its_process_is_killed() {
    let server = Server::start(&[]).await;
    let job = json!({
        "name": "guarded", "schedule": "@every 1s", "concurrency": "forbid",
        "executor": "shell", "executor_config": {"command": "echo $$; sleep 300", "shell": "true"}
    });
    server.create_job_ok(&job).await;
    let running = running_execution(&server, "guarded").await;
    let pid: i32 = running["output"].as_str().unwrap().trim().parse().unwrap();
    // While it runs, forbid skips the following ticks: still one execution after 2.5 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        server
            .http_get("/v1/jobs/guarded/executions")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let list = server
        .wait_finished_executions("guarded", 1, Duration::from_secs(5))
        .await;
    assert!(
        list.iter()
            .any(|e| e["success"] == false
                && e["output"].as_str().unwrap().contains("signal: killed")),
        "{list:?}"
    );
    // The next tick runs again: a second execution starts.
    let http = server.client.clone();
    assert!(
        wait_until(Duration::from_secs(4), || {
            let c = http.clone();
            async move {
                c.executions("guarded")
                    .await
                    .map(|l| l.len() >= 2)
                    .unwrap_or(false)
            }
        })
        .await,
        "the forbid job did not run again after its process was killed"
    );
}

fn cli(server: &Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rkron"))
        .args(args)
        .arg("--address")
        .arg(server.url(""))
        .output()
        .unwrap()
}

#[tokio::test]
async fn cli_runs_kills_backs_up_and_restores() {
    let server = Server::start(&[]).await;
    server
        .create_job_ok(&shell_job("hello", "echo hello"))
        .await;
    server
        .create_job_ok(&shell_job("sleeper", "sleep 300"))
        .await;

    let out = cli(&server, &["run", "hello", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["output"].as_str().unwrap().trim(), "hello");

    assert_eq!(server.http_post("/v1/jobs/sleeper/run").await.status, 200);
    let client = server.client.clone();
    assert!(
        wait_until(Duration::from_secs(5), || {
            let c = client.clone();
            async move { !c.busy().await.unwrap().is_empty() }
        })
        .await
    );
    let id = server.client.busy().await.unwrap()[0].id.clone();
    let out = cli(&server, &["kill", "sleeper", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = server
        .wait_finished_executions("sleeper", 1, Duration::from_secs(3))
        .await;
    assert!(
        list[0]["output"]
            .as_str()
            .unwrap()
            .contains("killed by request")
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.json");
    let out = cli(&server, &["backup", "--file", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backup: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(backup.as_array().unwrap().len(), 2);

    let other = Server::start(&[]).await;
    let out = cli(&other, &["restore", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("success create hello") && text.contains("success create sleeper"),
        "{text}"
    );
    assert_eq!(
        other.http_get("/v1/jobs/hello").await.json()["executor_config"]["command"],
        "echo hello"
    );

    let out = cli(&other, &["kill", "hello", "1-nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}

#[tokio::test]
async fn ephemeral_jobs_are_deleted_after_a_successful_run_and_kept_after_a_failure() {
    let server = Server::start(&[]).await;
    let mut ok = shell_job("once", "echo bye");
    ok["ephemeral"] = json!(true);
    server.create_job_ok(&ok).await;
    let mut bad = shell_job("stays", "exit 3");
    bad["ephemeral"] = json!(true);
    server.create_job_ok(&bad).await;
    assert_eq!(server.http_post("/v1/jobs/once/run").await.status, 200);
    assert_eq!(
        server
            .http_post("/v1/jobs/stays/run?wait=true")
            .await
            .status,
        200
    );
    let client = server.client.clone();
    assert!(
        wait_until(Duration::from_secs(5), || {
            let c = client.clone();
            async move { c.get_job("once").await.is_err() }
        })
        .await,
        "the ephemeral job was not deleted after its success"
    );
    assert_eq!(
        server.http_get("/v1/jobs/stays").await.status,
        200,
        "a failed ephemeral job stays"
    );
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // schedules relative to the real clock
async fn at_runs_once_starts_at_and_expires_at_bound_the_schedule() {
    let server = Server::start(&[]).await;
    let at = (Utc::now() + chrono::TimeDelta::seconds(2))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut once = shell_job("at-once", "echo at");
    once["schedule"] = json!(format!("@at {at}"));
    let created = server.create_job_ok(&once).await;
    assert_eq!(created["next"], at.as_str());
    let list = server
        .wait_finished_executions("at-once", 1, Duration::from_secs(6))
        .await;
    assert_eq!(list[0]["scheduled_at"], at.as_str());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server
            .http_get("/v1/jobs/at-once/executions")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        server.http_get("/v1/jobs/at-once").await.json()["next"],
        "0001-01-01T00:00:00Z"
    );

    let later = Utc::now() + chrono::TimeDelta::hours(1);
    let mut future = shell_job("not-yet", "echo early");
    future["schedule"] = json!("@every 1s");
    future["starts_at"] = json!(later.to_rfc3339());
    let created = server.create_job_ok(&future).await;
    assert!(
        time(&created["next"]) >= later - chrono::TimeDelta::seconds(1),
        "{created}"
    );

    let mut expired = shell_job("expired", "echo late");
    expired["schedule"] = json!("@every 1s");
    expired["expires_at"] = json!((Utc::now() - chrono::TimeDelta::minutes(1)).to_rfc3339());
    let created = server.create_job_ok(&expired).await;
    assert_eq!(created["next"], "0001-01-01T00:00:00Z");

    let mut manual = shell_job("by-hand", "echo hand");
    manual["schedule"] = json!("@manually");
    server.create_job_ok(&manual).await;

    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in ["not-yet", "expired", "by-hand"] {
        let n = server
            .http_get(&format!("/v1/jobs/{name}/executions"))
            .await
            .json()
            .as_array()
            .unwrap()
            .len();
        assert_eq!(n, 0, "{name} ran outside its window");
    }
}
