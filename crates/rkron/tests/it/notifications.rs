//! Notifications and processors through the real binary: webhooks with Go-template payloads,
//! per-job targets and `notify_on`, and the `files` processor.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::json;

use crate::support::{Server, shell_job, wait_until};

type Received = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;

/// A real local HTTP server recording every POST: (path, headers, body).
async fn webhook_sink() -> (String, Received) {
    let received: Received = Arc::default();
    let r = received.clone();
    let app = Router::new().route(
        "/{*path}",
        post(
            move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
                let r = r.clone();
                async move {
                    r.lock()
                        .unwrap()
                        .push((uri.path().to_owned(), headers, body));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), received)
}

async fn wait_for(received: &Received, n: usize) -> bool {
    let r = received.clone();
    wait_until(Duration::from_secs(10), || {
        let r = r.clone();
        async move { r.lock().unwrap().len() >= n }
    })
    .await
}

#[tokio::test]
async fn webhooks_render_dkron_templates_and_honour_notify_on() {
    let (base, received) = webhook_sink().await;
    let global = format!("{base}/global");
    let server = Server::start(&[
        "--webhook-endpoint",
        &global,
        "--webhook-payload",
        "job={{.JobName}} success={{.Success}} node={{.NodeName}} output={{.Output}}",
        "--webhook-headers",
        "X-Url: http://a:b",
        "--pre-webhook-endpoint",
        &format!("{base}/pre"),
        "--pre-webhook-payload",
        "started {{.JobName}}",
    ])
    .await;

    let mut job = shell_job("notified", "echo hi");
    job["notify_webhook"] = json!(format!("{base}/job"));
    server.create_job_ok(&job).await;
    assert_eq!(server.http_post("/v1/jobs/notified/run").await.status, 200);
    assert!(
        wait_for(&received, 3).await,
        "{:?}",
        received.lock().unwrap()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = received.lock().unwrap().clone();
    let pre: Vec<_> = got.iter().filter(|(p, _, _)| p == "/pre").collect();
    assert_eq!(
        pre.len(),
        1,
        "the pre-webhook fires once per execution start: {got:?}"
    );
    assert_eq!(pre[0].2, "started notified");
    let global_hits: Vec<_> = got.iter().filter(|(p, _, _)| p == "/global").collect();
    assert_eq!(global_hits.len(), 1);
    assert_eq!(
        global_hits[0].2.trim(),
        "job=notified success=true node=test-node output=hi"
    );
    assert_eq!(
        global_hits[0].1["x-url"], "http://a:b",
        "header values keep their colons"
    );
    assert!(
        got.iter().any(|(p, _, _)| p == "/job"),
        "the job's own webhook is called too"
    );

    // notify_on=failure: a success sends nothing after the pre-webhook.
    received.lock().unwrap().clear();
    let mut quiet = shell_job("quiet", "echo fine");
    quiet["notify_on"] = json!("failure");
    server.create_job_ok(&quiet).await;
    assert_eq!(
        server
            .http_post("/v1/jobs/quiet/run?wait=true")
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _, _)| p.clone())
        .collect();
    assert_eq!(
        after,
        ["/pre"],
        "only the pre-webhook for a success with notify_on=failure"
    );

    // A failing notification target cancels nothing: the child still runs.
    let mut parent = shell_job("noisy-parent", "true");
    parent["notify_webhook"] = json!("http://127.0.0.1:9/unreachable");
    server.create_job_ok(&parent).await;
    let mut child = shell_job("noisy-child", "echo child");
    child["parent_job"] = json!("noisy-parent");
    child["schedule"] = json!("");
    server.create_job_ok(&child).await;
    assert_eq!(
        server.http_post("/v1/jobs/noisy-parent/run").await.status,
        200
    );
    server
        .wait_finished_executions("noisy-child", 1, Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn files_processor_replaces_the_stored_output_with_the_log_path() {
    let server = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut job = shell_job("filed", "echo to-a-file");
    job["processors"] = json!({"files": {"log_dir": dir.path().to_str().unwrap()}});
    server.create_job_ok(&job).await;
    assert_eq!(
        server
            .http_post("/v1/jobs/filed/run?wait=true")
            .await
            .status,
        200
    );
    let list = server
        .wait_finished_executions("filed", 1, Duration::from_secs(5))
        .await;
    let id = list[0]["id"].as_str().unwrap();
    let path = dir.path().join(format!("{id}.log"));
    assert_eq!(list[0]["output"].as_str().unwrap(), path.to_str().unwrap());
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("to-a-file")
    );
}
