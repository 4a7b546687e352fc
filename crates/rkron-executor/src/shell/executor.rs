//! The `shell` executor: spawns the process group, streams its output and enforces the timeout,
//! the memory limit and cancellation.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Group, Pid, SysconfVar, User, sysconf};
use tokio::io::AsyncWriteExt as _;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::config::ShellConfig;
use super::spawner::{self, SpawnFailure};
use crate::{ExecuteOutcome, ExecuteRequest, Executor, OutputBuffer};

/// How often the resident memory of the process tree is sampled when `mem_limit` is set.
const MEMORY_SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// How long output is still drained after the process group was killed.
///
/// Everything in the group is dead by then, but a process that left the group could still hold
/// the pipes open; the execution does not wait for it.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(1);

/// How long output is still read after the job's main process exited on its own; a background
/// process that inherited the pipes could otherwise hold the execution open indefinitely.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// The size of one read from the process's stdout or stderr.
const READ_CHUNK: usize = 8 * 1024;

/// Runs jobs as local processes, one process group per execution (Dkron's `shell` executor).
#[derive(Debug, Clone, Default)]
pub struct ShellExecutor {
    /// The environment processes start from instead of the agent's own, when set.
    base_env: Option<BTreeMap<String, String>>,
    /// Spawn from the runtime's threads even when the spawner threads were started.
    in_process: bool,
}

impl ShellExecutor {
    /// Returns an executor whose processes inherit the agent's environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns an executor whose processes start from `base_env` instead of the agent's
    /// environment; the job's `env` and `ENV_JOB_NAME` are added on top.
    pub fn with_base_env(base_env: BTreeMap<String, String>) -> Self {
        Self {
            base_env: Some(base_env),
            in_process: false,
        }
    }

    /// Returns this executor spawning from the runtime's threads even when the spawner threads
    /// ([`super::start_spawner`]) run: the way every process was spawned before they existed,
    /// and the way they still are where they cannot start.
    #[must_use]
    pub fn spawning_in_process(mut self) -> Self {
        self.in_process = true;
        self
    }

