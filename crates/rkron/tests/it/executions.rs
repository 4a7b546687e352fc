//! Executions on the wire: listing, output truncation, single fetch, paging, deletion, the busy
//! list and dependent-job runs (reference §1.4, §3.1, §3.3, §3.4; DESIGN §8).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, shell_job, wait_until};

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `sh -c` text printing `test ` and 100 × `longer output... ` (Dkron's api_test vector).
const LONG_COMMAND: &str =
    "printf 'test '; for i in $(seq 100); do printf 'longer output... '; done";

fn long_output() -> String {
    format!("test {}", "longer output... ".repeat(100))
}

fn as_list(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

#[tokio::test]
async fn executions_of_a_new_job_are_an_empty_array() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&shell_job("fresh", "true")).await;
    let reply = server.http_get("/v1/jobs/fresh/executions").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.text, "[]");
    assert_eq!(reply.header("x-total-count"), Some("0"));
}

#[tokio::test]
async fn executions_of_an_unknown_job_are_404() {
    let server = Server::start(&[]).await;
    let reply = server.http_get("/v1/jobs/notajob/executions").await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert!(!reply.error().is_empty());
    let reply = server
        .http_get("/v1/jobs/notajob/executions/123-node")
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert!(!reply.error().is_empty());
}

#[tokio::test]
async fn listing_truncates_output_to_the_size_limit() {
    assert_eq!(long_output().len(), 1705);
    let server = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("ran-once");
    // First run prints `test`, every later run the 1705-byte text (Dkron's two executions).
    let command = format!(
        "if [ -e '{m}' ]; then {LONG_COMMAND}; else touch '{m}'; printf test; fi",
        m = mark.display()
    );
    server.create_job_ok(&shell_job("long", &command)).await;
    assert_eq!(server.http_post("/v1/jobs/long").await.status, 200);
    server
        .wait_finished_executions("long", 1, Duration::from_secs(5))
        .await;
    assert_eq!(server.http_post("/v1/jobs/long").await.status, 200);
    server
        .wait_finished_executions("long", 2, Duration::from_secs(5))
        .await;

    // Default: newest first, full outputs.
    let reply = server.http_get("/v1/jobs/long/executions").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-total-count"), Some("2"));
    let body = reply.json();
    let list = as_list(&body);
    assert_eq!(list.len(), 2, "{body}");
    let full = long_output();
    assert_eq!(list[0]["output"].as_str().unwrap().len(), 1705);
    assert_eq!(list[0]["output"], full.as_str());
    assert_eq!(list[0]["output_truncated"], false);
    assert_eq!(list[1]["output"], "test");
    assert_eq!(list[1]["output_truncated"], false);
    for e in list {
        assert_eq!(e["job_name"], "long");
        assert_eq!(e["node_name"], "test-node");
        assert_eq!(e["success"], true);
        assert_eq!(e["attempt"], 1);
        assert!(e["group"].as_i64().unwrap() > 0);
        assert_ne!(e["finished_at"], ZERO_TIME);
        assert!(
            e["id"].as_str().unwrap().ends_with("-test-node"),
            "id is <started_at nanos>-<node>: {e}"
        );
        assert_eq!(
            e["scheduled_at"],
            Value::Null,
            "manual runs carry no instant"
        );
    }

    // With a limit: the newest is cut to its last 200 bytes, the short one is untouched.
    let reply = server
        .http_get("/v1/jobs/long/executions?output_size_limit=200")
        .await;
    assert_eq!(reply.status, 200);
    let limited = reply.json();
    let limited = as_list(&limited);
    assert_eq!(limited.len(), 2);
    let cut = limited[0]["output"].as_str().unwrap();
    assert_eq!(cut.len(), 200);
    assert_eq!(
        cut,
        &full[full.len() - 200..],
        "the last 200 bytes are kept"
    );
    assert_eq!(limited[0]["output_truncated"], true);
    assert_eq!(limited[1]["output"], "test");
    assert_eq!(limited[1]["output_truncated"], false);

    // A non-integer limit means unlimited.
    let reply = server
        .http_get("/v1/jobs/long/executions?output_size_limit=abc")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()[0]["output"], full.as_str());

    // The single execution carries the full output and no output_truncated.
    let id = list[0]["id"].as_str().unwrap();
    let reply = server
        .http_get(&format!("/v1/jobs/long/executions/{id}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let one = reply.json();
    assert_eq!(one["id"], id);
    assert_eq!(one["output"], full.as_str());
    assert!(one.get("output_truncated").is_none(), "{one}");
    assert_eq!(one["started_at"], list[0]["started_at"]);
}

#[tokio::test]
async fn unknown_execution_id_is_404() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&shell_job("j", "true")).await;
    let reply = server
        .http_get("/v1/jobs/j/executions/1734599350123456789-test-node")
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert!(!reply.error().is_empty());
}

