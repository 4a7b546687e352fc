//! The JSON shapes of etcd's gRPC gateway (`/v3/...`) that the store uses.
//!
//! The gateway maps etcd's protobuf messages onto JSON with the proto field names: keys and
//! values are base64 text, int64 fields travel as JSON strings (numbers are accepted too), and a
//! field at its default value (zero, false, empty) is left out. Every response type therefore
//! defaults each field, and int64 fields accept both a string and a number.
//!
//! Keys and values stay base64 text here: decoding them is the caller's job, so a damaged one
//! surfaces as [`StoreError::Corrupt`] naming the key rather than as a failed response.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use rkron_store::StoreError;

/// Encodes bytes as the gateway's base64 text.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    STANDARD.encode(bytes)
}

/// Decodes the gateway's base64 text; `what` names the record for the error.
pub(crate) fn unb64(text: &str, what: impl FnOnce() -> String) -> Result<Vec<u8>, StoreError> {
    STANDARD.decode(text).map_err(|error| StoreError::Corrupt {
        key: what(),
        reason: format!("invalid base64 from etcd: {error}"),
    })
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Serializes an int64 as the gateway's JSON string.
fn int64_text<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Deserializes an int64 that the gateway sends as a string (or, leniently, as a number).
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    struct Int64;
    impl Visitor<'_> for Int64 {
        type Value = i64;
        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("an int64 as a string or a number")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<i64, E> {
            text.parse().map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
            Ok(value)
        }
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
            i64::try_from(value).map_err(E::custom)
        }
    }
    deserializer.deserialize_any(Int64)
}

/// `etcdserverpb.RangeRequest`: reads one key or the keys in `[key, range_end)`.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct RangeRequest {
    pub(crate) key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) range_end: Option<String>,
    /// At most this many keys; 0 means no limit.
    #[serde(skip_serializing_if = "is_zero", serialize_with = "int64_text")]
    pub(crate) limit: i64,
    /// Reads at this revision; 0 means the newest.
    #[serde(skip_serializing_if = "is_zero", serialize_with = "int64_text")]
    pub(crate) revision: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) keys_only: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) count_only: bool,
}

impl RangeRequest {
    /// Reads exactly `key`.
    pub(crate) fn key(key: impl AsRef<[u8]>) -> Self {
        Self {
            key: b64(key),
            ..Self::default()
        }
    }

    /// Reads the keys in `[start, end)`.
    pub(crate) fn between(start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> Self {
        Self {
            key: b64(start),
            range_end: Some(b64(end)),
            ..Self::default()
        }
    }

    /// Reads every key starting with `prefix`.
    pub(crate) fn prefix(prefix: &str) -> Self {
        Self::between(prefix, prefix_end(prefix))
    }

    /// Answers keys and revisions without values.
    pub(crate) fn keys_only(mut self) -> Self {
        self.keys_only = true;
        self
    }

    /// Answers only the number of keys.
    pub(crate) fn count_only(mut self) -> Self {
        self.count_only = true;
        self
    }

    /// Answers at most `limit` keys (`limit` ≥ 1).
    pub(crate) fn limit(mut self, limit: usize) -> Self {
        self.limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        self
    }

    /// Reads at `revision` (0: the newest).
    pub(crate) fn at(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }
}

/// Returns the smallest key greater than every key starting with `prefix` (a range end).
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (never for the store's prefixes, which end in '/'): `\0` means "to
    // the end of the keyspace" for etcd.
    vec![0]
}

/// `etcdserverpb.PutRequest`.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct PutRequest {
    pub(crate) key: String,
    pub(crate) value: String,
    /// The etcd lease the key is attached to; 0 for none.
    #[serde(skip_serializing_if = "is_zero", serialize_with = "int64_text")]
    pub(crate) lease: i64,
}

/// `etcdserverpb.DeleteRangeRequest`.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct DeleteRangeRequest {
    pub(crate) key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) range_end: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) prev_kv: bool,
}

/// `etcdserverpb.RequestOp`: one operation of a transaction.
#[derive(Debug, Clone, Serialize)]
pub(crate) enum RequestOp {
    #[serde(rename = "request_range")]
    Range(RangeRequest),
    #[serde(rename = "request_put")]
    Put(PutRequest),
    #[serde(rename = "request_delete_range")]
    DeleteRange(DeleteRangeRequest),
}

impl RequestOp {
    /// Reads exactly `key`.
    pub(crate) fn get(key: impl AsRef<[u8]>) -> Self {
        Self::Range(RangeRequest::key(key))
    }

