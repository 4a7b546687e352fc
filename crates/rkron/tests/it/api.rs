//! The REST API on the wire: Dkron's test-derived facts (reference §3.4) and the route table
//! (§3.1–§3.2), with rkron's deliberate differences (DESIGN §8).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Reply, Server, send, shell_job};

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Names of the jobs in a listing, in order.
fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `GET /v1/jobs?<query>`: answers the names and `X-Total-Count`.
async fn list(server: &Server, query: &str) -> (Vec<String>, String) {
    let reply = server.http_get(&format!("/v1/jobs?{query}")).await;
    assert_eq!(reply.status, 200, "?{query}: {}", reply.text);
    let total = reply
        .header("x-total-count")
        .unwrap_or_else(|| panic!("?{query}: no X-Total-Count"))
        .to_owned();
    (names(&reply.json()), total)
}

/// A scheduled shell job (hourly) that will not fire during a test.
fn hourly(name: &str) -> Value {
    json!({
        "name": name,
        "schedule": "@every 1h",
        "executor": "shell",
        "executor_config": {"command": "true"}
    })
}

/// Builds a `multipart/form-data` body with one field; answers (content type, body).
fn multipart(field: &str, filename: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "rkron-test-boundary-7d93a1";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/json\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn restore(server: &Server, field: &str, content: &[u8]) -> Reply {
    let (content_type, body) = multipart(field, "backup.json", content);
    send(
        server
            .client
            .http()
            .post(server.url("/v1/restore"))
            .header("content-type", content_type)
            .body(body),
    )
    .await
}

/// Dkron's `scripts/testBackupJobs.json` shape: 8 http jobs, parents task3→task2, task5→task4,
/// task6→task5, task7→task5, task8→task6; parents list their children as a backup does.
fn dkron_backup() -> Vec<Value> {
    let parent_of = |n: u32| match n {
        3 => "task2",
        5 => "task4",
        6 | 7 => "task5",
        8 => "task6",
        _ => "",
    };
    let children_of = |n: u32| match n {
        2 => json!(["task3"]),
        4 => json!(["task5"]),
        5 => json!(["task6", "task7"]),
        6 => json!(["task8"]),
        _ => Value::Null,
    };
    (1..=8)
        .map(|n| {
            json!({
                "name": format!("task{n}"),
                "displayname": "",
                "timezone": "",
                "schedule": "0 0 17 * * *",
                "owner": "",
                "owner_email": "",
                "success_count": 26,
                "error_count": 6,
                "last_success": "2019-11-04T04:37:12.396866367Z",
                "last_error": "2019-11-27T15:17:47.925761Z",
                "disabled": false,
                "tags": null,
                "metadata": null,
                "retries": 0,
                "dependent_jobs": children_of(n),
                "parent_job": parent_of(n),
                "processors": {},
                "concurrency": "forbid",
                "executor": "http",
                "executor_config": {
                    "method": "GET",
                    "url": "http://127.0.0.1:9/",
                    "expectCode": "200",
                    "timeout": "30",
                    "headers": "[]",
                    "body": "",
                    "debug": "true"
                },
                "status": "success",
                "next": "2019-12-09T09:00:00Z"
            })
        })
        .collect()
}

/// Checks a restore answer: 200, a JSON string holding a JSON array of 8 `success` lines.
fn assert_restore_ok(reply: &Reply) {
    assert_eq!(reply.status, 200, "restore: {}", reply.text);
    let body = reply.json();
    let inner = body
        .as_str()
        .unwrap_or_else(|| panic!("restore body is not a JSON string: {}", reply.text));
    let lines: Vec<String> = serde_json::from_str(inner)
        .unwrap_or_else(|e| panic!("restore string is not a JSON array of strings ({e}): {inner}"));
    assert_eq!(lines.len(), 8, "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.contains("fail")),
        "restore reported failures: {lines:?}"
    );
    for n in 1..=8 {
        assert!(
            lines.contains(&format!("success create task{n}")),
            "no success line for task{n}: {lines:?}"
        );
    }
}

async fn assert_restored_tree(server: &Server) {
    let expected = [
        ("task1", Value::Null, ""),
        ("task2", json!(["task3"]), ""),
        ("task3", Value::Null, "task2"),
        ("task4", json!(["task5"]), ""),
        ("task5", json!(["task6", "task7"]), "task4"),
        ("task6", json!(["task8"]), "task5"),
        ("task7", Value::Null, "task5"),
        ("task8", Value::Null, "task6"),
    ];
    for (name, children, parent) in expected {
        let reply = server.http_get(&format!("/v1/jobs/{name}")).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
        let job = reply.json();
        let mut deps = job["dependent_jobs"].clone();
        if let Some(list) = deps.as_array_mut() {
            list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
        assert_eq!(deps, children, "{name}.dependent_jobs in {job}");
        assert_eq!(job["parent_job"], parent, "{name}.parent_job");
        assert_eq!(job["executor"], "http");
        assert_eq!(job["success_count"], 26, "counters in the file are kept");
        assert_eq!(job["error_count"], 6, "counters in the file are kept");
    }
    let (all, total) = list(server, "").await;
    assert_eq!(total, "8");
    assert_eq!(all.len(), 8);
}

// ---------------------------------------------------------------------------------------------
// §3.4: facts from Dkron's dkron/api_test.go
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_then_overwrite_test_job() {
    let server = Server::start(&[]).await;
    let mut job = json!({
        "name": "test_job",
        "schedule": "@every 1m",
        "executor": "shell",
        "executor_config": {"command": "date"},
        "owner": "mec",
        "owner_email": "foo@bar.com",
        "disabled": true
    });
    let first = server.http_post_json("/v1/jobs", &job).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let body = first.json();
    assert_eq!(body["name"], "test_job");
    assert_eq!(body["disabled"], true);
    assert_eq!(body["executor_config"]["command"], "date");

    job["executor_config"]["command"] = json!("test");
    job["disabled"] = json!(false);
    let second = server.http_post_json("/v1/jobs", &job).await;
    assert_eq!(second.status, 201, "{}", second.text);
    let body = second.json();
    assert_eq!(body["name"], "test_job");
    assert_eq!(body["disabled"], false);
    assert_eq!(body["executor_config"]["command"], "test");

    let stored = server.http_get("/v1/jobs/test_job").await;
    assert_eq!(stored.status, 200);
    let stored = stored.json();
    assert_eq!(stored["disabled"], false);
    assert_eq!(stored["executor_config"]["command"], "test");
    assert_eq!(stored["owner"], "mec");
    let (all, total) = list(&server, "").await;
    assert_eq!(all, ["test_job"]);
    assert_eq!(total, "1");
}

#[tokio::test]
async fn reposting_a_parent_keeps_its_dependent_jobs() {
    let server = Server::start(&[]).await;
    let parent = hourly("parentjobkeep");
    server.create_job_ok(&parent).await;
    let mut child = hourly("childjobkeep");
    child["parent_job"] = json!("parentjobkeep");
    server.create_job_ok(&child).await;
    assert_eq!(
        server.http_get("/v1/jobs/parentjobkeep").await.json()["dependent_jobs"],
        json!(["childjobkeep"])
    );

    // The parent re-submitted without dependent_jobs (as the UI does).
    let reposted = server.http_post_json("/v1/jobs", &parent).await;
    assert_eq!(reposted.status, 201, "{}", reposted.text);
    assert_eq!(reposted.json()["dependent_jobs"], json!(["childjobkeep"]));
    let stored = server.http_get("/v1/jobs/parentjobkeep").await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.json()["dependent_jobs"], json!(["childjobkeep"]));
}

#[tokio::test]
async fn own_name_as_parent_is_400() {
    let server = Server::start(&[]).await;
    let mut job = hourly("test_job");
    job["parent_job"] = json!("test_job");
    let reply = server.http_post_json("/v1/jobs", &job).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let error = reply.error();
    assert!(
        error.contains("the job can not have itself as parent"),
        "{error}"
    );
    assert_eq!(
        error,
        "Job validation failed: the job can not have itself as parent."
    );
    assert_eq!(server.http_get("/v1/jobs/test_job").await.status, 404);
}

#[tokio::test]
async fn nonexistent_parent_is_404_and_nothing_is_stored() {
    let server = Server::start(&[]).await;
    let mut job = hourly("test_job");
    job["parent_job"] = json!("parent_test_job");
    let reply = server.http_post_json("/v1/jobs", &job).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.error(), "specified parent job not found");
    assert_eq!(server.http_get("/v1/jobs/test_job").await.status, 404);
    assert_eq!(server.http_get("/v1/jobs").await.text, "[]");
}

