//! Bad input on the wire: every bad request gets the right 4xx with a JSON `{"error": "…"}` body,
//! and the server keeps answering with its store intact.

use serde_json::{Value, json};

use crate::support::{Reply, Server, send};

/// A job every test creates first, to check afterwards that the store is intact.
fn keeper() -> Value {
    json!({
        "name": "keeper",
        "schedule": "@every 1h",
        "executor": "shell",
        "executor_config": {"command": "true"}
    })
}

async fn start() -> Server {
    let server = Server::start(&[]).await;
    server.create_job_ok(&keeper()).await;
    server
}

/// The server still answers and the job created before is still there, unchanged.
async fn assert_intact(server: &Server) {
    let health = server.http_get("/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "healthy"}));
    let job = server.http_get("/v1/jobs/keeper").await;
    assert_eq!(job.status, 200, "{}", job.text);
    let job = job.json();
    assert_eq!(job["name"], "keeper");
    assert_eq!(job["schedule"], "@every 1h");
    assert_eq!(job["executor_config"], json!({"command": "true"}));
}

/// Asserts the status and a JSON error body; answers the error text.
fn assert_error(reply: &Reply, status: u16, what: &str) -> String {
    assert_eq!(reply.status, status, "{what}: {}", reply.text);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content type {content_type:?}"
    );
    let error = reply.error();
    assert!(!error.is_empty(), "{what}: empty error");
    error
}

async fn post_raw(server: &Server, body: impl Into<reqwest::Body>) -> Reply {
    send(
        server
            .client
            .http()
            .post(server.url("/v1/jobs"))
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

#[tokio::test]
async fn malformed_json_is_400() {
    let server = start().await;
    for body in [
        r#"{"name":"#,
        "",
        "not json",
        "[1,2]",
        "null",
        r#"{"name": "x",}"#,
    ] {
        let reply = post_raw(&server, body).await;
        let error = assert_error(&reply, 400, body);
        assert!(
            error.starts_with("Unable to parse payload: "),
            "{body:?}: {error}"
        );
    }
    assert_intact(&server).await;
}

#[tokio::test]
async fn wrong_field_types_are_400() {
    let server = start().await;
    let cases = [
        ("retries", json!("x")),
        ("retries", json!(-1)),
        ("retries", json!(1.5)),
        ("disabled", json!("yes")),
        ("tags", json!([1])),
        ("tags", json!({"k": 1})),
        ("metadata", json!("x")),
        ("executor_config", json!({"command": 5})),
        ("processors", json!({"log": {"forward": true}})),
        ("success_count", json!(-3)),
        ("name", json!(7)),
        ("dependent_jobs", json!("child")),
    ];
    for (field, value) in cases {
        let mut job = json!({
            "name": "typed",
            "schedule": "@every 1h",
            "executor": "shell",
            "executor_config": {"command": "true"}
        });
        job[field] = value.clone();
        let reply = server.http_post_json("/v1/jobs", &job).await;
        let what = format!("{field}: {value}");
        let error = assert_error(&reply, 400, &what);
        assert!(
            error.starts_with("Unable to parse payload: "),
            "{what}: {error}"
        );
    }
    assert_eq!(server.http_get("/v1/jobs/typed").await.status, 404);
    assert_intact(&server).await;
}

#[tokio::test]
async fn processors_with_string_values_are_accepted() {
    let server = start().await;
    let job = json!({
        "name": "logged",
        "schedule": "@every 1h",
        "executor": "shell",
        "executor_config": {"command": "true"},
        "processors": {"log": {"forward": "true"}}
    });
    let created = server.create_job_ok(&job).await;
    assert_eq!(created["processors"], json!({"log": {"forward": "true"}}));
    assert_intact(&server).await;
}

fn job_with_displayname(name: &str, size: usize) -> Vec<u8> {
    let job = json!({
        "name": name,
        "displayname": "x".repeat(size),
        "schedule": "@every 1h",
        "executor": "shell",
        "executor_config": {"command": "true"}
    });
    serde_json::to_vec(&job).unwrap()
}

#[tokio::test]
async fn a_body_over_one_mib_is_413() {
    let server = start().await;
    let body = job_with_displayname("huge", 1024 * 1024 * 3 / 2);
    assert!(body.len() > 1024 * 1024 * 3 / 2);
    let reply = post_raw(&server, body).await;
    assert_error(&reply, 413, "1.5 MiB body");
    assert_eq!(server.http_get("/v1/jobs/huge").await.status, 404);
    assert_intact(&server).await;
}

#[tokio::test]
async fn a_body_under_one_mib_is_accepted() {
    let server = start().await;
    let size = 1024 * 1024 * 9 / 10;
    let body = job_with_displayname("big", size);
    assert!(body.len() < 1024 * 1024);
    let reply = post_raw(&server, body).await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        &reply.text[..reply.text.len().min(300)]
    );
    let stored = server.http_get("/v1/jobs/big").await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.json()["displayname"].as_str().unwrap().len(), size);
    assert_intact(&server).await;
}

