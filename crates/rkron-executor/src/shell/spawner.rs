//! Spawning the shell executor's processes from a thread with a descriptor table of its own.
//!
//! A spawn copies the spawning thread's descriptor table into the child, and the child's `exec`
//! closes that copy again, so every spawn costs time in proportion to the descriptors the
//! spawner holds. A server running thousands of jobs holds thousands (an output pipe and a pidfd
//! per running job): measured on the 2-core bench machine (`scripts/fd-spawn-cost`), a parent
//! holding 4,000 descriptors spawned `true` at 2,030 a second against 3,250 with none, each
//! child using 800 µs of CPU instead of 475 µs. So the server spawns from spawner threads that
//! unshared their descriptor tables at start-up, when the process's table held little more
//! than the standard streams; their children copy a handful of descriptors whatever the rest
//! of the server holds.
//!
//! There is one spawner thread per core ([`SPAWNER_THREADS_MAX`] at most), taking requests from
//! one shared queue: a spawn holds its thread until the child has called `exec`, so a single
//! spawner left a core idle during a burst.
//!
//! The hand-over is batched: a spawner thread spawns every queued request it can take (up to
//! [`BATCH_MAX`]) before it answers them in one message, so under a burst the threads wake once
//! per batch. Unbatched, the context switches cost the server about what the smaller table
//! saved its children (BENCHMARKS.md, "Shell throughput").
//!
//! Two tables in one process means a descriptor number names different files in each, so:
//! - a spawner thread only uses its end of the socket pair and descriptors it creates itself;
//!   a request is a [`std::process::Command`] whose standard streams are not set (it carries no
//!   descriptor);
//! - it never wakes a task of the runtime (a wake may write to the runtime's eventfd by number):
//!   its answers go out on the socket pair, with the new descriptors (the output pipe's read
//!   end, the input pipe's write end) as `SCM_RIGHTS`;
//! - the reply thread, which shares the process's table, receives them and completes the
//!   waiting runs; a run then opens a pidfd for its child and waits on it in the runtime.
//!
//! [`start`] must run before the process opens anything it expects to close for good (a
//! listener, a lock, a connection): each spawner thread keeps its copy of every descriptor open
//! at that moment. `rkron agent` starts it first thing. Without it (not started, or unshare or pidfds
//! unavailable) the executor spawns from the runtime's threads as before.

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd as _, OwnedFd};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, TryLockError, mpsc};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use rustix::process::{Pid, PidfdFlags, WaitOptions};
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

/// The process-wide spawner, once [`start`] succeeded.
static SPAWNER: OnceLock<Spawner> = OnceLock::new();

/// Most answers sent in one message: during a burst the spawner spawns this many queued
/// requests back to back and hands them over together, so the reply thread and the runtime
/// wake once per batch rather than once per process.
const BATCH_MAX: usize = 32;

/// Most spawner threads, whatever the number of cores.
const SPAWNER_THREADS_MAX: usize = 8;

/// Longest error text carried in an answer.
const TEXT_MAX: usize = 200;

/// Fixed part of an answer: request id (8), pid (4), errno (4), error kind (1), descriptors
/// (1), text length (2).
const RECORD: usize = 20;

/// Largest message: a whole batch of answers with their texts.
const MESSAGE_MAX: usize = BATCH_MAX * (RECORD + TEXT_MAX);