#[tokio::test]
async fn bad_job_name_is_400() {
    let server = Server::start(&[]).await;
    let reply = server
        .http_post_json("/v1/jobs", &hourly("BAD JOB NAME!"))
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.error(),
        "Job validation failed: name contains illegal character 'B'."
    );
    assert_eq!(server.http_get("/v1/jobs").await.text, "[]");
}

#[tokio::test]
async fn long_unicode_lower_case_name_is_201() {
    let server = Server::start(&[]).await;
    let name = "abcdefghijklmnopqrstuvwxyz0123456789-_ßñëäïüøüáéíóýćàèìòùâêîôûæšłç";
    let reply = server.http_post_json("/v1/jobs", &hourly(name)).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["name"], name);
    assert_eq!(body["id"], name);
    // Readable back under its percent-encoded name.
    let url = reqwest::Url::parse(&server.url("/v1/jobs/")).unwrap();
    let url = url.join(name).unwrap();
    let read = send(server.client.http().get(url)).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json()["name"], name);
}

#[tokio::test]
async fn empty_name_with_a_valid_parent_is_400() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&hourly("parent")).await;
    let job = json!({
        "name": "",
        "parent_job": "parent",
        "executor": "shell",
        "executor_config": {"command": "true"}
    });
    let reply = server.http_post_json("/v1/jobs", &job).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.error(),
        "Job validation failed: name cannot be empty."
    );
    assert_eq!(
        server.http_get("/v1/jobs/parent").await.json()["dependent_jobs"],
        Value::Null
    );
}

