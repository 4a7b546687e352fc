//! The HTTP client of etcd's gRPC gateway: endpoints in turn, authentication, error mapping.
//!
//! Every call is one `POST /v3/...` with a JSON body, under the configured per-request timeout.
//! A connection error (nothing was sent) moves on to the next endpoint; any other transport
//! failure, a timeout included, answers [`CallError::Unavailable`] at once, because the request
//! may have been applied and only the caller knows whether repeating it is safe.
//!
//! With credentials, the first call authenticates (`/v3/auth/authenticate`) and every call
//! carries the token in the `Authorization` header. etcd's simple tokens expire after a few
//! minutes without use; an "invalid auth token" answer (gRPC code 16) re-authenticates and
//! repeats the call once, which is safe because etcd rejected the call without applying it.

use std::error::Error as _;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use rkron_store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{
    AuthenticateRequest, AuthenticateResponse, ErrorBody, KeepAliveMessage, LeaseGrantRequest,
    LeaseGrantResponse, LeaseId, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};

/// gRPC status codes the store reacts to.
pub(crate) mod code {
    /// The request was malformed or refused as such ("user name is empty" without a token).
    pub(crate) const INVALID_ARGUMENT: i32 = 3;
    /// The request timed out inside etcd.
    pub(crate) const DEADLINE_EXCEEDED: i32 = 4;
    /// The lease does not exist.
    pub(crate) const NOT_FOUND: i32 = 5;
    /// The user lacks a permission.
    pub(crate) const PERMISSION_DENIED: i32 = 7;
    /// Authentication is not enabled on the cluster.
    pub(crate) const FAILED_PRECONDITION: i32 = 9;
    /// The requested revision was compacted.
    pub(crate) const OUT_OF_RANGE: i32 = 11;
    /// etcd has no leader or is stopping.
    pub(crate) const UNAVAILABLE: i32 = 14;
    /// The auth token is invalid or expired.
    pub(crate) const UNAUTHENTICATED: i32 = 16;
}

/// Why a gateway call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallError {
    /// No endpoint could be reached, or the request failed or timed out in transit.
    Unavailable(String),
    /// etcd answered with a gRPC error.
    Status { code: i32, message: String },
    /// The answer was not what the gateway sends.
    Protocol(String),
}

impl CallError {
    /// Whether etcd answered with gRPC status `code`.
    pub(crate) fn is(&self, code: i32) -> bool {
        matches!(self, Self::Status { code: c, .. } if *c == code)
    }

    /// Whether etcd refused the credentials or the call for want of them.
    pub(crate) fn is_auth_failure(&self) -> bool {
        match self {
            Self::Status { code, message } => {
                self.wants_authentication()
                    || *code == code::PERMISSION_DENIED
                    || (*code == code::INVALID_ARGUMENT
                        && message.contains("authentication failed"))
            }
            _ => false,
        }
    }

    /// Whether etcd refused the call for want of authentication: an expired or invalid token,
    /// or no token at all while authentication is enabled.
    fn wants_authentication(&self) -> bool {
        match self {
            Self::Status { code, message } => {
                *code == code::UNAUTHENTICATED
                    || (*code == code::INVALID_ARGUMENT && message.contains("user name is empty"))
            }
            _ => false,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(reason) => f.write_str(reason),
            Self::Status { code, message } => {
                write!(f, "etcd refused the request: {message} (gRPC code {code})")
            }
            Self::Protocol(reason) => f.write_str(reason),
        }
    }
}

impl From<CallError> for StoreError {
    fn from(error: CallError) -> Self {
        match &error {
            CallError::Unavailable(_) => StoreError::Unavailable(error.to_string()),
            CallError::Status { code, .. }
                if *code == code::UNAVAILABLE || *code == code::DEADLINE_EXCEEDED =>
            {
                StoreError::Unavailable(error.to_string())
            }
            CallError::Status { .. } | CallError::Protocol(_) => {
                StoreError::Backend(error.to_string())
            }
        }
    }
}

