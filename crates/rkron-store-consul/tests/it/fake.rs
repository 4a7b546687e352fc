//! An in-process fake of the Consul HTTP endpoints the store uses, kept strictly to Consul's
//! documented behaviour (no Consul server can be installed here, so this is what the store is
//! tested against; it is **not** a substitute for a run against a real Consul).
//!
//! Documented behaviour modelled (developer.hashicorp.com/consul/api-docs/kv, .../txn,
//! .../api-structure):
//!
//! - One global Raft-like index, incremented by every applied write (one per transaction). An
//!   entry's `CreateIndex` is the index that created it, `ModifyIndex` the last that wrote it;
//!   `LockIndex` stays 0 (no sessions here). `X-Consul-Index` answers the current index.
//! - `GET /v1/kv/<key>`: `[entry]` or 404; `?recurse`: every entry under the prefix, sorted, or
//!   404; `?keys` (with optional `?separator`): key names only. `Value` is base64, `null` when
//!   empty.
//! - `PUT /v1/kv/<key>`: the body is the value; `?cas=0` creates only, `?cas=N` writes only at
//!   `ModifyIndex` N; answers `true`/`false`. Values over 512 KiB are refused (413).
//! - `DELETE /v1/kv/<key>`: `?recurse` deletes the prefix, `?cas=N` only at `ModifyIndex` N.
//! - `PUT /v1/txn`: at most 64 operations (413 beyond); all-or-nothing; 200 with `Results`
//!   (writes answer their entry without `Value`, `get`/`get-tree` with it, deletes nothing) or
//!   409 with `Errors` (`OpIndex`, `What`). KV verbs: `set`, `cas`, `get`, `get-tree`,
//!   `check-index`, `check-not-exists`, `delete`, `delete-tree`, `delete-cas`. Others (sessions,
//!   `lock`, `unlock`, `check-session`) answer 400: the store does not use them.
//! - ACLs: with a token configured, a request without `X-Consul-Token` gets 403 "Permission
//!   denied", one with another token 403 "ACL not found".
//!
//! For outage tests the server can be frozen (requests hang), stopped (connections refused)
//! and restarted on the same port with the same data.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rkron_store_consul::{ConsulConfig, ConsulStore};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Consul's documented limit on a value.
const MAX_VALUE: usize = 512 * 1024;
/// The operation limit of a transaction (documented as 64; newer releases document 128).
const MAX_TXN_OPS: usize = 64;

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    flags: u64,
    create_index: u64,
    modify_index: u64,
}

#[derive(Debug, Default)]
struct Kv {
    index: u64,
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug)]
struct Shared {
    kv: Mutex<Kv>,
    token: Option<String>,
    frozen: AtomicBool,
}

impl Shared {
    fn kv(&self) -> std::sync::MutexGuard<'_, Kv> {
        self.kv.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake Consul of one test.
#[derive(Debug)]
pub(crate) struct FakeConsul {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

fn render(key: &str, entry: &Entry, with_value: bool) -> Value {
    let value = if with_value && !entry.value.is_empty() {
        Value::String(STANDARD.encode(&entry.value))
    } else {
        Value::Null
    };
    json!({
        "LockIndex": 0,
        "Key": key,
        "Flags": entry.flags,
        "Value": value,
        "CreateIndex": entry.create_index,
        "ModifyIndex": entry.modify_index,
    })
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}

fn with_index(index: u64, status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = index.to_string().parse() {
        response.headers_mut().insert("X-Consul-Index", value);
    }
    response
}

/// Checks the ACL token; answers the refusal when it does not match.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(expected) = &shared.token else {
        return Ok(());
    };
    match headers.get("X-Consul-Token").and_then(|v| v.to_str().ok()) {
        Some(given) if given == expected => Ok(()),
        Some(_) => Err(Box::new(text(StatusCode::FORBIDDEN, "ACL not found"))),
        None => Err(Box::new(text(StatusCode::FORBIDDEN, "Permission denied"))),
    }
}