#[tokio::test]
async fn trailing_slash_and_alias_answer_the_same_list() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&shell_job("same", "echo hi")).await;
    for _ in 0..2 {
        assert_eq!(server.http_post("/v1/jobs/same/run").await.status, 200);
    }
    server
        .wait_finished_executions("same", 2, Duration::from_secs(5))
        .await;
    let base = server.http_get("/v1/jobs/same/executions").await;
    assert_eq!(base.status, 200);
    assert_eq!(as_list(&base.json()).len(), 2);
    for path in ["/v1/jobs/same/executions/", "/v1/executions/same"] {
        let reply = server.http_get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.json(), base.json(), "{path}");
        assert_eq!(reply.header("x-total-count"), Some("2"), "{path}");
    }
}

#[tokio::test]
async fn executions_sort_order_and_paging() {
    let server = Server::start(&[]).await;
    let mut job = shell_job("flaky", "exit 1");
    job["retries"] = json!(2);
    server.create_job_ok(&job).await;
    // Two manual runs of three attempts each: started_at order 1,2,3,1,2,3.
    assert_eq!(server.http_post("/v1/jobs/flaky").await.status, 200);
    server
        .wait_finished_executions("flaky", 3, Duration::from_secs(10))
        .await;
    assert_eq!(server.http_post("/v1/jobs/flaky").await.status, 200);
    server
        .wait_finished_executions("flaky", 6, Duration::from_secs(10))
        .await;

    let attempts = |body: &Value| -> Vec<u64> {
        as_list(body)
            .iter()
            .map(|e| e["attempt"].as_u64().unwrap())
            .collect()
    };
    let get = |query: &'static str| {
        let server = &server;
        async move {
            let reply = server
                .http_get(&format!("/v1/jobs/flaky/executions?{query}"))
                .await;
            assert_eq!(reply.status, 200, "?{query}: {}", reply.text);
            assert_eq!(reply.header("x-total-count"), Some("6"), "?{query}");
            reply.json()
        }
    };

    let newest_first = get("").await;
    assert_eq!(attempts(&newest_first), [3, 2, 1, 3, 2, 1]);
    assert!(as_list(&newest_first).iter().all(|e| e["success"] == false));
    assert_eq!(attempts(&get("_order=ASC").await), [1, 2, 3, 1, 2, 3]);
    assert_eq!(
        attempts(&get("_sort=id&_order=ASC").await),
        [1, 2, 3, 1, 2, 3]
    );
    assert_eq!(
        attempts(&get("_sort=attempt&_order=ASC").await),
        [1, 1, 2, 2, 3, 3]
    );
    assert_eq!(attempts(&get("_sort=attempt").await), [3, 3, 2, 2, 1, 1]);
    let by_finish = get("_sort=finished_at&_order=ASC").await;
    assert_eq!(attempts(&by_finish), [1, 2, 3, 1, 2, 3]);

    // Paging (honoured, unlike Dkron): X-Total-Count stays the total.
    let page = get("_order=ASC&_start=1&_end=3").await;
    assert_eq!(attempts(&page), [2, 3]);
    assert_eq!(as_list(&page)[0], as_list(&get("_order=ASC").await)[1]);
    let page = get("_sort=attempt&_order=ASC&_start=2&_end=4").await;
    assert_eq!(attempts(&page), [2, 2]);
    let page = get("_start=5").await;
    assert_eq!(attempts(&page), [1]);
    let page = get("_start=10").await;
    assert!(as_list(&page).is_empty());

    // An unknown sort field answers an empty list (Dkron).
    let reply = server
        .http_get("/v1/jobs/flaky/executions?_sort=bogus")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!([]));

    // A non-integer _start is a 400.
    let reply = server
        .http_get("/v1/jobs/flaky/executions?_start=abc")
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(!reply.error().is_empty());

    let job = server.http_get("/v1/jobs/flaky").await.json();
    assert_eq!(job["error_count"], 6);
    assert_eq!(job["success_count"], 0);
    assert_eq!(job["status"], "failed");
}

