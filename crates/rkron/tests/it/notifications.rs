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

/// A real SMTP server: Python's standard-library `smtpd` (Python 3.11), writing each received
/// message and its recipients to `dir`.
/// It listens on a port of its own choosing and writes it to `<dir>/port`.
fn python_smtp_sink(dir: &std::path::Path) -> std::process::Child {
    let script = r#"
import os, sys, warnings
warnings.simplefilter("ignore")
out = sys.argv[1]
def ready(port):
    with open(os.path.join(out, "port.tmp"), "w") as f:
        f.write(str(port))
    os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
def save(rcpttos, data):
    n = len([f for f in os.listdir(out) if f.endswith(".eml")])
    with open(os.path.join(out, "%d.rcpt" % n), "w") as f:
        f.write(",".join(rcpttos))
    with open(os.path.join(out, "%d.eml" % n), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
try:
    import asyncore, smtpd  # Python <= 3.11 standard library
    class Sink(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kw):
            save(rcpttos, data)
    sink = Sink(("127.0.0.1", 0), None, decode_data=False)
    ready(sink.socket.getsockname()[1])
    asyncore.loop()
except ImportError:  # Python >= 3.12: aiosmtpd from PyPI (scripts/test installs it)
    import time
    from aiosmtpd.controller import Controller
    class Handler:
        async def handle_DATA(self, server, session, envelope):
            save(envelope.rcpt_tos, envelope.original_content)
            return "250 OK"
    import socket
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    Controller(Handler(), hostname="127.0.0.1", port=port).start()
    ready(port)
    while True:
        time.sleep(3600)
"#;
    std::process::Command::new("python3")
        .args(["-c", script, dir.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("python3 is needed for the SMTP test (scripts/test checks for it)")
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_with_subject_recipients_and_rendered_body() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = python_smtp_sink(dir.path());
    let port_file = dir.path().join("port");
    let pf = port_file.clone();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let pf = pf.clone();
            async move { pf.exists() }
        })
        .await,
        "the SMTP sink did not start"
    );
    let port: u16 = std::fs::read_to_string(&port_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let server = Server::start(&[
        "--mail-host",
        "127.0.0.1",
        "--mail-port",
        &port.to_string(),
        "--mail-from",
        "rkron@example.com",
        "--mail-subject-prefix",
        "[Test]",
        "--mail-payload",
        "Job {{.JobName}} finished with status {{.Success}} on {{.NodeName}}: {{.Output}}",
    ])
    .await;
    let mut job = shell_job("mailed", "echo test-output");
    job["owner_email"] = json!("cron@job.com");
    job["notify_email"] = json!("ops@example.com");
    server.create_job_ok(&job).await;
    assert_eq!(server.http_post("/v1/jobs/mailed/run").await.status, 200);
    let d = dir.path().to_owned();
    let arrived = wait_until(Duration::from_secs(10), || {
        let d = d.clone();
        async move { d.join("0.eml").exists() }
    })
    .await;
    let _ = sink.kill();
    let _ = sink.wait();
    assert!(arrived, "no e-mail arrived\n{}", server.log_text());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let message = std::fs::read_to_string(dir.path().join("0.eml")).unwrap();
    let recipients = std::fs::read_to_string(dir.path().join("0.rcpt")).unwrap();
    assert!(
        recipients.contains("cron@job.com") && recipients.contains("ops@example.com"),
        "{recipients}"
    );
    assert!(message.contains("From: rkron@example.com"), "{message}");
    assert!(
        message.contains("Subject: [Test]Success mailed execution report"),
        "{message}"
    );
    assert!(
        message.contains("Job mailed finished with status true on test-node: test-output"),
        "{message}"
    );
}

#[tokio::test]
async fn prometheus_metrics_count_executions_with_dkron_names() {
    let off = Server::start(&[]).await;
    assert_eq!(
        off.http_get("/metrics").await.status,
        404,
        "off unless enable-prometheus"
    );
    let server = Server::start(&["--enable-prometheus"]).await;
    server.create_job_ok(&shell_job("counted", "true")).await;
    server.create_job_ok(&shell_job("broken", "exit 1")).await;
    assert_eq!(
        server
            .http_post("/v1/jobs/counted/run?wait=true")
            .await
            .status,
        200
    );
    assert_eq!(
        server
            .http_post("/v1/jobs/broken/run?wait=true")
            .await
            .status,
        200
    );
    let text = server.http_get("/metrics").await.text;
    assert!(
        text.contains(r#"dkron_job_executions_succeeded_total{job_name="counted"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"dkron_job_executions_failed_total{job_name="broken"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn syslog_fluent_and_log_processors_deliver_through_the_binary() {
    let server = Server::start(&[]).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let syslog_port = udp.local_addr().unwrap().port();
    let fluent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fluent_port = fluent.local_addr().unwrap().port();
    let mut job = shell_job("processed", "echo processed-output");
    job["processors"] = json!({
        "syslog": {"address": format!("udp://127.0.0.1:{syslog_port}"), "forward": "true"},
        "fluent": {"host": "127.0.0.1", "port": fluent_port.to_string(), "tag": "rkron.test", "forward": "true"},
        "log": {"forward": "true"}
    });
    server.create_job_ok(&job).await;
    let fluent_task = tokio::spawn(async move {
        let (mut conn, _) = fluent.accept().await.unwrap();
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut conn, &mut bytes)
            .await
            .unwrap();
        bytes
    });
    assert_eq!(
        server
            .http_post("/v1/jobs/processed/run?wait=true")
            .await
            .status,
        200
    );

    let mut datagram = vec![0u8; 65_536];
    let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut datagram))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&datagram[..n]).to_string();
    assert!(
        text.starts_with("<78>"),
        "facility CRON, severity INFO: {text}"
    );
    assert!(
        text.contains("dkron[") && text.contains("processed-output"),
        "{text}"
    );

    let bytes = tokio::time::timeout(Duration::from_secs(5), fluent_task)
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).to_string();
    assert!(
        text.contains("rkron.test")
            && text.contains("processed")
            && text.contains("processed-output"),
        "{text}"
    );

    // forward=true everywhere: the stored output is the original one.
    let list = server
        .wait_finished_executions("processed", 1, Duration::from_secs(2))
        .await;
    assert_eq!(
        list[0]["output"].as_str().unwrap().trim(),
        "processed-output"
    );
    assert!(
        server
            .log_text()
            .contains("----- BEGIN OUTPUT job=processed"),
        "the log processor wrote to the server log"
    );
}
