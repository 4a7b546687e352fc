//! Cross-cutting HTTP behaviour: the `X-Whom` header, `?pretty` indentation and permissive CORS.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{Any, CorsLayer};

/// Largest response body re-indented for `?pretty`.
const PRETTY_LIMIT: usize = 64 * 1024 * 1024;

/// CORS for every origin, method and header, exposing `X-Total-Count` (Dkron's UI needs it).
pub(crate) fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers(Any)
}

/// Adds `X-Whom: <node>` and re-indents JSON answers when the query has `pretty`.
pub(crate) async fn whom_and_pretty(
    State(node): State<String>,
    request: Request,
    next: Next,
) -> Response {
    let pretty = request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv == "pretty" || kv.starts_with("pretty="))
    });
    let mut response = next.run(request).await;
    if let Ok(v) = HeaderValue::from_str(&node) {
        response.headers_mut().insert("X-Whom", v);
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/json"));
    if !pretty || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, PRETTY_LIMIT).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| serde_json::to_vec_pretty(&v).ok())
    {
        Some(pretty) => pretty,
        None => bytes.to_vec(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
