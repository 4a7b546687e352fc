//! The dashboard's files, compiled into the binary with `include_bytes!`, and their version hash.

use std::sync::OnceLock;

/// One file of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Its path under `assets/` (and under `/ui/assets/<version>/`).
    pub path: &'static str,
    /// Its content.
    pub bytes: &'static [u8],
}

impl Asset {
    /// Returns the `Content-Type` for the file's extension.
    pub fn content_type(&self) -> &'static str {
        let extension = self.path.rsplit('.').next().unwrap_or("");
        match extension {
            "html" => "text/html; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "js" => "text/javascript; charset=utf-8",
            "json" => "application/json",
            "svg" => "image/svg+xml",
            "png" => "image/png",
            _ => "application/octet-stream",
        }
    }
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset { path: $path, bytes: include_bytes!(concat!("../assets/", $path)) }),*]
    };
}

/// Every file served under `/ui/assets/<version>/` (a test checks that none is missing).
const ASSETS: &[Asset] = assets![
    "app.js",
    "api.js",
    "dom.js",
    "format.js",
    "jobform.js",
    "pages/overview.js",
    "pages/jobs.js",
    "pages/job.js",
    "pages/edit.js",
    "pages/busy.js",
    "pages/members.js",
    "style.css",
    "favicon.svg",
];

/// The HTML shell; `{{ASSETS}}` stands for `/ui/assets/<version>`, and `{{MODULEPRELOADS}}` for
/// a `modulepreload` link to every module, so the browser fetches them all at once instead of
/// discovering them import by import.
const INDEX_TEMPLATE: &str = include_str!("../assets/index.html");

/// Returns every asset.
pub fn assets() -> &'static [Asset] {
    ASSETS
}

/// Finds the asset at `path` (relative to `assets/`).
pub fn asset(path: &str) -> Option<Asset> {
    ASSETS.iter().find(|a| a.path == path).copied()
}

/// Returns the version of the assets: FNV-1a 64 of every path and content, in hex.
///
/// It changes whenever any asset changes, so asset URLs can be cached forever.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let hash = ASSETS
            .iter()
            .flat_map(|a| a.path.as_bytes().iter().chain(a.bytes.iter()))
            .chain(INDEX_TEMPLATE.as_bytes().iter())
            .fold(OFFSET_BASIS, |hash, byte| {
                (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
            });
        format!("{hash:016x}")
    })
}

/// Returns `index.html` with the versioned asset prefix filled in.
pub(crate) fn index_html() -> &'static str {
    static INDEX: OnceLock<String> = OnceLock::new();
    INDEX.get_or_init(|| {
        let preloads: Vec<String> = ASSETS
            .iter()
            .filter(|a| a.path.ends_with(".js"))
            .map(|a| {
                format!(
                    r#"<link rel="modulepreload" href="{{{{ASSETS}}}}/{}">"#,
                    a.path
                )
            })
            .collect();
        INDEX_TEMPLATE
            .replace("{{MODULEPRELOADS}}", &preloads.join("\n"))
            .replace(
                "{{ASSETS}}",
                &format!("{}assets/{}", crate::MOUNT, version()),
            )
    })
}