    async fn run(
        &self,
        config: &ShellConfig,
        job_name: &str,
        output: &OutputBuffer,
        cancel: CancellationToken,
    ) -> Result<ExecuteOutcome, String> {
        let argv = config.argv()?;
        let (program, args) = argv
            .split_first()
            .expect("argv() never returns an empty list");
        // The command carries no descriptor: it may be spawned by a spawner thread, whose
        // descriptor numbers mean other files (see `spawner`).
        let mut command = Command::new(program);
        command.args(args).process_group(0);
        if let Some(base_env) = &self.base_env {
            command.env_clear().envs(base_env);
        }
        command.envs(config.env.iter().map(|(key, value)| (key, value)));
        command.env("ENV_JOB_NAME", job_name);
        if let Some(cwd) = &config.cwd {
            let is_dir = tokio::fs::metadata(cwd)
                .await
                .is_ok_and(|metadata| metadata.is_dir());
            if !is_dir {
                return Err(format!("chdir {}: no such directory", cwd.display()));
            }
            command.current_dir(cwd);
        }
        if let Some(su) = &config.su {
            let su_text = su.clone();
            let (uid, gid) = tokio::task::spawn_blocking(move || resolve_su(&su_text))
                .await
                .map_err(|error| format!("shell: su lookup failed: {error}"))??;
            command.uid(uid).gid(gid);
        }

        let stdin_piped = config.payload.is_some();
        let Started {
            pid: leader,
            output: output_fd,
            stdin,
            mut child,
        } = start(command, stdin_piped, self.in_process)
            .await
            .map_err(|error| spawn_error_text(program, &error))?;
        let leader = i32::try_from(leader).expect("process ids fit in an i32");
        let mut group = GroupKiller {
            pgid: Pid::from_raw(leader),
            armed: true,
        };

        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(output_fd)
            .map_err(|error| format!("shell: cannot read the output pipe: {error}"))?;
        tasks.push(spawn_reader(pipe, output.clone()));
        let stdin_writer = match (stdin, config.payload.clone()) {
            (Some(stdin), Some(payload)) => {
                let mut stdin = tokio::net::unix::pipe::Sender::from_owned_fd(stdin)
                    .map_err(|error| format!("shell: cannot write the input pipe: {error}"))?;
                Some(tokio::spawn(async move {
                    // The process may exit without reading its input; a broken pipe is not an
                    // error.
                    let _ = stdin.write_all(&payload).await;
                }))
            }
            _ => None,
        };
        let abort_handles: Vec<AbortHandle> = tasks
            .iter()
            .chain(stdin_writer.iter())
            .map(JoinHandle::abort_handle)
            .collect();
        // The leader's exit and the end of its output are awaited apart: a background process
        // of the job may keep the pipes open long after the leader is gone.
        let mut exited = Box::pin(async move { child.wait().await });
        let mut readers = Box::pin(async move {
            for task in tasks {
                let _ = task.await;
            }
        });

        let deadline = config
            .timeout
            .as_ref()
            .map(|(duration, _)| Instant::now() + *duration);
        let mut memory_ticker = tokio::time::interval(MEMORY_SAMPLE_PERIOD);
        memory_ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let stop = loop {
            tokio::select! {
                status = &mut exited => break Stop::Exited(status),
                () = cancel.cancelled() => break Stop::Cancelled,
                () = sleep_until(deadline) => break Stop::TimedOut,
                _ = memory_ticker.tick(), if config.mem_limit.is_some() => {
                    let limit = config.mem_limit.expect("guarded by the select condition");
                    let usage = sample_tree_rss(leader).await;
                    if usage > limit {
                        break Stop::MemoryExceeded { usage, limit };
                    }
                }
            }
        };

        let outcome = match stop {
            Stop::Exited(status) => {
                // A leader killed by a signal ends the job: the rest of its group goes too
                // (no orphans, and `forbid` is not held by a leftover). A leader that exited
                // on its own leaves its background processes alone, as Dkron does.
                let by_signal = matches!(&status, Ok(s) if s.signal().is_some());
                let window = if by_signal {
                    let _ = group.kill();
                    DRAIN_AFTER_KILL
                } else {
                    group.armed = false;
                    DRAIN_AFTER_EXIT
                };
                if tokio::time::timeout(window, &mut readers).await.is_err() {
                    tracing::debug!(
                        pgid = leader,
                        "output still open after the job's main process ended; stopped reading"
                    );
                }
                outcome_of_status(status)
            }
            Stop::Cancelled | Stop::TimedOut | Stop::MemoryExceeded { .. } => {
                let kill_result = group.kill();
                let completion = async {
                    let status = (&mut exited).await;
                    (&mut readers).await;
                    status
                };
                let drained = tokio::time::timeout(DRAIN_AFTER_KILL, completion).await;
                for handle in &abort_handles {
                    handle.abort();
                }
                let killed_outcome = match drained {
                    Ok(status) => outcome_of_status(status),
                    Err(_elapsed) => ExecuteOutcome::failed("signal: killed"),
                };
                let kill_note = match kill_result {
                    Ok(()) => "Job was killed",
                    Err(_) => "SIGKILL returned error. Job may not have been killed",
                };
                let command_line = &config.command;
                match stop {
                    Stop::TimedOut => {
                        let timeout_text = config.timeout.as_ref().map_or("", |(_, text)| text);
                        output.push(
                            format!(
                                "shell: Job '{command_line}' execution time exceeding defined \
                                 timeout {timeout_text}. {kill_note}\n"
                            )
                            .as_bytes(),
                        );
                        killed_outcome
                    }
                    Stop::MemoryExceeded { usage, limit } => {
                        output.push(
                            format!(
                                "shell: Job '{command_line}' memory usage ({usage} bytes) \
                                 exceeding defined limit ({limit} bytes). {kill_note}\n"
                            )
                            .as_bytes(),
                        );
                        killed_outcome
                    }
                    _ => ExecuteOutcome::killed(),
                }
            }
        };
        for handle in &abort_handles {
            handle.abort();
        }
        Ok(outcome)
    }
}

#[async_trait::async_trait]
impl Executor for ShellExecutor {
    async fn execute(
        &self,
        req: &ExecuteRequest,
        output: &OutputBuffer,
        cancel: CancellationToken,
    ) -> ExecuteOutcome {
        let config = match ShellConfig::from_config(&req.config) {
            Ok(config) => config,
            Err(error) => return ExecuteOutcome::failed(error),
        };
        self.run(&config, &req.job_name, output, cancel)
            .await
            .unwrap_or_else(ExecuteOutcome::failed)
    }
}