#[tokio::test]
async fn unknown_routes_are_404_json() {
    let server = start().await;
    for path in ["/v1/nope", "/v2/jobs", "/v1/jobs/keeper/nope", "/nope"] {
        let reply = server.http_get(path).await;
        assert_error(&reply, 404, path);
    }
    let reply = server.http_post("/v2/jobs").await;
    assert_error(&reply, 404, "POST /v2/jobs");
    assert_intact(&server).await;
}

#[tokio::test]
async fn wrong_methods_are_405_json() {
    let server = start().await;
    let reply = server.http_delete("/v1/jobs").await;
    assert_error(&reply, 405, "DELETE /v1/jobs");
    let reply = send(server.client.http().put(server.url("/v1/jobs"))).await;
    assert_error(&reply, 405, "PUT /v1/jobs");
    let reply = server.http_delete("/v1/busy").await;
    assert_error(&reply, 405, "DELETE /v1/busy");
    let reply = server.http_get("/v1/jobs/keeper/toggle").await;
    assert_error(&reply, 405, "GET toggle");
    assert_intact(&server).await;
}

#[tokio::test]
async fn invalid_schedules_are_400() {
    let server = start().await;
    for schedule in ["* * *", "60 * * * * *", "@every x", "@bogus", ""] {
        let mut job = keeper();
        job["name"] = json!("scheduled");
        job["schedule"] = json!(schedule);
        let reply = server.http_post_json("/v1/jobs", &job).await;
        let error = assert_error(&reply, 400, schedule);
        assert!(
            error.starts_with("Job validation failed: can't parse job schedule: "),
            "{schedule:?}: {error}"
        );
        assert!(error.ends_with('.'), "{schedule:?}: {error}");
        if schedule.is_empty() {
            assert_eq!(
                error,
                "Job validation failed: can't parse job schedule: empty spec string."
            );
        }
    }
    // An update with a bad schedule leaves the stored job alone.
    let mut job = keeper();
    job["schedule"] = json!("@bogus");
    let reply = server.http_post_json("/v1/jobs", &job).await;
    assert_error(&reply, 400, "update with @bogus");
    assert_eq!(server.http_get("/v1/jobs/scheduled").await.status, 404);
    assert_intact(&server).await;
}

#[tokio::test]
async fn invalid_timezone_is_400() {
    let server = start().await;
    for zone in ["notatimezone", "Europe/Nowhere", "+01:00"] {
        let mut job = keeper();
        job["name"] = json!("zoned");
        job["timezone"] = json!(zone);
        let reply = server.http_post_json("/v1/jobs", &job).await;
        let error = assert_error(&reply, 400, zone);
        assert!(error.starts_with("Job validation failed: "), "{error}");
        assert!(error.contains(zone), "{zone}: {error}");
    }
    assert_eq!(server.http_get("/v1/jobs/zoned").await.status, 404);
    assert_intact(&server).await;
}

#[tokio::test]
async fn invalid_starts_at_is_400() {
    let server = start().await;
    for field in ["starts_at", "expires_at", "last_success"] {
        let mut job = keeper();
        job["name"] = json!("timed");
        job[field] = json!("not-a-date");
        let reply = server.http_post_json("/v1/jobs", &job).await;
        let error = assert_error(&reply, 400, field);
        assert!(error.starts_with("Unable to parse payload: "), "{error}");
    }
    // The accepted forms: RFC 3339 and the HTML datetime-local form (UTC).
    let mut job = keeper();
    job["name"] = json!("timed");
    job["starts_at"] = json!("2030-01-02T03:04");
    job["expires_at"] = json!("2031-01-02T03:04:05+01:00");
    let created = server.create_job_ok(&job).await;
    assert_eq!(created["starts_at"], "2030-01-02T03:04:00Z");
    assert_eq!(created["expires_at"], "2031-01-02T02:04:05Z");
    assert_intact(&server).await;
}