#[tokio::test]
async fn at_badtime_is_400() {
    let server = Server::start(&[]).await;
    let mut job = hourly("test_job");
    job["schedule"] = json!("@at badtime");
    let reply = server.http_post_json("/v1/jobs", &job).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let error = reply.error();
    assert!(
        error.starts_with("Job validation failed: can't parse job schedule: "),
        "{error}"
    );
    assert_eq!(server.http_get("/v1/jobs/test_job").await.status, 404);
}

#[tokio::test]
async fn concurrency_badvalue_is_400() {
    let server = Server::start(&[]).await;
    let mut job = hourly("test_job");
    job["concurrency"] = json!("badvalue");
    let reply = server.http_post_json("/v1/jobs", &job).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.error(),
        "Job validation failed: invalid concurrency policy value, use \"allow\" or \"forbid\"."
    );
}

#[tokio::test]
async fn timezone_notatimezone_is_400() {
    let server = Server::start(&[]).await;
    let mut job = hourly("test_job");
    job["timezone"] = json!("notatimezone");
    let reply = server.http_post_json("/v1/jobs", &job).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.error(),
        "Job validation failed: unknown time zone notatimezone."
    );
}

#[tokio::test]
async fn shell_timeout_foreverandever_is_400() {
    let server = Server::start(&[]).await;
    let job = json!({
        "name": "test_job",
        "schedule": "@every 1m",
        "executor": "shell",
        "executor_config": {"command": "date", "timeout": "foreverandever"}
    });
    let reply = server.http_post_json("/v1/jobs", &job).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.error(),
        "Job validation failed: Error parsing job timeout value."
    );
}

#[tokio::test]
async fn unknown_job_is_404() {
    let server = Server::start(&[]).await;
    let reply = server.http_get("/v1/jobs/notajob").await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert!(!reply.error().is_empty());
}

#[tokio::test]
async fn restore_of_dkron_backup_builds_the_tree() {
    let server = Server::start(&[]).await;
    let file = serde_json::to_vec(&dkron_backup()).unwrap();
    let reply = restore(&server, "file", &file).await;
    assert_restore_ok(&reply);
    assert_restored_tree(&server).await;

    // Restoring the same file again keeps every child listed exactly once (a set).
    let again = restore(&server, "file", &file).await;
    assert_restore_ok(&again);
    assert_restored_tree(&server).await;
}

#[tokio::test]
async fn restore_with_children_before_parents_works() {
    let server = Server::start(&[]).await;
    let mut backup = dkron_backup();
    backup.reverse();
    let file = serde_json::to_vec(&backup).unwrap();
    let reply = restore(&server, "file", &file).await;
    assert_restore_ok(&reply);
    assert_restored_tree(&server).await;
}

#[tokio::test]
async fn restore_without_file_field_is_404() {
    let server = Server::start(&[]).await;
    let file = serde_json::to_vec(&dkron_backup()).unwrap();
    let reply = restore(&server, "notfile", &file).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert!(!reply.error().is_empty());
    assert_eq!(server.http_get("/v1/jobs").await.text, "[]");
}

#[tokio::test]
async fn isleader_answers_i_am_a_leader() {
    let server = Server::start(&[]).await;
    let reply = server.http_get("/v1/isleader").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json(), json!("I am a leader"));
}

#[tokio::test]
async fn leader_is_this_server_with_its_tags() {
    let server = Server::start(&[]).await;
    let reply = server.http_get("/v1/leader").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let leader = reply.json();
    assert_eq!(leader["Name"], "test-node");
    assert!(leader["Addr"].is_string(), "{leader}");
    assert!(leader["Port"].is_u64(), "{leader}");
    let tags = &leader["Tags"];
    assert_eq!(tags["server"], "true", "{tags}");
    assert_eq!(tags["dkron_server"], "true", "{tags}");
    assert_eq!(tags["role"], "dkron", "{tags}");
    assert_eq!(tags["region"], "global", "{tags}");
    assert_eq!(tags["dc"], "dc1", "{tags}");
    // The member shape without the listing-only keys.
    assert!(leader.get("id").is_none(), "{leader}");
    assert!(leader.get("statusText").is_none(), "{leader}");
    assert_eq!(leader["Status"], 1);
}

#[tokio::test]
async fn pause_flow() {
    let server = Server::start(&[]).await;
    let reply = server.http_get("/v1/pause").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"paused": false}));

    let reply = server.http_post("/v1/pause").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"paused": true}));
    assert_eq!(server.http_get("/v1/pause").await.json()["paused"], true);

    let refused = server
        .http_post_json("/v1/jobs", &hourly("paused_job"))
        .await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(refused.error().contains("paused"), "{}", refused.text);
    assert_eq!(server.http_get("/v1/jobs/paused_job").await.status, 404);

    let reply = server.http_post("/v1/unpause").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"paused": false}));

    let created = server
        .http_post_json("/v1/jobs", &hourly("paused_job"))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
}