/// A spawned job process: its pid (its group's id), the read end of its output pipe, the write
/// end of its stdin pipe when it has one, and the wait for its exit.
struct Started {
    pid: u32,
    output: OwnedFd,
    stdin: Option<OwnedFd>,
    child: Child,
}

/// Spawns `command` with stdout and stderr on one pipe and stdin on a pipe (`stdin_piped`) or
/// on `/dev/null`: through the spawner threads when they run, else from this thread.
async fn start(command: Command, stdin_piped: bool, in_process: bool) -> io::Result<Started> {
    let Some(spawner) = spawner::get().filter(|_| !in_process) else {
        return start_in_process(command, stdin_piped);
    };
    match spawner.spawn(command, stdin_piped).await {
        Ok(spawned) => Ok(Started {
            pid: spawned.pid,
            output: spawned.output,
            stdin: spawned.stdin,
            child: Child::Spawner(spawned.child),
        }),
        Err(SpawnFailure::Spawn(error)) => Err(error),
        Err(SpawnFailure::Unavailable(command)) => start_in_process(*command, stdin_piped),
    }
}

/// Spawns `command` from the calling thread.
fn start_in_process(mut command: Command, stdin_piped: bool) -> io::Result<Started> {
    let (output, stdin) = spawner::attach_pipes(&mut command, stdin_piped)?;
    let mut command = tokio::process::Command::from(command);
    let spawned = command.spawn();
    // The command holds the pipes' child ends; dropping it leaves them to the child alone, so
    // the reader sees end-of-file when the child (and its group) is done.
    drop(command);
    let child = spawned?;
    let pid = child
        .id()
        .expect("a freshly spawned child has not been reaped");
    Ok(Started {
        pid,
        output,
        stdin,
        child: Child::InProcess(child),
    })
}

/// The wait for a job process's exit, by how it was spawned.
enum Child {
    InProcess(tokio::process::Child),
    Spawner(spawner::ChildExit),
}

impl Child {
    async fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            Self::InProcess(child) => child.wait().await,
            Self::Spawner(child) => child.wait().await,
        }
    }
}

/// Why the wait for the process ended.
enum Stop {
    Exited(io::Result<ExitStatus>),
    Cancelled,
    TimedOut,
    MemoryExceeded { usage: u64, limit: u64 },
}

/// Sends `SIGKILL` to the execution's process group, and does so on drop while armed, so that
/// an execution future dropped midway leaves no processes behind.
struct GroupKiller {
    pgid: Pid,
    armed: bool,
}

