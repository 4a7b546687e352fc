//! The `http` executor: the client cache, the request and the response checks.

use std::collections::VecDeque;
use std::error::Error as _;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use reqwest::{Certificate, Client, Identity};
use tokio_util::sync::CancellationToken;

use super::config::{ClientSettings, HttpConfig};
use crate::{ExecuteOutcome, ExecuteRequest, Executor, OutputBuffer};

/// The most HTTP clients kept; the least recently used one is dropped beyond it.
pub const CLIENT_CACHE_CAPACITY: usize = 100;

/// The most response-body bytes kept for matching `expectBody`; later bytes are not matched.
const MAX_MATCHED_BODY: usize = 16 * 1024 * 1024;

/// Sends one HTTP request per execution (Dkron's `http` executor).
#[derive(Debug, Clone, Default)]
pub struct HttpExecutor {
    clients: Arc<ClientCache>,
}

impl HttpExecutor {
    /// Returns an executor with an empty client cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the number of cached HTTP clients.
    pub fn cached_clients(&self) -> usize {
        self.clients.lock().len()
    }

    async fn run(&self, config: &HttpConfig, output: &OutputBuffer) -> ExecuteOutcome {
        let client = match self.clients.get_or_build(&config.client).await {
            Ok(client) => client,
            Err(error) => return ExecuteOutcome::failed(error),
        };
        let mut request = client.request(config.method.clone(), &config.url);
        for (name, value) in &config.headers {
            request = request.header(name, value);
        }
        if !config.body.is_empty() {
            request = request.body(config.body.clone());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return ExecuteOutcome::failed(error_chain_text(&error)),
        };
        let status = response.status();
        let mut matched_body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    output.push(&chunk);
                    if config.expect_body.is_some() {
                        let room = MAX_MATCHED_BODY.saturating_sub(matched_body.len());
                        matched_body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                }
                Ok(None) => break,
                Err(error) => return ExecuteOutcome::failed(error_chain_text(&error)),
            }
        }
        if config.debug {
            tracing::debug!(
                method = %config.method,
                url = %config.url,
                status = status.as_u16(),
                body_bytes = output.total_written(),
                "http executor received a response"
            );
        }
        let status_text = status.as_u16().to_string();
        if !config.expect_codes.is_empty() && !config.expect_codes.contains(&status_text) {
            return ExecuteOutcome::failed(
                "received response code does not match the expected code",
            );
        }
        if let Some(pattern) = &config.expect_body
            && !pattern.is_match(&String::from_utf8_lossy(&matched_body))
        {
            return ExecuteOutcome::failed(
                "received response body did not match the expected body",
            );
        }
        ExecuteOutcome::succeeded()
    }
}

#[async_trait::async_trait]
impl Executor for HttpExecutor {
    async fn execute(
        &self,
        req: &ExecuteRequest,
        output: &OutputBuffer,
        cancel: CancellationToken,
    ) -> ExecuteOutcome {
        let (config, warnings) = match HttpConfig::from_config(&req.config) {
            Ok(parsed) => parsed,
            Err(error) => return ExecuteOutcome::failed(error),
        };
        if config.debug {
            let config_text = serde_json::to_string(&req.config)
                .expect("a map of strings always serializes to JSON");
            output.push(format!("Config: {config_text}\n").as_bytes());
            tracing::debug!(job = %req.job_name, config = %config_text, "http executor request");
        }
        for warning in warnings {
            output.push(format!("{warning}\n").as_bytes());
        }
        tokio::select! {
            outcome = self.run(&config, output) => outcome,
            () = cancel.cancelled() => ExecuteOutcome::killed(),
        }
    }
}

/// HTTP clients by their settings.
#[derive(Debug)]
struct ClientCache {
    clients: Mutex<LruCache<ClientSettings, Client>>,
}

impl Default for ClientCache {
    fn default() -> Self {
        Self {
            clients: Mutex::new(LruCache::new(CLIENT_CACHE_CAPACITY)),
        }
    }
}

impl ClientCache {
    fn lock(&self) -> MutexGuard<'_, LruCache<ClientSettings, Client>> {
        // Every update leaves the cache valid, so a poisoned lock is still usable.
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Returns the client for `settings`, building and caching it when missing.
    async fn get_or_build(&self, settings: &ClientSettings) -> Result<Client, String> {
        if let Some(client) = self.lock().get(settings) {
            return Ok(client);
        }
        let client = build_client(settings).await?;
        self.lock().insert(settings.clone(), client.clone());
        Ok(client)
    }
}

/// A small least-recently-used map; lookups are linear, which is cheap at its capacity.
#[derive(Debug)]
pub(super) struct LruCache<K, V> {
    /// Entries from least to most recently used.
    entries: VecDeque<(K, V)>,
    capacity: usize,
}

impl<K: PartialEq, V: Clone> LruCache<K, V> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity + 1),
            capacity,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns the value of `key` and marks it most recently used.
    pub(super) fn get(&mut self, key: &K) -> Option<V> {
        let position = self
            .entries
            .iter()
            .position(|(entry_key, _)| entry_key == key)?;
        let entry = self.entries.remove(position).expect("position is in range");
        let value = entry.1.clone();
        self.entries.push_back(entry);
        Some(value)
    }

    /// Inserts or replaces `key`, dropping the least recently used entries beyond capacity.
    pub(super) fn insert(&mut self, key: K, value: V) {
        self.entries.retain(|(entry_key, _)| *entry_key != key);
        self.entries.push_back((key, value));
        while self.entries.len() > self.capacity {
            self.entries.pop_front();
        }
    }
}

async fn build_client(settings: &ClientSettings) -> Result<Client, String> {
    let mut builder = Client::builder();
    if let Some(timeout) = settings.timeout {
        builder = builder.timeout(timeout);
    }
    if settings.tls_no_verify_peer {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    match (
        &settings.tls_certificate_file,
        &settings.tls_certificate_key_file,
    ) {
        (Some(certificate_file), Some(key_file)) => {
            let mut pem = read_pem("tlsCertificateFile", certificate_file).await?;
            pem.push(b'\n');
            pem.extend(read_pem("tlsCertificateKeyFile", key_file).await?);
            let identity = Identity::from_pem(&pem).map_err(|error| {
                format!(
                    "loading the client certificate: {}",
                    error_chain_text(&error)
                )
            })?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => {
            return Err(
                "tlsCertificateFile and tlsCertificateKeyFile must be set together".to_owned(),
            );
        }
    }
    if let Some(root_cas_file) = &settings.tls_root_cas_file {
        let pem = read_pem("tlsRootCAsFile", root_cas_file).await?;
        let certificates = Certificate::from_pem_bundle(&pem).map_err(|error| {
            format!(
                "tlsRootCAsFile {}: parsing certificates: {}",
                root_cas_file.display(),
                error_chain_text(&error)
            )
        })?;
        if certificates.is_empty() {
            return Err(format!(
                "tlsRootCAsFile {}: no PEM certificates found",
                root_cas_file.display()
            ));
        }
        builder = builder.tls_certs_only(certificates);
    }
    builder
        .build()
        .map_err(|error| format!("building the HTTP client: {}", error_chain_text(&error)))
}

async fn read_pem(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    tokio::fs::read(path)
        .await
        .map_err(|error| format!("{key} {}: {error}", path.display()))
}

/// Returns an error's message followed by the messages of its sources, joined by `": "`.
fn error_chain_text(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
