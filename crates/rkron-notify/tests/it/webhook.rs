//! Webhooks and pre-webhooks, posted to a real local HTTP server.

use rkron_notify::{DefaultWebhookBody, Notifier, NotifyReport, NotifySettings};

use crate::fixtures::{closed_port, execution, job, running_execution};
use crate::smtp_sink::SmtpSink;
use crate::webhook_server::HookServer;

const SLACK_PAYLOAD: &str = r#"payload={"text": "{{.Report}}"}"#;
const FORM: &str = "Content-Type: application/x-www-form-urlencoded";

fn webhook_settings(endpoint: String, payload: &str, headers: &[&str]) -> NotifySettings {
    NotifySettings {
        node_name: "server-1".into(),
        webhook_endpoint: endpoint,
        webhook_payload: payload.into(),
        webhook_headers: headers.iter().map(|h| (*h).to_owned()).collect(),
        ..NotifySettings::default()
    }
}

fn sent(count: u32) -> NotifyReport {
    NotifyReport {
        sent: count,
        ..NotifyReport::default()
    }
}

#[tokio::test]
async fn webhook_posts_the_rendered_report_as_a_form() {
    let mut server = HookServer::start().await;
    let notifier = Notifier::new(webhook_settings(
        server.url("/hook"),
        SLACK_PAYLOAD,
        &[FORM],
    ));
    let done = execution(true);
    let mut other = execution(false);
    other.node_name = "node-b".into();

    let report = notifier
        .execution_done(&job("job1"), &done, &[done.clone(), other], false)
        .await;

    assert_eq!(report, sent(1));
    let hooks = server.received();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.path, "/hook");
    assert_eq!(
        hook.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        hook.body,
        "payload={\"text\": \"Executed: job1\n\
         Reporting node: server-1\n\
         Start time: 2024-12-19 09:09:10 +0000 UTC\n\
         End time: 2024-12-19 09:09:11.5 +0000 UTC\n\
         Success: true\n\
         Node: node-a\n\
         Output: hello\n\
         Execution group: 1734599350000000000\n\
         \t[Node]: node-a [Start]: 2024-12-19 09:09:10 +0000 UTC [End]: 2024-12-19 09:09:11.5 +0000 UTC [Success]: true\n\
         \t[Node]: node-b [Start]: 2024-12-19 09:09:10 +0000 UTC [End]: 2024-12-19 09:09:11.5 +0000 UTC [Success]: false\n\
         \"}"
    );
}

#[tokio::test]
async fn every_template_variable_renders_in_a_webhook() {
    let mut server = HookServer::start().await;
    let payload = "{{.JobName}}|{{.ReportingNode}}|{{.StartTime}}|{{.FinishedAt}}|{{.Success}}|\
                   {{.NodeName}}|{{.Output}}|{{if eq .Success \"false\"}}alert{{end}}";
    let notifier = Notifier::new(webhook_settings(server.url("/hook"), payload, &[]));

    let report = notifier
        .execution_done(&job("job1"), &execution(false), &[], false)
        .await;

    assert_eq!(report, sent(1));
    assert_eq!(
        server.received()[0].body,
        "job1|server-1|2024-12-19 09:09:10 +0000 UTC|2024-12-19 09:09:11.5 +0000 UTC|false|\
         node-a|hello|alert"
    );
}

#[tokio::test]
async fn webhook_sends_no_default_content_type() {
    let mut server = HookServer::start().await;
    let notifier = Notifier::new(webhook_settings(server.url("/hook"), "plain", &[]));

    notifier
        .execution_done(&job("job1"), &execution(true), &[], false)
        .await;

    let hooks = server.received();
    assert_eq!(hooks[0].header("content-type"), None);
    assert_eq!(hooks[0].body, "plain");
}

#[tokio::test]
async fn host_header_sets_the_request_host() {
    let mut server = HookServer::start().await;
    let notifier = Notifier::new(webhook_settings(
        server.url("/hook"),
        "x",
        &["Host: dkron.io"],
    ));

    let report = notifier
        .execution_done(&job("job1"), &execution(true), &[], false)
        .await;

    assert_eq!(report, sent(1));
    let hooks = server.received();
    assert_eq!(hooks[0].header("host"), Some("dkron.io"));
    assert_eq!(hooks[0].headers.get_all("host").iter().count(), 1);
}