/// Hangs while the server is frozen.
async fn wait_thawed(shared: &Shared) {
    while shared.frozen.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn under<'a>(entries: &'a BTreeMap<String, Entry>, prefix: &str) -> Vec<(&'a String, &'a Entry)> {
    entries
        .range(prefix.to_owned()..)
        .take_while(|(key, _)| key.starts_with(prefix))
        .collect()
}

fn parse_index(query: &HashMap<String, String>, name: &str) -> Result<Option<u64>, Box<Response>> {
    match query.get(name) {
        None => Ok(None),
        Some(raw) => raw.parse().map(Some).map_err(|_| {
            Box::new(text(
                StatusCode::BAD_REQUEST,
                format!("invalid {name} index"),
            ))
        }),
    }
}

async fn kv_get(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    wait_thawed(&shared).await;
    if let Err(refused) = authorize(&shared, &headers) {
        return *refused;
    }
    let kv = shared.kv();
    if query.contains_key("keys") {
        let separator = query.get("separator").filter(|s| !s.is_empty());
        let mut keys: Vec<String> = Vec::new();
        for (name, _) in under(&kv.entries, &key) {
            let listed = match separator {
                Some(sep) => match name[key.len()..].find(sep.as_str()) {
                    Some(at) => name[..key.len() + at + sep.len()].to_owned(),
                    None => name.clone(),
                },
                None => name.clone(),
            };
            if keys.last() != Some(&listed) {
                keys.push(listed);
            }
        }
        if keys.is_empty() {
            return with_index(kv.index, StatusCode::NOT_FOUND, Value::Null);
        }
        return with_index(kv.index, StatusCode::OK, json!(keys));
    }
    let found: Vec<Value> = if query.contains_key("recurse") {
        under(&kv.entries, &key)
            .into_iter()
            .map(|(name, entry)| render(name, entry, true))
            .collect()
    } else {
        kv.entries
            .get(&key)
            .map(|entry| render(&key, entry, true))
            .into_iter()
            .collect()
    };
    if found.is_empty() {
        return with_index(kv.index, StatusCode::NOT_FOUND, Value::Null);
    }
    with_index(kv.index, StatusCode::OK, Value::Array(found))
}

async fn kv_put(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    wait_thawed(&shared).await;
    if let Err(refused) = authorize(&shared, &headers) {
        return *refused;
    }
    if query.contains_key("acquire") || query.contains_key("release") {
        return text(StatusCode::BAD_REQUEST, "fake: sessions are not modelled");
    }
    if body.len() > MAX_VALUE {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Value exceeds {MAX_VALUE} byte limit"),
        );
    }
    let cas = match parse_index(&query, "cas") {
        Ok(cas) => cas,
        Err(refused) => return *refused,
    };
    let flags = match parse_index(&query, "flags") {
        Ok(flags) => flags.unwrap_or(0),
        Err(refused) => return *refused,
    };
    let mut kv = shared.kv();
    let existing = kv.entries.get(&key).map(|entry| entry.modify_index);
    let allowed = match cas {
        None => true,
        Some(0) => existing.is_none(),
        Some(index) => existing == Some(index),
    };
    if !allowed {
        return with_index(kv.index, StatusCode::OK, json!(false));
    }
    kv.index += 1;
    let index = kv.index;
    let create_index = kv
        .entries
        .get(&key)
        .map_or(index, |entry| entry.create_index);
    kv.entries.insert(
        key,
        Entry {
            value: body.to_vec(),
            flags,
            create_index,
            modify_index: index,
        },
    );
    with_index(index, StatusCode::OK, json!(true))
}

async fn kv_delete(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    wait_thawed(&shared).await;
    if let Err(refused) = authorize(&shared, &headers) {
        return *refused;
    }
    let cas = match parse_index(&query, "cas") {
        Ok(cas) => cas,
        Err(refused) => return *refused,
    };
    let mut kv = shared.kv();
    if let Some(index) = cas {
        let existing = kv.entries.get(&key).map(|entry| entry.modify_index);
        if index == 0 || existing.is_some_and(|current| current != index) {
            return with_index(kv.index, StatusCode::OK, json!(false));
        }
    }
    kv.index += 1;
    if query.contains_key("recurse") {
        kv.entries.retain(|name, _| !name.starts_with(&key));
    } else {
        kv.entries.remove(&key);
    }
    with_index(kv.index, StatusCode::OK, json!(true))
}