#[tokio::test]
async fn any_content_type_is_parsed_as_json() {
    let server = start().await;
    let mut job = keeper();
    for (name, content_type) in [
        ("plain", Some("text/plain")),
        ("form", Some("application/x-www-form-urlencoded")),
        ("none", None),
    ] {
        job["name"] = json!(name);
        let mut request = server
            .client
            .http()
            .post(server.url("/v1/jobs"))
            .body(serde_json::to_vec(&job).unwrap());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let reply = send(request).await;
        assert_eq!(reply.status, 201, "{content_type:?}: {}", reply.text);
        assert_eq!(reply.json()["name"], name);
        assert_eq!(
            server.http_get(&format!("/v1/jobs/{name}")).await.status,
            200
        );
    }
    assert_intact(&server).await;
}

#[tokio::test]
async fn two_hundred_concurrent_bad_requests() {
    let server = start().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let http = server.client.http().clone();
        let url = server.url("/v1/jobs");
        tasks.spawn(async move {
            let body = match i % 4 {
                0 => r#"{"name":"#.to_owned(),
                1 => r#"{"name": "BAD NAME", "schedule": "@every 1h"}"#.to_owned(),
                2 => r#"{"name": "x", "schedule": "@bogus"}"#.to_owned(),
                _ => r#"{"name": "x", "retries": "many"}"#.to_owned(),
            };
            send(
                http.post(url)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await
        });
    }
    let mut answered = 0;
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        assert_error(&reply, 400, "concurrent bad request");
        answered += 1;
    }
    assert_eq!(answered, 200);
    let jobs = server.http_get("/v1/jobs").await;
    assert_eq!(jobs.header("x-total-count"), Some("1"), "{}", jobs.text);
    assert_intact(&server).await;
}

#[tokio::test]
async fn a_slash_in_the_job_path_is_404() {
    let server = start().await;
    let reply = server.http_get("/v1/jobs/a%2Fb").await;
    assert_error(&reply, 404, "GET /v1/jobs/a%2Fb");
    let reply = server.http_delete("/v1/jobs/a%2Fb").await;
    assert_error(&reply, 404, "DELETE /v1/jobs/a%2Fb");
    let reply = server.http_post("/v1/jobs/a%2Fb").await;
    assert_error(&reply, 404, "POST /v1/jobs/a%2Fb");
    let reply = server.http_get("/v1/jobs/a%2Fb/executions").await;
    assert_error(&reply, 404, "GET /v1/jobs/a%2Fb/executions");
    // And such a name cannot be created.
    let mut job = keeper();
    job["name"] = json!("a/b");
    let reply = server.http_post_json("/v1/jobs", &job).await;
    let error = assert_error(&reply, 400, "name a/b");
    assert_eq!(
        error,
        "Job validation failed: name contains illegal character '/'."
    );
    assert_intact(&server).await;
}

#[tokio::test]
async fn bad_restore_uploads_are_rejected() {
    let server = start().await;
    // Not multipart at all.
    let reply = server.http_post_json("/v1/restore", &json!([])).await;
    assert!(
        (400..500).contains(&reply.status),
        "non-multipart restore: {} {}",
        reply.status,
        reply.text
    );
    assert!(!reply.error().is_empty());
    // A file that is not JSON.
    let boundary = "b0undary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.json\"\r\n\r\nnot json\r\n--{boundary}--\r\n"
    );
    let reply = send(
        server
            .client
            .http()
            .post(server.url("/v1/restore"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body),
    )
    .await;
    assert_error(&reply, 400, "restore of a non-JSON file");
    // A file with an invalid job: 400, nothing restored.
    let file = json!([
        {"name": "fine", "schedule": "@every 1h", "executor": "shell", "executor_config": {"command": "true"}},
        {"name": "NOT FINE", "schedule": "@every 1h", "executor": "shell", "executor_config": {"command": "true"}}
    ])
    .to_string();
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.json\"\r\n\r\n{file}\r\n--{boundary}--\r\n"
    );
    let reply = send(
        server
            .client
            .http()
            .post(server.url("/v1/restore"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body),
    )
    .await;
    let error = assert_error(&reply, 400, "restore of an invalid job");
    assert!(error.contains("illegal character"), "{error}");
    assert_eq!(server.http_get("/v1/jobs/fine").await.status, 404);
    assert_intact(&server).await;
}
