//! A real etcd for one test: free 127.0.0.1 ports, a temporary data dir, killed on drop.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rkron_store::testsuite::listens_on;
use rkron_store_etcd::{EtcdConfig, EtcdStore};
use tempfile::TempDir;
use tokio::time::Instant;

/// How long etcd may take to report healthy.
const STARTUP: Duration = Duration::from_secs(30);
/// Attempts at starting etcd on fresh ports (another process may take a port meanwhile).
const PORT_ATTEMPTS: usize = 5;

/// A running etcd server of one test.
#[derive(Debug)]
pub(crate) struct Etcd {
    child: Option<Child>,
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
    extra_args: Vec<String>,
}

/// Fails the test when `etcd` is not installed: a backend test must never skip silently.
fn ensure_installed() {
    match Command::new("etcd").arg("--version").output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "`etcd --version` failed ({}); run scripts/test-deps to install etcd",
            output.status
        ),
        Err(error) => panic!(
            "etcd is not on PATH ({error}): run scripts/test-deps to install the test servers"
        ),
    }
}

/// Answers two ports that were free a moment ago.
fn free_ports() -> (u16, u16) {
    let client = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let peer = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    (
        client.local_addr().expect("local address").port(),
        peer.local_addr().expect("local address").port(),
    )
}

impl Etcd {
    /// Starts etcd with default settings.
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts etcd with `extra_args` added to its command line.
    pub(crate) async fn start_with(extra_args: &[&str]) -> Self {
        ensure_installed();
        for _ in 0..PORT_ATTEMPTS {
            let (client_port, peer_port) = free_ports();
            let mut etcd = Self {
                child: None,
                dir: tempfile::tempdir().expect("temp dir"),
                client_port,
                peer_port,
                extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
            };
            etcd.spawn();
            if etcd.wait_healthy().await {
                return etcd;
            }
            // Most likely a port was taken between probing and binding: try other ports.
            eprintln!("etcd did not start; log:\n{}", etcd.log());
            etcd.kill();
        }
        panic!("etcd did not start after {PORT_ATTEMPTS} attempts");
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// The server's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the etcd log");
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
    }

    /// Waits until `/health` answers healthy; `false` if etcd exited or took too long.
    async fn wait_healthy(&mut self) -> bool {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("http client");
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().expect("poll etcd").is_some()
            {
                return false;
            }
            let health = client
                .get(format!("{}/health", self.url()))
                .send()
                .await
                .ok();
            if let Some(response) = health
                && let Ok(body) = response.text().await
                && body.contains(r#""health":"true""#)
                && self.owns_client_port()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Whether our etcd process holds the client port (not another test's server).
    fn owns_client_port(&self) -> bool {
        self.child
            .as_ref()
            .is_some_and(|child| listens_on(child.id(), self.client_port))
    }

    /// The client endpoint as `host:port`.
    pub(crate) fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The client URL.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.endpoint())
    }

    /// A configuration for this server with keyspace `keyspace`.
    pub(crate) fn config(&self, keyspace: &str) -> EtcdConfig {
        EtcdConfig {
            endpoints: vec![self.endpoint()],
            keyspace: keyspace.to_owned(),
            ..EtcdConfig::default()
        }
    }

    /// Connects a store with keyspace `keyspace`.
    pub(crate) async fn store(&self, keyspace: &str) -> EtcdStore {
        EtcdStore::connect(self.config(keyspace))
            .await
            .unwrap_or_else(|e| panic!("connect to etcd at {}: {e}", self.endpoint()))
    }

    /// Posts `body` to the gateway at `path`; panics unless etcd accepts it. Answers the reply.
    pub(crate) async fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.url()))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: HTTP {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }

    fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("etcd is running");
        let pid = i32::try_from(child.id()).expect("pid fits an i32");
        kill(Pid::from_raw(pid), signal).expect("signal etcd");
    }

    /// Freezes the server (SIGSTOP): connections are accepted, nothing answers.
    /// Returns once every thread of it has stopped (`kill` returns before that).
    pub(crate) async fn pause(&self) {
        self.signal(Signal::SIGSTOP);
        let pid = self.child.as_ref().expect("etcd is running").id();
        rkron_store::testsuite::until_stopped(pid).await;
    }

    /// Thaws a paused server.
    pub(crate) fn resume(&self) {
        self.signal(Signal::SIGCONT);
    }

    /// Kills the server and waits for it to exit; its data dir stays.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data dir and ports.
    pub(crate) async fn restart(&mut self) {
        self.kill();
        self.spawn();
        assert!(
            self.wait_healthy().await,
            "etcd did not restart; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
