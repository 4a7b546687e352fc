//! Tests of the dashboard router: content types, caching headers and the asset table.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::*;

async fn get(path: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::get(path);
    if let Some(tag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    let response = router::<()>()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn header_of(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_dashboard_route_answers_the_shell_with_versioned_assets() {
    for path in ["/ui/", "/ui/jobs", "/ui/jobs/backup/edit", "/ui/members"] {
        let (status, headers, body) = get(path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            header_of(&headers, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_eq!(header_of(&headers, header::CACHE_CONTROL), "no-cache");
        assert_eq!(
            header_of(&headers, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        assert!(body.contains(&format!("/ui/assets/{}/app.js", version())));
        for module in assets().iter().filter(|a| a.path.ends_with(".js")) {
            let preload = format!(
                r#"<link rel="modulepreload" href="/ui/assets/{}/{}">"#,
                version(),
                module.path
            );
            assert!(body.contains(&preload), "no preload of {}", module.path);
        }
        assert!(!body.contains("{{"), "placeholder left in the shell");
    }
}

#[tokio::test]
async fn ui_without_slash_redirects() {
    let (status, headers, _) = get("/ui", None).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header_of(&headers, header::LOCATION), "/ui/");
}

#[tokio::test]
async fn current_assets_are_immutable_with_their_content_type() {
    let cases = [
        ("app.js", "text/javascript; charset=utf-8"),
        ("pages/jobs.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ];
    for (file, content_type) in cases {
        let path = format!("/ui/assets/{}/{file}", version());
        let (status, headers, body) = get(&path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header_of(&headers, header::CONTENT_TYPE), content_type);
        assert_eq!(
            header_of(&headers, header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(body.as_bytes(), asset(file).unwrap().bytes);
    }
}

#[tokio::test]
async fn assets_under_an_old_version_are_served_but_revalidated() {
    let (status, headers, _) = get("/ui/assets/0123/app.js", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header_of(&headers, header::CACHE_CONTROL), "no-cache");
}

#[tokio::test]
async fn unknown_asset_is_404() {
    let (status, _, body) = get(&format!("/ui/assets/{}/nope.js", version()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("nope.js"));
}

#[tokio::test]
async fn matching_etag_answers_304() {
    let (_, headers, _) = get("/ui/", None).await;
    let etag = header_of(&headers, header::ETAG).to_owned();
    let (status, _, body) = get("/ui/jobs", Some(&etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
}

#[test]
fn every_file_under_assets_is_compiled_in() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let mut pending = vec![root.clone()];
    let mut files = Vec::new();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                files.push(relative);
            }
        }
    }
    for file in files.iter().filter(|f| f.as_str() != "index.html") {
        assert!(
            asset(file).is_some(),
            "assets/{file} is not in the ASSETS table"
        );
    }
    assert_eq!(files.len(), assets().len() + 1, "index.html plus the table");
}

#[test]
fn modules_import_only_compiled_in_modules() {
    // A relative import of a file missing from the table would 404 in the browser.
    for module in assets().iter().filter(|a| a.path.ends_with(".js")) {
        let text = std::str::from_utf8(module.bytes).unwrap();
        let dir = module.path.rsplit_once('/').map_or("", |(d, _)| d);
        let targets = text
            .split("from '")
            .skip(1)
            .filter_map(|rest| rest.split_once('\''))
            .map(|(target, _)| target)
            .filter(|target| target.starts_with("./") || target.starts_with("../"));
        let mut imports = 0;
        for target in targets {
            imports += 1;
            let resolved = resolve(dir, target);
            assert!(
                asset(&resolved).is_some(),
                "{} imports {target} ({resolved}), which is not compiled in",
                module.path
            );
        }
        assert!(
            imports > 0 || ["dom.js", "api.js"].contains(&module.path),
            "{} imports nothing: is the parse wrong?",
            module.path
        );
    }
}

fn resolve(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}
