//! The HTTP client of Consul's API: the KV and transaction endpoints, the token, error mapping.
//!
//! Endpoints used (Consul's documented HTTP API, `/v1` prefix):
//!
//! - `GET /v1/kv/<key>`: one key (404 when absent); `?recurse`: every key under a prefix;
//!   `?keys`: the key names under a prefix, without values.
//! - `PUT /v1/kv/<key>`: sets a key to the request body; answers `true`.
//! - `PUT /v1/txn`: a transaction of KV operations; 200 with `Results` when applied, 409 with
//!   `Errors` (`OpIndex`, `What`) when rolled back.
//!
//! Every call carries the token in the `X-Consul-Token` header when one is configured, and runs
//! under the configured timeout. Any transport failure, a timeout included, answers
//! [`CallError::Unavailable`]: the request may have been applied, and only the caller knows
//! whether repeating it is safe.

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use rkron_store::StoreError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The header that carries the ACL token.
pub(crate) const TOKEN_HEADER: &str = "X-Consul-Token";

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallError {
    /// Consul could not be reached, or the request failed or timed out in transit.
    Unavailable(String),
    /// Consul refused the token (HTTP 401/403: "ACL not found", "Permission denied").
    Denied(String),
    /// Consul answered with another HTTP error.
    Status { status: u16, body: String },
    /// The answer was not what Consul documents.
    Protocol(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(reason) | Self::Protocol(reason) => f.write_str(reason),
            Self::Denied(body) => write!(f, "Consul refused the token: {body}"),
            Self::Status { status, body } => write!(f, "Consul answered HTTP {status}: {body}"),
        }
    }
}

impl From<CallError> for StoreError {
    fn from(error: CallError) -> Self {
        match &error {
            CallError::Unavailable(_) => StoreError::Unavailable(error.to_string()),
            // "No cluster leader", "rpc error": Consul cannot serve right now.
            CallError::Status { status, .. } if *status >= 500 => {
                StoreError::Unavailable(error.to_string())
            }
            CallError::Denied(_) | CallError::Status { .. } | CallError::Protocol(_) => {
                StoreError::Backend(error.to_string())
            }
        }
    }
}

/// One entry of the KV store as Consul answers it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KvEntry {
    pub(crate) key: String,
    /// Base64 text; `null` for an empty value (and in transaction results of writes).
    #[serde(default)]
    pub(crate) value: Option<String>,
    #[serde(default)]
    pub(crate) create_index: u64,
    #[serde(default)]
    pub(crate) modify_index: u64,
}

impl KvEntry {
    /// Decodes the value; an absent value is empty.
    pub(crate) fn bytes(&self) -> Result<Vec<u8>, StoreError> {
        match &self.value {
            None => Ok(Vec::new()),
            Some(text) => STANDARD.decode(text).map_err(|error| StoreError::Corrupt {
                key: self.key.clone(),
                reason: format!("invalid base64 from Consul: {error}"),
            }),
        }
    }
}

/// One KV operation of a transaction (`{"KV": {...}}`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TxnOp {
    #[serde(rename = "KV")]
    kv: KvOp,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KvOp {
    verb: &'static str,
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    index: u64,
}

impl TxnOp {
    fn new(verb: &'static str, key: impl Into<String>, value: Option<&[u8]>, index: u64) -> Self {
        Self {
            kv: KvOp {
                verb,
                key: key.into(),
                value: value.map(|bytes| STANDARD.encode(bytes)),
                index,
            },
        }
    }

    /// `set`: writes the key.
    pub(crate) fn set(key: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        Self::new("set", key, Some(value.as_ref()), 0)
    }

    /// `cas`: writes the key if its `ModifyIndex` is `index` (0: if it does not exist).
    pub(crate) fn cas(key: impl Into<String>, value: impl AsRef<[u8]>, index: u64) -> Self {
        Self::new("cas", key, Some(value.as_ref()), index)
    }

    /// `get`: reads the key; fails the transaction if it does not exist.
    pub(crate) fn get(key: impl Into<String>) -> Self {
        Self::new("get", key, None, 0)
    }

    /// `get-tree`: reads every key under the prefix.
    pub(crate) fn get_tree(prefix: impl Into<String>) -> Self {
        Self::new("get-tree", prefix, None, 0)
    }

