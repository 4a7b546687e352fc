//! Tests of the `http` executor against real local HTTP and HTTPS servers, covering every Dkron
//! §7.2 vector.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_util::sync::CancellationToken;

use super::executor::LruCache;
use super::{CLIENT_CACHE_CAPACITY, HttpExecutor};
use crate::{ExecuteOutcome, ExecuteRequest, Executor, OUTPUT_LIMIT, OutputBuffer};

/// Starts the plain HTTP test server and returns its base URL.
async fn spawn_http_server() -> String {
    async fn echo_headers(headers: HeaderMap) -> String {
        let mut lines: Vec<String> = headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-"))
            .map(|(name, value)| format!("{name}={}", value.to_str().unwrap_or("?")))
            .collect();
        lines.sort();
        lines.join("\n")
    }
    let app = Router::new()
        .route("/200", get(|| async { StatusCode::OK }))
        .route("/400", get(|| async { StatusCode::BAD_REQUEST }))
        .route(
            "/500",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
        )
        .route("/hello", get(|| async { "hello" }))
        .route("/echo", post(|body: String| async move { body }))
        .route("/headers", get(echo_headers))
        .route(
            "/big",
            get(|| async { format!("{}end", "x".repeat(300_000)) }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

fn request(pairs: &[(&str, &str)]) -> ExecuteRequest {
    ExecuteRequest {
        job_name: "http-job".to_owned(),
        config: pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
    }
}

async fn run_with(executor: &HttpExecutor, pairs: &[(&str, &str)]) -> (ExecuteOutcome, String) {
    let output = OutputBuffer::new();
    let outcome = executor
        .execute(&request(pairs), &output, CancellationToken::new())
        .await;
    (outcome, output.snapshot())
}

async fn run(pairs: &[(&str, &str)]) -> (ExecuteOutcome, String) {
    run_with(&HttpExecutor::new(), pairs).await
}

#[tokio::test]
async fn expected_200_succeeds_with_empty_output() {
    let base = spawn_http_server().await;
    let url = format!("{base}/200");
    let (outcome, output) = run(&[("method", "GET"), ("url", &url), ("expectCode", "200")]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "");
}

#[tokio::test]
async fn expected_400_succeeds() {
    let base = spawn_http_server().await;
    let url = format!("{base}/400");
    let (outcome, _) = run(&[("method", "GET"), ("url", &url), ("expectCode", "400")]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
}

#[tokio::test]
async fn unexpected_code_fails() {
    let base = spawn_http_server().await;
    let url = format!("{base}/400");
    let (outcome, _) = run(&[("method", "GET"), ("url", &url), ("expectCode", "200")]).await;
    assert_eq!(
        outcome,
        ExecuteOutcome::failed("received response code does not match the expected code")
    );
}

#[tokio::test]
async fn expect_code_accepts_a_list() {
    let base = spawn_http_server().await;
    let url = format!("{base}/400");
    let (outcome, _) = run(&[
        ("method", "GET"),
        ("url", &url),
        ("expectCode", "200, 400,404"),
    ])
    .await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
}

#[tokio::test]
async fn empty_expect_code_accepts_any_status() {
    let base = spawn_http_server().await;
    let url = format!("{base}/500");
    let (outcome, output) = run(&[("method", "GET"), ("url", &url)]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "broken");
}

#[tokio::test]
async fn output_is_the_response_body() {
    let base = spawn_http_server().await;
    let url = format!("{base}/hello");
    let (outcome, output) = run(&[("method", "GET"), ("url", &url)]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "hello");
}

#[tokio::test]
async fn post_body_and_expect_body_match() {
    let base = spawn_http_server().await;
    let url = format!("{base}/echo");
    let body = "this is a post body";
    let (outcome, output) = run(&[
        ("method", "POST"),
        ("url", &url),
        ("body", body),
        ("expectBody", body),
    ])
    .await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, body);
}

#[tokio::test]
async fn expect_body_is_a_regex_search() {
    let base = spawn_http_server().await;
    let url = format!("{base}/echo");
    let config = [
        ("method", "POST"),
        ("url", url.as_str()),
        ("body", "job 42 done"),
        ("expectBody", r"\d+ d"),
    ];
    assert_eq!(run(&config).await.0, ExecuteOutcome::succeeded());
}

#[tokio::test]
async fn expect_body_mismatch_fails() {
    let base = spawn_http_server().await;
    let url = format!("{base}/echo");
    let (outcome, output) = run(&[
        ("method", "POST"),
        ("url", &url),
        ("body", "this is a post body"),
        ("expectBody", "not this"),
    ])
    .await;
    assert_eq!(
        outcome,
        ExecuteOutcome::failed("received response body did not match the expected body")
    );
    assert_eq!(output, "this is a post body");
}

#[tokio::test]
async fn invalid_expect_body_regex_is_an_error() {
    let (outcome, _) = run(&[
        ("method", "GET"),
        ("url", "http://127.0.0.1:1/"),
        ("expectBody", "("),
    ])
    .await;
    assert!(
        outcome
            .error
            .unwrap()
            .starts_with("invalid expectBody regular expression")
    );
}

#[tokio::test]
async fn headers_are_sent_and_split_on_the_first_colon() {
    let base = spawn_http_server().await;
    let url = format!("{base}/headers");
    let headers = r#"["X-Test: one", "X-Url: http://a:b", "X-Empty:"]"#;
    let (outcome, output) = run(&[("method", "GET"), ("url", &url), ("headers", headers)]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "x-empty=\nx-test=one\nx-url=http://a:b");
}

#[tokio::test]
async fn bad_headers_json_is_reported_in_the_output() {
    let base = spawn_http_server().await;
    let url = format!("{base}/hello");
    let (outcome, output) =
        run(&[("method", "GET"), ("url", &url), ("headers", "X-Test: one")]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "Error: parsing headers failed\nhello");
}

#[tokio::test]
async fn header_without_colon_is_skipped_with_a_warning() {
    let base = spawn_http_server().await;
    let url = format!("{base}/headers");
    let (outcome, output) = run(&[
        ("method", "GET"),
        ("url", &url),
        ("headers", r#"["X-Ok: 1", "broken"]"#),
    ])
    .await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(
        output,
        "Warning: ignoring header \"broken\" without a colon\nx-ok=1"
    );
}

#[tokio::test]
async fn missing_method_and_url_are_errors() {
    assert_eq!(
        run(&[("url", "http://x/")]).await.0,
        ExecuteOutcome::failed("method is empty")
    );
    assert_eq!(
        run(&[("method", "GET")]).await.0,
        ExecuteOutcome::failed("url is empty")
    );
}

#[tokio::test]
async fn timeout_fails_the_request() {
    let base = spawn_http_server().await;
    let url = format!("{base}/slow");
    let started = Instant::now();
    let (outcome, output) = run(&[("method", "GET"), ("url", &url), ("timeout", "1")]).await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    assert!(!outcome.success);
    assert!(
        outcome.error.as_deref().unwrap().contains("timed out"),
        "{outcome:?}"
    );
    assert_eq!(output, "");
}

#[tokio::test]
async fn bad_timeout_warns_and_uses_the_default() {
    let base = spawn_http_server().await;
    let url = format!("{base}/hello");
    let (outcome, output) = run(&[("method", "GET"), ("url", &url), ("timeout", "soon")]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(
        output,
        "Warning: parsing timeout \"soon\" failed, using the default of 30 seconds\nhello"
    );
}

#[tokio::test]
async fn debug_prefixes_the_config() {
    let base = spawn_http_server().await;
    let url = format!("{base}/hello");
    let (outcome, output) = run(&[("method", "GET"), ("url", &url), ("debug", "true")]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    let expected =
        format!("Config: {{\"debug\":\"true\",\"method\":\"GET\",\"url\":\"{url}\"}}\nhello");
    assert_eq!(output, expected);
}

#[tokio::test]
async fn long_body_keeps_the_tail() {
    let base = spawn_http_server().await;
    let url = format!("{base}/big");
    let (outcome, output) = run(&[("method", "GET"), ("url", &url)]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output.len(), OUTPUT_LIMIT);
    assert!(output.ends_with("xend"));
}

#[tokio::test]
async fn connection_refused_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let (outcome, _) = run(&[("method", "GET"), ("url", &url)]).await;
    assert!(!outcome.success);
    assert!(outcome.error.unwrap().contains("error sending request"));
}

#[tokio::test]
async fn cancellation_returns_killed_promptly() {
    let base = spawn_http_server().await;
    let url = format!("{base}/slow");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let output = OutputBuffer::new();
    let outcome = HttpExecutor::new()
        .execute(
            &request(&[("method", "GET"), ("url", &url)]),
            &output,
            cancel,
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(outcome, ExecuteOutcome::killed());
}

#[test]
fn lru_cache_stays_bounded_over_1000_distinct_keys() {
    let mut cache = LruCache::new(CLIENT_CACHE_CAPACITY);
    for key in 0..1000 {
        cache.insert(key, key * 2);
        assert!(cache.len() <= CLIENT_CACHE_CAPACITY);
    }
    assert_eq!(cache.len(), CLIENT_CACHE_CAPACITY);
    assert_eq!(cache.get(&899), None);
    assert_eq!(cache.get(&900), Some(1800));
    // 900 was just used, so 901 is now the least recently used and goes first.
    cache.insert(1000, 0);
    assert_eq!(cache.get(&901), None);
    assert_eq!(cache.get(&900), Some(1800));
    cache.insert(900, 7);
    assert_eq!(cache.get(&900), Some(7));
    assert_eq!(cache.len(), CLIENT_CACHE_CAPACITY);
}

#[tokio::test]
async fn client_cache_is_bounded_and_reused() {
    // Building a client costs tens of milliseconds in debug builds, so this drives only a little
    // past the capacity; the 1000-key bound is covered by the test of `LruCache`.
    let base = spawn_http_server().await;
    let url = format!("{base}/200");
    let executor = HttpExecutor::new();
    for timeout in 1..=CLIENT_CACHE_CAPACITY + 20 {
        let timeout_text = timeout.to_string();
        let config = [
            ("method", "GET"),
            ("url", url.as_str()),
            ("timeout", &timeout_text),
        ];
        assert_eq!(
            run_with(&executor, &config).await.0,
            ExecuteOutcome::succeeded()
        );
        assert!(executor.cached_clients() <= CLIENT_CACHE_CAPACITY);
    }
    assert_eq!(executor.cached_clients(), CLIENT_CACHE_CAPACITY);
    let config = [("method", "GET"), ("url", url.as_str()), ("timeout", "30")];
    run_with(&executor, &config).await;
    assert_eq!(executor.cached_clients(), CLIENT_CACHE_CAPACITY);
}

#[tokio::test]
async fn missing_root_ca_file_is_a_clear_error() {
    let (outcome, _) = run(&[
        ("method", "GET"),
        ("url", "https://127.0.0.1:1/"),
        ("tlsRootCAsFile", "/nonexistent/ca.pem"),
    ])
    .await;
    let error = outcome.error.unwrap();
    assert!(
        error.starts_with("tlsRootCAsFile /nonexistent/ca.pem: "),
        "{error}"
    );
}

#[tokio::test]
async fn root_ca_file_without_certificates_is_an_error() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("empty.pem");
    std::fs::write(&path, "no certificates here\n").unwrap();
    let path_text = path.to_str().unwrap();
    let (outcome, _) = run(&[
        ("method", "GET"),
        ("url", "https://127.0.0.1:1/"),
        ("tlsRootCAsFile", path_text),
    ])
    .await;
    assert!(outcome.error.unwrap().contains("no PEM certificates found"));
}

#[tokio::test]
async fn certificate_without_key_is_an_error() {
    let (outcome, _) = run(&[
        ("method", "GET"),
        ("url", "https://127.0.0.1:1/"),
        ("tlsCertificateFile", "/tmp/cert.pem"),
    ])
    .await;
    assert_eq!(
        outcome,
        ExecuteOutcome::failed("tlsCertificateFile and tlsCertificateKeyFile must be set together")
    );
}

/// A test CA with a server certificate for 127.0.0.1 and a client certificate, as PEM files.
struct TestPki {
    directory: tempfile::TempDir,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
    ca_der: CertificateDer<'static>,
}

impl TestPki {
    fn generate() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "rkron test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        server_params
            .distinguished_name
            .push(DnType::CommonName, "rkron test server");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "rkron test client");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(directory.path().join("client.pem"), client_cert.pem()).unwrap();
        std::fs::write(
            directory.path().join("client.key"),
            client_key.serialize_pem(),
        )
        .unwrap();
        Self {
            directory,
            server_chain: vec![server_cert.der().clone()],
            server_key: server_key.serialize_der(),
            ca_der: ca_cert.der().clone(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.directory
            .path()
            .join(name)
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Starts an HTTPS server; with `require_client_certificate`, only clients holding a
    /// certificate of the test CA are served.
    async fn spawn_server(&self, require_client_certificate: bool) -> SocketAddr {
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_certificate {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let config = builder
            .with_single_cert(self.server_chain.clone(), key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let has_client_certificate = tls.get_ref().1.peer_certificates().is_some();
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => head.extend_from_slice(&chunk[..read]),
                        }
                    }
                    let body = if has_client_certificate {
                        "secure client"
                    } else {
                        "secure"
                    };
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        address
    }
}

#[tokio::test]
async fn untrusted_server_certificate_fails() {
    let pki = TestPki::generate();
    let address = pki.spawn_server(false).await;
    let url = format!("https://{address}/");
    let (outcome, output) = run(&[("method", "GET"), ("url", &url)]).await;
    assert!(!outcome.success);
    assert!(outcome.error.unwrap().contains("certificate"));
    assert_eq!(output, "");
}

#[tokio::test]
async fn tls_no_verify_peer_accepts_an_untrusted_certificate() {
    let pki = TestPki::generate();
    let address = pki.spawn_server(false).await;
    let url = format!("https://{address}/");
    let (outcome, output) = run(&[
        ("method", "GET"),
        ("url", &url),
        ("tlsNoVerifyPeer", "true"),
    ])
    .await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "secure");
}

#[tokio::test]
async fn root_ca_file_trusts_the_server() {
    let pki = TestPki::generate();
    let address = pki.spawn_server(false).await;
    let url = format!("https://{address}/");
    let ca = pki.path("ca.pem");
    let (outcome, output) = run(&[
        ("method", "GET"),
        ("url", &url),
        ("tlsRootCAsFile", &ca),
        ("expectCode", "200"),
    ])
    .await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "secure");
}

#[tokio::test]
async fn client_certificate_is_presented() {
    let pki = TestPki::generate();
    let address = pki.spawn_server(true).await;
    let url = format!("https://{address}/");
    let ca = pki.path("ca.pem");
    let without_certificate =
        run(&[("method", "GET"), ("url", &url), ("tlsRootCAsFile", &ca)]).await;
    assert!(!without_certificate.0.success);

    let certificate = pki.path("client.pem");
    let key = pki.path("client.key");
    let (outcome, output) = run(&[
        ("method", "GET"),
        ("url", &url),
        ("tlsRootCAsFile", &ca),
        ("tlsCertificateFile", &certificate),
        ("tlsCertificateKeyFile", &key),
    ])
    .await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "secure client");
}