#[tokio::test]
async fn pause_survives_a_restart() {
    let mut server = Server::start(&[]).await;
    assert_eq!(
        server.http_post("/v1/pause").await.json(),
        json!({"paused": true})
    );
    assert!(server.terminate().success());
    server.restart().await;
    let reply = server.http_get("/v1/pause").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"paused": true}));
    assert_eq!(
        server.http_post_json("/v1/jobs", &hourly("j")).await.status,
        503
    );
    assert_eq!(
        server.http_post("/v1/unpause").await.json(),
        json!({"paused": false})
    );
    assert_eq!(
        server.http_post_json("/v1/jobs", &hourly("j")).await.status,
        201
    );
}

// ---------------------------------------------------------------------------------------------
// §3.1: the route table
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn health_is_healthy() {
    let server = Server::start(&[]).await;
    let reply = server.http_get("/health").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"status": "healthy"}));
}

#[tokio::test]
async fn v1_status_with_and_without_slash() {
    let server = Server::start(&[]).await;
    for path in ["/v1", "/v1/"] {
        let reply = server.http_get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let body = reply.json();
        assert_eq!(body["agent"]["name"], "test-node", "{path}: {body}");
        assert!(body["agent"]["version"].is_string(), "{path}: {body}");
        assert!(body["serf"].is_object(), "{path}: {body}");
        assert_eq!(body["serf"]["members"], "1", "{path}: {body}");
        let tags = &body["tags"];
        assert_eq!(tags["server"], "true", "{path}: {body}");
        assert_eq!(tags["role"], "dkron", "{path}: {body}");
        assert_eq!(tags["dc"], "dc1", "{path}: {body}");
        assert_eq!(tags["region"], "global", "{path}: {body}");
    }
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test]
async fn members_lists_this_node() {
    let server = Server::start(&[]).await;
    let reply = server.http_get("/v1/members").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-total-count"), Some("1"));
    let body = reply.json();
    let members = body.as_array().unwrap();
    assert_eq!(members.len(), 1, "{body}");
    let m = &members[0];
    assert_eq!(m["Name"], "test-node");
    assert_eq!(m["statusText"], "alive");
    assert_eq!(m["Status"], 1);
    assert!(m["Addr"].is_string());
    assert!(m["Port"].is_u64());
    assert_eq!(m["Tags"]["server"], "true");
    for key in [
        "ProtocolMin",
        "ProtocolMax",
        "ProtocolCur",
        "DelegateMin",
        "DelegateMax",
        "DelegateCur",
    ] {
        assert!(m[key].is_u64(), "{key} in {m}");
    }
    let id = m["id"].as_str().unwrap();
    assert!(is_uuid(id), "id is not a UUID: {id}");
    // Dkron generates a fresh id per request.
    let again = server.http_get("/v1/members").await.json();
    assert_ne!(again[0]["id"], m["id"]);
}

#[tokio::test]
async fn every_v1_response_carries_x_whom() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&hourly("whom")).await;
    let gets = [
        "/v1",
        "/v1/",
        "/v1/members",
        "/v1/leader",
        "/v1/isleader",
        "/v1/jobs",
        "/v1/jobs/whom",
        "/v1/jobs/whom/executions",
        "/v1/jobs/notajob",
        "/v1/busy",
        "/v1/pause",
        "/v1/nope",
    ];
    for path in gets {
        let reply = server.http_get(path).await;
        assert_eq!(reply.header("x-whom"), Some("test-node"), "GET {path}");
    }
    let posted = server.http_post_json("/v1/jobs", &hourly("whom2")).await;
    assert_eq!(posted.header("x-whom"), Some("test-node"), "POST /v1/jobs");
    let bad = server.http_post_json("/v1/jobs", &hourly("BAD")).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("x-whom"), Some("test-node"), "400 answer");
    let toggled = server.http_post("/v1/jobs/whom/toggle").await;
    assert_eq!(toggled.header("x-whom"), Some("test-node"), "toggle");
    let deleted = server.http_delete("/v1/jobs/whom2").await;
    assert_eq!(deleted.header("x-whom"), Some("test-node"), "DELETE");
}

#[tokio::test]
async fn cors_allows_every_origin() {
    let server = Server::start(&[]).await;
    let preflight = send(
        server
            .client
            .http()
            .request(reqwest::Method::OPTIONS, server.url("/v1/jobs"))
            .header("Origin", "http://example.com")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type"),
    )
    .await;
    assert!(
        (200..300).contains(&preflight.status),
        "preflight: {} {:?}",
        preflight.status,
        preflight.headers
    );
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("*"),
        "{:?}",
        preflight.headers
    );
    assert!(
        preflight.header("access-control-allow-methods").is_some(),
        "{:?}",
        preflight.headers
    );

    let get = send(
        server
            .client
            .http()
            .get(server.url("/v1/jobs"))
            .header("Origin", "http://example.com"),
    )
    .await;
    assert_eq!(get.status, 200);
    assert_eq!(get.header("access-control-allow-origin"), Some("*"));
    assert!(
        get.header("access-control-expose-headers").is_some(),
        "{:?}",
        get.headers
    );
}