/// Starts the process's spawner threads and their reply thread; idempotent.
///
/// Fails (and the executor keeps spawning from the runtime's threads) when the kernel refuses to
/// unshare a descriptor table (some seccomp profiles) or has no pidfds (before Linux 5.3).
pub fn start() -> io::Result<()> {
    if SPAWNER.get().is_some() {
        return Ok(());
    }
    // A pidfd is how a run waits for a child spawned by another thread: probe it first.
    rustix::process::pidfd_open(rustix::process::getpid(), PidfdFlags::empty())?;
    let (main_end, spawner_end) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let (requests, incoming) = mpsc::channel::<Request>();
    let incoming = Arc::new(Mutex::new(incoming));
    for _ in 0..spawner_threads() {
        let (socket, incoming) = (spawner_end.try_clone()?, incoming.clone());
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        std::thread::Builder::new()
            .name("rkron-spawner".to_owned())
            .spawn(move || spawner_thread(&socket, &incoming, &ready_tx))?;
        // Until the thread has unshared, a descriptor opened here would be copied into its
        // table.
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("the spawner thread ended at start"))??;
    }
    drop(spawner_end);
    let spawner = Spawner {
        requests,
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        alive: AtomicBool::new(true),
    };
    if SPAWNER.set(spawner).is_err() {
        // Another thread started one first; this one's threads end with their channels.
        return Ok(());
    }
    std::thread::Builder::new()
        .name("rkron-spawn-reply".to_owned())
        .spawn(move || reply_thread(&main_end))?;
    Ok(())
}

/// How many spawner threads to start: one per core, at most [`SPAWNER_THREADS_MAX`].
///
/// A spawn holds its thread until the child has called `exec` (the child borrows the parent's
/// memory until then), so a single spawner left a core idle during a burst: on the 2-core
/// bench machine 10,000 shell runs went at 0.66–0.80 of the fork baseline with one spawner and
/// at 0.83–0.87 with two (BENCHMARKS.md, "one spawner thread per core").
pub(super) fn spawner_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, SPAWNER_THREADS_MAX)
}

/// The spawner, when it was started and still works.
pub(super) fn get() -> Option<&'static Spawner> {
    SPAWNER
        .get()
        .filter(|spawner| spawner.alive.load(Ordering::Acquire))
}

/// The handle runs use to reach the spawner threads.
#[derive(Debug)]
pub(super) struct Spawner {
    requests: mpsc::Sender<Request>,
    pending: Mutex<HashMap<u64, oneshot::Sender<io::Result<Reply>>>>,
    next_id: AtomicU64,
    alive: AtomicBool,
}

/// A spawn request: the command without its standard streams.
#[derive(Debug)]
struct Request {
    id: u64,
    command: Command,
    stdin_piped: bool,
}

/// What the reply thread hands to the waiting run.
#[derive(Debug)]
struct Reply {
    pid: i32,
    output: OwnedFd,
    stdin: Option<OwnedFd>,
}

/// Why a spawn through the spawner did not give a process.
#[derive(Debug)]
pub(super) enum SpawnFailure {
    /// The command could not be spawned (as `Command::spawn` reports it).
    Spawn(io::Error),
    /// The spawner is gone; the command comes back to be spawned another way.
    Unavailable(Box<Command>),
}

/// A process spawned by a spawner thread.
#[derive(Debug)]
pub(super) struct Spawned {
    /// The child's process id (and process group id).
    pub(super) pid: u32,
    /// The read end of the pipe that is the child's stdout and stderr.
    pub(super) output: OwnedFd,
    /// The write end of the child's stdin pipe, when one was asked for.
    pub(super) stdin: Option<OwnedFd>,
    /// Waits for the child's exit.
    pub(super) child: ChildExit,
}