#[tokio::test]
async fn deleting_executions_resets_the_counters() {
    let server = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("failed-once");
    // Fails the first time, succeeds afterwards.
    let command = format!(
        "if [ -e '{m}' ]; then echo ok; else touch '{m}'; echo no; exit 1; fi",
        m = mark.display()
    );
    server.create_job_ok(&shell_job("counted", &command)).await;
    assert_eq!(server.http_post("/v1/jobs/counted").await.status, 200);
    server
        .wait_finished_executions("counted", 1, Duration::from_secs(5))
        .await;
    assert_eq!(server.http_post("/v1/jobs/counted").await.status, 200);
    server
        .wait_finished_executions("counted", 2, Duration::from_secs(5))
        .await;
    let ok = wait_until(Duration::from_secs(5), || async {
        let job = server.http_get("/v1/jobs/counted").await.json();
        job["success_count"] == 1 && job["error_count"] == 1
    })
    .await;
    assert!(ok, "{}", server.http_get("/v1/jobs/counted").await.text);
    let job = server.http_get("/v1/jobs/counted").await.json();
    assert!(job["last_success"].is_string(), "{job}");
    assert!(job["last_error"].is_string(), "{job}");

    let reply = server.http_delete("/v1/jobs/counted/executions").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["name"], "counted");
    assert_eq!(body["success_count"], 0, "{body}");
    assert_eq!(body["error_count"], 0, "{body}");
    assert_eq!(body["last_success"], Value::Null, "{body}");
    assert_eq!(body["last_error"], Value::Null, "{body}");

    let list = server.http_get("/v1/jobs/counted/executions").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.text, "[]");
    let stored = server.http_get("/v1/jobs/counted").await.json();
    assert_eq!(stored["success_count"], 0);
    assert_eq!(stored["error_count"], 0);
    assert_eq!(stored["last_success"], Value::Null);
    assert_eq!(stored["last_error"], Value::Null);

    // The trailing-slash form works too; an unknown job is 404.
    let again = server.http_delete("/v1/jobs/counted/executions/").await;
    assert_eq!(again.status, 200, "{}", again.text);
    let unknown = server.http_delete("/v1/jobs/notajob/executions").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
}

#[tokio::test]
async fn deleting_foo_keeps_the_executions_of_foobar() {
    let server = Server::start(&[]).await;
    for name in ["foo", "foobar", "foo-2"] {
        server.create_job_ok(&shell_job(name, "echo hi")).await;
        assert_eq!(
            server.http_post(&format!("/v1/jobs/{name}")).await.status,
            200
        );
    }
    for name in ["foo", "foobar", "foo-2"] {
        server
            .wait_finished_executions(name, 1, Duration::from_secs(5))
            .await;
    }
    let before = server.http_get("/v1/jobs/foobar/executions").await.json();
    assert_eq!(as_list(&before).len(), 1);

    assert_eq!(server.http_delete("/v1/jobs/foo").await.status, 200);
    for name in ["foobar", "foo-2"] {
        let reply = server
            .http_get(&format!("/v1/jobs/{name}/executions"))
            .await;
        assert_eq!(reply.status, 200, "{name}");
        assert_eq!(as_list(&reply.json()).len(), 1, "{name}: {}", reply.text);
    }
    assert_eq!(
        server.http_get("/v1/jobs/foobar/executions").await.json(),
        before
    );

    // Deleting foo's executions (after re-creating it) does not touch foobar's either.
    server.create_job_ok(&shell_job("foo", "echo hi")).await;
    assert_eq!(
        server.http_get("/v1/jobs/foo/executions").await.text,
        "[]",
        "a deleted job's executions are gone"
    );
    assert_eq!(
        server.http_delete("/v1/jobs/foo/executions").await.status,
        200
    );
    assert_eq!(
        server.http_get("/v1/jobs/foobar/executions").await.json(),
        before
    );
}

