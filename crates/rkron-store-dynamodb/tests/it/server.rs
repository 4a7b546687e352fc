//! A real `moto_server` (moto's local DynamoDB endpoint) for one test: a free 127.0.0.1 port,
//! its log in a temporary directory, killed when the guard drops. moto keeps everything in
//! memory, so a restarted server starts empty.
//!
//! moto starts with `tests/moto` on `PYTHONPATH`, whose `sitecustomize.py` makes its DynamoDB
//! model atomic (moto serves requests on unsynchronized threads) and its transactions cost
//! what they touch rather than the whole table (moto deep-copies each table a transaction
//! names: 9 s per transaction at 5,000 items). See that file.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rkron_store::testsuite::listens_on;
use rkron_store_dynamodb::{DynamoConfig, DynamoStore};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What the patch in `tests/moto/sitecustomize.py` prints once applied.
const PATCH_MARKER: &str = "rkron: moto DynamoDB patched";

/// How long moto may take to answer (it imports a lot of Python at start-up).
const STARTUP: Duration = Duration::from_secs(60);
/// The per-call deadline of the tests' stores: moto is slow Python (a 10,000-item query page
/// takes about 3 s on an idle machine), and tests run four at a time on two cores.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting moto on fresh ports (another process may take a port meanwhile).
const PORT_ATTEMPTS: usize = 5;

/// Finds `moto_server`: `$RKRON_MOTO_SERVER`, else the virtualenv `scripts/test-deps` makes.
/// Fails the test when it is missing: a backend test must never skip silently.
fn moto_binary() -> PathBuf {
    let path = std::env::var_os("RKRON_MOTO_SERVER").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/test-deps/motovenv/bin/moto_server")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "moto_server not found at {}: the DynamoDB store tests need moto's local DynamoDB \
         endpoint; run scripts/test-deps to install it (or point RKRON_MOTO_SERVER at one)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A running `moto_server` of one test.
#[derive(Debug)]
pub(crate) struct Moto {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers.
    pub(crate) async fn start() -> Self {
        let binary = moto_binary();
        let mut moto = Self {
            child: None,
            port: 0,
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        for _ in 0..PORT_ATTEMPTS {
            moto.port = free_port();
            if moto.spawn(&binary).await {
                return moto;
            }
            eprintln!("moto_server did not start; log:\n{}", moto.log());
        }
        panic!("moto_server did not start after {PORT_ATTEMPTS} attempts");
    }

    /// The endpoint URL.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A store configuration for `table` on this server, creating the table.
    pub(crate) fn config(&self, table: &str) -> DynamoConfig {
        DynamoConfig {
            endpoint: Some(self.endpoint()),
            region: "us-east-1".to_owned(),
            table: table.to_owned(),
            access_key: Some("test".to_owned()),
            secret_key: Some("test".to_owned()),
            create_table: true,
            timeout: CALL_TIMEOUT,
            ..DynamoConfig::default()
        }
    }

    /// Connects a store to a new table `table`.
    pub(crate) async fn store(&self, table: &str) -> DynamoStore {
        DynamoStore::connect(self.config(table))
            .await
            .unwrap_or_else(|error| panic!("connect to table {table}: {error}"))
    }

    /// A raw SDK client, for looking behind the store's back.
    pub(crate) fn raw(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .endpoint_url(self.endpoint())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// Sends `signal` to the server process.
    pub(crate) fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("moto running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits an i32"));
        kill(pid, signal).expect("signal moto");
    }

    /// Freezes the server (`SIGSTOP`) and returns once every thread of it has stopped (`kill`
    /// returns before that).
    pub(crate) async fn pause(&self) {
        self.signal(Signal::SIGSTOP);
        let pid = self.child.as_ref().expect("moto running").id();
        rkron_store::testsuite::until_stopped(pid).await;
    }

    /// Kills the server (`SIGKILL`) and waits for it to exit.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, after [`Self::kill`]: empty, as moto keeps
    /// nothing.
    pub(crate) async fn restart(&mut self) {
        self.kill();
        let binary = moto_binary();
        for _ in 0..10 {
            if self.spawn(&binary).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("moto_server did not restart: {}", self.log());
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("moto.log")
    }

    /// The server's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Spawns the server and waits until `GET /moto-api/` answers 200; false if it exited or
    /// took too long.
    async fn spawn(&mut self, binary: &Path) -> bool {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the moto log");
        let patch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto");
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .env("PYTHONPATH", patch)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {}: {error}", binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().expect("poll moto").is_some()
            {
                self.child = None;
                return false;
            }
            // Counts only when our moto holds the port, not another test's server.
            let ours = self
                .child
                .as_ref()
                .is_some_and(|child| listens_on(child.id(), self.port));
            if ours && self.answers().await {
                assert!(
                    self.log().contains(PATCH_MARKER),
                    "moto_server started without the patch of tests/moto/sitecustomize.py; \
                     log:\n{}",
                    self.log()
                );
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
        false
    }

    /// Whether `GET /moto-api/` answers 200.
    async fn answers(&self) -> bool {
        let probe = async {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
            let request = "GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).await.ok()?;
            Some(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
        };
        tokio::time::timeout(Duration::from_secs(2), probe)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}
