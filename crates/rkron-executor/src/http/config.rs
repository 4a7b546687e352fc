//! The `http` executor's configuration keys.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};

/// The request timeout when the `timeout` key is absent or invalid.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Validated configuration of one HTTP execution.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The request method.
    pub method: Method,
    /// The request URL.
    pub url: String,
    /// The request headers, in configuration order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The request body; empty means no body.
    pub body: String,
    /// Accepted status codes; empty accepts any status.
    pub expect_codes: Vec<String>,
    /// A pattern the response body must contain a match of.
    pub expect_body: Option<Regex>,
    /// Whether the configuration is echoed into the output and the exchange logged.
    pub debug: bool,
    /// The settings that select the HTTP client.
    pub client: ClientSettings,
}

/// The settings an HTTP client is built from; the client cache is keyed by them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientSettings {
    /// The whole-request timeout; `None` (a configured `0`) means none.
    pub timeout: Option<Duration>,
    /// Whether server certificates are accepted without verification.
    pub tls_no_verify_peer: bool,
    /// PEM file of the client certificate.
    pub tls_certificate_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub tls_certificate_key_file: Option<PathBuf>,
    /// PEM file of the only root certificates trusted.
    pub tls_root_cas_file: Option<PathBuf>,
}

impl HttpConfig {
    /// Parses a job's `executor_config`.
    ///
    /// Returns the configuration and the warning lines for the output (unparsable `headers` or
    /// `timeout`), or the error text of the execution.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<(Self, Vec<String>), String> {
        let value = |key: &str| config.get(key).map(String::as_str).unwrap_or_default();
        let non_empty_path = |key: &str| {
            Some(value(key))
                .filter(|text| !text.is_empty())
                .map(PathBuf::from)
        };
        let mut warnings = Vec::new();

        let method_text = value("method");
        if method_text.is_empty() {
            return Err("method is empty".to_owned());
        }
        let method = Method::from_bytes(method_text.as_bytes())
            .map_err(|_| format!("invalid method {method_text:?}"))?;
        let url = value("url");
        if url.is_empty() {
            return Err("url is empty".to_owned());
        }
        let headers = parse_headers(value("headers"), &mut warnings);
        let timeout = match value("timeout").trim() {
            "" => Some(DEFAULT_TIMEOUT),
            text => match text.parse::<u64>() {
                Ok(0) => None,
                Ok(seconds) => Some(Duration::from_secs(seconds)),
                Err(_) => {
                    warnings.push(format!(
                        "Warning: parsing timeout {text:?} failed, using the default of {} seconds",
                        DEFAULT_TIMEOUT.as_secs()
                    ));
                    Some(DEFAULT_TIMEOUT)
                }
            },
        };
        let expect_codes = value("expectCode")
            .split(',')
            .map(str::trim)
            .filter(|code| !code.is_empty())
            .map(str::to_owned)
            .collect();
        let expect_body = match value("expectBody") {
            "" => None,
            pattern => Some(
                Regex::new(pattern)
                    .map_err(|error| format!("invalid expectBody regular expression: {error}"))?,
            ),
        };
        Ok((
            Self {
                method,
                url: url.to_owned(),
                headers,
                body: value("body").to_owned(),
                expect_codes,
                expect_body,
                debug: !value("debug").is_empty(),
                client: ClientSettings {
                    timeout,
                    tls_no_verify_peer: parse_go_bool(value("tlsNoVerifyPeer")),
                    tls_certificate_file: non_empty_path("tlsCertificateFile"),
                    tls_certificate_key_file: non_empty_path("tlsCertificateKeyFile"),
                    tls_root_cas_file: non_empty_path("tlsRootCAsFile"),
                },
            },
            warnings,
        ))
    }
}

/// Returns Go's `strconv.ParseBool` value of `text`, with invalid text meaning `false`.
fn parse_go_bool(text: &str) -> bool {
    matches!(text, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// Parses the JSON array of `"Name: value"` strings of the `headers` key.
///
/// Each entry is split on its first colon only, so values may contain colons (Dkron truncates
/// them instead). Entries that cannot form a header are skipped with a warning.
fn parse_headers(text: &str, warnings: &mut Vec<String>) -> Vec<(HeaderName, HeaderValue)> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let Ok(entries) = serde_json::from_str::<Vec<String>>(text) else {
        warnings.push("Error: parsing headers failed".to_owned());
        return Vec::new();
    };
    let mut headers = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some((name, value)) = entry.split_once(':') else {
            warnings.push(format!(
                "Warning: ignoring header {entry:?} without a colon"
            ));
            continue;
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes());
        let value = HeaderValue::from_str(value.trim());
        match (name, value) {
            (Ok(name), Ok(value)) => headers.push((name, value)),
            _ => warnings.push(format!("Warning: ignoring invalid header {entry:?}")),
        }
    }
    headers
}
