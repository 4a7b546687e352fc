//! A real `redis-server` per test: a free 127.0.0.1 port, a temporary directory, no persistence;
//! killed when the guard drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rkron_store_redis::RedisConfig;
use tokio::time::Instant;

/// How long a server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// Finds `redis-server` on `PATH`, or fails the test saying how to install it.
fn redis_server_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "redis-server is not on PATH: the Redis store tests need a real Redis server; \
                 run scripts/test-deps (as root) to install it"
            )
        })
}

/// Returns a port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A running `redis-server`, killed on drop.
#[derive(Debug)]
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Extra arguments after the port settings (`--requirepass …`, TLS settings, …).
    args: Vec<String>,
    /// Whether the port is a TLS port (`--tls-port`) rather than `--port`.
    tls: bool,
}

impl RedisServer {
    /// Starts a plain server.
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a plain server with extra arguments.
    pub(crate) async fn start_with(args: &[&str]) -> Self {
        Self::launch(args, false).await
    }

    /// Starts a server that speaks only TLS, with the given TLS arguments.
    pub(crate) async fn start_tls(args: &[&str]) -> Self {
        Self::launch(args, true).await
    }

    async fn launch(args: &[&str], tls: bool) -> Self {
        let binary = redis_server_binary();
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            tls,
        };
        // Another process may take the port between probing and binding: try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn(&binary).await {
                return server;
            }
        }
        panic!("redis-server did not start: {}", server.log());
    }

    /// The server's `host:port`.
    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id of the running server.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// A store configuration for `keyspace` on this server.
    pub(crate) fn config(&self, keyspace: &str) -> RedisConfig {
        RedisConfig {
            addresses: vec![self.address()],
            keyspace: keyspace.to_owned(),
            ..RedisConfig::default()
        }
    }

    /// A plain client for looking behind the store's back.
    pub(crate) async fn raw(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("redis://{}", self.address())).expect("client");
        client
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    }

    /// Kills the server (`SIGKILL`) and waits for it to exit.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, after [`Self::kill`].
    pub(crate) async fn restart(&mut self) {
        self.kill();
        let binary = redis_server_binary();
        // The old socket may linger for a moment.
        for _ in 0..10 {
            if self.spawn(&binary).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("redis-server did not restart: {}", self.log());
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The server's log.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Spawns the server and waits until it accepts connections; false if it exited.
    async fn spawn(&mut self, binary: &Path) -> bool {
        let _ = std::fs::remove_file(self.log_path());
        let port = self.port.to_string();
        let port_args: Vec<&str> = if self.tls {
            vec!["--port", "0", "--tls-port", &port]
        } else {
            vec!["--port", &port]
        };
        let child = Command::new(binary)
            .args(port_args)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(["--daemonize", "no"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if self.log().contains("Ready to accept connections") {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
                .is_some();
            if exited {
                self.child = None;
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
