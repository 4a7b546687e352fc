//! API errors: each becomes a status code and a JSON body `{"error": "<Dkron's message>"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rkron_api_types::ErrorOut;
use rkron_node::NodeError;
use rkron_store::StoreError;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 with Dkron's payload-parse wording.
    pub fn unparsable(why: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("Unable to parse payload: {why}."),
        )
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let status = match &e {
            NodeError::Invalid(_) => StatusCode::BAD_REQUEST,
            NodeError::ParentNotFound | NodeError::JobNotFound | NodeError::ExecutionNotFound => {
                StatusCode::NOT_FOUND
            }
            NodeError::HasDependents | NodeError::Contended(_) | NodeError::NotRunning => {
                StatusCode::CONFLICT
            }
            NodeError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::Paused => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            NodeError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let message = match e {
            NodeError::Invalid(m) => format!("Job validation failed: {m}."),
            other => other.to_string(),
        };
        Self::new(status, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorOut {
                error: self.message,
            }),
        )
            .into_response()
    }
}
