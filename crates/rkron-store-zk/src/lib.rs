//! rkron-store-zk owns rkron's ZooKeeper store: the [`Store`] trait over one ZooKeeper
//! ensemble (3.6 or later: it uses multi-read requests), so any number of servers share one
//! keyspace. The znode layout is in module `layout`.
//!
//! # Atomicity
//!
//! Writes the trait wants atomic are one ZooKeeper `multi` request (all ops or none), guarded
//! by znode versions: the store reads what it needs, plans the writes, and sends them with a
//! `check`/versioned `setData`/`delete` or a `create` (which fails when the node exists) for
//! everything it read. When a guard fails (a concurrent writer won), nothing was written and the
//! store reads again, up to [`CAS_ATTEMPTS`] times.
//!
//! - `commit_jobs` is one multi: a versioned write, create or delete per job op, and for each
//!   deleted job the deletes of its executions, outputs, running-index entries, ledger entry and
//!   missed fires. Expectations are checked client-side, in order, against the versions read
//!   (the versions are `mzxid`s, which ZooKeeper's `check` cannot compare), and the multi guards
//!   each job with the `dataVersion` read, so a job written meanwhile makes the store read
//!   again. A `create` followed by a `delete` of the same node asserts that a node read as
//!   absent still is (ZooKeeper has no "check absent").
//! - `put_execution` and `finish_execution` are one multi each: the execution, its output, its
//!   running-index entry, the trimmed executions and (finishing) the job, guarded by its
//!   `dataVersion`.
//! - `record_missed` is one multi guarded by the job's and the record's versions. A znode's
//!   `dataVersion` restarts at 0 when it is created again, so a job deleted *and* re-created
//!   between the read and the write (one round trip) could receive missed fires meant for its
//!   previous incarnation; `check` cannot compare the `czxid` that would tell them apart.
//!
//! ZooKeeper refuses requests over `jute.maxbuffer` (1 MiB by default) by dropping the
//! connection, so every multi is kept under [`MULTI_BUDGET`] bytes (estimated). That shapes
//! three operations:
//!
//! - `record_fires` writes its slice in chunks of at most [`MULTI_BUDGET`] bytes (about 3,000
//!   ledger entries). **Each chunk is atomic and fenced; the slice as a whole is not.** Every
//!   chunk's multi starts with a `check` that the caller's lease node still exists, so a
//!   deposed leader records nothing from the moment it is deposed (see "Leadership"). A crash
//!   between chunks leaves some fires of the tick recorded and others not; the scheduler records
//!   fires before dispatching them, so that only means some recorded fires were not dispatched:
//!   the same window as a crash right after one atomic write. Each chunk reads the entries first
//!   and writes only those that move forward, each guarded by the version read (a race re-reads),
//!   so no entry moves back.
//! - Deleting a job (or `delete_executions`) whose history does not fit one multi deletes the
//!   job, its running entries, ledger entry and missed fires atomically, and its executions and
//!   outputs right after, in further multis.
//! - Trimming more executions than fit one multi (retention lowered by a lot) trims the rest in
//!   further multis right after the write.
//! - A `commit_jobs` whose jobs alone exceed about 1 MB answers [`StoreError::Backend`] and
//!   writes nothing (the node commits a few jobs at a time).
//!
//! The layout keeps one invariant that writes rely on: a run's output node exists exactly when
//! its execution node does (both are written and deleted in the same multi). The lease
//! directory `/<ks>/leader` must never be deleted while servers run: ZooKeeper numbers
//! sequential nodes per parent, and a re-created parent would number from 0 again.
//!
//! Listings (`list_jobs`, `fire_ledger`, `list_executions`, …) list a directory's children
//! (ZooKeeper answers them all at once, unordered; the store sorts them) and read the nodes in
//! multi-read requests of 500: each batch is a snapshot, the listing as a whole is not. A node
//! deleted between the listing and the read is left out. Very large directories (hundreds of
//! thousands of jobs) make large `getChildren` answers; ZooKeeper itself is not meant for more.
//!
//! # Leadership
//!
//! ZooKeeper's `check` op compares a node's `dataVersion`, which restarts at 0 whenever a node is
//! created again, so a check of a fixed `/<ks>/leader` node could not tell one tenure from the
//! next. Each tenure is therefore its own **ephemeral sequential** node
//! `/<ks>/leader/lease-<seq>` (data: holder and TTL), whose name is never reused: the fencing
//! token is that node's `czxid` (zxids only grow, so each tenure's token exceeds every earlier
//! one), and "the lease is still this tenure" is `check(/<ks>/leader/lease-<seq>, any version)`
//! inside the same multi as the fenced writes. Acquisitions are serialised by the parent
//! `/<ks>/leader` node: each one sets its data guarded by the `dataVersion` read (a lock word),
//! so two candidates never both create a lease node.
//!
//! ZooKeeper has no per-node TTL on default servers (TTL nodes need `extendedTypesEnabled`), so
//! a lease ends in either of two ways:
//!
//! - its **session ends**: the node is ephemeral, so ZooKeeper deletes it when the holder's
//!   session expires (the holder's process died or was cut off for the session timeout);
//! - its **TTL passes without renewal**, judged on each store's own monotonic clock, never on a
//!   wall clock: the holder's store counts the TTL from the moment it *sent* the request that
//!   created or renewed the node; any other store counts it from the moment it first *saw* that
//!   version of the node (each renewal sets the node's data, so changes its version). An
//!   observer therefore never deems a lease expired before its holder does, as long as the
//!   clocks run at about the same rate; no clock needs to agree with another. A store that first
//!   sees a lease waits a full TTL before it may take it over, even if the lease was older.
//!
//! A candidate takes an expired lease over by deleting its node (guarded by the version it saw
//! expire, so a renewal that lands first wins) in the multi that creates its own. From then on
//! the old tenure's fenced writes fail their `check`, so no write of a deposed leader lands after
//! its successor took over. `record_fires` judges the expiry of the caller's lease when it starts;
//! each chunk is then fenced by the lease node's existence.
//!
//! A lease belongs to the session that created it: `acquire_lease` renews (keeping the token)
//! only a live lease of the same holder *and* of this store's current session, and
//! `renew_lease` confirms that the node still exists with the lease's `czxid`, is owned by the
//! current session (so that session is alive: the client heartbeats it by itself), and has not
//! expired, then sets the node's data (guarded by its version). A store whose session ended (and
//! was replaced) therefore loses its lease, as does a second process using the same node name:
//! it campaigns again once the old lease ends. `release_lease` deletes the node.
//!
//! # Errors and timeouts
//!
//! Every request to ZooKeeper is bounded by [`ZkConfig::request_timeout`]; a request that gets
//! no answer in time, a lost connection and an expired session answer
//! [`StoreError::Unavailable`] (a dead server never hangs a call). When the session has ended
//! (expired, closed), the next call opens a new one. Failed guards answer
//! [`StoreError::Conflict`] once the retries are spent, undecodable records
//! [`StoreError::Corrupt`], anything else ZooKeeper refuses [`StoreError::Backend`].
//!
//! # Authentication
//!
//! With [`ZkConfig::username`] set, the session authenticates with ZooKeeper's `digest` scheme
//! (`username:password`) and every node the store creates carries the ACL `auth::cdrwa`: only
//! sessions authenticated as the same user can read or write the keyspace. Without a username,
//! nodes are open to everyone (`world:anyone:cdrwa`). ZooKeeper accepts any digest credentials
//! when a session starts; a wrong password shows when the keyspace is used, so
//! [`ZkStore::connect`] reads the keyspace root and answers [`ConnectError::Auth`] when it is
//! refused. The password travels in clear unless the connection to ZooKeeper is protected by
//! other means.