impl Spawner {
    /// Spawns `command` (standard streams unset) with stdout and stderr on one new pipe, and
    /// stdin on a pipe when `stdin_piped`, else on `/dev/null`.
    pub(super) async fn spawn(
        &self,
        command: Command,
        stdin_piped: bool,
    ) -> Result<Spawned, SpawnFailure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        lock(&self.pending).insert(id, reply_tx);
        let sent = self.requests.send(Request {
            id,
            command,
            stdin_piped,
        });
        if let Err(mpsc::SendError(request)) = sent {
            lock(&self.pending).remove(&id);
            self.alive.store(false, Ordering::Release);
            return Err(SpawnFailure::Unavailable(Box::new(request.command)));
        }
        let reply = match reply_rx.await {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) => return Err(SpawnFailure::Spawn(error)),
            Err(_) => {
                return Err(SpawnFailure::Spawn(io::Error::other(
                    "the spawner thread ended during the spawn",
                )));
            }
        };
        let pid = u32::try_from(reply.pid).map_err(|_| {
            SpawnFailure::Spawn(io::Error::other("the spawner answered a negative pid"))
        })?;
        let child = match ChildExit::new(reply.pid) {
            Ok(child) => child,
            Err(error) => {
                // Without a pidfd the run cannot follow its process: none is left running.
                abandon(reply.pid);
                return Err(SpawnFailure::Spawn(error));
            }
        };
        Ok(Spawned {
            pid,
            output: reply.output,
            stdin: reply.stdin,
            child,
        })
    }

    /// How many spawns were asked of the spawner so far.
    #[cfg(test)]
    pub(super) fn requests_made(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed) - 1
    }

    /// How many spawns wait for their answer.
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Fails every waiting spawn and stops taking new ones.
    fn shut(&self, why: &str) {
        self.alive.store(false, Ordering::Release);
        for (_, waiting) in lock(&self.pending).drain() {
            let _ = waiting.send(Err(io::Error::other(why.to_owned())));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A spawner thread: unshares its descriptor table, then spawns one request after the other,
/// taking them from the queue all spawner threads share.
fn spawner_thread(
    socket: &OwnedFd,
    incoming: &Mutex<mpsc::Receiver<Request>>,
    ready: &mpsc::Sender<io::Result<()>>,
) {
    if let Err(errno) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_FILES) {
        let _ = ready.send(Err(io::Error::from(errno)));
        return;
    }
    if ready.send(Ok(())).is_err() {
        return;
    }
    loop {
        // One idle thread waits on the queue holding its lock; the others wait for the lock.
        let Ok(first) = lock(incoming).recv() else {
            return;
        };
        let mut answers = vec![answer_to(first)];
        while answers.len() < BATCH_MAX {
            // Each queued request goes to whichever thread is free first. The lock is busy
            // when another thread waits on an empty queue: then nothing is queued, and what
            // was spawned goes out now rather than when the next request comes.
            let next = match incoming.try_lock() {
                Ok(queue) => queue.try_recv().ok(),
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().try_recv().ok(),
                Err(TryLockError::WouldBlock) => None,
            };
            match next {
                Some(request) => answers.push(answer_to(request)),
                None => break,
            }
        }
        // The answers (and this thread's copies of their descriptors) are dropped once sent.
        if send_answers(socket, &answers).is_err() {
            // The reply thread is gone: nobody can receive what this thread spawns.
            return;
        }
    }
}

/// One spawn's answer: its request id and what the spawn gave.
type Answer = (u64, io::Result<(u32, OwnedFd, Option<OwnedFd>)>);

fn answer_to(request: Request) -> Answer {
    let id = request.id;
    let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| spawn_here(request)))
        .unwrap_or_else(|_| Err(io::Error::other("the spawn panicked")));
    (id, spawned)
}

/// Spawns a request in the calling spawner thread's table: returns the child's pid, the output pipe's
/// read end and the stdin pipe's write end.
fn spawn_here(request: Request) -> io::Result<(u32, OwnedFd, Option<OwnedFd>)> {
    let Request {
        mut command,
        stdin_piped,
        ..
    } = request;
    let (output, stdin) = attach_pipes(&mut command, stdin_piped)?;
    let spawned = command.spawn();
    // The command holds the child's ends of the pipes: close them here, so the run sees the end
    // of the output when the child's group is done.
    drop(command);
    Ok((spawned?.id(), output, stdin))
}

/// Gives `command` its standard streams, made in the calling thread's descriptor table: stdout
/// and stderr share one new pipe (one reader per run, and the interleaving of the two streams
/// kept exactly), stdin is a new pipe when `stdin_piped`, else `/dev/null`. Returns the output
/// pipe's read end and the stdin pipe's write end.
pub(super) fn attach_pipes(
    command: &mut Command,
    stdin_piped: bool,
) -> io::Result<(OwnedFd, Option<OwnedFd>)> {
    let (output_reader, output_writer) = std::io::pipe()?;
    let stderr_writer = output_writer.try_clone()?;
    command
        .stdout(Stdio::from(output_writer))
        .stderr(Stdio::from(stderr_writer));
    let stdin_writer = if stdin_piped {
        let (reader, writer) = std::io::pipe()?;
        command.stdin(Stdio::from(reader));
        Some(OwnedFd::from(writer))
    } else {
        command.stdin(Stdio::null());
        None
    };
    Ok((OwnedFd::from(output_reader), stdin_writer))
}