/// One KV operation of a transaction, as sent.
struct Op {
    verb: String,
    key: String,
    value: Vec<u8>,
    flags: u64,
    index: u64,
}

fn parse_op(op: &Value) -> Result<Op, String> {
    let Some(kv) = op.get("KV") else {
        return Err("fake: only KV operations are modelled".to_owned());
    };
    let verb = kv
        .get("Verb")
        .and_then(Value::as_str)
        .ok_or("missing Verb")?;
    let key = kv.get("Key").and_then(Value::as_str).ok_or("missing Key")?;
    let value = match kv.get("Value") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(encoded)) => STANDARD
            .decode(encoded)
            .map_err(|error| format!("invalid Value: {error}"))?,
        Some(_) => return Err("invalid Value".to_owned()),
    };
    let number = |name: &str| kv.get(name).and_then(Value::as_u64).unwrap_or(0);
    Ok(Op {
        verb: verb.to_owned(),
        key: key.to_owned(),
        value,
        flags: number("Flags"),
        index: number("Index"),
    })
}

/// Applies `op` to `entries` at Raft index `index`; answers its result entries or an error.
fn apply(entries: &mut BTreeMap<String, Entry>, op: &Op, index: u64) -> Result<Vec<Value>, String> {
    let key = op.key.as_str();
    let existing = entries.get(key).map(|entry| entry.modify_index);
    let write = |entries: &mut BTreeMap<String, Entry>| {
        let create_index = entries.get(key).map_or(index, |entry| entry.create_index);
        let entry = Entry {
            value: op.value.clone(),
            flags: op.flags,
            create_index,
            modify_index: index,
        };
        let rendered = render(key, &entry, false);
        entries.insert(key.to_owned(), entry);
        vec![rendered]
    };
    match op.verb.as_str() {
        "set" => Ok(write(entries)),
        "cas" => {
            let allowed = match (op.index, existing) {
                (0, existing) => existing.is_none(),
                (wanted, Some(current)) => wanted == current,
                (_, None) => false,
            };
            if !allowed {
                return Err(format!("failed to set key {key:?}, index is stale"));
            }
            Ok(write(entries))
        }
        "get" => match entries.get(key) {
            Some(entry) => Ok(vec![render(key, entry, true)]),
            None => Err(format!("key {key:?} doesn't exist")),
        },
        "get-tree" => Ok(under(entries, key)
            .into_iter()
            .map(|(name, entry)| render(name, entry, true))
            .collect()),
        "check-index" => match entries.get(key) {
            None => Err(format!("key {key:?} doesn't exist")),
            Some(entry) if entry.modify_index != op.index => Err(format!(
                "current modify index {} != {}",
                entry.modify_index, op.index
            )),
            Some(entry) => Ok(vec![render(key, entry, false)]),
        },
        "check-not-exists" => match existing {
            Some(_) => Err(format!("key {key:?} exists")),
            None => Ok(Vec::new()),
        },
        "delete" => {
            entries.remove(key);
            Ok(Vec::new())
        }
        "delete-tree" => {
            entries.retain(|name, _| !name.starts_with(key));
            Ok(Vec::new())
        }
        "delete-cas" => match existing {
            // Consul deletes only at the given index; a key already gone counts as deleted.
            Some(current) if current != op.index => {
                Err(format!("failed to delete key {key:?}, index is stale"))
            }
            _ => {
                entries.remove(key);
                Ok(Vec::new())
            }
        },
        other => Err(format!("fake: verb {other:?} is not modelled")),
    }
}

fn is_write(verb: &str) -> bool {
    !matches!(
        verb,
        "get" | "get-tree" | "check-index" | "check-not-exists"
    )
}

