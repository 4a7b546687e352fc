//! Webhooks and pre-webhooks: POSTing a rendered payload with the configured headers.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use rkron_core::Execution;
use serde::Serialize;

use crate::NotifyError;

/// The JSON body POSTed to a job's `notify_webhook` when no `webhook-payload` is configured,
/// sent with `Content-Type: application/json` unless a configured header says otherwise.
///
/// Times are RFC 3339 in UTC; `end` is `null` while the execution runs.
///
/// ```json
/// {"job":"job1","success":true,"node":"node-a","reporting_node":"server-1",
///  "start":"2024-12-19T09:09:10Z","end":"2024-12-19T09:09:11Z","group":1734599350000000000,
///  "attempt":1,"output":"hello\n"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefaultWebhookBody {
    /// The job's name.
    pub job: String,
    /// Whether the execution succeeded.
    pub success: bool,
    /// The node that ran the execution.
    pub node: String,
    /// The node sending the notification.
    pub reporting_node: String,
    /// When the execution started.
    pub start: String,
    /// When it finished.
    pub end: Option<String>,
    /// The execution group (Unix nanoseconds of the fire).
    pub group: i64,
    /// The attempt number, 1 for the first try.
    pub attempt: u32,
    /// The execution's output (its tail).
    pub output: String,
}

impl DefaultWebhookBody {
    /// Describes `execution`, reported by `reporting_node`.
    pub fn new(reporting_node: &str, execution: &Execution) -> Self {
        let rfc3339 = |t: chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        };
        Self {
            job: execution.job_name.clone(),
            success: execution.success,
            node: execution.node_name.clone(),
            reporting_node: reporting_node.to_owned(),
            start: rfc3339(execution.started_at),
            end: execution.finished_at.map(rfc3339),
            group: execution.group,
            attempt: execution.attempt,
            output: execution.output.clone(),
        }
    }

    /// Returns the body as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings and numbers serializes")
    }
}

/// One POST to make.
#[derive(Debug, Clone)]
pub(crate) struct WebhookPost<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) body: String,
    /// `Name: value` strings.
    pub(crate) headers: &'a [String],
    /// A Content-Type to send when `headers` name none.
    pub(crate) content_type: Option<&'static str>,
}

/// Posts webhooks with one shared HTTP client.
#[derive(Debug)]
pub(crate) struct WebhookClient {
    /// The client, or why it could not be built (then every post fails with that reason).
    client: Result<reqwest::Client, String>,
}

impl WebhookClient {
    pub(crate) fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| error.to_string());
        if let Err(error) = &client {
            tracing::warn!(%error, "cannot build the webhook http client; webhooks will fail");
        }
        Self { client }
    }

    /// POSTs `post.body` to `post.endpoint`; a connection failure or a non-2xx answer fails.
    pub(crate) async fn post(&self, post: WebhookPost<'_>) -> Result<(), NotifyError> {
        let client = self
            .client
            .as_ref()
            .map_err(|error| NotifyError::Request(error.clone()))?;
        let mut headers = parse_headers(post.headers);
        if let Some(content_type) = post.content_type {
            headers
                .entry(CONTENT_TYPE)
                .or_insert(HeaderValue::from_static(content_type));
        }
        let url = reqwest::Url::parse(post.endpoint)
            .map_err(|error| NotifyError::InvalidRequest(format!("endpoint: {error}")))?;
        let response = client
            .post(url)
            .headers(headers)
            .body(post.body)
            .send()
            .await
            .map_err(|error| NotifyError::Request(error_chain(&error)))?;
        let status = response.status();
        tracing::debug!(endpoint = post.endpoint, %status, "webhook answered");
        if status.is_success() {
            Ok(())
        } else {
            Err(NotifyError::Status(status.as_u16()))
        }
    }
}

/// Parses `Name: value` strings into headers, splitting at the first colon only (Dkron cut the
/// value at its second colon). A `Host` header sets the request's Host. Later headers of the same
/// name replace earlier ones, as in Dkron; empty strings are ignored and malformed ones logged.
pub(crate) fn parse_headers(lines: &[String]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines.iter().filter(|line| !line.trim().is_empty()) {
        match parse_header(line) {
            Ok((name, value)) => {
                headers.insert(name, value);
            }
            Err(reason) => tracing::warn!(header = %line, reason, "ignoring webhook header"),
        }
    }
    headers
}

fn parse_header(line: &str) -> Result<(HeaderName, HeaderValue), &'static str> {
    let (name, value) = line.split_once(':').ok_or("no colon")?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| "invalid name")?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| "invalid value")?;
    Ok((name, value))
}

/// Returns an error with its sources, so "error sending request" says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn headers_split_at_the_first_colon_only() {
        let lines = [
            "Content-Type: application/x-www-form-urlencoded".to_owned(),
            "X-Url: http://a:b".to_owned(),
            "Host: dkron.io".to_owned(),
            String::new(),
            "no colon here".to_owned(),
            "X-Url: http://c:d/e".to_owned(),
        ];
        let headers = parse_headers(&lines);
        assert_eq!(headers.len(), 3);
        assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
        assert_eq!(headers["x-url"], "http://c:d/e");
        assert_eq!(headers["host"], "dkron.io");
    }

    #[test]
    fn default_body_is_json_with_the_execution() {
        let started = chrono::Utc.timestamp_opt(1_734_599_350, 0).unwrap();
        let execution = Execution {
            job_name: "job1".into(),
            started_at: started,
            finished_at: Some(started + chrono::TimeDelta::milliseconds(1500)),
            success: true,
            output: "hello\n".into(),
            node_name: "node-a".into(),
            group: 1_734_599_350_000_000_000,
            attempt: 1,
            scheduled_at: None,
        };
        let body = DefaultWebhookBody::new("server-1", &execution).to_json();
        assert_eq!(
            body,
            r#"{"job":"job1","success":true,"node":"node-a","reporting_node":"server-1","start":"2024-12-19T09:09:10Z","end":"2024-12-19T09:09:11.500Z","group":1734599350000000000,"attempt":1,"output":"hello\n"}"#
        );
    }
}