#[tokio::test]
async fn header_value_with_a_colon_arrives_whole() {
    let mut server = HookServer::start().await;
    let notifier = Notifier::new(webhook_settings(
        server.url("/hook"),
        "x",
        &["X-Url: http://a:b", "X-Token:abc"],
    ));

    notifier
        .execution_done(&job("job1"), &execution(true), &[], false)
        .await;

    let hooks = server.received();
    assert_eq!(hooks[0].header("x-url"), Some("http://a:b"));
    assert_eq!(hooks[0].header("x-token"), Some("abc"));
}

#[tokio::test]
async fn job_notify_webhook_also_receives_the_global_payload() {
    let mut server = HookServer::start().await;
    let notifier = Notifier::new(webhook_settings(
        server.url("/global"),
        "{{.JobName}} {{.Success}}",
        &[FORM],
    ));
    let mut job = job("job1");
    job.notify_webhook = server.url("/job");

    let report = notifier
        .execution_done(&job, &execution(true), &[], false)
        .await;

    assert_eq!(report, sent(2));
    let mut hooks = server.received();
    hooks.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&str> = hooks.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["/global", "/job"]);
    for hook in &hooks {
        assert_eq!(hook.body, "job1 true");
        assert_eq!(
            hook.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }
}

#[tokio::test]
async fn job_notify_webhook_without_global_payload_gets_default_json() {
    let mut server = HookServer::start().await;
    let notifier = Notifier::new(NotifySettings {
        node_name: "server-1".into(),
        ..NotifySettings::default()
    });
    let mut job = job("job1");
    job.notify_webhook = server.url("/job");
    let done = execution(false);

    let report = notifier.execution_done(&job, &done, &[], false).await;

    assert_eq!(report, sent(1));
    let hooks = server.received();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].header("content-type"), Some("application/json"));
    assert_eq!(
        hooks[0].body,
        DefaultWebhookBody::new("server-1", &done).to_json()
    );
    assert_eq!(
        hooks[0].body,
        r#"{"job":"job1","success":false,"node":"node-a","reporting_node":"server-1","start":"2024-12-19T09:09:10Z","end":"2024-12-19T09:09:11.500Z","group":1734599350000000000,"attempt":1,"output":"hello"}"#
    );
}

