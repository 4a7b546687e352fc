//! The server under test: a real `rkron agent --server` process on a free port with its own
//! temporary data dir, started, stopped with SIGTERM and inspected through `/proc`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, SysconfVar, sysconf};
use rkron_client::Client;
use tokio::process::{Child, Command};

use crate::BenchResult;

/// How often readiness is polled while a server starts.
const READY_POLL: Duration = Duration::from_millis(5);
/// How long a server may take to be ready: API up and scheduler loaded (`/v1/isleader` 200).
const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    /// `VmRSS`: resident now, in KiB.
    pub(crate) rss_kib: u64,
    /// `VmHWM`: the peak resident size so far, in KiB.
    pub(crate) hwm_kib: u64,
}

/// How the server is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Alone: node `bench`, gossip on 127.0.0.1:8946, `--log-level warn`.
    Alone,
    /// The server of a local cluster: node [`CLUSTER_SERVER_NAME`], gossip and RPC on ports the
    /// process picks (read back from its log), `--profile local`, `--log-level info`.
    ClusterServer,
}

/// The node name of the server of a local cluster.
pub(crate) const CLUSTER_SERVER_NAME: &str = "s1";

/// The log line in which a node names its gossip and RPC addresses.
const GOSSIP_LINE: &str = "gossip listening on ";

/// A real `rkron agent --server` process and its data dir.
#[derive(Debug)]
pub(crate) struct BenchServer {
    role: Role,
    gossip: Option<String>,
    binary: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    port: u16,
    client: Client,
    http: reqwest::Client,
    _tmp: tempfile::TempDir,
}

/// Answers a port that was free a moment ago.
fn free_port() -> BenchResult<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A pooled HTTP client for benchmark traffic (keep-alive, many idle connections).
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(600))
        .build()
        .expect("a plain HTTP client always builds")
}

impl BenchServer {
    /// Prepares a server on a fresh temporary data dir, without starting it.
    pub(crate) fn new(binary: &Path) -> BenchResult<Self> {
        Self::with_role(binary, Role::Alone)
    }

    /// Prepares the server of a local cluster (see [`Role::ClusterServer`]), without starting
    /// it; once started, [`BenchServer::gossip_addr`] is the address agents join.
    pub(crate) fn cluster(binary: &Path) -> BenchResult<Self> {
        Self::with_role(binary, Role::ClusterServer)
    }

    fn with_role(binary: &Path, role: Role) -> BenchResult<Self> {
        let tmp = tempfile::Builder::new().prefix("rkron-bench-").tempdir()?;
        let data_dir = tmp.path().join("data");
        let log = tmp.path().join("rkron.log");
        let port = free_port()?;
        let http = http_client();
        Ok(Self {
            role,
            gossip: None,
            binary: binary.to_owned(),
            data_dir,
            log,
            child: None,
            port,
            client: Client::new(&format!("http://127.0.0.1:{port}")),
            http,
            _tmp: tmp,
        })
    }

