//! The shared stores of the `ha` scenario: a real etcd, Redis, ZooKeeper or DynamoDB (moto) on
//! free ports of 127.0.0.1, each in its own temporary directory and killed when the bench is done
//! with it, and the request counters etcd and Redis expose (etcd's Prometheus metrics, Redis's
//! `INFO commandstats`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::BenchResult;
use crate::server;

/// How long a store may take to accept requests (moto imports a lot of Python at start-up).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(50);
/// Attempts on fresh ports (a port free a moment ago may be taken by then).
const ATTEMPTS: usize = 3;
/// How long one counter read may take.
const COUNTERS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one readiness probe (ZooKeeper's `ruok`, moto's `/moto-api/`) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Debian's ZooKeeper jar (package `zookeeper`, installed by scripts/test-deps).
const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
/// ZooKeeper's tick, as in the tests: sessions may last from 2 to 20 ticks, so rkron's default
/// 10 s session is allowed.
const ZK_TICK_MS: u64 = 500;
/// moto's `moto_server` in the venv scripts/test-deps creates, from the repository's root.
const MOTO_SERVER: &str = "target/test-deps/motovenv/bin/moto_server";
/// Overrides [`MOTO_SERVER`], as in the tests.
const MOTO_SERVER_ENV: &str = "RKRON_MOTO_SERVER";
/// The DynamoDB store's test patch of moto (atomic requests, cheap transactions), from the
/// repository's root; put on moto's PYTHONPATH.
const MOTO_PATCH: &str = "crates/rkron-store-dynamodb/tests/moto";
/// Logged by the patch when Python loaded it.
const MOTO_PATCH_MARKER: &str = "rkron: moto DynamoDB patched";
/// The access key id and secret the servers sign moto's requests with (moto accepts any).
const MOTO_CREDENTIAL: &str = "test";

/// Redis commands that write keys (as `INFO commandstats` names them).
const REDIS_WRITES: &[&str] = &[
    "set",
    "setnx",
    "setex",
    "psetex",
    "getset",
    "getdel",
    "mset",
    "del",
    "unlink",
    "hset",
    "hsetnx",
    "hmset",
    "hdel",
    "hincrby",
    "incr",
    "incrby",
    "decr",
    "decrby",
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "persist",
    "zadd",
    "zrem",
    "zincrby",
    "zremrangebyscore",
    "zremrangebyrank",
    "zremrangebylex",
    "rpush",
    "lpush",
    "lpop",
    "rpop",
    "ltrim",
    "lrem",
    "sadd",
    "srem",
    "xadd",
    "xtrim",
    "xdel",
    "rename",
    "copy",
];
/// Redis commands that read keys.
const REDIS_READS: &[&str] = &[
    "get",
    "mget",
    "hget",
    "hmget",
    "hgetall",
    "hexists",
    "hlen",
    "hkeys",
    "hvals",
    "hscan",
    "exists",
    "ttl",
    "pttl",
    "type",
    "strlen",
    "zrange",
    "zrangebyscore",
    "zrangebylex",
    "zrevrange",
    "zrevrangebyscore",
    "zcard",
    "zscore",
    "zcount",
    "zrank",
    "lrange",
    "llen",
    "smembers",
    "sismember",
    "scard",
    "scan",
    "keys",
    "xrange",
    "xlen",
];
/// Redis commands that run a script (one request, several commands inside).
const REDIS_SCRIPTS: &[&str] = &["evalsha", "eval", "evalsha_ro", "eval_ro", "fcall"];
/// Redis commands the bench itself sends, left out of every count.
const REDIS_OWN: &[&str] = &["info"];

/// Which store the servers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Etcd,
    Redis,
    Zookeeper,
    DynamoDb,
}

impl Backend {
    /// Every backend the bench can start, in the order the `ha` scenario runs them.
    pub(crate) const ALL: [Self; 4] = [Self::Etcd, Self::Redis, Self::Zookeeper, Self::DynamoDb];