#[tokio::test]
async fn pretty_indents_json() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&hourly("pretty")).await;
    for path in ["/v1/jobs", "/v1/jobs/pretty", "/v1/members"] {
        let compact = server.http_get(path).await;
        assert_eq!(compact.status, 200);
        assert!(!compact.text.contains('\n'), "{path}: {}", compact.text);
        for query in ["pretty", "pretty=", "pretty=true"] {
            let pretty = server.http_get(&format!("{path}?{query}")).await;
            assert_eq!(pretty.status, 200);
            assert!(
                pretty.text.contains("\n  "),
                "{path}?{query}: {}",
                pretty.text
            );
            // Members carry a fresh `id` per request; everything else is the same.
            let without_ids = |mut v: Value| {
                if path == "/v1/members" {
                    for m in v.as_array_mut().unwrap() {
                        m.as_object_mut().unwrap().remove("id");
                    }
                }
                v
            };
            assert_eq!(
                without_ids(pretty.json()),
                without_ids(compact.json()),
                "{path}?{query}"
            );
        }
    }
}

async fn assert_created(reply: &Reply, name: &str) -> Value {
    assert_eq!(reply.status, 201, "{}", reply.text);
    let location = format!("/v1/jobs/{name}");
    assert_eq!(reply.header("location"), Some(location.as_str()));
    let body = reply.json();
    assert_eq!(body["id"], name, "{body}");
    assert_eq!(body["name"], name, "{body}");
    let next = body["next"].as_str().unwrap();
    assert_ne!(next, ZERO_TIME, "next is computed");
    body
}

#[tokio::test]
async fn post_creates_with_location_id_and_next() {
    let server = Server::start(&[]).await;
    let reply = server.http_post_json("/v1/jobs", &hourly("created")).await;
    let body = assert_created(&reply, "created").await;
    assert_eq!(body["concurrency"], "allow");
    assert_eq!(body["processors"], json!({}));
    assert_eq!(body["status"], "");
    let stored = server.http_get("/v1/jobs/created").await.json();
    assert_eq!(stored, body, "the answer is the job as stored");
}

#[tokio::test]
async fn patch_creates_like_post() {
    let server = Server::start(&[]).await;
    let reply = send(
        server
            .client
            .http()
            .patch(server.url("/v1/jobs"))
            .json(&hourly("patched")),
    )
    .await;
    assert_created(&reply, "patched").await;
    assert_eq!(server.http_get("/v1/jobs/patched").await.status, 200);
}

#[tokio::test]
async fn put_uses_the_body_name() {
    let server = Server::start(&[]).await;
    let reply = send(
        server
            .client
            .http()
            .put(server.url("/v1/jobs/anything"))
            .json(&hourly("realname")),
    )
    .await;
    assert_created(&reply, "realname").await;
    assert_eq!(server.http_get("/v1/jobs/realname").await.status, 200);
    assert_eq!(server.http_get("/v1/jobs/anything").await.status, 404);
}

#[tokio::test]
async fn runoncreate_runs_the_job() {
    let server = Server::start(&[]).await;
    let job = json!({
        "name": "roc",
        "schedule": "0 0 0 1 1 *",
        "executor": "shell",
        "executor_config": {"command": "echo created"}
    });
    let reply = server
        .http_post_json("/v1/jobs?runoncreate=true", &job)
        .await;
    assert_created(&reply, "roc").await;
    let list = server
        .wait_finished_executions("roc", 1, Duration::from_secs(5))
        .await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["success"], true);
    assert_eq!(list[0]["output"], "created\n");

    // Without the flag, nothing runs.
    let mut quiet = job.clone();
    quiet["name"] = json!("quiet");
    server.create_job_ok(&quiet).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        server.http_get("/v1/jobs/quiet/executions").await.text,
        "[]"
    );
}

/// Creates a..e with decreasing success counts so that count order differs from name order.
async fn five_jobs(server: &Server) {
    for (name, count) in [("a", 3), ("b", 1), ("c", 4), ("d", 0), ("e", 2)] {
        let mut job = hourly(name);
        job["success_count"] = json!(count);
        server.create_job_ok(&job).await;
    }
}

#[tokio::test]
async fn list_jobs_pages_sorts_and_counts() {
    let server = Server::start(&[]).await;
    five_jobs(&server).await;
    assert_eq!(
        list(&server, "").await,
        (
            vec!["a", "b", "c", "d", "e"]
                .into_iter()
                .map(String::from)
                .collect(),
            "5".into()
        )
    );
    let (page, total) = list(&server, "_start=1&_end=3").await;
    assert_eq!(page, ["b", "c"]);
    assert_eq!(total, "5");
    let (page, total) = list(&server, "_order=DESC").await;
    assert_eq!(page, ["e", "d", "c", "b", "a"]);
    assert_eq!(total, "5");
    let (page, _) = list(&server, "_start=1&_end=3&_order=DESC").await;
    assert_eq!(page, ["d", "c"]);
    let (page, _) = list(&server, "_sort=id&_order=ASC").await;
    assert_eq!(page, ["a", "b", "c", "d", "e"]);
    let (page, total) = list(&server, "_sort=success_count").await;
    assert_eq!(page, ["d", "b", "e", "a", "c"]);
    assert_eq!(total, "5");
    let (page, _) = list(&server, "_sort=success_count&_order=DESC").await;
    assert_eq!(page, ["c", "a", "e", "b", "d"]);
    let (page, total) = list(&server, "_sort=success_count&_start=0&_end=2").await;
    assert_eq!(page, ["d", "b"]);
    assert_eq!(total, "5");
    let (page, _) = list(&server, "_end=100").await;
    assert_eq!(page.len(), 5);
}

