//! The execution report e-mail, delivered to a real SMTP receiver.

use rkron_notify::{Notifier, NotifyReport, NotifySettings};

use crate::fixtures::{closed_port, execution, job};
use crate::smtp_sink::SmtpSink;

const PAYLOAD: &str =
    "Job {{.JobName}} finished with status {{.Success}} on {{.NodeName}}: {{.Output}}";

fn mail_settings(port: u16) -> NotifySettings {
    NotifySettings {
        node_name: "server-1".into(),
        mail_host: "127.0.0.1".into(),
        mail_port: port,
        mail_from: "cron@example.com".into(),
        mail_subject_prefix: "[Test]".into(),
        mail_payload: PAYLOAD.into(),
        ..NotifySettings::default()
    }
}

fn sent_one() -> NotifyReport {
    NotifyReport {
        sent: 1,
        ..NotifyReport::default()
    }
}

#[tokio::test]
async fn email_reaches_owner_and_notify_email_with_rendered_body() {
    let mut sink = SmtpSink::start().await;
    let notifier = Notifier::new(mail_settings(sink.port));
    let mut job = job("job1");
    job.owner_email = "owner@example.com".into();
    job.notify_email = "ops@example.com, dev@example.com".into();
    let done = execution(true);

    let report = notifier
        .execution_done(&job, &done, std::slice::from_ref(&done), false)
        .await;

    assert_eq!(report, sent_one());
    let message = sink.next().await;
    assert_eq!(message.mail_from, "cron@example.com");
    assert_eq!(
        message.rcpt_to,
        ["owner@example.com", "ops@example.com", "dev@example.com"]
    );
    assert_eq!(message.header("From").as_deref(), Some("cron@example.com"));
    assert_eq!(
        message.header("To").as_deref(),
        Some("owner@example.com, ops@example.com, dev@example.com")
    );
    assert_eq!(
        message.header("Subject").as_deref(),
        Some("[Test]Success job1 execution report")
    );
    assert!(
        message
            .header("Content-Type")
            .is_some_and(|v| v.starts_with("text/plain")),
        "{message:?}"
    );
    assert_eq!(
        message.body().trim_end(),
        "Job job1 finished with status true on node-a: hello"
    );
    assert_eq!(message.auth, None, "no credentials, no AUTH");
}

#[tokio::test]
async fn failed_execution_is_reported_as_failed_in_the_subject() {
    let mut sink = SmtpSink::start().await;
    let notifier = Notifier::new(mail_settings(sink.port));
    let mut job = job("job1");
    job.owner_email = "owner@example.com".into();

    let report = notifier
        .execution_done(&job, &execution(false), &[], false)
        .await;

    assert_eq!(report, sent_one());
    let message = sink.next().await;
    assert_eq!(
        message.header("Subject").as_deref(),
        Some("[Test]Failed job1 execution report")
    );
    assert_eq!(
        message.body().trim_end(),
        "Job job1 finished with status false on node-a: hello"
    );
}

#[tokio::test]
async fn email_uses_plain_auth_only_with_username_and_password() {
    let mut sink = SmtpSink::start().await;
    let mut job = job("job1");
    job.owner_email = "owner@example.com".into();

    let with_both = Notifier::new(NotifySettings {
        mail_username: "user".into(),
        mail_password: "secret".into(),
        ..mail_settings(sink.port)
    });
    assert_eq!(
        with_both
            .execution_done(&job, &execution(true), &[], false)
            .await,
        sent_one()
    );
    assert_eq!(sink.next().await.auth.as_deref(), Some("\0user\0secret"));

    let username_only = Notifier::new(NotifySettings {
        mail_username: "user".into(),
        ..mail_settings(sink.port)
    });
    assert_eq!(
        username_only
            .execution_done(&job, &execution(true), &[], false)
            .await,
        sent_one()
    );
    assert_eq!(sink.next().await.auth, None);
}