    /// The `--backend` value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::Redis => "redis",
            Self::Zookeeper => "zk",
            Self::DynamoDb => "dynamodb",
        }
    }

    /// Parses a `--backends` item: a `--backend` value or an alias of it.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "etcd" | "etcdv3" => Ok(Self::Etcd),
            "redis" => Ok(Self::Redis),
            "zk" | "zookeeper" => Ok(Self::Zookeeper),
            "dynamodb" | "dynamo" | "moto" => Ok(Self::DynamoDb),
            other => Err(format!(
                "unknown backend {other:?}: expected {}",
                Self::ALL.map(Self::name).join(", ")
            )),
        }
    }

    /// Whether [`StoreProcess::counters`] reads the store's request counters (etcd and Redis).
    pub(crate) fn has_counters(self) -> bool {
        matches!(self, Self::Etcd | Self::Redis)
    }
}

/// A store process of this bench.
#[derive(Debug)]
pub(crate) struct StoreProcess {
    backend: Backend,
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// Answers a port that was free a moment ago.
fn free_port() -> BenchResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl StoreProcess {
    /// Starts a fresh `backend` on free ports and waits until it accepts requests.
    pub(crate) async fn start(backend: Backend) -> BenchResult<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rkron-bench-{}-", backend.name()))
            .tempdir()?;
        let log = dir.path().join(format!("{}.log", backend.name()));
        let mut store = Self {
            backend,
            child: None,
            port: 0,
            log,
            dir,
            http: reqwest::Client::builder()
                .timeout(COUNTERS_TIMEOUT)
                .build()?,
        };
        for _ in 0..ATTEMPTS {
            store.port = free_port()?;
            store.spawn()?;
            if store.wait_ready().await? {
                return Ok(store);
            }
            store.stop().await;
        }
        Err(format!(
            "{} did not start in {ATTEMPTS} attempts; log:\n{}",
            backend.name(),
            store.log_tail(20)
        )
        .into())
    }