#[tokio::test]
async fn list_jobs_start_beyond_total_is_an_empty_page() {
    let server = Server::start(&[]).await;
    five_jobs(&server).await;
    for query in [
        "_start=10",
        "_start=10&_end=20",
        "_start=4&_end=2",
        "_start=5",
    ] {
        let reply = server.http_get(&format!("/v1/jobs?{query}")).await;
        assert_eq!(reply.status, 200, "?{query}: {}", reply.text);
        assert_eq!(reply.text, "[]", "?{query}");
        assert_eq!(reply.header("x-total-count"), Some("5"), "?{query}");
    }
}

#[tokio::test]
async fn list_jobs_rejects_bad_paging_and_sort() {
    let server = Server::start(&[]).await;
    five_jobs(&server).await;
    for query in ["_start=abc", "_end=abc", "_start=-1", "_sort=bogus"] {
        let reply = server.http_get(&format!("/v1/jobs?{query}")).await;
        assert_eq!(reply.status, 400, "?{query}: {}", reply.text);
        assert!(!reply.error().is_empty(), "?{query}");
    }
}

#[tokio::test]
async fn list_jobs_q_matches_name_or_displayname_case_sensitively() {
    let server = Server::start(&[]).await;
    let mut one = hourly("alpha-backup");
    one["displayname"] = json!("Nightly");
    server.create_job_ok(&one).await;
    let mut two = hourly("beta");
    two["displayname"] = json!("Backup of beta");
    server.create_job_ok(&two).await;
    server.create_job_ok(&hourly("gamma")).await;

    let (page, total) = list(&server, "q=backup").await;
    assert_eq!(page, ["alpha-backup"]);
    assert_eq!(total, "1");
    let (page, _) = list(&server, "q=Backup").await;
    assert_eq!(page, ["beta"]);
    let (page, _) = list(&server, "q=Nightly").await;
    assert_eq!(page, ["alpha-backup"]);
    let (page, total) = list(&server, "q=a").await;
    assert_eq!(page, ["alpha-backup", "beta", "gamma"]);
    assert_eq!(total, "3");
    let (page, total) = list(&server, "q=nothing").await;
    assert!(page.is_empty());
    assert_eq!(total, "0");
}

#[tokio::test]
async fn list_jobs_filters_status_and_disabled() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&shell_job("ran", "echo ok")).await;
    server.create_job_ok(&shell_job("waiting", "echo ok")).await;
    let mut off = shell_job("off", "echo ok");
    off["disabled"] = json!(true);
    server.create_job_ok(&off).await;

    assert_eq!(server.http_post("/v1/jobs/ran").await.status, 200);
    server
        .wait_finished_executions("ran", 1, Duration::from_secs(5))
        .await;
    let ok = crate::support::wait_until(Duration::from_secs(5), || async {
        server.http_get("/v1/jobs/ran").await.json()["status"] == "success"
    })
    .await;
    assert!(ok, "ran never got status success");

    let (page, total) = list(&server, "status=success").await;
    assert_eq!(page, ["ran"]);
    assert_eq!(total, "1");
    let (page, total) = list(&server, "status=untriggered").await;
    assert_eq!(page, ["off", "waiting"]);
    assert_eq!(total, "2");
    let (page, total) = list(&server, "disabled=true").await;
    assert_eq!(page, ["off"]);
    assert_eq!(total, "1");
    let (page, _) = list(&server, "disabled=false").await;
    assert_eq!(page, ["ran", "waiting"]);
    let (page, _) = list(&server, "status=untriggered&disabled=false").await;
    assert_eq!(page, ["waiting"]);
}

#[tokio::test]
async fn list_jobs_metadata_filters_and_together() {
    let server = Server::start(&[]).await;
    for (name, metadata) in [
        ("job1", json!({"t1": "v1"})),
        ("job2", json!({"t1": "v1", "t2": "v2"})),
        ("job3", json!({"t3": "v3"})),
        ("job4", Value::Null),
    ] {
        let mut job = hourly(name);
        job["metadata"] = metadata;
        server.create_job_ok(&job).await;
    }
    let (page, total) = list(&server, "metadata[t1]=v1").await;
    assert_eq!(page, ["job1", "job2"]);
    assert_eq!(total, "2");
    let (page, total) = list(&server, "metadata[t1]=v1&metadata[t2]=v2").await;
    assert_eq!(page, ["job2"]);
    assert_eq!(total, "1");
    let (page, total) = list(&server, "metadata[t1]=v1&metadata[t2]=v2&metadata[t3]=v3").await;
    assert!(page.is_empty(), "{page:?}");
    assert_eq!(total, "0");
    // Percent-encoded brackets, as curl --data-urlencode sends them.
    let (page, _) = list(&server, "metadata%5Bt3%5D=v3").await;
    assert_eq!(page, ["job3"]);
    let (page, _) = list(&server, "metadata[t1]=v2").await;
    assert!(page.is_empty());
}