mod layout;
mod plan;
mod session;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rkron_core::execution::{parse_execution_id, unix_nanos};
use rkron_core::{Execution, Job};
use rkron_store::{JobOp, JobPage, Lease, MissedFires, Store, StoreError, Versioned};
use tokio::time::Instant;
use zookeeper_client as zk;

pub use crate::layout::OUTPUT_MAX;
use crate::layout::{
    DIRS, LEASE_PREFIX, LeaseData, Paths, corrupt, decode_execution, decode_job, decode_lease,
    decode_missed, decode_nanos, decode_text, encode_execution, encode_job, encode_lease,
    encode_missed, encode_nanos, instant_of, lease_sequence, output_bytes, parse_run,
    parse_running, run_name, run_of, running_of, unescape,
};
pub use crate::session::MULTI_BUDGET;
use crate::session::{Failed, Got, Op, Read, Session, size_of};

/// The default keyspace (root path, without its leading slash).
pub const DEFAULT_KEYSPACE: &str = "rkron";

/// The default per-request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The default ZooKeeper session timeout (the server may negotiate it within its bounds, by
/// default 2 to 20 ticks of 2 s).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts of a guarded read-modify-write before answering [`StoreError::Conflict`].
pub const CAS_ATTEMPTS: usize = 64;

/// How to reach ZooKeeper.
#[derive(Clone)]
pub struct ZkConfig {
    /// The ensemble's client addresses (`backend-machine`), `host:port` each.
    pub servers: Vec<String>,
    /// The root path of every node (`keyspace`), without leading slash; servers of one cluster
    /// share it. It may contain `/` to nest it under an existing tree.
    pub keyspace: String,
    /// User for ZooKeeper's `digest` authentication; see the crate documentation.
    pub username: Option<String>,
    /// Password of `username`.
    pub password: Option<String>,
    /// The session timeout asked of ZooKeeper: how long a server that lost its connection keeps
    /// its session (and so its lease node) before ZooKeeper ends it.
    pub session_timeout: Duration,
    /// Timeout of each request to ZooKeeper, and of connecting.
    pub request_timeout: Duration,
}

impl Default for ZkConfig {
    fn default() -> Self {
        Self {
            servers: vec!["127.0.0.1:2181".to_owned()],
            keyspace: DEFAULT_KEYSPACE.to_owned(),
            username: None,
            password: None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl fmt::Debug for ZkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkConfig")
            .field("servers", &self.servers)
            .field("keyspace", &self.keyspace)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("session_timeout", &self.session_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Why the store could not connect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The configuration is unusable.
    #[error("invalid zookeeper configuration: {0}")]
    Config(String),
    /// No server answered in time.
    #[error("zookeeper unavailable: {0}")]
    Unavailable(String),
    /// ZooKeeper refused the credentials, or the keyspace belongs to another user.
    #[error("zookeeper authentication failed: {0}")]
    Auth(String),
    /// ZooKeeper answered something else than expected.
    #[error("zookeeper error: {0}")]
    Backend(String),
}

impl ConnectError {
    fn of(what: &str, error: &zk::Error) -> Self {
        use zk::Error as E;
        let message = format!("{what}: {error}");
        match error {
            E::NoAuth | E::AuthFailed => Self::Auth(message),
            E::ConnectionLoss
            | E::Timeout
            | E::NoHosts
            | E::SessionExpired
            | E::ClientClosed
            | E::Throttled
            | E::Custom(_) => Self::Unavailable(message),
            _ => Self::Backend(message),
        }
    }
}

/// Checks the keyspace: path segments, none empty, `.` or `..`, no character ZooKeeper refuses.
fn check_keyspace(keyspace: &str) -> Result<String, ConnectError> {
    let trimmed = keyspace.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Err(ConnectError::Config("the keyspace is empty".to_owned()));
    }
    for segment in trimmed.split('/') {
        let refused = segment.is_empty()
            || segment == "."
            || segment == ".."
            || segment.chars().any(|c| {
                let u = u32::from(c);
                u <= 0x1f
                    || (0x7f..=0x9f).contains(&u)
                    || (0xd800..=0xf8ff).contains(&u)
                    || (0xfff0..=0xffff).contains(&u)
            });
        if refused {
            return Err(ConnectError::Config(format!(
                "keyspace {keyspace:?} is not a valid ZooKeeper path"
            )));
        }
    }
    Ok(trimmed.to_owned())
}

/// Checks the server list and joins it into a connection string.
fn connection_string(servers: &[String]) -> Result<String, ConnectError> {
    if servers.is_empty() {
        return Err(ConnectError::Config("no servers".to_owned()));
    }
    let mut joined = Vec::with_capacity(servers.len());
    for server in servers {
        let trimmed = server.trim();
        let valid = !trimmed.is_empty()
            && !trimmed.contains(['/', ',', ' '])
            && trimmed
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(ConnectError::Config(format!(
                "server {server:?} is not host:port"
            )));
        }
        joined.push(trimmed);
    }
    Ok(joined.join(","))
}

/// Converts a zxid to a version or token (zxids of existing nodes are positive).
fn zxid(path: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value)
        .ok()
        .filter(|value| *value > 0)
        .ok_or_else(|| corrupt(path, format!("zxid {value}")))
}