#[tokio::test]
async fn body_is_the_raw_output_without_mail_payload() {
    let mut sink = SmtpSink::start().await;
    let notifier = Notifier::new(NotifySettings {
        mail_payload: String::new(),
        ..mail_settings(sink.port)
    });
    let mut job = job("job1");
    job.owner_email = "owner@example.com".into();
    let mut done = execution(true);
    done.output = "line one\n.line two starts with a dot\n".into();

    let report = notifier.execution_done(&job, &done, &[], false).await;

    assert_eq!(report, sent_one());
    let message = sink.next().await;
    assert_eq!(
        message.body().trim_end(),
        "line one\r\n.line two starts with a dot"
    );
}

#[tokio::test]
async fn no_email_without_mail_host_or_port() {
    let mut sink = SmtpSink::start().await;
    let mut job = job("job1");
    job.owner_email = "owner@example.com".into();
    for settings in [
        NotifySettings {
            mail_host: String::new(),
            ..mail_settings(sink.port)
        },
        mail_settings(0),
    ] {
        let report = Notifier::new(settings)
            .execution_done(&job, &execution(true), &[], false)
            .await;
        assert_eq!(report, NotifyReport::default());
    }
    assert!(sink.try_next().is_none());
}

#[tokio::test]
async fn no_email_without_recipients() {
    let mut sink = SmtpSink::start().await;
    let notifier = Notifier::new(mail_settings(sink.port));

    let report = notifier
        .execution_done(&job("job1"), &execution(true), &[], false)
        .await;

    assert_eq!(report, NotifyReport::default());
    assert!(sink.try_next().is_none());
}

#[tokio::test]
async fn notify_email_alone_is_enough() {
    let mut sink = SmtpSink::start().await;
    let notifier = Notifier::new(mail_settings(sink.port));
    let mut job = job("job1");
    job.notify_email = "ops@example.com".into();

    let report = notifier
        .execution_done(&job, &execution(true), &[], false)
        .await;

    assert_eq!(report, sent_one());
    assert_eq!(sink.next().await.rcpt_to, ["ops@example.com"]);
}

#[tokio::test]
async fn notify_on_failure_suppresses_a_success_email() {
    let mut sink = SmtpSink::start().await;
    let notifier = Notifier::new(mail_settings(sink.port));
    let mut job = job("job1");
    job.owner_email = "owner@example.com".into();
    job.notify_on = "failure".into();

    let report = notifier
        .execution_done(&job, &execution(true), &[], false)
        .await;
    assert_eq!(report, NotifyReport::default());
    assert!(sink.try_next().is_none());

    let report = notifier
        .execution_done(&job, &execution(false), &[], false)
        .await;
    assert_eq!(report, sent_one());
    assert_eq!(
        sink.next().await.header("Subject").as_deref(),
        Some("[Test]Failed job1 execution report")
    );
}

#[tokio::test]
async fn several_emails_reuse_the_notifier() {
    let mut sink = SmtpSink::start().await;
    let notifier = Notifier::new(mail_settings(sink.port));
    let mut job = job("job1");
    job.owner_email = "owner@example.com".into();

    for _ in 0..3 {
        let report = notifier
            .execution_done(&job, &execution(true), &[], false)
            .await;
        assert_eq!(report, sent_one());
        sink.next().await;
    }
}

#[tokio::test]
async fn unreachable_smtp_server_is_reported_failed() {
    let notifier = Notifier::new(mail_settings(closed_port().await));
    let mut job = job("job1");
    job.owner_email = "owner@example.com".into();

    let report = notifier
        .execution_done(&job, &execution(true), &[], false)
        .await;

    assert_eq!((report.sent, report.failed), (0, 1));
    assert!(
        report.errors[0].starts_with("email to owner@example.com: "),
        "{report:?}"
    );
}

#[tokio::test]
async fn invalid_recipient_is_reported_failed() {
    let mut sink = SmtpSink::start().await;
    let notifier = Notifier::new(mail_settings(sink.port));
    let mut job = job("job1");
    job.owner_email = "not an address".into();

    let report = notifier
        .execution_done(&job, &execution(true), &[], false)
        .await;

    assert_eq!((report.sent, report.failed), (0, 1));
    assert!(report.errors[0].contains("invalid address"), "{report:?}");
    assert!(sink.try_next().is_none());
}