/// Sends a batch of answers in one message: per answer its id, then the pid and the
/// descriptors, or the error; the descriptors of all answers travel together, in order.
fn send_answers(socket: &OwnedFd, answers: &[Answer]) -> io::Result<()> {
    let mut message = Vec::with_capacity(answers.len() * RECORD);
    let mut fds = Vec::with_capacity(answers.len() * 2);
    for (id, answer) in answers {
        message.extend_from_slice(&id.to_le_bytes());
        match answer {
            Ok((pid, output, stdin)) => {
                let pid = i32::try_from(*pid).map_err(io::Error::other)?;
                message.extend_from_slice(&pid.to_le_bytes());
                message.extend_from_slice(&0i32.to_le_bytes());
                message.push(0);
                fds.push(output.as_fd());
                match stdin {
                    Some(stdin) => {
                        fds.push(stdin.as_fd());
                        message.push(2);
                    }
                    None => message.push(1),
                }
                message.extend_from_slice(&0u16.to_le_bytes());
            }
            Err(error) => {
                message.extend_from_slice(&0i32.to_le_bytes());
                message.extend_from_slice(&error.raw_os_error().unwrap_or(0).to_le_bytes());
                message.push(kind_code(error.kind()));
                message.push(0);
                let text = error.to_string();
                let mut end = text.len().min(TEXT_MAX);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                let length = u16::try_from(end).unwrap_or(0);
                message.extend_from_slice(&length.to_le_bytes());
                message.extend_from_slice(&text.as_bytes()[..usize::from(length)]);
            }
        }
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH_MAX * 2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        control.push(SendAncillaryMessage::ScmRights(&fds));
    }
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(&message)],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// The reply thread: receives the spawner's answers (and their descriptors, into the process's
/// table) and completes the waiting runs.
fn reply_thread(socket: &OwnedFd) {
    let Some(spawner) = SPAWNER.get() else {
        return;
    };
    let mut buffer = vec![0u8; MESSAGE_MAX];
    loop {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH_MAX * 2))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut buffer)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        );
        let bytes = match received {
            Ok(message) if message.bytes >= RECORD => message.bytes,
            Ok(_) => {
                spawner.shut("the spawner threads ended");
                return;
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => {
                spawner.shut(&format!("the spawner's socket failed: {errno}"));
                return;
            }
        };
        let mut fds: Vec<OwnedFd> = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        let answers = parse_answers(&buffer[..bytes], fds);
        let mut pending = lock(&spawner.pending);
        for (id, answer) in answers {
            let unclaimed = match pending.remove(&id) {
                Some(waiting) => waiting.send(answer).err(),
                None => Some(answer),
            };
            // The run stopped waiting (it was cancelled or dropped during the spawn): its
            // process must not go on unsupervised.
            if let Some(Ok(reply)) = unclaimed {
                abandon(reply.pid);
            }
        }
    }
}

/// Reads a message of [`send_answers`].
fn parse_answers(message: &[u8], fds: Vec<OwnedFd>) -> Vec<(u64, io::Result<Reply>)> {
    let mut fds = fds.into_iter();
    let mut answers = Vec::new();
    let mut rest = message;
    while rest.len() >= RECORD {
        let (record, after) = rest.split_at(RECORD);
        let id = u64::from_le_bytes(record[..8].try_into().unwrap_or([0; 8]));
        let pid = i32::from_le_bytes(record[8..12].try_into().unwrap_or([0; 4]));
        let errno = i32::from_le_bytes(record[12..16].try_into().unwrap_or([0; 4]));
        let kind = record[16];
        let fd_count = record[17];
        let text_length = usize::from(u16::from_le_bytes([record[18], record[19]]));
        let (text, after) = after.split_at(text_length.min(after.len()));
        rest = after;
        let answer = if pid > 0 {
            match fds.next() {
                Some(output) => Ok(Reply {
                    pid,
                    output,
                    stdin: if fd_count > 1 { fds.next() } else { None },
                }),
                None => Err(io::Error::other("the spawner sent no output pipe")),
            }
        } else if errno != 0 {
            Err(io::Error::from_raw_os_error(errno))
        } else {
            let text = String::from_utf8_lossy(text).into_owned();
            Err(io::Error::new(kind_of_code(kind), text))
        };
        answers.push((id, answer));
    }
    answers
}