/// The job of a `Got::Data` at `path`, with its stat.
fn job_of(path: &str, got: &Got) -> Result<Option<(Job, zk::Stat)>, StoreError> {
    match got {
        Got::Data(data, stat) => Ok(Some((decode_job(path, data)?, *stat))),
        Got::Missing | Got::Children(_) => Ok(None),
    }
}

/// The children of a `Got::Children`: `None` when the directory does not exist.
fn children_of(got: Got) -> Option<Vec<String>> {
    match got {
        Got::Children(children) => Some(children),
        Got::Data(..) | Got::Missing => None,
    }
}

/// The data of a `Got::Data`.
fn data_of(got: Got) -> Option<(Vec<u8>, zk::Stat)> {
    match got {
        Got::Data(data, stat) => Some((data, stat)),
        Got::Children(_) | Got::Missing => None,
    }
}

/// Sorts run names of `dir` by start, then node; a name that is not a run is corrupt.
fn sorted_runs(dir: &str, names: Vec<String>) -> Result<Vec<(i64, String, String)>, StoreError> {
    let mut runs = names
        .into_iter()
        .map(|name| match parse_run(&name) {
            Some((started, node)) => Ok((started, node, name)),
            None => Err(corrupt(format!("{dir}/{name}"), "not an execution name")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    runs.sort();
    Ok(runs)
}

/// A lease node as read.
#[derive(Debug, Clone)]
struct LeaseNode {
    path: String,
    czxid: i64,
    version: i32,
    /// The session that created the node (ZooKeeper deletes the node when it ends).
    owner: i64,
    data: LeaseData,
    /// When this store deems the lease expired (see the crate documentation).
    deadline: Instant,
}

impl LeaseNode {
    fn lease(&self) -> Result<Lease, StoreError> {
        Ok(Lease {
            holder: self.data.holder.clone(),
            token: zxid(&self.path, self.czxid)?,
        })
    }

    fn is_live(&self, now: Instant) -> bool {
        now < self.deadline
    }

    /// Whether `holder` holds this lease through `session`: a lease is tied to the session that
    /// created it, so another session (a restarted server of the same name, a second process)
    /// cannot take it on; it waits for the lease to end.
    fn is_held_by(&self, holder: &str, session: i64) -> bool {
        self.data.holder == holder && self.owner == session && session != 0
    }
}

/// What a store knows of the lease nodes it has seen: per `czxid`, the version seen and when
/// that version expires for this store.
type KnownLeases = HashMap<i64, (i32, Instant)>;

/// The history of one job, as read before deleting it.
struct History {
    executions: Option<Vec<String>>,
    outputs: Option<Vec<String>>,
    running: Vec<String>,
    ledger: bool,
    missed: bool,
}

/// rkron's ZooKeeper [`Store`]: every server of a cluster connects to the same ensemble and
/// keyspace.
pub struct ZkStore {
    session: Session,
    paths: Paths,
    known: Mutex<KnownLeases>,
}

impl fmt::Debug for ZkStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkStore")
            .field("session", &self.session)
            .field("root", &self.paths.root())
            .finish_non_exhaustive()
    }
}

impl ZkStore {
    /// Connects to ZooKeeper: checks the configuration, opens a session (authenticated when
    /// credentials are given), creates the keyspace's directories when missing and reads the
    /// keyspace root, so an unreachable ensemble or refused credentials fail here.
    pub async fn connect(config: ZkConfig) -> Result<Self, ConnectError> {
        let servers = connection_string(&config.servers)?;
        let keyspace = check_keyspace(&config.keyspace)?;
        if config.request_timeout.is_zero() || config.session_timeout.is_zero() {
            return Err(ConnectError::Config(
                "the request and session timeouts must not be zero".to_owned(),
            ));
        }
        // Not `with_fail_eagerly`: with it, 0.11 gives up after a first attempt that fails even
        // against a live server. The request timeout bounds connecting instead.
        let mut connector = zk::Client::connector().with_session_timeout(config.session_timeout);
        let acls = match (&config.username, &config.password) {
            (Some(username), password) => {
                if username.is_empty() || username.contains(':') {
                    return Err(ConnectError::Config(
                        "the username must be non-empty and contain no ':'".to_owned(),
                    ));
                }
                let credentials = format!("{username}:{}", password.as_deref().unwrap_or(""));
                connector = connector.with_auth("digest", credentials.as_bytes());
                zk::Acls::creator_all()
            }
            (None, Some(_)) => {
                return Err(ConnectError::Config(
                    "a password is configured without a username".to_owned(),
                ));
            }
            (None, None) => zk::Acls::anyone_all(),
        };
        let session = Session::open(connector, servers, config.request_timeout, acls)
            .await
            .map_err(|error| ConnectError::of("connect", &error))?;
        let paths = Paths::new(&keyspace);
        for dir in DIRS {
            session
                .mkdir(&paths.dir(dir))
                .await
                .map_err(|error| ConnectError::of(&format!("create {}", paths.dir(dir)), &error))?;
        }
        let store = Self {
            session,
            paths,
            known: Mutex::new(HashMap::new()),
        };
        let client = store
            .session
            .client()
            .await
            .map_err(|error| ConnectError::Unavailable(error.to_string()))?;
        match store
            .session
            .bounded("get", client.get_children(store.paths.root()))
            .await
        {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(error)) => Err(ConnectError::of(
                &format!("read {}", store.paths.root()),
                &error,
            )),
            Err(error) => Err(ConnectError::Unavailable(error.to_string())),
        }
    }

    /// The root path of this store's keyspace, `/<keyspace>`.
    pub fn root(&self) -> &str {
        self.paths.root()
    }

    /// Reads the jobs named `names` (missing ones are left out), in order.
    async fn read_jobs(&self, names: &[String]) -> Result<Vec<Job>, StoreError> {
        let paths: Vec<String> = names.iter().map(|name| self.paths.job(name)).collect();
        let found = self.session.get_many(&paths).await?;
        let mut jobs = Vec::with_capacity(found.len());
        for (path, found) in paths.iter().zip(found) {
            if let Some((data, _)) = found {
                jobs.push(decode_job(path, &data)?);
            }
        }
        Ok(jobs)
    }

    /// Every job name, sorted.
    async fn job_names(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.paths.dir("jobs");
        let mut names = self
            .session
            .names(&dir)
            .await?
            .into_iter()
            .map(|escaped| {
                unescape(&escaped).ok_or_else(|| corrupt(format!("{dir}/{escaped}"), "bad name"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        names.sort_unstable();
        Ok(names)
    }

    /// Reads the history of each job of `jobs` (one multi-read).
    async fn read_histories(&self, jobs: &[&str]) -> Result<Vec<History>, StoreError> {
        let mut reads = vec![Read::Children(self.paths.dir("running"))];
        for job in jobs {
            reads.push(Read::Children(self.paths.executions_of(job)));
            reads.push(Read::Children(self.paths.outputs_of(job)));
            reads.push(Read::Data(self.paths.ledger_of(job)));
            reads.push(Read::Data(self.paths.missed(job)));
        }
        let mut got = self.session.read(&reads).await?.into_iter();
        let running = got.next().and_then(children_of).unwrap_or_default();
        let mut histories = Vec::with_capacity(jobs.len());
        for job in jobs {
            let (Some(executions), Some(outputs), Some(ledger), Some(missed)) =
                (got.next(), got.next(), got.next(), got.next())
            else {
                return Err(StoreError::Backend("short multi-read answer".to_owned()));
            };
            histories.push(History {
                executions: children_of(executions),
                outputs: children_of(outputs),
                running: running
                    .iter()
                    .filter(|name| parse_running(name).is_some_and(|(_, j, _)| j == *job))
                    .cloned()
                    .collect(),
                ledger: matches!(ledger, Got::Data(..)),
                missed: matches!(missed, Got::Data(..)),
            });
        }
        Ok(histories)
    }

    /// The deletes of a job's history: `(atomic, bulk)`, where `bulk` (executions, outputs and
    /// their directories, children first) may go in later multis when too large. With
    /// `fire_history`, the ledger entry and missed fires go too (or are asserted absent).
    fn history_ops(&self, job: &str, history: &History, fire_history: bool) -> (Vec<Op>, Vec<Op>) {
        let mut atomic = Vec::new();
        for name in &history.running {
            atomic.push(Op::delete(self.paths.running(name), None));
        }
        if fire_history {
            for (path, present) in [
                (self.paths.ledger_of(job), history.ledger),
                (self.paths.missed(job), history.missed),
            ] {
                if !present {
                    // Asserts the node is still absent: the create fails if it appeared.
                    atomic.push(Op::create(path.clone(), Vec::new()));
                }
                atomic.push(Op::delete(path, None));
            }
        }
        let mut bulk = Vec::new();
        for (dir, children) in [
            (self.paths.executions_of(job), &history.executions),
            (self.paths.outputs_of(job), &history.outputs),
        ] {
            if let Some(children) = children {
                for name in children {
                    bulk.push(Op::delete(format!("{dir}/{name}"), None));
                }
                bulk.push(Op::delete(dir, None));
            }
        }
        (atomic, bulk)
    }

    /// Applies `ops` in as many multis as their size needs, in order; ops whose node is already
    /// gone are skipped. Not atomic as a whole.
    async fn apply_in_chunks(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut chunk: Vec<Op> = Vec::new();
        let mut size = 0;
        for op in ops {
            if size + op.size() > MULTI_BUDGET && !chunk.is_empty() {
                self.apply_chunk(std::mem::take(&mut chunk)).await?;
                size = 0;
            }
            size += op.size();
            chunk.push(op);
        }
        self.apply_chunk(chunk).await
    }

    /// Applies `ops` in one multi; when one fails, drops it if its node is gone (or is a
    /// directory that is no longer empty) and tries the rest again.
    async fn apply_chunk(&self, mut ops: Vec<Op>) -> Result<(), StoreError> {
        while !ops.is_empty() {
            match self.session.multi(&ops).await? {
                Ok(_) => return Ok(()),
                // Gone already, or a directory that got a new run meanwhile (written after the
                // delete, as far as anyone can tell): skip it.
                Err(Failed {
                    index,
                    error: zk::Error::NoNode | zk::Error::NotEmpty,
                }) if index < ops.len() => {
                    ops.remove(index);
                }
                Err(Failed { error, .. }) => {
                    return Err(StoreError::Backend(format!(
                        "zookeeper: deleting history failed: {error}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Stores `execution` (and, when `finish`, updates its job in the same multi).
    async fn write_execution(
        &self,
        execution: &Execution,
        retention: usize,
        finish: bool,
    ) -> Result<Option<Job>, StoreError> {
        let job_name = &execution.job_name;
        let run = run_of(execution);
        let exec_dir = self.paths.executions_of(job_name);
        let out_dir = self.paths.outputs_of(job_name);
        let job_path = self.paths.job(job_name);
        let exec_path = format!("{exec_dir}/{run}");
        let out_path = format!("{out_dir}/{run}");
        let metadata = encode_execution(execution)?;
        let output = output_bytes(&execution.output).to_vec();
        let running_path = self.paths.running(&running_of(execution));
        for _ in 0..CAS_ATTEMPTS {
            let mut reads = vec![
                Read::Children(exec_dir.clone()),
                Read::Data(out_dir.clone()),
                Read::Data(exec_path.clone()),
            ];
            if finish {
                reads.push(Read::Data(job_path.clone()));
            }
            let mut got = self.session.read(&reads).await?.into_iter();
            let (Some(listing), Some(out_dir_node), Some(existing)) =
                (got.next(), got.next(), got.next())
            else {
                return Err(StoreError::Backend("short multi-read answer".to_owned()));
            };
            let job = match got.next() {
                Some(read) => match job_of(&job_path, &read)? {
                    Some(job) => Some(job),
                    None => return Ok(None),
                },
                None => None,
            };
            let listing = children_of(listing);
            let exec_dir_exists = listing.is_some();
            let out_dir_exists = matches!(out_dir_node, Got::Data(..));
            let existing = match data_of(existing) {
                Some((data, stat)) => Some((decode_execution(&exec_path, &data)?, stat.version)),
                None => None,
            };
            let mut runs = sorted_runs(&exec_dir, listing.unwrap_or_default())?;
            if existing.is_none() && !runs.iter().any(|(_, _, name)| *name == run) {
                runs.push((
                    unix_nanos(execution.started_at),
                    execution.node_name.clone(),
                    run.clone(),
                ));
                runs.sort();
            }
            let excess = runs.len().saturating_sub(retention);
            let trimmed: HashSet<&str> = runs[..excess]
                .iter()
                .map(|(_, _, name)| name.as_str())
                .collect();
            let keeps_run = !trimmed.contains(run.as_str());
            // Other runs to read: the trimmed ones (running or not), and when finishing the
            // kept ones (their group).
            let others: Vec<&str> = runs
                .iter()
                .map(|(_, _, name)| name.as_str())
                .filter(|name| *name != run && (finish || trimmed.contains(name)))
                .collect();
            let paths: Vec<String> = others
                .iter()
                .map(|name| format!("{exec_dir}/{name}"))
                .collect();
            let read_others = self.session.get_many(&paths).await?;
            let mut stored = Vec::with_capacity(others.len());
            let mut vanished = false;
            for ((name, path), found) in others.iter().zip(&paths).zip(read_others) {
                match found {
                    Some((data, stat)) => {
                        stored.push((*name, decode_execution(path, &data)?, stat.version));
                    }
                    None => vanished = true,
                }
            }
            if vanished {
                continue;
            }

            let mut ops = Vec::new();
            if keeps_run {
                if !exec_dir_exists {
                    ops.push(Op::create(exec_dir.clone(), Vec::new()));
                }
                if !out_dir_exists {
                    ops.push(Op::create(out_dir.clone(), Vec::new()));
                }
            }
            let was_running = existing.as_ref().is_some_and(|(old, _)| old.is_running());
            match (&existing, keeps_run) {
                (Some((_, version)), true) => {
                    ops.push(Op::set(exec_path.clone(), metadata.clone(), Some(*version)));
                    ops.push(Op::set(out_path.clone(), output.clone(), None));
                }
                (None, true) => {
                    ops.push(Op::create(exec_path.clone(), metadata.clone()));
                    ops.push(Op::create(out_path.clone(), output.clone()));
                }
                (Some((_, version)), false) => {
                    ops.push(Op::delete(exec_path.clone(), Some(*version)));
                    ops.push(Op::delete(out_path.clone(), None));
                }
                (None, false) => {}
            }
            let running = keeps_run && execution.is_running();
            match (was_running, running) {
                (true, true) => ops.push(Op::set(running_path.clone(), metadata.clone(), None)),
                (false, true) => ops.push(Op::create(running_path.clone(), metadata.clone())),
                (true, false) => ops.push(Op::delete(running_path.clone(), None)),
                (false, false) => {}
            }
            let mut job = job;
            if let Some((job, stat)) = job.as_mut() {
                let group = stored
                    .iter()
                    .filter(|(name, stored, _)| {
                        !trimmed.contains(name) && stored.group == execution.group
                    })
                    .map(|(_, stored, _)| stored)
                    .chain(keeps_run.then_some(execution));
                job.record_finished(execution, group);
                ops.push(Op::set(
                    job_path.clone(),
                    encode_job(job)?,
                    Some(stat.version),
                ));
            }
            let mut later = Vec::new();
            for (name, old, version) in &stored {
                if !trimmed.contains(name) {
                    continue;
                }
                let mut deletes = vec![
                    Op::delete(format!("{exec_dir}/{name}"), Some(*version)),
                    Op::delete(format!("{out_dir}/{name}"), None),
                ];
                if old.is_running() {
                    deletes.push(Op::delete(self.paths.running(&running_of(old)), None));
                }
                if size_of(&ops) + size_of(&deletes) <= MULTI_BUDGET {
                    ops.extend(deletes);
                } else {
                    later.extend(deletes);
                }
            }
            match self.session.multi(&ops).await? {
                Ok(_) => {
                    if !later.is_empty() {
                        self.apply_in_chunks(later).await?;
                    }
                    return Ok(Some(job.map(|(job, _)| job).unwrap_or_default()));
                }
                Err(failed) => {
                    tracing::debug!(job = %job_name, ?failed, "execution write raced; reading again");
                }
            }
        }
        Err(StoreError::Conflict(job_name.clone()))
    }

    /// Reads every lease node, oldest first, with the lock word's version.
    async fn read_leases(&self) -> Result<(Vec<LeaseNode>, i32), StoreError> {
        let dir = self.paths.leader();
        let (names, stat) = match self.session.children(&dir).await? {
            Some(found) => found,
            None => {
                // Someone deleted the directory: create it again.
                self.session
                    .mkdir(&dir)
                    .await
                    .map_err(|error| session::store_error("create the lease directory", &error))?;
                match self.session.get(&dir).await? {
                    Some((_, stat)) => (Vec::new(), stat),
                    None => {
                        return Err(StoreError::Unavailable(
                            "the lease directory vanished".to_owned(),
                        ));
                    }
                }
            }
        };
        let mut names: Vec<(i64, String)> = names
            .into_iter()
            .filter_map(|name| lease_sequence(&name).map(|sequence| (sequence, name)))
            .collect();
        names.sort();
        let paths: Vec<String> = names
            .iter()
            .map(|(_, name)| self.paths.lease(name))
            .collect();
        let found = self.session.get_many(&paths).await?;
        let now = Instant::now();
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let mut leases = Vec::new();
        for (path, found) in paths.into_iter().zip(found) {
            let Some((data, node)) = found else { continue };
            let data = decode_lease(&path, &data)?;
            let ttl = Duration::from_millis(data.ttl_ms);
            let entry = known.entry(node.czxid).or_insert((node.version, now + ttl));
            if entry.0 != node.version {
                // A version this store has not seen (renewed by another store): the TTL starts now.
                *entry = (node.version, now + ttl);
            }
            leases.push(LeaseNode {
                path,
                czxid: node.czxid,
                version: node.version,
                owner: node.ephemeral_owner,
                data,
                deadline: entry.1,
            });
        }
        known.retain(|czxid, _| leases.iter().any(|lease| lease.czxid == *czxid));
        Ok((leases, stat.version))
    }

    /// Records that this store wrote version `version` of lease `czxid` at `sent`.
    fn wrote_lease(&self, czxid: i64, version: i32, sent: Instant, ttl: Duration) {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(czxid, (version, sent + ttl));
    }

    /// Sets a live lease node's data (guarded by its version); `false` if it changed or went.
    async fn renew_node(&self, node: &LeaseNode, ttl: Duration) -> Result<bool, StoreError> {
        let data = encode_lease(&LeaseData {
            holder: node.data.holder.clone(),
            ttl_ms: ttl_millis(ttl),
        })?;
        let sent = Instant::now();
        match self
            .session
            .multi(&[Op::set(node.path.clone(), data, Some(node.version))])
            .await?
        {
            Ok(results) => {
                let version = match results.first() {
                    Some(zk::MultiWriteResult::SetData { stat }) => stat.version,
                    _ => node.version.saturating_add(1),
                };
                self.wrote_lease(node.czxid, version, sent, ttl);
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    /// Records one chunk of the ledger, fenced by `lease_path`.
    async fn record_fire_chunk(
        &self,
        fence: u64,
        lease_path: &str,
        chunk: &[(&str, i64)],
    ) -> Result<(), StoreError> {
        let paths: Vec<String> = chunk
            .iter()
            .map(|(job, _)| self.paths.ledger_of(job))
            .collect();
        for _ in 0..CAS_ATTEMPTS {
            let current = self.session.get_many(&paths).await?;
            let mut ops = vec![Op::exists(lease_path)];
            for ((path, (_, nanos)), current) in paths.iter().zip(chunk).zip(current) {
                match current {
                    None => ops.push(Op::create(path.clone(), encode_nanos(*nanos))),
                    Some((data, stat)) => {
                        if *nanos > decode_nanos(path, &data)? {
                            ops.push(Op::set(
                                path.clone(),
                                encode_nanos(*nanos),
                                Some(stat.version),
                            ));
                        }
                    }
                }
            }
            if ops.len() == 1 {
                // Nothing moves forward; the fence was checked when the call started.
                return Ok(());
            }
            match self.session.multi(&ops).await? {
                Ok(_) => return Ok(()),
                Err(Failed { index: 0, .. }) => return Err(StoreError::Fenced(fence)),
                Err(failed) => {
                    tracing::debug!(?failed, "ledger write raced; reading again");
                }
            }
        }
        Err(StoreError::Conflict("fire ledger".to_owned()))
    }
}

/// A TTL in whole milliseconds (at least 1).
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl Store for ZkStore {
    async fn get_job(&self, name: &str) -> Result<Option<Versioned<Job>>, StoreError> {
        let path = self.paths.job(name);
        match self.session.get(&path).await? {
            Some((data, stat)) => Ok(Some(Versioned {
                value: decode_job(&path, &data)?,
                version: zxid(&path, stat.mzxid)?,
            })),
            None => Ok(None),
        }
    }

    async fn list_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let names = self.job_names().await?;
        self.read_jobs(&names).await
    }

    async fn jobs_page(&self, start: usize, end: usize) -> Result<JobPage, StoreError> {
        let names = self.job_names().await?;
        let total = names.len();
        let end = end.min(total);
        let page = names.get(start..end).unwrap_or_default();
        Ok(JobPage {
            jobs: self.read_jobs(page).await?,
            total,
        })
    }

    async fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let names = self.job_names().await?;
        let page: Vec<String> = names
            .into_iter()
            .filter(|name| after.is_none_or(|after| name.as_str() > after))
            .take(limit)
            .collect();
        self.read_jobs(&page).await
    }

    async fn commit_jobs(&self, ops: Vec<JobOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut names: Vec<&str> = Vec::new();
        let mut deleted: Vec<&str> = Vec::new();
        for op in &ops {
            let (name, _, is_put) = plan::parts(op);
            if !names.contains(&name) {
                names.push(name);
            }
            if !is_put && !deleted.contains(&name) {
                deleted.push(name);
            }
        }
        let paths: Vec<String> = names.iter().map(|name| self.paths.job(name)).collect();
        let mut synced = false;
        for _ in 0..CAS_ATTEMPTS {
            let found = self.session.get_many(&paths).await?;
            let stored: HashMap<&str, zk::Stat> = names
                .iter()
                .zip(found)
                .filter_map(|(name, found)| found.map(|(_, stat)| (*name, stat)))
                .collect();
            let version = |name: &str| {
                stored
                    .get(name)
                    .and_then(|stat| u64::try_from(stat.mzxid).ok())
            };
            if let Some(conflict) = plan::first_conflict(&ops, version) {
                if !synced {
                    // The server this session reads from may lag the leader: catch up once
                    // before answering a conflict.
                    self.session.sync(self.paths.root()).await?;
                    synced = true;
                    continue;
                }
                return Err(StoreError::Conflict(conflict));
            }
            let histories = self.read_histories(&deleted).await?;
            let mut atomic = Vec::new();
            let mut bulk = Vec::new();
            // Per job: whether it exists now, and whether the stored node was guarded yet.
            let mut exists: HashMap<&str, bool> = names
                .iter()
                .map(|name| (*name, stored.contains_key(name)))
                .collect();
            let mut guarded: HashSet<&str> = HashSet::new();
            let mut history_done: HashSet<&str> = HashSet::new();
            for op in &ops {
                let (name, _, _) = plan::parts(op);
                let path = self.paths.job(name);
                let first_touch = guarded.insert(name);
                let read_version = stored.get(name).map(|stat| stat.version);
                let now_exists = exists.get(name).copied().unwrap_or(false);
                let guard = if first_touch { read_version } else { None };
                match op {
                    JobOp::Put { job, .. } => {
                        let data = encode_job(job)?;
                        if now_exists {
                            atomic.push(Op::set(path, data, guard));
                        } else {
                            atomic.push(Op::create(path, data));
                        }
                        exists.insert(name, true);
                    }
                    JobOp::Delete { .. } => {
                        if history_done.insert(name) {
                            let index = deleted.iter().position(|d| *d == name).unwrap_or(0);
                            if let Some(history) = histories.get(index) {
                                let (job_atomic, job_bulk) = self.history_ops(name, history, true);
                                atomic.extend(job_atomic);
                                bulk.extend(job_bulk);
                            }
                        }
                        if now_exists {
                            atomic.push(Op::delete(path, guard));
                        } else if first_touch {
                            // Asserts the job is still absent.
                            atomic.push(Op::create(path.clone(), Vec::new()));
                            atomic.push(Op::delete(path, None));
                        }
                        exists.insert(name, false);
                    }
                }
            }
            let later = if size_of(&atomic) + size_of(&bulk) <= MULTI_BUDGET {
                // History deletes first: a job re-created in the same commit keeps nothing.
                let mut all = bulk;
                all.extend(atomic);
                atomic = all;
                Vec::new()
            } else {
                bulk
            };
            match self.session.multi(&atomic).await? {
                Ok(_) => {
                    if !later.is_empty() {
                        self.apply_in_chunks(later).await?;
                    }
                    return Ok(());
                }
                Err(failed) => {
                    tracing::debug!(?failed, "commit raced; reading again");
                }
            }
        }
        Err(StoreError::Conflict(names[0].to_owned()))
    }

    async fn put_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<(), StoreError> {
        self.write_execution(execution, retention, false).await?;
        Ok(())
    }

    async fn finish_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<Option<Job>, StoreError> {
        self.write_execution(execution, retention, true).await
    }

    async fn list_executions(
        &self,
        job: &str,
        with_output: bool,
    ) -> Result<Vec<Execution>, StoreError> {
        let exec_dir = self.paths.executions_of(job);
        let out_dir = self.paths.outputs_of(job);
        let runs = sorted_runs(&exec_dir, self.session.names(&exec_dir).await?)?;
        let mut paths = Vec::with_capacity(runs.len() * 2);
        for (_, _, name) in &runs {
            paths.push(format!("{exec_dir}/{name}"));
            if with_output {
                paths.push(format!("{out_dir}/{name}"));
            }
        }
        let found = self.session.get_many(&paths).await?;
        let step = if with_output { 2 } else { 1 };
        let mut executions = Vec::with_capacity(runs.len());
        for (paths, found) in paths.chunks(step).zip(found.chunks(step)) {
            let Some((data, _)) = &found[0] else { continue };
            let mut execution = decode_execution(&paths[0], data)?;
            if let Some(Some((output, _))) = found.get(1) {
                execution.output = decode_text(&paths[1], output.clone())?;
            }
            executions.push(execution);
        }
        Ok(executions)
    }

    async fn get_execution(&self, job: &str, id: &str) -> Result<Option<Execution>, StoreError> {
        let Some((started, node)) = parse_execution_id(id) else {
            return Ok(None);
        };
        let run = run_name(started, node);
        let paths = [
            format!("{}/{run}", self.paths.executions_of(job)),
            format!("{}/{run}", self.paths.outputs_of(job)),
        ];
        let mut found = self.session.get_many(&paths).await?.into_iter();
        let Some(Some((data, _))) = found.next() else {
            return Ok(None);
        };
        let mut execution = decode_execution(&paths[0], &data)?;
        if let Some(Some((output, _))) = found.next() {
            execution.output = decode_text(&paths[1], output)?;
        }
        Ok(Some(execution))
    }

    async fn delete_executions(&self, job: &str) -> Result<(), StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let histories = self.read_histories(&[job]).await?;
            let Some(history) = histories.first() else {
                return Ok(());
            };
            let (mut atomic, bulk) = self.history_ops(job, history, false);
            let later = if size_of(&atomic) + size_of(&bulk) <= MULTI_BUDGET {
                atomic.extend(bulk);
                Vec::new()
            } else {
                bulk
            };
            match self.session.multi(&atomic).await? {
                Ok(_) => return self.apply_in_chunks(later).await,
                Err(failed) => {
                    tracing::debug!(job, ?failed, "delete_executions raced; reading again");
                }
            }
        }
        Err(StoreError::Conflict(job.to_owned()))
    }

    async fn running_executions(&self) -> Result<Vec<Execution>, StoreError> {
        let dir = self.paths.dir("running");
        let mut names = self
            .session
            .names(&dir)
            .await?
            .into_iter()
            .map(|name| match parse_running(&name) {
                Some(key) => Ok((key, name)),
                None => Err(corrupt(format!("{dir}/{name}"), "not a running-index name")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        names.sort();
        let paths: Vec<String> = names
            .iter()
            .map(|(_, name)| self.paths.running(name))
            .collect();
        let found = self.session.get_many(&paths).await?;
        let mut running = Vec::with_capacity(found.len());
        for (path, found) in paths.iter().zip(found) {
            if let Some((data, _)) = found {
                running.push(decode_execution(path, &data)?);
            }
        }
        Ok(running)
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let path = self.paths.meta(key);
        match self.session.get(&path).await? {
            Some((data, _)) => decode_text(&path, data).map(Some),
            None => Ok(None),
        }
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let path = self.paths.meta(key);
        let data = value.as_bytes().to_vec();
        for _ in 0..CAS_ATTEMPTS {
            let set = [Op::set(path.clone(), data.clone(), None)];
            if self.session.multi(&set).await?.is_ok() {
                return Ok(());
            }
            let create = [Op::create(path.clone(), data.clone())];
            if self.session.multi(&create).await?.is_ok() {
                return Ok(());
            }
        }
        Err(StoreError::Conflict(key.to_owned()))
    }

    async fn record_fires(
        &self,
        fence: u64,
        fires: &[(String, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        let (leases, _) = self.read_leases().await?;
        let now = Instant::now();
        let lease = leases
            .iter()
            .find(|lease| lease.is_live(now))
            .filter(|lease| u64::try_from(lease.czxid).ok() == Some(fence))
            .ok_or(StoreError::Fenced(fence))?;
        let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
        for (job, scheduled_at) in fires {
            let nanos = unix_nanos(*scheduled_at);
            latest
                .entry(job.as_str())
                .and_modify(|current| *current = (*current).max(nanos))
                .or_insert(nanos);
        }
        let entries: Vec<(&str, i64)> = latest.into_iter().collect();
        let mut start = 0;
        while start < entries.len() {
            let mut size = Op::exists(lease.path.clone()).size();
            let mut end = start;
            while end < entries.len() {
                let entry =
                    Op::create(self.paths.ledger_of(entries[end].0), encode_nanos(i64::MIN)).size();
                if size + entry > MULTI_BUDGET && end > start {
                    break;
                }
                size += entry;
                end += 1;
            }
            self.record_fire_chunk(fence, &lease.path, &entries[start..end])
                .await?;
            start = end;
        }
        Ok(())
    }

    async fn fire_ledger(&self) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        let dir = self.paths.dir("ledger");
        let names = self.session.names(&dir).await?;
        let paths: Vec<String> = names.iter().map(|name| format!("{dir}/{name}")).collect();
        let found = self.session.get_many(&paths).await?;
        let mut ledger = BTreeMap::new();
        for ((name, path), found) in names.iter().zip(&paths).zip(found) {
            let Some((data, _)) = found else { continue };
            let job = unescape(name).ok_or_else(|| corrupt(path.clone(), "bad name"))?;
            ledger.insert(job, instant_of(decode_nanos(path, &data)?));
        }
        Ok(ledger)
    }

    async fn record_missed(
        &self,
        job: &str,
        instants: &[DateTime<Utc>],
        uncounted: u64,
    ) -> Result<(), StoreError> {
        if instants.is_empty() && uncounted == 0 {
            return Ok(());
        }
        let job_path = self.paths.job(job);
        let missed_path = self.paths.missed(job);
        let paths = [job_path.clone(), missed_path.clone()];
        for _ in 0..CAS_ATTEMPTS {
            let mut found = self.session.get_many(&paths).await?.into_iter();
            let Some(Some((_, job_stat))) = found.next() else {
                return Ok(());
            };
            let (mut missed, version) = match found.next().flatten() {
                Some((data, stat)) => (decode_missed(&missed_path, &data)?, Some(stat.version)),
                None => (MissedFires::default(), None),
            };
            missed.record(instants, uncounted);
            let data = encode_missed(&missed)?;
            let write = match version {
                Some(version) => Op::set(missed_path.clone(), data, Some(version)),
                None => Op::create(missed_path.clone(), data),
            };
            let ops = [
                Op::Check {
                    path: job_path.clone(),
                    version: job_stat.version,
                },
                write,
            ];
            if self.session.multi(&ops).await?.is_ok() {
                return Ok(());
            }
        }
        Err(StoreError::Conflict(job.to_owned()))
    }

    async fn missed_fires(&self, job: &str) -> Result<MissedFires, StoreError> {
        let path = self.paths.missed(job);
        match self.session.get(&path).await? {
            Some((data, _)) => decode_missed(&path, &data),
            None => Ok(MissedFires::default()),
        }
    }

    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let (leases, lock_version) = self.read_leases().await?;
            let now = Instant::now();
            if let Some(live) = leases.iter().find(|lease| lease.is_live(now)) {
                if !live.is_held_by(holder, self.session.session_id()) {
                    return Ok(None);
                }
                // Ours already: renew it, keeping its token.
                if self.renew_node(live, ttl).await? {
                    return Ok(Some(live.lease()?));
                }
                continue;
            }
            // Free, or only expired leases: delete them and create ours, in one multi guarded
            // by the lock word.
            let mut ops = vec![Op::set(
                self.paths.leader(),
                holder.as_bytes().to_vec(),
                Some(lock_version),
            )];
            for lease in &leases {
                ops.push(Op::delete(lease.path.clone(), Some(lease.version)));
            }
            ops.push(Op::Create {
                path: self.paths.lease(LEASE_PREFIX),
                data: encode_lease(&LeaseData {
                    holder: holder.to_owned(),
                    ttl_ms: ttl_millis(ttl),
                })?,
                ephemeral_sequential: true,
            });
            let sent = Instant::now();
            let results = match self.session.multi(&ops).await? {
                Ok(results) => results,
                Err(failed) => {
                    tracing::debug!(holder, ?failed, "lease acquisition raced; reading again");
                    continue;
                }
            };
            let Some(zk::MultiWriteResult::Create { path, stat }) = results.last() else {
                return Err(StoreError::Backend(
                    "zookeeper answered no created lease node".to_owned(),
                ));
            };
            // Some servers answer an invalid stat for creates in a multi (ZOOKEEPER-4667).
            let (czxid, version) = if stat.czxid > 0 {
                (stat.czxid, stat.version)
            } else {
                match self.session.get(path).await? {
                    Some((_, stat)) => (stat.czxid, stat.version),
                    // The session ended at once: the lease is already gone.
                    None => continue,
                }
            };
            self.wrote_lease(czxid, version, sent, ttl);
            return Ok(Some(Lease {
                holder: holder.to_owned(),
                token: zxid(path, czxid)?,
            }));
        }
        Ok(None)
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let (leases, _) = self.read_leases().await?;
            let now = Instant::now();
            let Some(node) = leases
                .iter()
                .find(|node| u64::try_from(node.czxid).ok() == Some(lease.token))
            else {
                return Ok(false);
            };
            if !node.is_held_by(&lease.holder, self.session.session_id()) || !node.is_live(now) {
                return Ok(false);
            }
            if self.renew_node(node, ttl).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let (leases, _) = self.read_leases().await?;
        let Some(node) = leases
            .iter()
            .find(|node| u64::try_from(node.czxid).ok() == Some(lease.token))
        else {
            return Ok(());
        };
        // The node's name is never reused, so this deletes exactly this tenure.
        let _gone = self
            .session
            .multi(&[Op::delete(node.path.clone(), None)])
            .await?;
        Ok(())
    }

    async fn current_lease(&self) -> Result<Option<Lease>, StoreError> {
        let (leases, _) = self.read_leases().await?;
        let now = Instant::now();
        leases
            .iter()
            .find(|lease| lease.is_live(now))
            .map(LeaseNode::lease)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspaces_are_checked() {
        assert_eq!(check_keyspace("rkron").unwrap(), "rkron");
        assert_eq!(check_keyspace("/apps/rkron/").unwrap(), "apps/rkron");
        for bad in ["", "/", "a//b", "a/./b", "..", "a\u{1}"] {
            assert!(
                matches!(check_keyspace(bad), Err(ConnectError::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn servers_join_into_a_connection_string() {
        let servers = vec!["10.0.0.1:2181".to_owned(), " zk:2182 ".to_owned()];
        assert_eq!(
            connection_string(&servers).unwrap(),
            "10.0.0.1:2181,zk:2182"
        );
        for bad in ["", "zk", "zk:port", "zk:2181/chroot", "a:1,b:2", ":2181"] {
            assert!(
                matches!(
                    connection_string(&[bad.to_owned()]),
                    Err(ConnectError::Config(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            connection_string(&[]),
            Err(ConnectError::Config(_))
        ));
    }

    #[test]
    fn debug_hides_the_password() {
        let config = ZkConfig {
            username: Some("rkron".to_owned()),
            password: Some("s3cret".to_owned()),
            ..ZkConfig::default()
        };
        let printed = format!("{config:?}");
        assert!(
            printed.contains("rkron") && !printed.contains("s3cret"),
            "{printed}"
        );
    }

    #[test]
    fn ttls_are_whole_milliseconds() {
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2_000);
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_micros(1_500)), 1);
    }
}
