//! A real ZooKeeper for one test: a standalone server on a free 127.0.0.1 port, in a temporary
//! directory, killed on drop.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rkron_store::testsuite::listens_on;
use rkron_store_zk::{ZkConfig, ZkStore};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Debian's ZooKeeper jar (package `zookeeper`).
const JAR: &str = "/usr/share/java/zookeeper.jar";
/// How long ZooKeeper may take to answer `ruok`.
const STARTUP: Duration = Duration::from_secs(30);
/// Attempts at starting ZooKeeper on a fresh port (another process may take it meanwhile).
const PORT_ATTEMPTS: usize = 5;
/// The server's tick: sessions may last from 2 to 20 ticks.
const TICK_MS: u64 = 500;

/// The session timeout of the tests' stores.
pub(crate) const SESSION_TIMEOUT: Duration = Duration::from_secs(4);

/// A running ZooKeeper server of one test.
#[derive(Debug)]
pub(crate) struct ZooKeeper {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
}

/// Fails the test when Java or ZooKeeper is missing: a backend test must never skip silently.
fn ensure_installed() {
    assert!(
        Path::new(JAR).exists(),
        "{JAR} is missing: run scripts/test-deps to install ZooKeeper"
    );
    match Command::new("java").arg("-version").output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "`java -version` failed ({}); run scripts/test-deps to install Java",
            output.status
        ),
        Err(error) => {
            panic!(
                "java is not on PATH ({error}): run scripts/test-deps to install the test servers"
            )
        }
    }
}

/// Answers a port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl ZooKeeper {
    /// Starts a standalone ZooKeeper.
    pub(crate) async fn start() -> Self {
        ensure_installed();
        for _ in 0..PORT_ATTEMPTS {
            let mut zk = Self {
                child: None,
                dir: tempfile::tempdir().expect("temp dir"),
                port: free_port(),
            };
            zk.write_config();
            zk.spawn();
            if zk.wait_ready().await {
                return zk;
            }
            // Most likely the port was taken between probing and binding: try another.
            eprintln!("zookeeper did not start; log:\n{}", zk.log());
            zk.kill();
        }
        panic!("zookeeper did not start after {PORT_ATTEMPTS} attempts");
    }

    fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("zookeeper.log")
    }

    /// The server's output so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn write_config(&self) {
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).expect("create the data dir");
        std::fs::create_dir_all(self.conf_dir()).expect("create the conf dir");
        let config = format!(
            "tickTime={TICK_MS}\n\
             dataDir={}\n\
             clientPort={}\n\
             clientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=ruok,srvr\n",
            data.display(),
            self.port
        );
        std::fs::write(self.conf_dir().join("zoo.cfg"), config).expect("write zoo.cfg");
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the zookeeper log");
        let classpath = format!("{}:{JAR}", self.conf_dir().display());
        let child = Command::new("java")
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-cp", &classpath])
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.conf_dir().join("zoo.cfg"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn java");
        self.child = Some(child);
    }

    /// Asks `ruok` once; true on `imok`.
    async fn ruok(&self) -> bool {
        let ask = async {
            let mut stream = tokio::net::TcpStream::connect(self.endpoint()).await.ok()?;
            stream.write_all(b"ruok").await.ok()?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.ok()?;
            Some(answer == b"imok")
        };
        tokio::time::timeout(Duration::from_secs(1), ask)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }

    /// Waits until the server answers `imok`; `false` if it exited or took too long.
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().expect("poll java").is_some()
            {
                return false;
            }
            if self.ruok().await && self.owns_port() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Whether our java process holds the client port (not another test's server).
    fn owns_port(&self) -> bool {
        self.child
            .as_ref()
            .is_some_and(|child| listens_on(child.id(), self.port))
    }

    /// The client address, `host:port`.
    pub(crate) fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A configuration for this server with keyspace `keyspace`.
    pub(crate) fn config(&self, keyspace: &str) -> ZkConfig {
        ZkConfig {
            servers: vec![self.endpoint()],
            keyspace: keyspace.to_owned(),
            session_timeout: SESSION_TIMEOUT,
            ..ZkConfig::default()
        }
    }

    /// Connects a store with keyspace `keyspace`.
    pub(crate) async fn store(&self, keyspace: &str) -> ZkStore {
        ZkStore::connect(self.config(keyspace))
            .await
            .unwrap_or_else(|e| panic!("connect to zookeeper at {}: {e}", self.endpoint()))
    }

    /// A raw client of this server, to inspect or damage what the store wrote.
    pub(crate) async fn client(&self) -> zookeeper_client::Client {
        zookeeper_client::Client::connect(&self.endpoint())
            .await
            .expect("connect a raw client")
    }

    fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("zookeeper is running");
        let pid = i32::try_from(child.id()).expect("pid fits an i32");
        kill(Pid::from_raw(pid), signal).expect("signal zookeeper");
    }

    /// Freezes the server (SIGSTOP): connections are accepted, nothing answers.
    /// Returns once every thread of it has stopped (`kill` returns before that).
    pub(crate) async fn pause(&self) {
        self.signal(Signal::SIGSTOP);
        let pid = self.child.as_ref().expect("zookeeper is running").id();
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

    /// Starts the server again on the same data dir and port.
    pub(crate) async fn restart(&mut self) {
        self.kill();
        self.spawn();
        assert!(
            self.wait_ready().await,
            "zookeeper did not restart; log:\n{}",
            self.log()
        );
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.kill();
    }
}