    /// Spawns the process and waits until `/v1/isleader` answers 200, i.e. the API answers and
    /// the scheduler has indexed every stored job; answers the time from spawn to that answer.
    pub(crate) async fn start(&mut self) -> BenchResult<Duration> {
        if self.child.is_some() {
            return Err("the server is already running".into());
        }
        // A new port each time, so that a socket of the previous process cannot interfere.
        self.port = free_port()?;
        self.client = Client::new(&self.base());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = Command::new(&self.binary);
        command
            .args(["agent", "--server"])
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir);
        match self.role {
            Role::Alone => command.args([
                "--node-name",
                "bench",
                "--bind-addr",
                "127.0.0.1:8946",
                "--log-level",
                "warn",
            ]),
            Role::ClusterServer => command.args([
                "--node-name",
                CLUSTER_SERVER_NAME,
                "--bind-addr",
                "127.0.0.1:0",
                "--rpc-port",
                "0",
                "--profile",
                "local",
                "--log-level",
                "info",
            ]),
        };
        command
            .env_remove("RKRON_LOG_LEVEL")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let health = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/v1/isleader", self.base());
        let spawned = Instant::now();
        self.gossip = None;
        self.child = Some(command.spawn()?);
        loop {
            if let Ok(response) = health.get(&url).send().await
                && response.status().is_success()
            {
                let ready = spawned.elapsed();
                if self.role == Role::ClusterServer {
                    let log = std::fs::read_to_string(&self.log)?;
                    self.gossip = Some(gossip_addr_in(&log).ok_or_else(|| {
                        format!(
                            "the server is ready but its log names no gossip address; log:\n{}",
                            self.log_tail(40)
                        )
                    })?);
                }
                return Ok(ready);
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(format!(
                    "rkron exited before it was ready ({status}); log:\n{}",
                    self.log_tail(40)
                )
                .into());
            }
            if spawned.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "rkron did not lead (/v1/isleader 200) within {READY_TIMEOUT:?}; log:\n{}",
                    self.log_tail(40)
                )
                .into());
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Sends SIGTERM and waits for the exit; answers how long the exit took.
    pub(crate) async fn stop(&mut self) -> BenchResult<Duration> {
        let Some(mut child) = self.child.take() else {
            return Err("the server is not running".into());
        };
        let pid = child.id().ok_or("the server was already reaped")?;
        let asked = Instant::now();
        kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGTERM)?;
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    return Err(format!(
                        "rkron exited with {status} after SIGTERM; log:\n{}",
                        self.log_tail(40)
                    )
                    .into());
                }
                Ok(asked.elapsed())
            }
            Err(_) => {
                let _ = child.kill().await;
                Err(format!("rkron did not exit within {STOP_TIMEOUT:?} of SIGTERM").into())
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A full URL for `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// The gossip address of a started cluster server (`127.0.0.1:<port>`), for `--join`.
    pub(crate) fn gossip_addr(&self) -> BenchResult<&str> {
        self.gossip
            .as_deref()
            .ok_or_else(|| "the server is not a started cluster server".into())
    }

    /// The typed client of this server.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The pooled HTTP client for raw requests.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn pid(&self) -> BenchResult<u32> {
        self.child
            .as_ref()
            .and_then(Child::id)
            .ok_or_else(|| "the server is not running".into())
    }

    /// The server's resident memory now.
    pub(crate) fn memory(&self) -> BenchResult<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
        let field = |name: &str| -> BenchResult<u64> {
            let line = status
                .lines()
                .find(|line| line.starts_with(name))
                .ok_or_else(|| format!("no {name} in /proc/<pid>/status"))?;
            let kib = line
                .split_whitespace()
                .nth(1)
                .ok_or_else(|| format!("malformed {name} line"))?;
            Ok(kib.parse()?)
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    /// CPU time (user + system) the server has used so far, in seconds.
    pub(crate) fn cpu_seconds(&self) -> BenchResult<f64> {
        Ok(cpu_of(&format!("/proc/{}/stat", self.pid()?))?.own)
    }

    /// CPU time (user + system) of the server's child processes it has waited for, in seconds.
    pub(crate) fn children_cpu_seconds(&self) -> BenchResult<f64> {
        Ok(cpu_of(&format!("/proc/{}/stat", self.pid()?))?.children)
    }

    /// The size of the store file `<data-dir>/rkron.redb`, in bytes.
    pub(crate) fn data_file_bytes(&self) -> u64 {
        std::fs::metadata(self.data_dir.join("rkron.redb")).map_or(0, |m| m.len())
    }

    /// The last `lines` lines of the server's log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The lines of the server's log at level WARN or ERROR.
    pub(crate) fn problem_lines(&self) -> Vec<String> {
        problem_lines_of(&self.log)
    }

    /// The whole log of the server.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The number of lines in the server's log (warnings and errors at `--log-level warn`).
    pub(crate) fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }
}

/// The gossip address in a node's log: `gossip listening on 127.0.0.1:40123; RPC …`.
pub(crate) fn gossip_addr_in(log: &str) -> Option<String> {
    log.lines().find_map(|line| {
        let (_, rest) = line.split_once(GOSSIP_LINE)?;
        let addr = rest.split([';', ' ']).next()?;
        (!addr.is_empty()).then(|| addr.to_owned())
    })
}

/// The lines of the log file at `path` at level WARN or ERROR (tracing's text format).
pub(crate) fn problem_lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .map(str::to_owned)
        .collect()
}

/// CPU seconds of a process and of its waited-for children.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cpu {
    /// `utime + stime`.
    pub(crate) own: f64,
    /// `cutime + cstime`.
    pub(crate) children: f64,
}

/// Reads the CPU times in a `/proc/<pid>/stat` file.
pub(crate) fn cpu_of(stat_path: &str) -> BenchResult<Cpu> {
    let stat = std::fs::read_to_string(stat_path)?;
    // The command name may hold spaces; fields are counted after its closing parenthesis, where
    // field 3 of the line (state) has index 0: utime (14), stime (15), cutime (16), cstime (17).
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |index: usize| -> BenchResult<u64> {
        Ok(fields.get(index).ok_or("short /proc/<pid>/stat")?.parse()?)
    };
    let ticks = sysconf(SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    Ok(Cpu {
        own: (field(11)? + field(12)?) as f64 / ticks,
        children: (field(13)? + field(14)?) as f64 / ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gossip_address_is_read_from_the_log() {
        let log = "2026-11-27T19:21:57.615483Z  INFO rkron: No valid config found\n\
                   2026-11-27T19:21:57.615964Z  INFO rkron::agent: gossip listening on 127.0.0.1:55906; RPC listening on 127.0.0.1:34509 node=s1\n";
        assert_eq!(gossip_addr_in(log).as_deref(), Some("127.0.0.1:55906"));
        assert_eq!(gossip_addr_in("nothing here"), None);
    }
}