/// Where authentication stands.
#[derive(Clone, Default)]
enum Auth {
    /// Not tried yet (or to be tried again).
    #[default]
    Unknown,
    /// The token to send.
    Token(String),
    /// The cluster does not have authentication enabled: send no token.
    Disabled,
}

/// Username and password for etcd's authentication.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
}

/// A client of etcd's gRPC gateway over a list of endpoints.
pub(crate) struct Gateway {
    http: reqwest::Client,
    /// Base URLs (`http://host:port`), without a trailing slash.
    endpoints: Vec<String>,
    /// The endpoint that answered last; calls try it first.
    preferred: AtomicUsize,
    credentials: Option<Credentials>,
    auth: Mutex<Auth>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never prints the password or the token.
        f.debug_struct("Gateway")
            .field("endpoints", &self.endpoints)
            .field(
                "username",
                &self.credentials.as_ref().map(|c| c.username.as_str()),
            )
            .finish_non_exhaustive()
    }
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

impl Gateway {
    /// Builds a client of `endpoints` (base URLs) with a per-request `timeout`.
    pub(crate) fn new(
        endpoints: Vec<String>,
        credentials: Option<Credentials>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|error| describe(&error))?;
        Ok(Self {
            http,
            endpoints,
            preferred: AtomicUsize::new(0),
            credentials,
            auth: Mutex::new(Auth::Unknown),
        })
    }

    fn auth(&self) -> Auth {
        self.auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_auth(&self, auth: Auth) {
        *self.auth.lock().unwrap_or_else(PoisonError::into_inner) = auth;
    }

    /// Posts `body` to `path` on the first endpoint that accepts a connection; answers the HTTP
    /// status and body.
    async fn send(
        &self,
        path: &str,
        body: &[u8],
        token: Option<&str>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), CallError> {
        let count = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut refused = Vec::new();
        for offset in 0..count {
            let index = (first + offset) % count;
            let Some(base) = self.endpoints.get(index) else {
                continue;
            };
            let url = format!("{base}{path}");
            let mut request = self
                .http
                .post(&url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
            if let Some(token) = token {
                request = request.header(AUTHORIZATION, token);
            }
            match request.send().await {
                Ok(response) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    let status = response.status();
                    let bytes = response.bytes().await.map_err(|error| {
                        CallError::Unavailable(format!("etcd at {url}: {}", describe(&error)))
                    })?;
                    return Ok((status, bytes.to_vec()));
                }
                // Nothing was sent: another endpoint may take the request.
                Err(error) if error.is_connect() => {
                    refused.push(format!("{url}: {}", describe(&error)));
                }
                Err(error) if error.is_timeout() => {
                    return Err(CallError::Unavailable(format!(
                        "etcd at {url} did not answer in time: {}",
                        describe(&error)
                    )));
                }
                Err(error) => {
                    return Err(CallError::Unavailable(format!(
                        "etcd at {url}: {}",
                        describe(&error)
                    )));
                }
            }
        }
        Err(CallError::Unavailable(format!(
            "no etcd endpoint could be reached: {}",
            refused.join("; ")
        )))
    }

    /// Posts `body` to `path` once, with `token`, and decodes the answer.
    async fn post_once<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &[u8],
        token: Option<&str>,
    ) -> Result<T, CallError> {
        let (status, bytes) = self.send(path, body, token).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|error| {
                CallError::Protocol(format!("unexpected answer from etcd to {path}: {error}"))
            });
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) if body.code != 0 || !body.message.is_empty() || !body.error.is_empty() => {
                let message = if body.message.is_empty() {
                    body.error
                } else {
                    body.message
                };
                Err(CallError::Status {
                    code: body.code,
                    message,
                })
            }
            _ if status.is_server_error() => Err(CallError::Unavailable(format!(
                "etcd answered HTTP {status} to {path}"
            ))),
            _ => Err(CallError::Protocol(format!(
                "etcd answered HTTP {status} to {path}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
        }
    }

    /// Authenticates with the configured credentials and remembers the outcome.
    async fn authenticate(&self) -> Result<Auth, CallError> {
        let Some(credentials) = &self.credentials else {
            return Ok(Auth::Disabled);
        };
        let request = AuthenticateRequest {
            name: &credentials.username,
            password: &credentials.password,
        };
        let body = serde_json::to_vec(&request)
            .map_err(|error| CallError::Protocol(format!("encoding a request: {error}")))?;
        let answer = self
            .post_once::<AuthenticateResponse>("/v3/auth/authenticate", &body, None)
            .await;
        let auth = match answer {
            Ok(response) => Auth::Token(response.token),
            Err(error) if error.is(code::FAILED_PRECONDITION) => {
                tracing::warn!(
                    "etcd credentials are configured but the cluster has no authentication enabled"
                );
                Auth::Disabled
            }
            Err(error) => return Err(error),
        };
        self.set_auth(auth.clone());
        Ok(auth)
    }

    /// Posts `request` to `path` and decodes the answer, authenticating as needed.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        request: &impl Serialize,
    ) -> Result<T, CallError> {
        let body = serde_json::to_vec(request)
            .map_err(|error| CallError::Protocol(format!("encoding a request: {error}")))?;
        let mut auth = match self.auth() {
            Auth::Unknown if self.credentials.is_some() => self.authenticate().await?,
            auth => auth,
        };
        let mut retried = false;
        loop {
            let token = match &auth {
                Auth::Token(token) => Some(token.as_str()),
                Auth::Unknown | Auth::Disabled => None,
            };
            match self.post_once(path, &body, token).await {
                Err(error)
                    if !retried && self.credentials.is_some() && error.wants_authentication() =>
                {
                    tracing::debug!(%error, "re-authenticating with etcd");
                    retried = true;
                    auth = self.authenticate().await?;
                }
                answer => return answer,
            }
        }
    }

    /// Reads a range (`/v3/kv/range`).
    pub(crate) async fn range(&self, request: &RangeRequest) -> Result<RangeResponse, CallError> {
        self.post("/v3/kv/range", request).await
    }

    /// Runs a transaction (`/v3/kv/txn`).
    pub(crate) async fn txn(&self, request: &TxnRequest) -> Result<TxnResponse, CallError> {
        self.post("/v3/kv/txn", request).await
    }

    /// Grants a lease of `ttl` seconds (`/v3/lease/grant`); answers its id and granted TTL
    /// (etcd raises TTLs below its minimum, about 2 s with default timings).
    pub(crate) async fn lease_grant(&self, ttl: i64) -> Result<(i64, i64), CallError> {
        let response: LeaseGrantResponse = self
            .post("/v3/lease/grant", &LeaseGrantRequest { ttl })
            .await?;
        if !response.error.is_empty() || response.id == 0 {
            return Err(CallError::Protocol(format!(
                "etcd did not grant a lease: {}",
                response.error
            )));
        }
        Ok((response.id, response.ttl))
    }

    /// Keeps lease `id` alive once (`/v3/lease/keepalive`, a stream of one message here);
    /// answers its TTL in seconds, ≤ 0 when the lease no longer exists.
    pub(crate) async fn lease_keepalive(&self, id: i64) -> Result<i64, CallError> {
        let message: KeepAliveMessage = self.post("/v3/lease/keepalive", &LeaseId { id }).await?;
        match (message.result, message.error) {
            (Some(result), _) => Ok(result.ttl),
            (None, Some(error)) => Err(CallError::Status {
                code: error.grpc_code,
                message: error.message,
            }),
            (None, None) => Err(CallError::Protocol(
                "etcd answered a lease keep-alive with neither result nor error".to_owned(),
            )),
        }
    }

    /// Revokes lease `id` (`/v3/lease/revoke`), deleting the keys attached to it; a lease that
    /// no longer exists is not an error.
    pub(crate) async fn lease_revoke(&self, id: i64) -> Result<(), CallError> {
        match self
            .post::<serde_json::Value>("/v3/lease/revoke", &LeaseId { id })
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.is(code::NOT_FOUND) => Ok(()),
            Err(error) => Err(error),
        }
    }
}