async fn assert_run_answers(server: &Server, path: &str, name: &str) {
    let started = tokio::time::Instant::now();
    let reply = server.http_post(path).await;
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "POST {path}: {}", reply.text);
    assert!(
        took < Duration::from_secs(1),
        "POST {path} took {took:?}: the run must not hold the request"
    );
    assert_eq!(reply.header("location"), Some(path), "POST {path}");
    let body = reply.json();
    assert_eq!(body["name"], name);
    assert_eq!(body["id"], name);
}

#[tokio::test]
async fn manual_run_answers_at_once_and_creates_an_execution() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&shell_job("sleeper", "sleep 5")).await;
    server.create_job_ok(&shell_job("runner", "sleep 5")).await;
    assert_run_answers(&server, "/v1/jobs/sleeper", "sleeper").await;
    assert_run_answers(&server, "/v1/jobs/runner/run", "runner").await;
    for name in ["sleeper", "runner"] {
        let ok = crate::support::wait_until(Duration::from_secs(3), || async {
            let list = server
                .http_get(&format!("/v1/jobs/{name}/executions"))
                .await
                .json();
            list.as_array().is_some_and(|l| l.len() == 1)
        })
        .await;
        assert!(ok, "{name}: no execution within 3 s\n{}", server.log_text());
    }
    let unknown = server.http_post("/v1/jobs/notajob").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert!(!unknown.error().is_empty());
    let unknown = server.http_post("/v1/jobs/notajob/run").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
}

#[tokio::test]
async fn manual_run_of_a_disabled_job_runs() {
    let server = Server::start(&[]).await;
    let mut job = shell_job("off", "echo ran");
    job["disabled"] = json!(true);
    server.create_job_ok(&job).await;
    let reply = server.http_post("/v1/jobs/off/run").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["disabled"], true);
    let list = server
        .wait_finished_executions("off", 1, Duration::from_secs(5))
        .await;
    assert_eq!(list[0]["success"], true);
    assert_eq!(list[0]["output"], "ran\n");
    assert_eq!(
        server.http_get("/v1/jobs/off").await.json()["disabled"],
        true
    );
}

#[tokio::test]
async fn toggle_flips_disabled_and_back() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&hourly("flip")).await;
    let reply = server.http_post("/v1/jobs/flip/toggle").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("location"), Some("/v1/jobs/flip/toggle"));
    assert_eq!(reply.json()["disabled"], true);
    assert_eq!(
        server.http_get("/v1/jobs/flip").await.json()["disabled"],
        true
    );
    let reply = server.http_post("/v1/jobs/flip/toggle").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["disabled"], false);
    assert_eq!(
        server.http_get("/v1/jobs/flip").await.json()["disabled"],
        false
    );
    let unknown = server.http_post("/v1/jobs/notajob/toggle").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
}

#[tokio::test]
async fn delete_answers_the_job_then_404() {
    let server = Server::start(&[]).await;
    let created = server.create_job_ok(&hourly("gone")).await;
    let reply = server.http_delete("/v1/jobs/gone").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["name"], "gone");
    assert_eq!(body["id"], "gone");
    assert_eq!(body["schedule"], created["schedule"]);
    assert_eq!(server.http_get("/v1/jobs/gone").await.status, 404);
    let again = server.http_delete("/v1/jobs/gone").await;
    assert_eq!(again.status, 404, "{}", again.text);
    assert!(!again.error().is_empty());
    assert_eq!(server.http_get("/v1/jobs").await.text, "[]");
}

#[tokio::test]
async fn deleting_a_parent_with_children_is_409() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&hourly("parent")).await;
    let mut child = hourly("child");
    child["parent_job"] = json!("parent");
    server.create_job_ok(&child).await;

    let reply = server.http_delete("/v1/jobs/parent").await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(
        reply.error(),
        "store: could not delete job with dependent jobs, delete children first"
    );
    assert_eq!(server.http_get("/v1/jobs/parent").await.status, 200);

    // Deleting the child removes it from the parent's list; then the parent can go.
    let reply = server.http_delete("/v1/jobs/child").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let parent = server.http_get("/v1/jobs/parent").await.json();
    assert_eq!(parent["dependent_jobs"], Value::Null, "{parent}");
    assert_eq!(server.http_delete("/v1/jobs/parent").await.status, 200);
}

