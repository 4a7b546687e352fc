//! Test support: starts the real `rkron` binary on a free port with its own data dir and
//! drives it over HTTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rkron_client::Client;
use rkron_store::testsuite::listens_on;

/// A real `rkron agent --server` process.
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    pub client: Client,
    pub log: PathBuf,
    pub name: String,
    extra: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

/// Polls `check` every 50 ms until it is true or `timeout` passes; answers whether it became true.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Server {
    /// Starts a server with a fresh data dir and extra flags; waits until it answers.
    pub async fn start(extra: &[&str]) -> Server {
        Server::start_named("test-node", extra).await
    }

    /// Starts a server named `name` with a fresh data dir and extra flags; waits until it
    /// answers.
    pub async fn start_named(name: &str, extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let mut server = Server::spawn_named(name, &data_dir, extra);
        server._tmp = Some(tmp);
        server.wait_ready().await;
        server
    }

    /// Spawns a server on `data_dir` without waiting.
    pub fn spawn(data_dir: &Path, extra: &[&str]) -> Server {
        Server::spawn_named("test-node", data_dir, extra)
    }

    /// Spawns a server named `name` on `data_dir` without waiting.
    pub fn spawn_named(name: &str, data_dir: &Path, extra: &[&str]) -> Server {
        let log = data_dir.with_extension("log");
        let mut server = Server {
            child: None,
            name: name.to_owned(),
            port: 0,
            data_dir: data_dir.to_owned(),
            client: Client::new("http://127.0.0.1:0"),
            log,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            _tmp: None,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        std::fs::create_dir_all(self.data_dir.parent().unwrap()).unwrap();
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rkron"))
            .args(["agent", "--server", "--node-name", &self.name])
            // The server picks its own ports and logs them: no race with other tests for a
            // port that was free a moment ago.
            .args(["--http-addr", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--bind-addr", "127.0.0.1:0", "--rpc-port", "0"])
            .args(["--profile", "local"])
            .args(&self.extra)
            .env_remove("RKRON_LOG_LEVEL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn rkron");
        self.child = Some(child);
        self.port = 0;
    }

    /// Reads the port the server logged it listens on.
    fn logged_port(&self) -> Option<u16> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        let marker = "HTTP API listening on 127.0.0.1:";
        let rest = &log[log.find(marker)? + marker.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    /// Waits until the server logged its port and `/health` answers (or panics with the
    /// server's log after 20 s).
    pub async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut ok = false;
        while tokio::time::Instant::now() < deadline {
            if self.port == 0
                && let Some(port) = self.logged_port()
            {
                self.port = port;
                self.client = Client::new(&format!("http://127.0.0.1:{port}"));
            }
            if self.port != 0 && self.client.healthy().await {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !ok {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!("rkron did not become ready (exit: {status:?}); log:\n{log}");
        }
    }

    /// Sends SIGKILL and waits for the process to die.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for exit; answers the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        child.wait().unwrap()
    }

    /// Starts the process again on the same data dir, and waits until ready.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        self.launch();
        self.wait_ready().await;
    }

    /// Starts the process again with `more` flags added for good (e.g. a `--join`).
    pub async fn restart_with(&mut self, more: &[&str]) {
        self.extra.extend(more.iter().map(|s| (*s).to_owned()));
        self.restart().await;
    }

    /// The gossip address the server logged (`host:port`), for agents to `--join`.
    pub fn gossip_addr(&self) -> String {
        logged_addr(&self.log_text(), "gossip listening on ")
            .unwrap_or_else(|| panic!("no gossip address logged:\n{}", self.log_text()))
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        self.client.url(path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The last `host:port` logged after `marker`.
pub fn logged_addr(log: &str, marker: &str) -> Option<String> {
    let rest = &log[log.rfind(marker)? + marker.len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    (!addr.is_empty()).then_some(addr)
}

/// A real `rkron agent` process (not a server): gossip and RPC, no HTTP API.
pub struct Agent {
    pub child: Option<Child>,
    pub name: String,
    pub log: PathBuf,
    extra: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl Agent {
    /// Starts an agent named `name` with extra flags (`--join`, `--tag`, …); waits until it has
    /// logged its addresses.
    pub async fn start(name: &str, extra: &[&str]) -> Agent {
        let tmp = tempfile::tempdir().unwrap();
        let mut agent = Agent {
            child: None,
            name: name.to_owned(),
            log: tmp.path().join("agent.log"),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            _tmp: tmp,
        };
        agent.launch();
        agent.wait_started().await;
        agent
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rkron"))
            .args(["agent", "--node-name", &self.name])
            .arg("--data-dir")
            .arg(self._tmp.path().join("data"))
            .args(["--bind-addr", "127.0.0.1:0", "--rpc-port", "0"])
            .args(["--profile", "local"])
            .args(&self.extra)
            .env_remove("RKRON_LOG_LEVEL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn rkron agent");
        self.child = Some(child);
    }

    /// Waits until the agent logged that it started (or panics with its log after 20 s).
    pub async fn wait_started(&mut self) {
        let started = wait_until(Duration::from_secs(20), || async {
            self.log_text().contains("rkron agent started")
        })
        .await;
        assert!(
            started,
            "agent {} did not start:\n{}",
            self.name,
            self.log_text()
        );
    }

    /// The agent's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The RPC address the agent logged.
    pub fn rpc_addr(&self) -> String {
        logged_addr(&self.log_text(), "RPC listening on ").expect("RPC address logged")
    }

    /// Sends SIGKILL and waits for the process to die.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again with the same flags, and waits until it started.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the agent first");
        self.launch();
        self.wait_started().await;
    }

    /// Waits up to `timeout` for the process to exit on its own; answers its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        wait_exit(&mut self.child, timeout).await
    }
}

/// Waits up to `timeout` for `child` to exit on its own; answers its status (and forgets it).
pub async fn wait_exit(
    child: &mut Option<Child>,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let status = child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            *child = None;
            return status;
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ---- Wire-level helpers of the API tests (api.rs, bad_input.rs, executions.rs) ----

/// One HTTP answer, read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}); status {}: {:?}",
                self.status, self.text
            )
        })
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error` string of a JSON error body (panics when the body is not `{"error": "…"}`).
    pub fn error(&self) -> String {
        let body = self.json();
        match body.get("error").and_then(serde_json::Value::as_str) {
            Some(e) => e.to_owned(),
            None => panic!(
                "status {}: body has no \"error\" string: {}",
                self.status, self.text
            ),
        }
    }
}

/// Sends a request and reads the whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("request failed");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("read body");
    Reply {
        status,
        headers,
        text,
    }
}

impl Server {
    /// `GET path`.
    pub async fn http_get(&self, path: &str) -> Reply {
        send(self.client.http().get(self.url(path))).await
    }

    /// `POST path` with a JSON body.
    pub async fn http_post_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        send(self.client.http().post(self.url(path)).json(body)).await
    }

    /// `POST path` without a body.
    pub async fn http_post(&self, path: &str) -> Reply {
        send(self.client.http().post(self.url(path))).await
    }

    /// `DELETE path`.
    pub async fn http_delete(&self, path: &str) -> Reply {
        send(self.client.http().delete(self.url(path))).await
    }

    /// `POST /v1/jobs` that must answer 201; answers the stored job.
    pub async fn create_job_ok(&self, job: &serde_json::Value) -> serde_json::Value {
        let reply = self.http_post_json("/v1/jobs", job).await;
        assert_eq!(
            reply.status, 201,
            "creating {job} answered {}: {}",
            reply.status, reply.text
        );
        reply.json()
    }

    /// Waits until `job` has at least `n` finished executions; answers the listing (newest first).
    pub async fn wait_finished_executions(
        &self,
        job: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<serde_json::Value> {
        let path = format!("/v1/jobs/{job}/executions");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let reply = self.http_get(&path).await;
            if reply.status == 200 {
                let list = reply.json().as_array().cloned().unwrap_or_default();
                let finished = list
                    .iter()
                    .filter(|e| e["finished_at"] != "0001-01-01T00:00:00Z")
                    .count();
                if finished >= n {
                    return list;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{job}: fewer than {n} finished executions after {timeout:?}: {}\n{}",
                reply.text,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A shell job run through `/bin/sh -c`, never scheduled (`@manually`).
pub fn shell_job(name: &str, command: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": command, "shell": "true"}
    })
}

/// A free TCP port on 127.0.0.1 (bound, then released: a later bind may race another process,
/// which the caller detects by the server failing to start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real etcd server (Debian's `etcd-server`) on free ports in a temporary directory, killed
/// when dropped; it can be stopped and started again on the same ports and data.
pub struct Etcd {
    child: Option<Child>,
    pub client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts etcd and waits until `/health` answers (panics with its log after 20 s, or at
    /// once when `etcd` is not installed: run `scripts/test-deps`).
    pub async fn start() -> Etcd {
        let mut etcd = Etcd {
            child: None,
            client_port: 0,
            peer_port: 0,
            dir: tempfile::tempdir().unwrap(),
        };
        for _ in 0..3 {
            (etcd.client_port, etcd.peer_port) = (free_port(), free_port());
            if etcd.launch().await {
                return etcd;
            }
            etcd.stop();
        }
        panic!("etcd did not become healthy:\n{}", etcd.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// Spawns etcd on the chosen ports and data dir; answers whether it became healthy.
    async fn launch(&mut self) -> bool {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .unwrap();
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(self.dir.path().join(format!("data-{}", self.client_port)))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start etcd ({e}): install it with scripts/test-deps")
            });
        let pid = child.id();
        self.child = Some(child);
        let http = reqwest::Client::new();
        let url = format!("{client}/health");
        let port = self.client_port;
        // Counts only when our etcd holds the port: another test's server may have taken it.
        wait_until(Duration::from_secs(20), || async {
            matches!(http.get(&url).send().await, Ok(r) if r.status().is_success())
                && listens_on(pid, port)
        })
        .await
    }

    /// Kills etcd (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data, and waits until it is healthy.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop etcd first");
        let healthy = self.launch().await;
        assert!(healthy, "etcd did not come back:\n{}", self.log_text());
    }

    /// The `backend-machine` value for this server.
    pub fn machine(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real Redis server (Debian's `redis-server`) on a free port in a temporary directory,
/// without persistence, killed when dropped.
pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts redis-server and waits until it accepts connections (panics with its log after
    /// 20 s, or at once when it is not installed: run `scripts/test-deps`).
    pub async fn start() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("redis.log");
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start redis-server ({e}): install it with scripts/test-deps")
                });
            let ready = wait_until(Duration::from_secs(20), || async {
                std::fs::read_to_string(&log_path)
                    .is_ok_and(|log| log.contains("Ready to accept connections"))
            })
            .await;
            if ready {
                return Redis {
                    child,
                    port,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("redis-server did not start:\n{log}");
    }

    /// The `backend-machine` value for this server.
    pub fn machine(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real standalone ZooKeeper (Debian's `zookeeper`, run with `java`) on a free port in a
/// temporary directory, killed when dropped.
pub struct ZooKeeper {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl ZooKeeper {
    /// Starts ZooKeeper and waits until it answers `ruok` (panics with its log after 30 s, or
    /// at once when java or the jar is missing: run `scripts/test-deps`).
    pub async fn start() -> ZooKeeper {
        const JAR: &str = "/usr/share/java/zookeeper.jar";
        assert!(
            Path::new(JAR).exists(),
            "{JAR} is missing: install the test servers with scripts/test-deps"
        );
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("zookeeper.log");
        for attempt in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("conf{attempt}"));
            let data = dir.path().join(format!("data{attempt}"));
            std::fs::create_dir_all(&conf).unwrap();
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(
                conf.join("zoo.cfg"),
                format!(
                    "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                     admin.enableServer=false\n4lw.commands.whitelist=ruok\n",
                    data.display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new("java")
                .args(["-Xmx256m", "-XX:+UseSerialGC", "-cp"])
                .arg(format!("{}:{JAR}", conf.display()))
                .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
                .arg(conf.join("zoo.cfg"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start java ({e}): install the test servers with scripts/test-deps"
                    )
                });
            let ready = wait_until(Duration::from_secs(30), || async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                // A server still starting may accept and not answer: bound each probe.
                let probe = async {
                    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .ok()?;
                    stream.write_all(b"ruok").await.ok()?;
                    let mut answer = Vec::new();
                    stream.read_to_end(&mut answer).await.ok()?;
                    Some(answer == b"imok")
                };
                matches!(
                    tokio::time::timeout(Duration::from_secs(1), probe).await,
                    Ok(Some(true))
                ) && listens_on(child.id(), port)
            })
            .await;
            if ready {
                return ZooKeeper {
                    child,
                    port,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("zookeeper did not start:\n{log}");
    }

    /// The `backend-machine` value for this server.
    pub fn machine(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's local DynamoDB endpoint (`moto_server`, installed by `scripts/test-deps`) on a free
/// port, with the DynamoDB store's test patch that makes moto's transactions atomic (see
/// `crates/rkron-store-dynamodb/tests/moto`); killed when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts moto and waits until `/moto-api/` answers (panics when it is not installed).
    pub async fn start() -> Moto {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let binary = std::env::var_os("RKRON_MOTO_SERVER").map_or_else(
            || root.join("target/test-deps/motovenv/bin/moto_server"),
            PathBuf::from,
        );
        assert!(
            binary.is_file(),
            "moto_server not found at {}: run scripts/test-deps",
            binary.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("moto.log");
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new(&binary)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env(
                    "PYTHONPATH",
                    root.join("crates/rkron-store-dynamodb/tests/moto"),
                )
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let http = reqwest::Client::new();
            let url = format!("http://127.0.0.1:{port}/moto-api/");
            let ready = wait_until(Duration::from_secs(60), || async {
                matches!(http.get(&url).send().await, Ok(r) if r.status().is_success())
                    && listens_on(child.id(), port)
            })
            .await;
            if ready {
                return Moto {
                    child,
                    port,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("moto did not start:\n{log}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
