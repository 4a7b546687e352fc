//! rkron-notify owns notifications: the execution report e-mail, the webhook and the pre-webhook, with Dkron's Go-template payloads.
//!
//! ```text
//! execution starts ──► Notifier::execution_started ──► pre-webhook (pre-webhook-endpoint + payload)
//! final attempt    ──► Notifier::execution_done ──► job.notify_on allows it?
//!                                                    ├─► e-mail  (owner_email + notify_email)
//!                                                    ├─► webhook (webhook-endpoint + payload)
//!                                                    └─► webhook (job.notify_webhook)
//! ```
//!
//! Every payload is a Go `text/template` rendered over Dkron's data (`.Report`, `.JobName`,
//! `.ReportingNode`, `.StartTime`, `.FinishedAt`, `.Success`, `.NodeName`, `.Output`); a broken
//! template gives Dkron's `Failed to parse template: …` body, which is still sent.
//! Each send is bounded by [`SEND_TIMEOUT`]. A failed notification is logged and counted in the
//! returned [`NotifyReport`]; it never panics and never cancels anything (DESIGN §8).
//!
//! Differences from Dkron, on purpose:
//! - the pre-webhook is called once per execution start, not once per output chunk;
//! - `notify_on` decides whether a finished execution is notified at all;
//! - e-mail also goes to the job's `notify_email` addresses, and the job's `notify_webhook`
//!   receives the webhook too (with the global payload, or [`DefaultWebhookBody`] when no
//!   `webhook-payload` is set);
//! - a header value is split at its first colon only (`X-Url: http://a:b` arrives whole);
//! - a webhook answering with a non-2xx status counts as failed (Dkron ignores the answer).
//!
//! SMTP transport: the connection starts in plain text and is upgraded with STARTTLS when the
//! server offers it (certificates checked against the webpki roots), as Go's `smtp.SendMail`
//! does, so a local relay without TLS works. When credentials are set and the host is not a
//! loopback address, STARTTLS is required instead, because Go's `smtp.PlainAuth` also refuses
//! to send a password over an unencrypted connection to a remote host. Implicit TLS
//! (SMTPS, port 465) is not supported, as in Dkron.

mod mail;
mod template;
mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rkron_core::job::NotifyOn;
use rkron_core::{Execution, Job};

pub use webhook::DefaultWebhookBody;

use crate::mail::{Email, Mailer};
use crate::template::{Rendered, TemplateData};
use crate::webhook::{WebhookClient, WebhookPost};

/// How long one notification (one e-mail or one webhook call) may take before it counts as failed.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Dkron's default `mail-subject-prefix`, for the configuration to apply.
pub const DEFAULT_MAIL_SUBJECT_PREFIX: &str = "[Dkron]";

/// The node's notification settings, with Dkron's configuration keys.
#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    /// This node's name: `.ReportingNode`.
    pub node_name: String,
    /// `mail-host`: e-mail is sent only when it and `mail_port` are set.
    pub mail_host: String,
    /// `mail-port`.
    pub mail_port: u16,
    /// `mail-username`: PLAIN authentication is used only when it and the password are set.
    pub mail_username: String,
    /// `mail-password`.
    pub mail_password: String,
    /// `mail-from`: the From address.
    pub mail_from: String,
    /// `mail-subject-prefix` (Dkron's default is [`DEFAULT_MAIL_SUBJECT_PREFIX`]); no space is added.
    pub mail_subject_prefix: String,
    /// `mail-payload`: template of the e-mail body; empty sends the raw output.
    pub mail_payload: String,
    /// `webhook-endpoint`: URL POSTed when an execution is done.
    pub webhook_endpoint: String,
    /// `webhook-payload`: template of its body.
    pub webhook_payload: String,
    /// `webhook-headers`: `Name: value` strings; `Host:` sets the request's Host.
    pub webhook_headers: Vec<String>,
    /// `pre-webhook-endpoint`: URL POSTed when an execution starts.
    pub pre_webhook_endpoint: String,
    /// `pre-webhook-payload`: template of its body; both it and the endpoint must be set.
    pub pre_webhook_payload: String,
    /// `pre-webhook-headers`: `Name: value` strings.
    pub pre_webhook_headers: Vec<String>,
}

/// What one call of the [`Notifier`] sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyReport {
    /// Notifications delivered (including bodies that carry a template error).
    pub sent: u32,
    /// Notifications that could not be delivered.
    pub failed: u32,
    /// Why each failed notification failed, one entry per failure.
    pub errors: Vec<String>,
}

impl NotifyReport {
    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Skipped => {}
            Outcome::Sent => self.sent += 1,
            Outcome::Failed(error) => {
                self.failed += 1;
                self.errors.push(error);
            }
        }
    }
}