#[tokio::test]
async fn busy_lists_a_running_execution_until_it_finishes() {
    let server = Server::start(&[]).await;
    let empty = server.http_get("/v1/busy").await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.text, "[]");
    assert_eq!(empty.header("x-total-count"), Some("0"));

    server
        .create_job_ok(&shell_job("busy", "echo started; sleep 3"))
        .await;
    assert_eq!(server.http_post("/v1/jobs/busy").await.status, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let seen = loop {
        let reply = server.http_get("/v1/busy").await;
        assert_eq!(reply.status, 200);
        let body = reply.json();
        if body.as_array().is_some_and(|l| l.len() == 1) {
            assert_eq!(reply.header("x-total-count"), Some("1"));
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the running job is not in /v1/busy: {body}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let running = &seen[0];
    assert_eq!(running["job_name"], "busy");
    assert_eq!(running["finished_at"], ZERO_TIME);
    assert_eq!(running["success"], false);
    assert_eq!(running["node_name"], "test-node");
    assert_ne!(running["started_at"], ZERO_TIME);

    // The running execution is listed by the job too, unfinished (the store write of the start
    // may land a moment after the run shows in /v1/busy).
    let stored = wait_until(Duration::from_secs(1), || async {
        let listed = server.http_get("/v1/jobs/busy/executions").await.json();
        listed.as_array().is_some_and(|l| l.len() == 1)
    })
    .await;
    let listed = server.http_get("/v1/jobs/busy/executions").await.json();
    assert!(stored, "the running execution is not listed: {listed}");
    assert_eq!(listed[0]["finished_at"], ZERO_TIME);
    assert_eq!(listed[0]["id"], running["id"]);

    let gone = wait_until(Duration::from_secs(8), || async {
        server.http_get("/v1/busy").await.text == "[]"
    })
    .await;
    assert!(gone, "the finished job is still busy");
    let done = server
        .wait_finished_executions("busy", 1, Duration::from_secs(2))
        .await;
    assert_eq!(done[0]["success"], true);
    assert_eq!(done[0]["output"], "started\n");
    assert_eq!(
        server.http_get("/v1/busy").await.header("x-total-count"),
        Some("0")
    );
}

#[tokio::test]
async fn a_child_runs_after_its_parent_succeeds() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&shell_job("parent", "echo p")).await;
    let child = json!({
        "name": "child",
        "parent_job": "parent",
        "executor": "shell",
        "executor_config": {"command": "echo c"}
    });
    server.create_job_ok(&child).await;
    assert_eq!(server.http_post("/v1/jobs/parent").await.status, 200);
    let parent = server
        .wait_finished_executions("parent", 1, Duration::from_secs(5))
        .await;
    assert_eq!(parent[0]["success"], true);
    let child = server
        .wait_finished_executions("child", 1, Duration::from_secs(5))
        .await;
    assert_eq!(child.len(), 1, "{child:?}");
    assert_eq!(child[0]["success"], true);
    assert_eq!(child[0]["output"], "c\n");
}

#[tokio::test]
async fn a_child_does_not_run_after_its_parent_fails() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&shell_job("parent", "exit 1")).await;
    let child = json!({
        "name": "child",
        "parent_job": "parent",
        "executor": "shell",
        "executor_config": {"command": "echo c"}
    });
    server.create_job_ok(&child).await;
    assert_eq!(server.http_post("/v1/jobs/parent").await.status, 200);
    let parent = server
        .wait_finished_executions("parent", 1, Duration::from_secs(5))
        .await;
    assert_eq!(parent[0]["success"], false);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        server.http_get("/v1/jobs/child/executions").await.text,
        "[]"
    );
    assert_eq!(
        server.http_get("/v1/jobs/parent").await.json()["status"],
        "failed"
    );
}