    fn spawn(&mut self) -> BenchResult<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = match self.backend {
            Backend::Etcd => {
                let client = format!("http://127.0.0.1:{}", self.port);
                let peer = format!("http://127.0.0.1:{}", free_port()?);
                let mut command = Command::new("etcd");
                command
                    .args(["--name", "bench", "--data-dir"])
                    .arg(self.dir.path().join(format!("data-{}", self.port)))
                    .args(["--listen-client-urls", &client])
                    .args(["--advertise-client-urls", &client])
                    .args(["--listen-peer-urls", &peer])
                    .args(["--initial-advertise-peer-urls", &peer])
                    .args(["--initial-cluster", &format!("bench={peer}")]);
                command
            }
            Backend::Redis => {
                let mut command = Command::new("redis-server");
                command
                    .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no", "--dir"])
                    .arg(self.dir.path());
                command
            }
            Backend::Zookeeper => self.zookeeper_command()?,
            Backend::DynamoDb => moto_command(self.port)?,
        };
        let child = command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} ({e}); install it with scripts/test-deps",
                    self.backend.name()
                )
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// `java … ZooKeeperServerMain zoo.cfg` of a standalone ZooKeeper on [`Self::port`], with a
    /// fresh configuration and data directory, as the tests run it.
    fn zookeeper_command(&self) -> BenchResult<Command> {
        if !Path::new(ZK_JAR).is_file() {
            return Err(
                format!("{ZK_JAR} is missing: install ZooKeeper with scripts/test-deps").into(),
            );
        }
        let conf = self.dir.path().join(format!("conf-{}", self.port));
        let data = self.dir.path().join(format!("data-{}", self.port));
        std::fs::create_dir_all(&conf)?;
        std::fs::create_dir_all(&data)?;
        std::fs::write(
            conf.join("zoo.cfg"),
            format!(
                "tickTime={ZK_TICK_MS}\n\
                 dataDir={}\n\
                 clientPort={}\n\
                 clientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\n\
                 4lw.commands.whitelist=ruok,srvr\n",
                data.display(),
                self.port
            ),
        )?;
        let mut command = Command::new("java");
        command
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-cp"])
            .arg(format!("{}:{ZK_JAR}", conf.display()))
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(conf.join("zoo.cfg"));
        Ok(command)
    }

    /// Polls until the store answers; `false` when it exited or did not answer in time.
    async fn wait_ready(&mut self) -> BenchResult<bool> {
        let since = Instant::now();
        while since.elapsed() < READY_TIMEOUT {
            if let Some(child) = self.child.as_mut()
                && child.try_wait()?.is_some()
            {
                self.child = None;
                return Ok(false);
            }
            let ready = match self.backend {
                Backend::Etcd => {
                    let url = format!("http://127.0.0.1:{}/health", self.port);
                    matches!(self.http.get(&url).send().await, Ok(r) if r.status().is_success())
                }
                Backend::Redis => std::fs::read_to_string(&self.log)
                    .is_ok_and(|log| log.contains("Ready to accept connections")),
                Backend::Zookeeper => zookeeper_ok(self.port).await,
                Backend::DynamoDb => {
                    let url = format!("http://127.0.0.1:{}/moto-api/", self.port);
                    let probe = self.http.get(&url).timeout(PROBE_TIMEOUT).send().await;
                    matches!(probe, Ok(r) if r.status().is_success())
                }
            };
            if ready {
                if self.backend == Backend::DynamoDb && !self.log_text().contains(MOTO_PATCH_MARKER)
                {
                    return Err(format!(
                        "moto_server started without the patch of {MOTO_PATCH}/sitecustomize.py; log:\n{}",
                        self.log_tail(20)
                    )
                    .into());
                }
                return Ok(true);
            }
            tokio::time::sleep(READY_POLL).await;
        }
        Ok(false)
    }

    /// Kills the store (SIGKILL) and waits for it.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// The `--backend-machine` value: `127.0.0.1:<port>`, or moto's endpoint URL.
    pub(crate) fn machine(&self) -> String {
        match self.backend {
            Backend::DynamoDb => format!("http://127.0.0.1:{}", self.port),
            Backend::Etcd | Backend::Redis | Backend::Zookeeper => {
                format!("127.0.0.1:{}", self.port)
            }
        }
    }

    /// The `rkron agent` flags that point a server at this store: backend, machine, keyspace
    /// and, for moto, the credentials to sign with (DynamoDB's table is the keyspace).
    pub(crate) fn rkron_args(&self, keyspace: &str) -> Vec<String> {
        let mut args = vec![
            "--backend".to_owned(),
            self.backend.name().to_owned(),
            "--backend-machine".to_owned(),
            self.machine(),
            "--keyspace".to_owned(),
            keyspace.to_owned(),
        ];
        if self.backend == Backend::DynamoDb {
            for flag in ["--backend-username", "--backend-password"] {
                args.extend([flag.to_owned(), MOTO_CREDENTIAL.to_owned()]);
            }
        }
        args
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the store's log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// CPU seconds (user + system) the store has used so far; 0 when it is gone.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .and_then(|pid| server::cpu_of(&format!("/proc/{pid}/stat")).ok())
            .map_or(0.0, |cpu| cpu.own)
    }

    /// The store's request counters now.
    pub(crate) async fn counters(&self) -> BenchResult<Counters> {
        match self.backend {
            Backend::Etcd => {
                let url = format!("http://127.0.0.1:{}/metrics", self.port);
                let response = self.http.get(&url).send().await?;
                if !response.status().is_success() {
                    return Err(format!("GET {url} answered {}", response.status()).into());
                }
                Ok(etcd_counters(&response.text().await?))
            }
            Backend::Redis => {
                let text =
                    tokio::time::timeout(COUNTERS_TIMEOUT, redis_info(self.port, "commandstats"))
                        .await
                        .map_err(|_| "INFO commandstats timed out")??;
                Ok(redis_counters(&text))
            }
            Backend::Zookeeper | Backend::DynamoDb => Err(format!(
                "the bench reads no request counters of {}",
                self.backend.name()
            )
            .into()),
        }
    }
}

/// Asks ZooKeeper `ruok` once; true on `imok`. A server still starting may accept and not
/// answer, so the probe is bounded.
async fn zookeeper_ok(port: u16) -> bool {
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream.write_all(b"ruok").await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        Some(answer == b"imok")
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, ask).await,
        Ok(Some(true))
    )
}

