//! `rkron agent`: composes a node from its configuration (store, executors, node runtime, HTTP
//! API) and runs it until the shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rkron_api::{ApiOptions, router};
use rkron_core::SystemClock;
use rkron_executor::ExecutorRegistry;
use rkron_node::{Node, NodeConfig, Plugins};
use rkron_notify::{Notifier, NotifySettings};
use rkron_processor::{ProcessorRegistry, ProcessorSettings};
use rkron_store::Store;
use tokio::net::TcpListener;

use crate::config::{AgentConfig, Backend};

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot open the store: {0}")]
    Store(String),
    #[error("cannot listen for HTTP on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("node failed to start: {0}")]
    Node(#[from] rkron_node::NodeError),
    #[error("HTTP server failed: {0}")]
    Serve(String),
}

/// Opens the store chosen by `backend`. This is the only place that names a backend.
fn store_from_config(config: &AgentConfig) -> Result<Arc<dyn Store>, AgentError> {
    match config.backend {
        Backend::Embedded => {
            let store = rkron_store_embedded::EmbeddedStore::open(&config.data_dir)
                .map_err(|e| AgentError::Store(e.to_string()))?;
            Ok(Arc::new(store))
        }
        other => Err(AgentError::Unsupported(format!(
            "backend {other:?} is not available in this build yet; the embedded store (backend: embedded) is"
        ))),
    }
}

fn notify_settings(config: &AgentConfig) -> NotifySettings {
    NotifySettings {
        node_name: config.node_name.clone(),
        mail_host: config.mail_host.clone().unwrap_or_default(),
        mail_port: config.mail_port,
        mail_username: config.mail_username.clone().unwrap_or_default(),
        mail_password: config
            .mail_password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default(),
        mail_from: config.mail_from.clone().unwrap_or_default(),
        mail_subject_prefix: config.mail_subject_prefix.clone(),
        mail_payload: config.mail_payload.clone().unwrap_or_default(),
        webhook_endpoint: config.webhook_endpoint.clone().unwrap_or_default(),
        webhook_payload: config.webhook_payload.clone().unwrap_or_default(),
        webhook_headers: config.webhook_headers.clone(),
        pre_webhook_endpoint: config.pre_webhook_endpoint.clone().unwrap_or_default(),
        pre_webhook_payload: config.pre_webhook_payload.clone().unwrap_or_default(),
        pre_webhook_headers: config.pre_webhook_headers.clone(),
    }
}

fn node_config(config: &AgentConfig) -> NodeConfig {
    let advertise = config
        .advertise_addr
        .clone()
        .unwrap_or_else(|| config.bind_addr.clone());
    let (ip, port) = match advertise.parse::<SocketAddr>() {
        Ok(addr) if !addr.ip().is_unspecified() => (addr.ip().to_string(), addr.port()),
        Ok(addr) => ("127.0.0.1".to_owned(), addr.port()),
        Err(_) => {
            let (host, port) = advertise
                .rsplit_once(':')
                .unwrap_or((advertise.as_str(), "8946"));
            (host.to_owned(), port.parse().unwrap_or(8946))
        }
    };
    NodeConfig {
        node_name: config.node_name.clone(),
        server: config.server,
        region: config.region.clone(),
        datacenter: config.datacenter.clone(),
        tags: config.tags.clone(),
        advertise_ip: ip,
        advertise_port: port,
        rpc_port: if config.advertise_rpc_port == 0 {
            config.rpc_port
        } else {
            config.advertise_rpc_port
        },
        execution_retention: config.execution_retention,
        shutdown_grace_period: config.shutdown_grace_period,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        report_margin: std::time::Duration::from_secs(30),
    }
}

/// Runs an agent until `shutdown` resolves, then stops it in order (API, scheduler, running
/// executions within the grace period, store).
pub async fn run(
    config: AgentConfig,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    if !config.server {
        return Err(AgentError::Unsupported(
            "an agent without --server joins a cluster of servers, which this build does not do yet; \
             start a server with `rkron agent --server`"
                .to_owned(),
        ));
    }
    // The recorder goes in first, so the catch-up at start-up is counted too.
    let metrics = if config.enable_prometheus {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| {
                AgentError::Unsupported(format!("cannot start Prometheus metrics: {e}"))
            })?;
        let render: rkron_api::MetricsRender = Arc::new(move || handle.render());
        Some(render)
    } else {
        None
    };
    let store = store_from_config(&config)?;
    let clock = Arc::new(SystemClock);
    let plugins = Plugins {
        executors: ExecutorRegistry::with_builtins(),
        processors: ProcessorRegistry::with_builtins(ProcessorSettings {
            node_name: config.node_name.clone(),
            fluent_host: config.fluent_host.clone(),
            fluent_port: config.fluent_port,
            fluent_tag: config.fluent_tag.clone(),
        }),
        notifier: Notifier::new(notify_settings(&config)),
    };
    let node = Node::start(node_config(&config), store, plugins, clock).await?;
    let listener = match listener {
        Some(l) => l,
        None => {
            let addr = config.http_socket_addr().map_err(|e| AgentError::Listen {
                addr: config.http_addr.clone(),
                reason: e.to_string(),
            })?;
            TcpListener::bind(addr)
                .await
                .map_err(|e| AgentError::Listen {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(node = %config.node_name, http = %local, data_dir = %config.data_dir.display(), "rkron server started; HTTP API listening on {local}");
    let options = ApiOptions {
        metrics,
        max_body: config.http_max_body,
        restore_max_body: config.restore_max_body,
    };
    let app = router(node.clone(), &options);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    node.shutdown().await;
    served.map_err(|e| AgentError::Serve(e.to_string()))
}
