//! rkron-ui owns the dashboard: its HTML, CSS and ES modules, compiled into the binary, and the
//! axum router that serves them under `/ui/` (issue 6).
//!
//! The dashboard is plain ES modules calling the `/v1` API: no JavaScript toolchain, bundler or
//! network is needed to build or run it. Assets live under
//! `/ui/assets/<version>/<file>`, where `<version>` is a hash of every asset, so browsers may
//! cache them forever; every other path under `/ui/` answers `index.html` (the dashboard routes
//! in the browser), which is never cached without revalidation.

mod assets;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

pub use assets::{Asset, asset, assets, version};

/// Where the dashboard is mounted.
pub const MOUNT: &str = "/ui/";

/// `Cache-Control` of versioned assets: their URL changes with their content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of the HTML shell and of assets asked for under an old version.
const REVALIDATE: &str = "no-cache";
/// The dashboard talks only to its own origin and runs no inline code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'self'; frame-ancestors 'none'; form-action 'self'";

/// Builds the router serving the dashboard under [`MOUNT`], for any router state.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent(MOUNT) }))
        .route("/ui/", get(shell))
        .route("/ui/assets/{version}/{*file}", get(serve_asset))
        .route("/ui/{*path}", get(shell))
}

/// Answers `index.html` with the asset version filled in.
async fn shell(request_headers: HeaderMap) -> Response {
    let etag = format!("\"{}\"", version());
    if if_none_match(&request_headers, &etag) {
        return not_modified(&etag, REVALIDATE);
    }
    let mut response = assets::index_html().into_response();
    let headers = response.headers_mut();
    set(headers, header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(headers, header::CACHE_CONTROL, REVALIDATE);
    set(headers, header::ETAG, &etag);
    set_security_headers(headers);
    response
}

/// Answers one asset: immutable under the current version, revalidated under another one (a
/// page loaded before an upgrade still gets today's file).
async fn serve_asset(
    Path((asked_version, file)): Path<(String, String)>,
    request_headers: HeaderMap,
) -> Response {
    let Some(found) = asset(&file) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no dashboard asset {file}"),
        )
            .into_response();
    };
    let current = asked_version == version();
    let cache = if current { IMMUTABLE } else { REVALIDATE };
    let etag = format!("\"{}-{}\"", version(), found.path);
    if if_none_match(&request_headers, &etag) {
        return not_modified(&etag, cache);
    }
    let mut response = found.bytes.into_response();
    let headers = response.headers_mut();
    set(headers, header::CONTENT_TYPE, found.content_type());
    set(headers, header::CACHE_CONTROL, cache);
    set(headers, header::ETAG, &etag);
    set_security_headers(headers);
    response
}

fn if_none_match(request_headers: &HeaderMap, etag: &str) -> bool {
    request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        })
}

fn not_modified(etag: &str, cache: &str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    let headers = response.headers_mut();
    set(headers, header::ETAG, etag);
    set(headers, header::CACHE_CONTROL, cache);
    response
}

fn set_security_headers(headers: &mut HeaderMap) {
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::REFERRER_POLICY, "same-origin");
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests;