    /// Writes `value` at `key`, without a lease.
    pub(crate) fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        Self::Put(PutRequest {
            key: b64(key),
            value: b64(value),
            lease: 0,
        })
    }

    /// Deletes exactly `key`.
    pub(crate) fn delete(key: impl AsRef<[u8]>) -> Self {
        Self::DeleteRange(DeleteRangeRequest {
            key: b64(key),
            ..DeleteRangeRequest::default()
        })
    }

    /// Deletes every key starting with `prefix`.
    pub(crate) fn delete_prefix(prefix: &str) -> Self {
        Self::DeleteRange(DeleteRangeRequest {
            key: b64(prefix),
            range_end: Some(b64(prefix_end(prefix))),
            prev_kv: false,
        })
    }
}

/// `etcdserverpb.Compare`: one condition of a transaction.
///
/// Exactly one operand is set, matching `target`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Compare {
    key: String,
    target: &'static str,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    create_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mod_revision: Option<String>,
}

impl Compare {
    fn new(key: impl AsRef<[u8]>, target: &'static str, result: &'static str) -> Self {
        Self {
            key: b64(key),
            target,
            result,
            version: None,
            create_revision: None,
            mod_revision: None,
        }
    }

    /// Holds when `key` was created at `revision`; `0` means "the key does not exist".
    pub(crate) fn created_at(key: impl AsRef<[u8]>, revision: i64) -> Self {
        Self {
            create_revision: Some(revision.to_string()),
            ..Self::new(key, "CREATE", "EQUAL")
        }
    }

    /// Holds when `key` was last written at `revision`; `0` means "the key does not exist".
    pub(crate) fn modified_at(key: impl AsRef<[u8]>, revision: i64) -> Self {
        Self {
            mod_revision: Some(revision.to_string()),
            ..Self::new(key, "MOD", "EQUAL")
        }
    }

    /// Holds when `key` exists.
    pub(crate) fn exists(key: impl AsRef<[u8]>) -> Self {
        Self {
            version: Some("0".to_owned()),
            ..Self::new(key, "VERSION", "GREATER")
        }
    }
}

/// `etcdserverpb.TxnRequest`: if every compare holds, `success` runs, else `failure`.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct TxnRequest {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) compare: Vec<Compare>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) success: Vec<RequestOp>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) failure: Vec<RequestOp>,
}

impl TxnRequest {
    /// A transaction without conditions: `ops` always run.
    pub(crate) fn always(ops: Vec<RequestOp>) -> Self {
        Self {
            success: ops,
            ..Self::default()
        }
    }

    /// The number of operations etcd counts against its `--max-txn-ops` limit.
    pub(crate) fn size(&self) -> usize {
        self.compare
            .len()
            .max(self.success.len())
            .max(self.failure.len())
    }
}

/// `etcdserverpb.ResponseHeader` (the part the store uses).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Header {
    #[serde(deserialize_with = "int64")]
    pub(crate) revision: i64,
}

/// `mvccpb.KeyValue`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct KeyValue {
    /// Base64.
    pub(crate) key: String,
    /// Base64.
    pub(crate) value: String,
    #[serde(deserialize_with = "int64")]
    pub(crate) create_revision: i64,
    #[serde(deserialize_with = "int64")]
    pub(crate) mod_revision: i64,
    /// The etcd lease the key is attached to; 0 for none.
    #[serde(deserialize_with = "int64")]
    pub(crate) lease: i64,
}

impl KeyValue {
    /// The key's bytes.
    pub(crate) fn key_bytes(&self) -> Result<Vec<u8>, StoreError> {
        unb64(&self.key, || format!("key {}", self.key))
    }

    /// The value's bytes; `label` names the record for errors.
    pub(crate) fn value_bytes(
        &self,
        label: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, StoreError> {
        unb64(&self.value, label)
    }
}

/// `etcdserverpb.RangeResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RangeResponse {
    pub(crate) header: Header,
    pub(crate) kvs: Vec<KeyValue>,
    /// More keys are in the range than `limit` let through.
    pub(crate) more: bool,
    /// How many keys the whole range holds (not only those answered).
    #[serde(deserialize_with = "int64")]
    pub(crate) count: i64,
}

/// `etcdserverpb.DeleteRangeResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct DeleteRangeResponse {
    pub(crate) prev_kvs: Vec<KeyValue>,
}

