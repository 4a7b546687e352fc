//! rkron-api owns the Dkron-compatible REST API: axum routes, thin handlers over the node
//! handle, and the mapping of errors to HTTP statuses with Dkron's message text.

mod convert;
mod error;
mod fires;
mod handlers;
mod layers;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use rkron_node::NodeHandle;

pub use error::ApiError;

/// Renders the Prometheus text exposition of the process's metrics.
pub type MetricsRender = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// Options of the HTTP API.
#[derive(Clone)]
pub struct ApiOptions {
    /// Serves `GET /metrics` when set (Dkron's `enable-prometheus`).
    pub metrics: Option<MetricsRender>,
    /// Largest accepted job body, in bytes (larger answers 413).
    pub max_body: usize,
    /// Largest accepted restore upload, in bytes.
    pub restore_max_body: usize,
    /// Called by `POST /v1/leave`: the node leaves the cluster and stops. Without it the route
    /// answers 500.
    pub leave: Option<LeaveHook>,
    /// Serves the dashboard under `/ui/` and redirects `GET /` there for browsers (Dkron's
    /// `ui`); default true.
    pub ui: bool,
}

/// What `POST /v1/leave` calls to make the node leave and stop.
pub type LeaveHook = std::sync::Arc<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for ApiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiOptions")
            .field("metrics", &self.metrics.is_some())
            .field("max_body", &self.max_body)
            .field("restore_max_body", &self.restore_max_body)
            .field("ui", &self.ui)
            .finish()
    }
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            metrics: None,
            max_body: 1024 * 1024,
            restore_max_body: 64 * 1024 * 1024,
            leave: None,
            ui: true,
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) node: NodeHandle,
    pub(crate) leave: Option<LeaveHook>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("node", &self.node)
            .field("leave", &self.leave.is_some())
            .finish()
    }
}

/// Builds the API router for a node.
pub fn router(node: NodeHandle, options: &ApiOptions) -> Router {
    use handlers as h;
    let whom = node.node_name().to_owned();
    let state = AppState {
        node,
        leave: options.leave.clone(),
    };
    let restore = Router::new()
        .route("/v1/restore", post(h::restore))
        .layer(DefaultBodyLimit::max(options.restore_max_body));
    let v1 = Router::new()
        .route("/v1", get(h::status))
        .route("/v1/", get(h::status))
        .route("/v1/members", get(h::members))
        .route("/v1/leader", get(h::leader))
        .route("/v1/isleader", get(h::is_leader))
        .route("/v1/leave", post(h::leave))
        .route(
            "/v1/jobs",
            get(h::list_jobs).post(h::upsert_job).patch(h::upsert_job),
        )
        .route(
            "/v1/jobs/",
            get(h::list_jobs).post(h::upsert_job).patch(h::upsert_job),
        )
        .route(
            "/v1/jobs/{job}",
            get(h::get_job)
                .put(h::upsert_job_put)
                .delete(h::delete_job)
                .post(h::run_job),
        )
        .route("/v1/jobs/{job}/run", post(h::run_job))
        .route("/v1/jobs/{job}/toggle", post(h::toggle_job))
        .route("/v1/jobs/{job}/missed", get(h::missed_fires))
        .route("/v1/jobs/{job}/next", get(fires::job_next))
        .route("/v1/schedule/preview", post(fires::preview))
        .route("/v1/summary", get(h::summary))
        .route(
            "/v1/jobs/{job}/executions",
            get(h::list_executions).delete(h::delete_executions),
        )
        .route(
            "/v1/jobs/{job}/executions/",
            get(h::list_executions).delete(h::delete_executions),
        )
        .route(
            "/v1/jobs/{job}/executions/{execution}",
            get(h::get_execution),
        )
        .route(
            "/v1/jobs/{job}/executions/{execution}/kill",
            post(h::kill_execution),
        )
        .route("/v1/executions/{job}", get(h::list_executions))
        .route("/v1/busy", get(h::busy))
        .route("/v1/pause", get(h::get_pause).post(h::pause))
        .route("/v1/unpause", post(h::unpause))
        .layer(DefaultBodyLimit::max(options.max_body))
        .merge(restore)
        .fallback(h::not_found)
        .method_not_allowed_fallback(h::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            whom,
            layers::whom_and_pretty,
        ))
        .layer(layers::cors());
    let mut root = Router::new().route("/health", get(h::health));
    if let Some(render) = options.metrics.clone() {
        root = root.route(
            "/metrics",
            get(move || {
                let text = render();
                async move { ([("content-type", "text/plain; version=0.0.4")], text) }
            }),
        );
    }
    if options.ui {
        root = root.route("/", get(h::root)).merge(rkron_ui::router());
    }
    root.merge(v1).with_state(state)
}