#[tokio::test]
async fn moving_a_child_updates_both_parents() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&hourly("p1")).await;
    server.create_job_ok(&hourly("p2")).await;
    let mut child = hourly("kid");
    child["parent_job"] = json!("p1");
    let created = server.create_job_ok(&child).await;
    assert_eq!(created["parent_job"], "p1");
    assert_eq!(created["next"], ZERO_TIME, "child jobs are never scheduled");
    assert_eq!(
        server.http_get("/v1/jobs/p1").await.json()["dependent_jobs"],
        json!(["kid"])
    );

    child["parent_job"] = json!("p2");
    let moved = server.http_post_json("/v1/jobs", &child).await;
    assert_eq!(moved.status, 201, "{}", moved.text);
    assert_eq!(moved.json()["parent_job"], "p2");
    assert_eq!(
        server.http_get("/v1/jobs/p1").await.json()["dependent_jobs"],
        Value::Null
    );
    assert_eq!(
        server.http_get("/v1/jobs/p2").await.json()["dependent_jobs"],
        json!(["kid"])
    );

    // A plain job again: off every list.
    child["parent_job"] = json!("");
    let freed = server.http_post_json("/v1/jobs", &child).await;
    assert_eq!(freed.status, 201, "{}", freed.text);
    assert_eq!(
        server.http_get("/v1/jobs/p2").await.json()["dependent_jobs"],
        Value::Null
    );
}

#[tokio::test]
async fn a_dependency_cycle_is_400() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&hourly("a")).await;
    let mut b = hourly("b");
    b["parent_job"] = json!("a");
    server.create_job_ok(&b).await;

    let mut a = hourly("a");
    a["parent_job"] = json!("b");
    let reply = server.http_post_json("/v1/jobs", &a).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(!reply.error().is_empty());
    let stored = server.http_get("/v1/jobs/a").await.json();
    assert_eq!(stored["parent_job"], "", "{stored}");
    assert_eq!(stored["dependent_jobs"], json!(["b"]), "{stored}");
    assert_eq!(
        server.http_get("/v1/jobs/b").await.json()["dependent_jobs"],
        Value::Null
    );
}

#[tokio::test]
async fn upsert_keeps_counters_status_and_last_times() {
    let server = Server::start(&[]).await;
    let job = shell_job("merged", "echo ok");
    server.create_job_ok(&job).await;
    assert_eq!(server.http_post("/v1/jobs/merged").await.status, 200);
    server
        .wait_finished_executions("merged", 1, Duration::from_secs(5))
        .await;
    let ok = crate::support::wait_until(Duration::from_secs(5), || async {
        server.http_get("/v1/jobs/merged").await.json()["status"] == "success"
    })
    .await;
    assert!(ok, "{}", server.http_get("/v1/jobs/merged").await.text);
    let ran = server.http_get("/v1/jobs/merged").await.json();
    assert_eq!(ran["success_count"], 1);
    assert!(ran["last_success"].is_string(), "{ran}");

    // A re-submission with lower counters, no status and no times changes none of them.
    let mut lower = job.clone();
    lower["success_count"] = json!(0);
    lower["status"] = json!("");
    lower["last_success"] = Value::Null;
    lower["displayname"] = json!("renamed");
    let reply = server.http_post_json("/v1/jobs", &lower).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["displayname"], "renamed");
    assert_eq!(body["success_count"], 1, "{body}");
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["last_success"], ran["last_success"], "{body}");
    assert_eq!(server.http_get("/v1/jobs/merged").await.json(), body);

    // Counters can be raised through the API.
    let mut higher = job.clone();
    higher["success_count"] = json!(10);
    higher["error_count"] = json!(5);
    let body = server.create_job_ok(&higher).await;
    assert_eq!(body["success_count"], 10);
    assert_eq!(body["error_count"], 5);
}

#[tokio::test]
async fn job_json_keys_come_in_dkron_order() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&hourly("ordered")).await;
    let keys = [
        "id",
        "name",
        "displayname",
        "timezone",
        "schedule",
        "owner",
        "owner_email",
        "success_count",
        "error_count",
        "last_success",
        "last_error",
        "disabled",
        "tags",
        "metadata",
        "retries",
        "dependent_jobs",
        "parent_job",
        "processors",
        "concurrency",
        "executor",
        "executor_config",
        "status",
        "next",
        "ephemeral",
        "starts_at",
        "expires_at",
        // rkron's documented extensions follow Dkron's keys.
        "retry_interval",
        "starting_deadline",
        "notify_on",
        "notify_email",
        "notify_webhook",
    ];
    let text = server.http_get("/v1/jobs/ordered").await.text;
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("no key {k} in {text}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "keys out of Dkron's order: {text}"
    );
    assert_eq!(
        server
            .http_get("/v1/jobs/ordered")
            .await
            .json()
            .as_object()
            .unwrap()
            .len(),
        keys.len(),
        "every key present, no extra key"
    );
}

#[tokio::test]
async fn restore_of_a_child_whose_parent_is_nowhere_is_400() {
    let server = Server::start(&[]).await;
    let mut backup = dkron_backup();
    // task3's parent task2 is neither in the file nor in the store.
    backup.retain(|j| j["name"] != "task2");
    backup.iter_mut().for_each(|j| {
        if j["name"] == "task3" {
            j["parent_job"] = json!("task2");
        }
    });
    let file = serde_json::to_vec(&backup).unwrap();
    let reply = restore(&server, "file", &file).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(!reply.error().is_empty());
    assert_eq!(
        server.http_get("/v1/jobs").await.text,
        "[]",
        "nothing restored"
    );
}