/// The repository's root: the working directory (scripts/bench runs the bench from there), else
/// the tree this bench was built from. It is the directory holding [`MOTO_PATCH`].
fn repo_root() -> BenchResult<PathBuf> {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [std::env::current_dir()?, built];
    candidates
        .iter()
        .find(|dir| dir.join(MOTO_PATCH).join("sitecustomize.py").is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "cannot find {MOTO_PATCH}/sitecustomize.py in {}: run the bench from the repository's root",
                candidates
                    .iter()
                    .map(|dir| dir.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
            .into()
        })
}

/// `moto_server -H 127.0.0.1 -p <port>` from the venv of scripts/test-deps (or
/// `$RKRON_MOTO_SERVER`), with the DynamoDB store's test patch on its PYTHONPATH.
fn moto_command(port: u16) -> BenchResult<Command> {
    let root = repo_root()?;
    let binary =
        std::env::var_os(MOTO_SERVER_ENV).map_or_else(|| root.join(MOTO_SERVER), PathBuf::from);
    if !binary.is_file() {
        return Err(format!(
            "moto_server not found at {}: run scripts/test-deps (it creates the venv {}) or set {MOTO_SERVER_ENV}",
            binary.display(),
            root.join("target/test-deps/motovenv").display()
        )
        .into());
    }
    let mut command = Command::new(binary);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("PYTHONPATH", root.join(MOTO_PATCH))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    Ok(command)
}

/// Named counters of a store, as read at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counters(BTreeMap<String, f64>);

impl Counters {
    /// `self − earlier`, counter by counter.
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(name, value)| {
                    let before = earlier.0.get(name).copied().unwrap_or(0.0);
                    (name.clone(), value - before)
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }

    fn sum_where(&self, keep: impl Fn(&str) -> bool) -> f64 {
        self.0
            .iter()
            .filter(|(name, _)| keep(name))
            .map(|(_, value)| value)
            .sum()
    }
}

/// Parses etcd's Prometheus text: the MVCC, raft, WAL and per-method gRPC counters.
fn etcd_counters(text: &str) -> Counters {
    let mut counters = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let name = match series {
            "etcd_mvcc_put_total" => "put".to_owned(),
            "etcd_mvcc_delete_total" => "delete".to_owned(),
            "etcd_mvcc_range_total" => "range".to_owned(),
            "etcd_mvcc_txn_total" => "txn".to_owned(),
            "etcd_server_proposals_committed_total" => "proposals".to_owned(),
            "etcd_disk_wal_fsync_duration_seconds_count" => "fsync".to_owned(),
            _ => match series
                .strip_prefix("grpc_server_started_total{")
                .and_then(|labels| label(labels, "grpc_method"))
            {
                Some(method) => format!("grpc:{method}"),
                None => continue,
            },
        };
        *counters.entry(name).or_insert(0.0) += value;
    }
    Counters(counters)
}

/// The value of `name="…"` in a Prometheus label list.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &labels[start..];
    Some(&rest[..rest.find('"')?])
}

/// Parses `INFO commandstats`: `cmdstat_<name>:calls=<n>,…` lines as `cmd:<name>`.
fn redis_counters(text: &str) -> Counters {
    let mut counters = BTreeMap::new();
    for line in text.lines() {
        let Some((name, stats)) = line
            .trim()
            .strip_prefix("cmdstat_")
            .and_then(|rest| rest.split_once(':'))
        else {
            continue;
        };
        let calls = stats
            .split(',')
            .find_map(|field| field.strip_prefix("calls="))
            .and_then(|n| n.parse::<f64>().ok());
        if let Some(calls) = calls {
            counters.insert(format!("cmd:{}", name.to_ascii_lowercase()), calls);
        }
    }
    Counters(counters)
}

/// Sends `INFO <section>` over RESP and answers the bulk string.
async fn redis_info(port: u16, section: &str) -> BenchResult<String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut stream = BufReader::new(stream);
    let request = format!("*2\r\n$4\r\nINFO\r\n${}\r\n{section}\r\n", section.len());
    stream.get_mut().write_all(request.as_bytes()).await?;
    let mut header = String::new();
    stream.read_line(&mut header).await?;
    let length: usize = header
        .trim_end()
        .strip_prefix('$')
        .ok_or_else(|| format!("unexpected answer to INFO: {header:?}"))?
        .parse()?;
    let mut body = vec![0; length + 2];
    stream.read_exact(&mut body).await?;
    body.truncate(length);
    Ok(String::from_utf8(body)?)
}