#[tokio::test]
async fn job_notify_webhook_equal_to_the_global_one_is_posted_once() {
    let mut server = HookServer::start().await;
    let notifier = Notifier::new(webhook_settings(server.url("/hook"), "x", &[]));
    let mut job = job("job1");
    job.notify_webhook = server.url("/hook");

    let report = notifier
        .execution_done(&job, &execution(true), &[], false)
        .await;

    assert_eq!(report, sent(1));
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn global_webhook_needs_endpoint_and_payload() {
    let mut server = HookServer::start().await;
    for settings in [
        webhook_settings(server.url("/hook"), "", &[]),
        webhook_settings(String::new(), "x", &[]),
    ] {
        let report = Notifier::new(settings)
            .execution_done(&job("job1"), &execution(true), &[], false)
            .await;
        assert_eq!(report, NotifyReport::default());
    }
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn pre_webhook_is_called_once_per_execution_start() {
    let mut server = HookServer::start().await;
    let notifier = Notifier::new(NotifySettings {
        node_name: "server-1".into(),
        pre_webhook_endpoint: server.url("/pre"),
        pre_webhook_payload: "{{.JobName}} started on {{.NodeName}} at {{.StartTime}}, \
                              finished at {{.FinishedAt}}"
            .into(),
        pre_webhook_headers: vec!["Host: dkron.io".into(), "X-Url: http://a:b".into()],
        ..NotifySettings::default()
    });
    let job = job("job1");

    let report = notifier.execution_started(&job, &running_execution()).await;
    assert_eq!(report, sent(1));
    let hooks = server.received();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].path, "/pre");
    assert_eq!(
        hooks[0].body,
        "job1 started on node-a at 2024-12-19 09:09:10 +0000 UTC, \
         finished at 0001-01-01 00:00:00 +0000 UTC"
    );
    assert_eq!(hooks[0].header("host"), Some("dkron.io"));
    assert_eq!(hooks[0].header("x-url"), Some("http://a:b"));

    // The end of the execution does not call the pre-webhook.
    let report = notifier
        .execution_done(&job, &execution(true), &[], false)
        .await;
    assert_eq!(report, NotifyReport::default());
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn pre_webhook_needs_endpoint_and_payload() {
    let mut server = HookServer::start().await;
    let notifier = Notifier::new(NotifySettings {
        pre_webhook_endpoint: server.url("/pre"),
        ..NotifySettings::default()
    });

    let report = notifier
        .execution_started(&job("job1"), &running_execution())
        .await;

    assert_eq!(report, NotifyReport::default());
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn closed_port_is_reported_failed_without_stopping_other_channels() {
    let mut server = HookServer::start().await;
    let endpoint = format!("http://127.0.0.1:{}/hook", closed_port().await);
    let notifier = Notifier::new(webhook_settings(endpoint.clone(), "x", &[]));
    let mut job = job("job1");
    job.notify_webhook = server.url("/job");

    let report = notifier
        .execution_done(&job, &execution(true), &[], false)
        .await;

    assert_eq!((report.sent, report.failed), (1, 1), "{report:?}");
    assert!(
        report.errors[0].starts_with(&format!("webhook to {endpoint}: request failed")),
        "{report:?}"
    );
    assert_eq!(server.received().len(), 1);

    let pre = Notifier::new(NotifySettings {
        pre_webhook_endpoint: endpoint,
        pre_webhook_payload: "x".into(),
        ..NotifySettings::default()
    });
    let report = pre.execution_started(&job, &running_execution()).await;
    assert_eq!((report.sent, report.failed), (0, 1), "{report:?}");
}

#[tokio::test]
async fn non_2xx_answer_is_reported_failed() {
    let mut server = HookServer::start().await;
    let notifier = Notifier::new(webhook_settings(server.url("/fail"), "x", &[]));

    let report = notifier
        .execution_done(&job("job1"), &execution(true), &[], false)
        .await;

    assert_eq!((report.sent, report.failed), (0, 1));
    assert!(
        report.errors[0].ends_with("endpoint answered 500"),
        "{report:?}"
    );
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn invalid_endpoint_is_reported_failed() {
    let notifier = Notifier::new(webhook_settings("not a url".into(), "x", &[]));

    let report = notifier
        .execution_done(&job("job1"), &execution(true), &[], false)
        .await;

    assert_eq!((report.sent, report.failed), (0, 1));
    assert!(report.errors[0].contains("invalid request"), "{report:?}");
}

#[tokio::test]
async fn broken_templates_send_dkron_error_text() {
    let mut server = HookServer::start().await;
    let notifier = Notifier::new(webhook_settings(server.url("/hook"), "{{.JobName", &[]));

    let report = notifier
        .execution_done(&job("job1"), &execution(true), &[], false)
        .await;

    assert_eq!(report, sent(1), "the error text is still sent");
    let body = &server.received()[0].body;
    assert!(body.starts_with("Failed to parse template: "), "{body}");

    let notifier = Notifier::new(webhook_settings(
        server.url("/hook"),
        "{{template \"missing\"}}",
        &[],
    ));
    notifier
        .execution_done(&job("job1"), &execution(true), &[], false)
        .await;
    let body = &server.received()[0].body;
    assert!(body.starts_with("Failed to execute template:"), "{body}");
}

#[tokio::test]
async fn email_and_webhooks_all_go_out_for_one_execution() {
    let mut server = HookServer::start().await;
    let mut sink = SmtpSink::start().await;
    let notifier = Notifier::new(NotifySettings {
        mail_host: "127.0.0.1".into(),
        mail_port: sink.port,
        mail_from: "cron@example.com".into(),
        mail_subject_prefix: "[Dkron]".into(),
        ..webhook_settings(server.url("/global"), "{{.JobName}}", &[])
    });
    let mut job = job("job1");
    job.owner_email = "owner@example.com".into();
    job.notify_webhook = server.url("/job");

    let report = notifier
        .execution_done(&job, &execution(true), &[], false)
        .await;

    assert_eq!(report, sent(3));
    assert_eq!(server.received().len(), 2);
    let message = sink.next().await;
    assert_eq!(
        message.header("Subject").as_deref(),
        Some("[Dkron]Success job1 execution report")
    );
    assert_eq!(
        message.body().trim_end(),
        "hello",
        "raw output without mail-payload"
    );
}