impl GroupKiller {
    fn kill(&mut self) -> nix::Result<()> {
        self.armed = false;
        match killpg(self.pgid, Signal::SIGKILL) {
            // The whole group has already exited.
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => {
                tracing::warn!(pgid = self.pgid.as_raw(), %errno, "failed to kill process group");
                Err(errno)
            }
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.kill();
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Reads the output pipe to its end into `output`.
///
/// The read buffer lives on the stack only while a read is done (never across an `await`), so
/// thousands of running jobs waiting for output hold no buffer each.
fn spawn_reader(pipe: tokio::net::unix::pipe::Receiver, output: OutputBuffer) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if pipe.readable().await.is_err() {
                break;
            }
            let mut chunk = [0u8; READ_CHUNK];
            match pipe.try_read(&mut chunk) {
                Ok(0) => break,
                Ok(read) => output.push(&chunk[..read]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
    })
}

fn outcome_of_status(status: io::Result<ExitStatus>) -> ExecuteOutcome {
    match status {
        Ok(status) if status.success() => ExecuteOutcome::succeeded(),
        Ok(status) => ExecuteOutcome::failed(exit_status_text(status)),
        Err(error) => ExecuteOutcome::failed(format!("wait: {error}")),
    }
}

/// Returns Go's `*exec.ExitError` text for a failed status: `exit status <n>` or
/// `signal: <name>`.
fn exit_status_text(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(number) => format!("signal: {}", signal_name(number)),
        None => status.to_string(),
    }
}

/// Returns Go's name of a signal, as `syscall.Signal.String` prints it.
fn signal_name(number: i32) -> String {
    let Ok(signal) = Signal::try_from(number) else {
        return format!("signal {number}");
    };
    let name = match signal {
        Signal::SIGHUP => "hangup",
        Signal::SIGINT => "interrupt",
        Signal::SIGQUIT => "quit",
        Signal::SIGILL => "illegal instruction",
        Signal::SIGTRAP => "trace/breakpoint trap",
        Signal::SIGABRT => "aborted",
        Signal::SIGBUS => "bus error",
        Signal::SIGFPE => "floating point exception",
        Signal::SIGKILL => "killed",
        Signal::SIGUSR1 => "user defined signal 1",
        Signal::SIGSEGV => "segmentation fault",
        Signal::SIGUSR2 => "user defined signal 2",
        Signal::SIGPIPE => "broken pipe",
        Signal::SIGALRM => "alarm clock",
        Signal::SIGTERM => "terminated",
        other => return other.as_str().to_owned(),
    };
    name.to_owned()
}

/// Returns Go's `os/exec` text for a failed spawn.
fn spawn_error_text(program: &str, error: &io::Error) -> String {
    let searched_path = !program.contains('/');
    match error.kind() {
        io::ErrorKind::NotFound if searched_path => {
            format!("exec: {program:?}: executable file not found in $PATH")
        }
        io::ErrorKind::NotFound => format!("fork/exec {program}: no such file or directory"),
        io::ErrorKind::PermissionDenied => format!("fork/exec {program}: permission denied"),
        _ => format!("fork/exec {program}: {error}"),
    }
}

/// Resolves the `su` value `user[:group]` (names or numeric ids) to a uid and gid; without a
/// group, the user's primary group is used.
fn resolve_su(su: &str) -> Result<(u32, u32), String> {
    let (user_text, group_text) = match su.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (su, None),
    };
    let user = match user_text.parse::<u32>() {
        Ok(uid) => User::from_uid(uid.into()),
        Err(_) => User::from_name(user_text),
    }
    .map_err(|errno| format!("shell: su: looking up user {user_text:?}: {errno}"))?;
    let user = user.ok_or_else(|| format!("shell: su: unknown user {user_text:?}"))?;
    let gid = match group_text {
        None | Some("") => user.gid.as_raw(),
        Some(group_text) => {
            let group = match group_text.parse::<u32>() {
                Ok(gid) => Group::from_gid(gid.into()),
                Err(_) => Group::from_name(group_text),
            }
            .map_err(|errno| format!("shell: su: looking up group {group_text:?}: {errno}"))?;
            group
                .ok_or_else(|| format!("shell: su: unknown group {group_text:?}"))?
                .gid
                .as_raw()
        }
    };
    Ok((user.uid.as_raw(), gid))
}

/// Returns the resident memory in bytes of the process group led by `leader` plus every
/// descendant of its members (descendants that started their own group included).
async fn sample_tree_rss(leader: i32) -> u64 {
    tokio::task::spawn_blocking(move || process_tree_rss(leader))
        .await
        .unwrap_or(0)
}

/// One row of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProcStat {
    pub(super) pid: i32,
    pub(super) ppid: i32,
    pub(super) pgrp: i32,
    pub(super) rss_pages: u64,
}

fn process_tree_rss(leader: i32) -> u64 {
    let page_size = sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u64::try_from(size).ok())
        .unwrap_or(4096);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let processes: Vec<ProcStat> = entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            parse_proc_stat(pid, &stat)
        })
        .collect();
    tree_rss_pages(leader, &processes) * page_size
}

/// Sums the resident pages of the group led by `leader` and of all descendants of its members.
pub(super) fn tree_rss_pages(leader: i32, processes: &[ProcStat]) -> u64 {
    let mut members: HashSet<i32> = processes
        .iter()
        .filter(|process| process.pgrp == leader || process.pid == leader)
        .map(|process| process.pid)
        .collect();
    loop {
        let count_before = members.len();
        for process in processes {
            if members.contains(&process.ppid) {
                members.insert(process.pid);
            }
        }
        if members.len() == count_before {
            break;
        }
    }
    processes
        .iter()
        .filter(|process| members.contains(&process.pid))
        .map(|process| process.rss_pages)
        .sum()
}

/// Parses `/proc/<pid>/stat`; the command name may contain spaces and parentheses, so fields
/// are counted from its last `)`.
pub(super) fn parse_proc_stat(pid: i32, stat: &str) -> Option<ProcStat> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields from the third on (state, ppid, pgrp, …); rss is the 24th field of the line.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    Some(ProcStat {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        rss_pages: fields.get(21)?.parse().ok()?,
    })
}