/// `etcdserverpb.ResponseOp`: the answer to one [`RequestOp`]; only the matching field is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ResponseOp {
    pub(crate) response_range: Option<RangeResponse>,
    pub(crate) response_delete_range: Option<DeleteRangeResponse>,
}

/// `etcdserverpb.TxnResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TxnResponse {
    pub(crate) header: Header,
    pub(crate) succeeded: bool,
    pub(crate) responses: Vec<ResponseOp>,
}

impl TxnResponse {
    /// The range answer at position `index` of the branch that ran (empty when absent).
    pub(crate) fn range(&self, index: usize) -> RangeResponse {
        self.responses
            .get(index)
            .and_then(|op| op.response_range.clone())
            .unwrap_or_default()
    }

    /// Takes the range answer at position `index` of the branch that ran (empty when absent).
    pub(crate) fn take_range(&mut self, index: usize) -> RangeResponse {
        self.responses
            .get_mut(index)
            .and_then(|op| op.response_range.take())
            .unwrap_or_default()
    }
}

/// `etcdserverpb.LeaseGrantRequest`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LeaseGrantRequest {
    #[serde(rename = "TTL", serialize_with = "int64_text")]
    pub(crate) ttl: i64,
}

/// `etcdserverpb.LeaseGrantResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LeaseGrantResponse {
    #[serde(rename = "ID", deserialize_with = "int64")]
    pub(crate) id: i64,
    #[serde(rename = "TTL", deserialize_with = "int64")]
    pub(crate) ttl: i64,
    pub(crate) error: String,
}

/// The body of lease keep-alive and revoke requests: a lease id.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LeaseId {
    #[serde(rename = "ID", serialize_with = "int64_text")]
    pub(crate) id: i64,
}

/// `etcdserverpb.LeaseKeepAliveResponse`; `ttl` ≤ 0 means the lease no longer exists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LeaseKeepAliveResponse {
    #[serde(rename = "TTL", deserialize_with = "int64")]
    pub(crate) ttl: i64,
}

/// One message of the gateway's keep-alive stream: a result or an error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct KeepAliveMessage {
    pub(crate) result: Option<LeaseKeepAliveResponse>,
    pub(crate) error: Option<StreamError>,
}

/// An error inside a gateway stream.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StreamError {
    pub(crate) grpc_code: i32,
    pub(crate) message: String,
}

/// `etcdserverpb.AuthenticateRequest`.
#[derive(Clone, Serialize)]
pub(crate) struct AuthenticateRequest<'a> {
    pub(crate) name: &'a str,
    pub(crate) password: &'a str,
}

/// `etcdserverpb.AuthenticateResponse`.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AuthenticateResponse {
    pub(crate) token: String,
}

/// The gateway's error body: a gRPC status code and message.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorBody {
    pub(crate) code: i32,
    pub(crate) message: String,
    pub(crate) error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int64_fields_read_from_strings_numbers_and_absence() {
        let kv: KeyValue = serde_json::from_str(
            r#"{"key":"YQ==","create_revision":"7","mod_revision":9,"lease":"-1"}"#,
        )
        .unwrap();
        assert_eq!((kv.create_revision, kv.mod_revision, kv.lease), (7, 9, -1));
        let empty: RangeResponse = serde_json::from_str(r#"{"header":{}}"#).unwrap();
        assert_eq!((empty.count, empty.kvs.len(), empty.more), (0, 0, false));
        assert!(serde_json::from_str::<KeyValue>(r#"{"mod_revision":"x"}"#).is_err());
    }

    #[test]
    fn requests_serialize_as_the_gateway_expects() {
        let txn = TxnRequest {
            compare: vec![Compare::created_at("k", 0)],
            success: vec![RequestOp::put("k", "v")],
            failure: vec![RequestOp::Range(
                RangeRequest::prefix("p/").keys_only().limit(3),
            )],
        };
        let json = serde_json::to_value(&txn).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "compare": [{"key": "aw==", "target": "CREATE", "result": "EQUAL",
                             "create_revision": "0"}],
                "success": [{"request_put": {"key": "aw==", "value": "dg=="}}],
                "failure": [{"request_range": {"key": "cC8=", "range_end": "cDA=",
                             "limit": "3", "keys_only": true}}],
            })
        );
    }

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end("a/"), b"a0".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn bad_base64_is_corrupt() {
        let answer = unb64("***", || "k".to_owned());
        assert!(matches!(answer, Err(StoreError::Corrupt { key, .. }) if key == "k"));
    }
}