/// The result of one notification channel.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The channel is not configured for this job.
    Skipped,
    Sent,
    Failed(String),
}

/// Why a notification could not be delivered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotifyError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("invalid address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("invalid message: {0}")]
    Message(String),
    #[error("delivery failed: {0}")]
    Delivery(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("request failed: {0}")]
    Request(String),
    #[error("endpoint answered {0}")]
    Status(u16),
}

/// Sends a node's notifications; cheap to clone.
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: NotifySettings,
    mailer: Mailer,
    webhooks: WebhookClient,
}

impl Notifier {
    /// Creates a notifier; no connection is opened until something is sent.
    pub fn new(settings: NotifySettings) -> Self {
        let mailer = Mailer::new(&settings);
        Self {
            inner: Arc::new(Inner {
                settings,
                mailer,
                webhooks: WebhookClient::new(SEND_TIMEOUT),
            }),
        }
    }

    /// Whether a pre-webhook is configured (endpoint and payload both set).
    pub fn has_pre_webhook(&self) -> bool {
        let s = &self.inner.settings;
        !s.pre_webhook_endpoint.is_empty() && !s.pre_webhook_payload.is_empty()
    }

    /// Whether a finished execution of `job` could notify anyone: e-mail configured, a global
    /// webhook, or the job's own webhook. Lets the caller skip work when nothing would be sent.
    pub fn may_notify(&self, job: &Job) -> bool {
        let s = &self.inner.settings;
        let mail = !s.mail_host.is_empty() && s.mail_port != 0;
        let webhook = !s.webhook_endpoint.is_empty() && !s.webhook_payload.is_empty();
        mail || webhook || !job.notify_webhook.is_empty()
    }

    /// Calls the pre-webhook for an execution that just started (once per execution).
    ///
    /// `.Report` lists the execution alone, since the rest of its group is not known here.
    pub async fn execution_started(&self, job: &Job, execution: &Execution) -> NotifyReport {
        let settings = &self.inner.settings;
        let mut report = NotifyReport::default();
        if settings.pre_webhook_endpoint.is_empty() || settings.pre_webhook_payload.is_empty() {
            return report;
        }
        let data = TemplateData::new(
            &settings.node_name,
            execution,
            std::slice::from_ref(execution),
        );
        let body = render_logged(&settings.pre_webhook_payload, &data, job, "pre-webhook");
        let post = WebhookPost {
            endpoint: &settings.pre_webhook_endpoint,
            body,
            headers: &settings.pre_webhook_headers,
            content_type: None,
        };
        let outcome = self.post("pre-webhook", job, post).await;
        report.record(outcome);
        report
    }

    /// Sends the e-mail and webhooks of an execution after its final attempt, when the job's
    /// `notify_on` wants them.
    ///
    /// `group` is every execution of the same group (for `.Report`), and `previous_failed`
    /// tells whether the job's previous group failed (for `recovery`).
    pub async fn execution_done(
        &self,
        job: &Job,
        execution: &Execution,
        group: &[Execution],
        previous_failed: bool,
    ) -> NotifyReport {
        let mut report = NotifyReport::default();
        if !notify_on(job).wants(execution.success, previous_failed) {
            tracing::debug!(job = %job.name, notify_on = %job.notify_on, "notifications not wanted");
            return report;
        }
        let data = TemplateData::new(&self.inner.settings.node_name, execution, group);
        let (email, global_webhook, job_webhook) = tokio::join!(
            self.send_email(job, execution, &data),
            self.send_global_webhook(job, &data),
            self.send_job_webhook(job, execution, &data),
        );
        report.record(email);
        report.record(global_webhook);
        report.record(job_webhook);
        report
    }

    async fn send_email(&self, job: &Job, execution: &Execution, data: &TemplateData) -> Outcome {
        let settings = &self.inner.settings;
        let recipients = recipients(job);
        if !self.inner.mailer.is_configured() || recipients.is_empty() {
            return Outcome::Skipped;
        }
        let body = if settings.mail_payload.is_empty() {
            execution.output.clone()
        } else {
            render_logged(&settings.mail_payload, data, job, "email")
        };
        let status = if execution.success {
            "Success"
        } else {
            "Failed"
        };
        let email = Email {
            subject: format!(
                "{}{status} {} execution report",
                settings.mail_subject_prefix, execution.job_name
            ),
            to: recipients,
            body,
        };
        let to = email.to.join(", ");
        let result = bounded(self.inner.mailer.send(email)).await;
        outcome("email", &to, job, result)
    }

