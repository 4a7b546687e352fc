//! A real local axum server that records every request; paths under `/fail` answer 500.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use tokio::sync::mpsc;

/// One request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Hook {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Hook {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub(crate) struct HookServer {
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    requests: mpsc::UnboundedReceiver<Hook>,
}

impl HookServer {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (sender, requests) = mpsc::unbounded_channel();
        let router = Router::new().fallback(record).with_state(sender);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { base, requests }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every request received so far.
    ///
    /// The notifier awaits each answer, and the handler records before answering, so once a
    /// send has returned its request is here.
    pub(crate) fn received(&mut self) -> Vec<Hook> {
        let mut all = Vec::new();
        while let Ok(hook) = self.requests.try_recv() {
            all.push(hook);
        }
        all
    }
}

async fn record(
    State(sender): State<mpsc::UnboundedSender<Hook>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_owned();
    let failing = path.starts_with("/fail");
    let _ = sender.send(Hook {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}