    /// `check-index`: fails the transaction unless the key's `ModifyIndex` is `index`.
    pub(crate) fn check_index(key: impl Into<String>, index: u64) -> Self {
        Self::new("check-index", key, None, index)
    }

    /// `check-not-exists`: fails the transaction if the key exists.
    pub(crate) fn check_not_exists(key: impl Into<String>) -> Self {
        Self::new("check-not-exists", key, None, 0)
    }

    /// `delete`: deletes the key (absent is fine).
    pub(crate) fn delete(key: impl Into<String>) -> Self {
        Self::new("delete", key, None, 0)
    }

    /// `delete-tree`: deletes every key under the prefix.
    pub(crate) fn delete_tree(prefix: impl Into<String>) -> Self {
        Self::new("delete-tree", prefix, None, 0)
    }

    /// `delete-cas`: deletes the key if its `ModifyIndex` is `index`.
    pub(crate) fn delete_cas(key: impl Into<String>, index: u64) -> Self {
        Self::new("delete-cas", key, None, index)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnResponse {
    #[serde(default)]
    results: Option<Vec<TxnResult>>,
    #[serde(default)]
    errors: Option<Vec<TxnError>>,
}

#[derive(Debug, Default, Deserialize)]
struct TxnResult {
    #[serde(rename = "KV", default)]
    kv: Option<KvEntry>,
}

/// Why a transaction was rolled back: the index of a failed operation and Consul's message.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TxnError {
    #[serde(default)]
    pub(crate) op_index: usize,
    #[serde(default)]
    pub(crate) what: String,
}

/// What became of a transaction.
#[derive(Debug)]
pub(crate) enum TxnOutcome {
    /// Applied; the KV results (writes answer their entry without value, reads with it,
    /// deletes nothing), to be matched by key, not by position.
    Committed(Vec<KvEntry>),
    /// Rolled back (HTTP 409): nothing was written.
    RolledBack(Vec<TxnError>),
}

/// Describes a transport error with its causes (reqwest's own message is terse).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Percent-encodes a key for the URL path: everything but unreserved characters and `/`.
pub(crate) fn encode_key(key: &str) -> String {
    let mut encoded = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// A client of one Consul agent or server.
pub(crate) struct Gateway {
    http: reqwest::Client,
    /// `http://host:port` or `https://host:port`, without a trailing slash.
    base: String,
    token: Option<String>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never prints the token.
        f.debug_struct("Gateway")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds a client of `base` with a per-request `timeout`.
    pub(crate) fn new(
        base: String,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|error| describe(&error))?;
        Ok(Self { http, base, token })
    }

    /// Sends one request; answers the HTTP status and body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>), CallError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.header(TOKEN_HEADER, token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|error| {
            let what = if error.is_timeout() {
                "did not answer in time"
            } else {
                "could not be reached"
            };
            CallError::Unavailable(format!("Consul at {url} {what}: {}", describe(&error)))
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| {
            CallError::Unavailable(format!("Consul at {url}: {}", describe(&error)))
        })?;
        Ok((status, bytes.to_vec()))
    }

    /// Maps an unexpected status to an error.
    fn failure(status: StatusCode, body: &[u8]) -> CallError {
        let body = String::from_utf8_lossy(body).trim().to_owned();
        if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
            CallError::Denied(body)
        } else {
            CallError::Status {
                status: status.as_u16(),
                body,
            }
        }
    }

    fn decode<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, CallError> {
        serde_json::from_slice(bytes).map_err(|error| {
            CallError::Protocol(format!("unexpected answer from Consul to {path}: {error}"))
        })
    }

    /// Reads under `/v1/kv/<key>` with `query`; a 404 answers `None`.
    async fn read<T: DeserializeOwned>(
        &self,
        key: &str,
        query: &str,
    ) -> Result<Option<T>, CallError> {
        let path = format!("/v1/kv/{}{query}", encode_key(key));
        let (status, bytes) = self.send(Method::GET, &path, None).await?;
        match status {
            StatusCode::OK => Self::decode(&path, &bytes).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::failure(status, &bytes)),
        }
    }

    /// Reads one key (`GET /v1/kv/<key>`).
    pub(crate) async fn get(&self, key: &str) -> Result<Option<KvEntry>, CallError> {
        let entries: Option<Vec<KvEntry>> = self.read(key, "").await?;
        Ok(entries.and_then(|entries| entries.into_iter().find(|entry| entry.key == key)))
    }

    /// Reads every key under `prefix` (`GET /v1/kv/<prefix>?recurse`), in key order.
    pub(crate) async fn get_prefix(&self, prefix: &str) -> Result<Vec<KvEntry>, CallError> {
        let mut entries: Vec<KvEntry> = self.read(prefix, "?recurse").await?.unwrap_or_default();
        entries.retain(|entry| entry.key.starts_with(prefix));
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    /// Lists the keys under `prefix` (`GET /v1/kv/<prefix>?keys`), in key order.
    pub(crate) async fn keys(&self, prefix: &str) -> Result<Vec<String>, CallError> {
        let mut keys: Vec<String> = self.read(prefix, "?keys").await?.unwrap_or_default();
        keys.retain(|key| key.starts_with(prefix));
        keys.sort();
        Ok(keys)
    }

    /// Sets one key (`PUT /v1/kv/<key>`).
    pub(crate) async fn put(&self, key: &str, value: &[u8]) -> Result<(), CallError> {
        let path = format!("/v1/kv/{}", encode_key(key));
        let (status, bytes) = self.send(Method::PUT, &path, Some(value.to_vec())).await?;
        if status != StatusCode::OK {
            return Err(Self::failure(status, &bytes));
        }
        match Self::decode::<bool>(&path, &bytes)? {
            true => Ok(()),
            false => Err(CallError::Protocol(format!(
                "Consul did not set {key} (answered false)"
            ))),
        }
    }

    /// Runs a transaction (`PUT /v1/txn`).
    pub(crate) async fn txn(&self, ops: &[TxnOp]) -> Result<TxnOutcome, CallError> {
        let body = serde_json::to_vec(ops)
            .map_err(|error| CallError::Protocol(format!("encoding a transaction: {error}")))?;
        let (status, bytes) = self.send(Method::PUT, "/v1/txn", Some(body)).await?;
        match status {
            StatusCode::OK => {
                let response: TxnResponse = Self::decode("/v1/txn", &bytes)?;
                let results = response.results.unwrap_or_default();
                Ok(TxnOutcome::Committed(
                    results.into_iter().filter_map(|result| result.kv).collect(),
                ))
            }
            StatusCode::CONFLICT => {
                let response: TxnResponse = Self::decode("/v1/txn", &bytes)?;
                let errors = response.errors.unwrap_or_default();
                if errors.is_empty() {
                    return Err(CallError::Protocol(
                        "Consul rolled a transaction back without naming an error".to_owned(),
                    ));
                }
                Ok(TxnOutcome::RolledBack(errors))
            }
            _ => Err(Self::failure(status, &bytes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_but_slashes() {
        assert_eq!(encode_key("rkron/jobs/a-b_c.d"), "rkron/jobs/a-b_c.d");
        assert_eq!(
            encode_key("ks/running/a%2Fb/x y"),
            "ks/running/a%252Fb/x%20y"
        );
        assert_eq!(encode_key("k?é#"), "k%3F%C3%A9%23");
    }

    #[test]
    fn transaction_ops_serialize_as_documented() {
        let op = TxnOp::cas("k", b"v", 7);
        assert_eq!(
            serde_json::to_value(&op).unwrap(),
            serde_json::json!({"KV": {"Verb": "cas", "Key": "k", "Value": "dg==", "Index": 7}})
        );
        let op = TxnOp::delete_tree("p/");
        assert_eq!(
            serde_json::to_value(&op).unwrap(),
            serde_json::json!({"KV": {"Verb": "delete-tree", "Key": "p/", "Index": 0}})
        );
    }

    #[test]
    fn entries_decode_values_and_damage() {
        let entry: KvEntry = serde_json::from_str(
            r#"{"CreateIndex":1,"ModifyIndex":2,"LockIndex":0,"Key":"k","Flags":0,"Value":"dGVzdA=="}"#,
        )
        .unwrap();
        assert_eq!(entry.bytes().unwrap(), b"test");
        assert_eq!((entry.create_index, entry.modify_index), (1, 2));
        let empty: KvEntry = serde_json::from_str(r#"{"Key":"k","Value":null}"#).unwrap();
        assert!(empty.bytes().unwrap().is_empty());
        let bad = KvEntry {
            key: "k".to_owned(),
            value: Some("!!".to_owned()),
            ..KvEntry::default()
        };
        assert!(matches!(bad.bytes(), Err(StoreError::Corrupt { .. })));
    }
}