    async fn send_global_webhook(&self, job: &Job, data: &TemplateData) -> Outcome {
        let settings = &self.inner.settings;
        if settings.webhook_endpoint.is_empty() || settings.webhook_payload.is_empty() {
            return Outcome::Skipped;
        }
        let body = render_logged(&settings.webhook_payload, data, job, "webhook");
        let post = WebhookPost {
            endpoint: &settings.webhook_endpoint,
            body,
            headers: &settings.webhook_headers,
            content_type: None,
        };
        self.post("webhook", job, post).await
    }

    async fn send_job_webhook(
        &self,
        job: &Job,
        execution: &Execution,
        data: &TemplateData,
    ) -> Outcome {
        let settings = &self.inner.settings;
        let endpoint = job.notify_webhook.trim();
        if endpoint.is_empty() {
            return Outcome::Skipped;
        }
        let global_sent = !settings.webhook_payload.is_empty();
        if global_sent && endpoint == settings.webhook_endpoint {
            // The global webhook already posts this body to this endpoint.
            return Outcome::Skipped;
        }
        let (body, content_type) = if settings.webhook_payload.is_empty() {
            let default = DefaultWebhookBody::new(&settings.node_name, execution);
            (default.to_json(), Some("application/json"))
        } else {
            let body = render_logged(&settings.webhook_payload, data, job, "job webhook");
            (body, None)
        };
        let post = WebhookPost {
            endpoint,
            body,
            headers: &settings.webhook_headers,
            content_type,
        };
        self.post("job webhook", job, post).await
    }

    async fn post(&self, channel: &str, job: &Job, post: WebhookPost<'_>) -> Outcome {
        let endpoint = post.endpoint.to_owned();
        let result = bounded(self.inner.webhooks.post(post)).await;
        outcome(channel, &endpoint, job, result)
    }
}

/// The job's `notify_on`; an invalid value (which validation should have refused) means always.
fn notify_on(job: &Job) -> NotifyOn {
    NotifyOn::parse(&job.notify_on).unwrap_or_else(|error| {
        tracing::warn!(job = %job.name, %error, "invalid notify_on, notifying always");
        NotifyOn {
            success: true,
            failure: true,
            recovery: true,
        }
    })
}

/// The e-mail recipients of a job: `owner_email`, then each `notify_email` address, without
/// empties or duplicates.
fn recipients(job: &Job) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    let addresses = std::iter::once(job.owner_email.as_str()).chain(job.notify_email.split(','));
    for address in addresses.map(str::trim).filter(|a| !a.is_empty()) {
        if !all.iter().any(|known| known == address) {
            all.push(address.to_owned());
        }
    }
    all
}

/// Renders a payload; a broken template is logged and its error text becomes the body.
fn render_logged(template: &str, data: &TemplateData, job: &Job, channel: &str) -> String {
    let rendered = template::render(template, data);
    if let Rendered::Broken(body) = &rendered {
        tracing::warn!(job = %job.name, channel, error = %body, "notification template is broken");
    }
    rendered.into_body()
}

/// Bounds one send by [`SEND_TIMEOUT`].
async fn bounded(send: impl Future<Output = Result<(), NotifyError>>) -> Result<(), NotifyError> {
    tokio::time::timeout(SEND_TIMEOUT, send)
        .await
        .unwrap_or(Err(NotifyError::Timeout(SEND_TIMEOUT)))
}

/// Logs the result of one send and turns it into an [`Outcome`].
fn outcome(channel: &str, target: &str, job: &Job, result: Result<(), NotifyError>) -> Outcome {
    match result {
        Ok(()) => {
            tracing::debug!(job = %job.name, channel, target, "notification sent");
            Outcome::Sent
        }
        Err(error) => {
            tracing::warn!(job = %job.name, channel, target, %error, "notification failed");
            Outcome::Failed(format!("{channel} to {target}: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_owner_then_notify_email_without_duplicates() {
        let job = Job {
            owner_email: "owner@example.com".into(),
            notify_email: " ops@example.com, ,owner@example.com,dev@example.com ".into(),
            ..Job::default()
        };
        assert_eq!(
            recipients(&job),
            ["owner@example.com", "ops@example.com", "dev@example.com"]
        );
        let nobody = Job::default();
        assert!(recipients(&nobody).is_empty());
        let only_extra = Job {
            notify_email: "ops@example.com".into(),
            ..Job::default()
        };
        assert_eq!(recipients(&only_extra), ["ops@example.com"]);
    }

    #[test]
    fn invalid_notify_on_means_always() {
        let job = Job {
            notify_on: "sometimes".into(),
            ..Job::default()
        };
        let on = notify_on(&job);
        assert!(on.wants(true, false) && on.wants(false, false));
    }
}