/// The error kinds a spawn reports without an errno (std's own checks), as one byte.
const KINDS: [io::ErrorKind; 4] = [
    io::ErrorKind::Other,
    io::ErrorKind::InvalidInput,
    io::ErrorKind::NotFound,
    io::ErrorKind::PermissionDenied,
];

fn kind_code(kind: io::ErrorKind) -> u8 {
    KINDS
        .iter()
        .position(|known| *known == kind)
        .and_then(|index| u8::try_from(index).ok())
        .unwrap_or(0)
}

fn kind_of_code(code: u8) -> io::ErrorKind {
    KINDS
        .get(usize::from(code))
        .copied()
        .unwrap_or(io::ErrorKind::Other)
}

/// Waits for the exit of a child spawned by a spawner thread, through a pidfd registered with
/// the runtime; reaps it.
#[derive(Debug)]
pub(super) struct ChildExit {
    pid: Pid,
    /// `None` once the child was reaped.
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// Set on the copy that reaps in the background: dropping that one does not try again.
    background: bool,
}

impl ChildExit {
    fn new(pid: i32) -> io::Result<Self> {
        let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::other("pid 0"))?;
        // The child is this process's own and is not reaped before `wait`, so its pid cannot
        // have been reused.
        let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::NONBLOCK)?;
        // `register` is the unsafe form for descriptors the value may not own; an `OwnedFd`
        // owns its descriptor, which is what the deprecated safe form needs.
        #[allow(deprecated)]
        let pidfd = AsyncFd::new(pidfd)?;
        Ok(Self {
            pid,
            pidfd: Some(pidfd),
            background: false,
        })
    }

    /// Waits for the child to exit and reaps it.
    pub(super) async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            let Some(pidfd) = &self.pidfd else {
                return Err(io::Error::other("the child was already reaped"));
            };
            let mut ready = pidfd.readable().await?;
            if let Some(status) = reap(self.pid)? {
                self.pidfd = None;
                return Ok(status);
            }
            ready.clear_ready();
        }
    }
}

impl Drop for ChildExit {
    /// A child not waited for to the end (the run was dropped; its group was killed) is reaped
    /// in the background, so no zombie stays behind.
    fn drop(&mut self) {
        let Some(pidfd) = self.pidfd.take() else {
            return;
        };
        if self.background || matches!(reap(self.pid), Ok(Some(_)) | Err(_)) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut rest = Self {
            pid: self.pid,
            pidfd: Some(pidfd),
            background: true,
        };
        runtime.spawn(async move {
            let _ = rest.wait().await;
        });
    }
}

/// Kills the process group of a spawned process no run follows, and reaps the process on a
/// thread of its own (a killed process exits promptly, but the reply thread must never wait).
fn abandon(pid: i32) {
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = std::thread::Builder::new()
        .name("rkron-reap".to_owned())
        .spawn(move || nix::sys::wait::waitpid(pid, None));
}

/// Reaps `pid` if it has exited.
fn reap(pid: Pid) -> io::Result<Option<ExitStatus>> {
    use std::os::unix::process::ExitStatusExt as _;
    match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
        Ok(Some((_, status))) => Ok(Some(ExitStatus::from_raw(status.as_raw()))),
        Ok(None) => Ok(None),
        Err(errno) => Err(io::Error::from(errno)),
    }
}