async fn txn(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    wait_thawed(&shared).await;
    if let Err(refused) = authorize(&shared, &headers) {
        return *refused;
    }
    let ops: Vec<Value> = match serde_json::from_slice(&body) {
        Ok(ops) => ops,
        Err(error) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body: {error}"),
            );
        }
    };
    if ops.len() > MAX_TXN_OPS {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Transaction contains too many operations ({} > {MAX_TXN_OPS})",
                ops.len()
            ),
        );
    }
    let mut parsed = Vec::with_capacity(ops.len());
    for op in &ops {
        match parse_op(op) {
            Ok(op) if op.value.len() > MAX_VALUE => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Value for key {:?} is too large", op.key),
                );
            }
            Ok(op) => parsed.push(op),
            Err(error) => return text(StatusCode::BAD_REQUEST, error),
        }
    }
    let mut kv = shared.kv();
    let index = kv.index + 1;
    let mut scratch = kv.entries.clone();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (op_index, op) in parsed.iter().enumerate() {
        match apply(&mut scratch, op, index) {
            Ok(entries) => results.extend(entries.into_iter().map(|kv| json!({ "KV": kv }))),
            Err(what) => errors.push(json!({ "OpIndex": op_index, "What": what })),
        }
    }
    if !errors.is_empty() {
        return with_index(
            kv.index,
            StatusCode::CONFLICT,
            json!({ "Results": null, "Errors": errors }),
        );
    }
    if parsed.iter().any(|op| is_write(&op.verb)) {
        kv.entries = scratch;
        kv.index = index;
    }
    with_index(
        kv.index,
        StatusCode::OK,
        json!({ "Results": results, "Errors": null }),
    )
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/kv/{*key}", get(kv_get).put(kv_put).delete(kv_delete))
        .route(
            "/v1/kv/",
            get(|state, query, headers| kv_get(state, Path(String::new()), query, headers)),
        )
        .route("/v1/txn", put(txn))
        .with_state(shared)
}

impl FakeConsul {
    /// Starts a fake without ACLs.
    pub(crate) async fn start() -> Self {
        Self::start_with_token(None).await
    }

    /// Starts a fake that requires `token` when it is `Some`.
    pub(crate) async fn start_with_token(token: Option<&str>) -> Self {
        let shared = Arc::new(Shared {
            kv: Mutex::new(Kv::default()),
            token: token.map(str::to_owned),
            frozen: AtomicBool::new(false),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let mut fake = Self {
            shared,
            addr,
            server: None,
        };
        fake.serve(listener);
        fake
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(Arc::clone(&self.shared));
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        self.server = Some((stop, handle));
    }

    /// `host:port` of the fake.
    pub(crate) fn address(&self) -> String {
        self.addr.to_string()
    }

    /// A configuration for keyspace `keyspace` on this fake.
    pub(crate) fn config(&self, keyspace: &str) -> ConsulConfig {
        ConsulConfig {
            address: self.address(),
            keyspace: keyspace.to_owned(),
            ..ConsulConfig::default()
        }
    }

    /// Connects a store to keyspace `keyspace`.
    pub(crate) async fn store(&self, keyspace: &str) -> ConsulStore {
        ConsulStore::connect(self.config(keyspace))
            .await
            .expect("connect to the fake")
    }

    /// Makes every request hang until [`FakeConsul::thaw`].
    pub(crate) fn freeze(&self) {
        self.shared.frozen.store(true, Ordering::SeqCst);
    }

    /// Serves requests again (hung ones proceed).
    pub(crate) fn thaw(&self) {
        self.shared.frozen.store(false, Ordering::SeqCst);
    }

    /// Stops serving: the listener closes and open connections are shut down.
    pub(crate) async fn stop(&mut self) {
        if let Some((stop, handle)) = self.server.take() {
            let _ = stop.send(());
            let _ = handle.await;
        }
    }

    /// Serves again on the same port, with the data kept.
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await.expect("rebind the port");
        self.serve(listener);
    }

    /// Writes a raw value (as `PUT /v1/kv/<key>` would), for damaging records in tests.
    pub(crate) fn put_raw(&self, key: &str, value: &[u8]) {
        let mut kv = self.shared.kv();
        kv.index += 1;
        let index = kv.index;
        kv.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                flags: 0,
                create_index: index,
                modify_index: index,
            },
        );
    }

    /// The number of keys stored, over every keyspace.
    pub(crate) fn key_count(&self) -> usize {
        self.shared.kv().entries.len()
    }
}

impl Drop for FakeConsul {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.server.take() {
            let _ = stop.send(());
            handle.abort();
        }
    }
}