/// What the store did over a window, in the terms both stores share.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ops {
    /// Requests the store served (etcd: gRPC calls; Redis: script calls only, see
    /// [`Ops::requests_label`]).
    pub(crate) requests: f64,
    /// Requests that wrote (etcd: raft proposals committed; Redis: none counted).
    pub(crate) write_requests: Option<f64>,
    /// Keys written (etcd: MVCC puts + deletes; Redis: write commands, inside scripts too).
    pub(crate) writes: f64,
    /// Key reads (etcd: MVCC ranges; Redis: read commands, inside scripts too).
    pub(crate) reads: f64,
    /// Durable writes (etcd: WAL fsyncs; Redis here: none, it runs without persistence).
    pub(crate) fsyncs: Option<f64>,
    /// Every non-zero counter, largest first.
    pub(crate) detail: Vec<(String, f64)>,
}

impl Ops {
    /// Sums a counter delta of `backend` into the shared terms.
    pub(crate) fn of(backend: Backend, delta: &Counters) -> Self {
        let mut detail: Vec<(String, f64)> = delta
            .0
            .iter()
            .filter(|(name, value)| {
                **value > 0.0
                    && !name
                        .strip_prefix("cmd:")
                        .is_some_and(|cmd| REDIS_OWN.contains(&cmd))
            })
            .map(|(name, value)| (name.clone(), *value))
            .collect();
        detail.sort_by(|a, b| b.1.total_cmp(&a.1));
        match backend {
            Backend::Etcd => Self {
                requests: delta.sum_where(|name| name.starts_with("grpc:")),
                write_requests: Some(delta.get("proposals")),
                writes: delta.get("put") + delta.get("delete"),
                reads: delta.get("range"),
                fsyncs: Some(delta.get("fsync")),
                detail,
            },
            Backend::Redis => {
                let cmd = |set: &'static [&'static str]| {
                    move |name: &str| name.strip_prefix("cmd:").is_some_and(|c| set.contains(&c))
                };
                Self {
                    requests: delta.sum_where(cmd(REDIS_SCRIPTS)),
                    write_requests: None,
                    writes: delta.sum_where(cmd(REDIS_WRITES)),
                    reads: delta.sum_where(cmd(REDIS_READS)),
                    fsyncs: None,
                    detail,
                }
            }
            // No counters are read from these (see `Backend::has_counters`).
            Backend::Zookeeper | Backend::DynamoDb => Self {
                requests: delta.sum_where(|_| true),
                detail,
                ..Self::default()
            },
        }
    }

    /// `self − rate × seconds`, every figure at least 0: the window's counts without the
    /// background measured while idle.
    pub(crate) fn minus_background(&self, background: &Self, seconds: f64) -> Self {
        let net = |window: f64, idle: f64| (window - idle * seconds).max(0.0);
        Self {
            requests: net(self.requests, background.requests),
            write_requests: self
                .write_requests
                .zip(background.write_requests)
                .map(|(w, b)| net(w, b)),
            writes: net(self.writes, background.writes),
            reads: net(self.reads, background.reads),
            fsyncs: self.fsyncs.zip(background.fsyncs).map(|(w, b)| net(w, b)),
            detail: self.detail.clone(),
        }
    }

    /// Every figure divided by `by`.
    pub(crate) fn per(&self, by: f64) -> Self {
        let by = by.max(1e-9);
        Self {
            requests: self.requests / by,
            write_requests: self.write_requests.map(|w| w / by),
            writes: self.writes / by,
            reads: self.reads / by,
            fsyncs: self.fsyncs.map(|f| f / by),
            detail: self
                .detail
                .iter()
                .map(|(name, value)| (name.clone(), value / by))
                .collect(),
        }
    }

    /// What [`Ops::requests`] counts for `backend`.
    pub(crate) fn requests_label(backend: Backend) -> &'static str {
        match backend {
            Backend::Etcd => "requests (gRPC calls, all methods)",
            Backend::Redis => "script calls (EVALSHA/EVAL)",
            Backend::Zookeeper | Backend::DynamoDb => "requests (not counted)",
        }
    }

    /// What [`Ops::writes`] and [`Ops::reads`] count for `backend`.
    pub(crate) fn writes_label(backend: Backend) -> &'static str {
        match backend {
            Backend::Etcd => "keys written (MVCC put + delete) / key reads (MVCC range)",
            Backend::Redis => "write commands / read commands (inside scripts too)",
            Backend::Zookeeper | Backend::DynamoDb => "writes / reads (not counted)",
        }
    }

    /// `Txn 3.02, Range 1.00, …`: the largest counters, `limit` of them.
    pub(crate) fn detail_text(&self, limit: usize) -> String {
        self.detail
            .iter()
            .take(limit)
            .map(|(name, value)| {
                let name = name
                    .strip_prefix("grpc:")
                    .or_else(|| name.strip_prefix("cmd:"))
                    .unwrap_or(name);
                format!("{name} {value:.2}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_metrics_are_read_by_name_and_method() {
        let text = "# HELP etcd_mvcc_put_total Total number of puts seen by this member.\n\
            # TYPE etcd_mvcc_put_total counter\n\
            etcd_mvcc_put_total 12\n\
            etcd_mvcc_range_total 30\n\
            etcd_disk_wal_fsync_duration_seconds_count 7\n\
            etcd_disk_wal_fsync_duration_seconds_sum 0.5\n\
            grpc_server_started_total{grpc_method=\"Txn\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 20\n\
            grpc_server_started_total{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} 1\n\
            grpc_server_started_total{grpc_method=\"Watch\",grpc_service=\"grpc.health.v1.Health\",grpc_type=\"server_stream\"} 2\n";
        let counters = etcd_counters(text);
        assert_eq!(counters.get("put"), 12.0);
        assert_eq!(counters.get("range"), 30.0);
        assert_eq!(counters.get("fsync"), 7.0);
        assert_eq!(counters.get("grpc:Txn"), 20.0);
        assert_eq!(counters.get("grpc:Watch"), 3.0);
        let before = Counters(BTreeMap::from([("put".to_owned(), 2.0)]));
        let ops = Ops::of(Backend::Etcd, &counters.since(&before));
        assert_eq!(ops.writes, 10.0);
        assert_eq!(ops.requests, 23.0);
        assert_eq!(ops.fsyncs, Some(7.0));
    }

    #[test]
    fn redis_commandstats_are_split_into_scripts_writes_and_reads() {
        let text = "# Commandstats\r\n\
            cmdstat_evalsha:calls=10,usec=71,usec_per_call=7.10,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_hset:calls=25,usec=11,usec_per_call=0.44,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_get:calls=4,usec=2,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_info:calls=3,usec=2,usec_per_call=0.66,rejected_calls=0,failed_calls=0\r\n";
        let counters = redis_counters(text);
        assert_eq!(counters.get("cmd:hset"), 25.0);
        let ops = Ops::of(Backend::Redis, &counters);
        assert_eq!(ops.requests, 10.0);
        assert_eq!(ops.writes, 25.0);
        assert_eq!(ops.reads, 4.0);
        assert!(ops.detail.iter().all(|(name, _)| name != "cmd:info"));
        let background = Ops {
            writes: 1.0,
            ..Ops::default()
        };
        assert_eq!(ops.minus_background(&background, 5.0).writes, 20.0);
        assert_eq!(ops.per(5.0).writes, 5.0);
    }

    #[test]
    fn backends_are_parsed_by_name_and_alias() {
        for backend in Backend::ALL {
            assert_eq!(Backend::parse(backend.name()), Ok(backend));
        }
        assert_eq!(Backend::parse("ZooKeeper"), Ok(Backend::Zookeeper));
        assert_eq!(Backend::parse(" dynamo"), Ok(Backend::DynamoDb));
        let error = Backend::parse("consul").unwrap_err();
        assert!(error.contains("etcd, redis, zk, dynamodb"), "{error}");
    }

    #[test]
    fn labels_are_read_from_a_series() {
        assert_eq!(
            label("grpc_method=\"Range\",grpc_type=\"unary\"", "grpc_method"),
            Some("Range")
        );
        assert_eq!(label("grpc_type=\"unary\"", "grpc_method"), None);
    }
}
