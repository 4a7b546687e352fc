//! The jobs the scenarios store: their names, their JSON bodies, and creating many of them over
//! HTTP with many requests in flight.

use std::sync::Arc;

use serde_json::json;

use crate::load::{self, LoadResult};
use crate::server::BenchServer;

/// A schedule that never fires during a benchmark (midnight on January 1).
pub(crate) const NEVER: &str = "0 0 0 1 1 *";

/// The name of job `i` (counting from 1) with `prefix`: `job-000001`.
pub(crate) fn name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:06}")
}

/// The executor of a job.
#[derive(Debug, Clone)]
pub(crate) enum Executor {
    /// `shell` with `command: true`.
    ShellTrue,
    /// `http` with `method: GET` on `url`.
    HttpGet(String),
    /// `http` with `method: GET` on `url`, `expectCode: "200"` and `timeout: "30"`.
    HttpGetExpect200(String),
}

/// The JSON body of a job named `name` with `schedule`, `executor` and the node-selecting
/// `tags` (none when empty).
pub(crate) fn body_tagged(
    name: &str,
    schedule: &str,
    executor: &Executor,
    tags: &[(String, String)],
) -> Vec<u8> {
    let (executor, config) = match executor {
        Executor::ShellTrue => ("shell", json!({ "command": "true" })),
        Executor::HttpGet(url) => ("http", json!({ "method": "GET", "url": url })),
        Executor::HttpGetExpect200(url) => (
            "http",
            json!({ "method": "GET", "url": url, "expectCode": "200", "timeout": "30" }),
        ),
    };
    let mut job = json!({
        "name": name,
        "schedule": schedule,
        "executor": executor,
        "executor_config": config,
    });
    if !tags.is_empty() {
        let tags: serde_json::Map<String, serde_json::Value> = tags
            .iter()
            .map(|(key, value)| (key.clone(), json!(value)))
            .collect();
        job["tags"] = serde_json::Value::Object(tags);
    }
    serde_json::to_vec(&job).expect("a JSON value always serializes")
}

/// Creates jobs `prefix-000001` … `prefix-<count>` with `POST /v1/jobs`, `concurrency` requests
/// in flight; each must answer 201 (or 200).
pub(crate) async fn create(
    server: &BenchServer,
    prefix: &str,
    count: usize,
    concurrency: usize,
    schedule: &str,
    executor: &Executor,
) -> LoadResult {
    create_tagged(server, prefix, count, concurrency, schedule, executor, &[]).await
}

/// As [`create`], with the node-selecting `tags` on every job.
pub(crate) async fn create_tagged(
    server: &BenchServer,
    prefix: &str,
    count: usize,
    concurrency: usize,
    schedule: &str,
    executor: &Executor,
    tags: &[(String, String)],
) -> LoadResult {
    create_tagged_at(
        server.http(),
        &server.base(),
        prefix,
        count,
        concurrency,
        schedule,
        executor,
        tags,
    )
    .await
}

/// As [`create_tagged`], on the server whose API is at `base` (`http://127.0.0.1:<port>`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn create_tagged_at(
    http: &reqwest::Client,
    base: &str,
    prefix: &str,
    count: usize,
    concurrency: usize,
    schedule: &str,
    executor: &Executor,
    tags: &[(String, String)],
) -> LoadResult {
    let http = http.clone();
    let url = Arc::new(format!("{base}/v1/jobs"));
    let prefix = Arc::new(prefix.to_owned());
    let schedule = Arc::new(schedule.to_owned());
    let executor = Arc::new(executor.clone());
    let tags = Arc::new(tags.to_vec());
    load::drive(count, concurrency, move |i| {
        let body = body_tagged(&name(&prefix, i + 1), &schedule, &executor, &tags);
        let request = http
            .post(url.as_str())
            .header("content-type", "application/json")
            .body(body);
        async move { load::send(request, &[200, 201]).await.map(|_| ()) }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_zero_padded() {
        assert_eq!(name("job", 1), "job-000001");
        assert_eq!(name("job", 100_000), "job-100000");
    }

    #[test]
    fn bodies_carry_the_executor_config() {
        let shell: serde_json::Value =
            serde_json::from_slice(&body_tagged("a", NEVER, &Executor::ShellTrue, &[])).unwrap();
        assert_eq!(shell["executor"], "shell");
        assert_eq!(shell["executor_config"]["command"], "true");
        let http: serde_json::Value = serde_json::from_slice(&body_tagged(
            "b",
            "@at 2030-01-01T00:00:00Z",
            &Executor::HttpGet("http://127.0.0.1:1/".into()),
            &[],
        ))
        .unwrap();
        assert_eq!(http["executor_config"]["method"], "GET");
        assert_eq!(http["schedule"], "@at 2030-01-01T00:00:00Z");
        assert!(http.get("tags").is_none());
    }

    #[test]
    fn tagged_bodies_select_nodes() {
        let tags = [("bench".to_owned(), "agent:1".to_owned())];
        let job: serde_json::Value = serde_json::from_slice(&body_tagged(
            "c",
            "@every 1s",
            &Executor::HttpGetExpect200("http://127.0.0.1:1/".into()),
            &tags,
        ))
        .unwrap();
        assert_eq!(job["tags"]["bench"], "agent:1");
        assert_eq!(job["executor_config"]["expectCode"], "200");
        assert_eq!(job["executor_config"]["timeout"], "30");
    }
}
