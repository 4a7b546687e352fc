//! The ZooKeeper session of a store: connecting, reconnecting after the session ends, bounding
//! every request by the request timeout, and mapping client errors onto [`StoreError`].

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rkron_store::StoreError;
use zookeeper_client as zk;

/// The largest multi request the store sends, in (estimated) bytes. ZooKeeper refuses requests
/// over `jute.maxbuffer` (1 MiB less one byte by default) by closing the connection, so the
/// store keeps well under it.
pub const MULTI_BUDGET: usize = 512 * 1024;

/// The largest request sent at all (estimated bytes; estimates run high), under
/// `jute.maxbuffer`'s 1,048,575 bytes.
const REQUEST_MAX: usize = 1_000_000;

/// Nodes read per multi-read request.
pub(crate) const READ_BATCH: usize = 500;

/// Bytes counted for a multi op besides its path and data (headers, ACL, version, flags).
const OP_OVERHEAD: usize = 96;

/// One write of a multi request.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Fails unless the node exists (at `version`, unless it is -1).
    Check { path: String, version: i32 },
    /// Creates a node (persistent unless `ephemeral_sequential`).
    Create {
        path: String,
        data: Vec<u8>,
        ephemeral_sequential: bool,
    },
    /// Replaces a node's data (when at `version`, if given).
    Set {
        path: String,
        data: Vec<u8>,
        version: Option<i32>,
    },
    /// Deletes a childless node (when at `version`, if given).
    Delete { path: String, version: Option<i32> },
}

impl Op {
    /// A check that `path` exists, at any version.
    pub(crate) fn exists(path: impl Into<String>) -> Self {
        Self::Check {
            path: path.into(),
            version: -1,
        }
    }

    /// A persistent create.
    pub(crate) fn create(path: impl Into<String>, data: Vec<u8>) -> Self {
        Self::Create {
            path: path.into(),
            data,
            ephemeral_sequential: false,
        }
    }

    /// A set of `data`, guarded by `version` when given.
    pub(crate) fn set(path: impl Into<String>, data: Vec<u8>, version: Option<i32>) -> Self {
        Self::Set {
            path: path.into(),
            data,
            version,
        }
    }

    /// A delete, guarded by `version` when given.
    pub(crate) fn delete(path: impl Into<String>, version: Option<i32>) -> Self {
        Self::Delete {
            path: path.into(),
            version,
        }
    }

    /// The estimated size of the op in a request.
    pub(crate) fn size(&self) -> usize {
        OP_OVERHEAD
            + match self {
                Self::Check { path, .. } | Self::Delete { path, .. } => path.len(),
                Self::Create { path, data, .. } | Self::Set { path, data, .. } => {
                    path.len() + data.len()
                }
            }
    }
}

/// The estimated size of a multi request of `ops`.
pub(crate) fn size_of(ops: &[Op]) -> usize {
    ops.iter().map(Op::size).sum()
}

/// One read of a multi-read request.
#[derive(Debug, Clone)]
pub(crate) enum Read {
    /// A node's data and stat.
    Data(String),
    /// A node's children.
    Children(String),
}

impl Read {
    fn path(&self) -> &str {
        match self {
            Self::Data(path) | Self::Children(path) => path,
        }
    }
}

/// The answer to one [`Read`].
#[derive(Debug, Clone)]
pub(crate) enum Got {
    /// The data and stat of a node.
    Data(Vec<u8>, zk::Stat),
    /// The children of a node.
    Children(Vec<String>),
    /// The node does not exist.
    Missing,
}

/// Why a multi request wrote nothing: the op at `index` failed with `error` (`BadVersion`,
/// `NoNode`, `NodeExists`, `NotEmpty`, …).
#[derive(Debug, Clone)]
pub(crate) struct Failed {
    pub(crate) index: usize,
    pub(crate) error: zk::Error,
}

/// Maps a client error that is not an expected outcome of the operation.
pub(crate) fn store_error(what: &str, error: &zk::Error) -> StoreError {
    use zk::Error as E;
    match error {
        E::ConnectionLoss
        | E::Timeout
        | E::SessionExpired
        | E::SessionMoved
        | E::ClientClosed
        | E::NoHosts
        | E::Throttled
        | E::NotReadOnly
        // The client fails the requests in flight on a connection it gives up (I/O error, no
        // answer within the connection timeout) with a custom error.
        | E::Custom(_) => StoreError::Unavailable(format!("zookeeper {what}: {error}")),
        E::NoAuth | E::AuthFailed => {
            StoreError::Backend(format!("zookeeper {what}: not authorized ({error})"))
        }
        other => StoreError::Backend(format!("zookeeper {what}: {other}")),
    }
}

/// The session of a store, replaced by a new one when it ends (expired, closed).
pub(crate) struct Session {
    connector: zk::Connector,
    servers: String,
    timeout: Duration,
    acls: zk::Acls<'static>,
    current: Mutex<zk::Client>,
    reconnecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("servers", &self.servers)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a session to `servers` (a connection string), bounded by `timeout`.
    pub(crate) async fn open(
        connector: zk::Connector,
        servers: String,
        timeout: Duration,
        acls: zk::Acls<'static>,
    ) -> Result<Self, zk::Error> {
        let client = connect(&connector, &servers, timeout).await?;
        Ok(Self {
            connector,
            servers,
            timeout,
            acls,
            current: Mutex::new(client),
            reconnecting: tokio::sync::Mutex::new(()),
        })
    }

    fn current(&self) -> zk::Client {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The client of a live session, opening a new session when the last one ended.
    pub(crate) async fn client(&self) -> Result<zk::Client, StoreError> {
        let client = self.current();
        if !client.state().is_terminated() {
            return Ok(client);
        }
        // Waiting for another caller's reconnection counts against the timeout too.
        let reconnect = async {
            let _guard = self.reconnecting.lock().await;
            let client = self.current();
            if !client.state().is_terminated() {
                return Ok(client);
            }
            tracing::info!(servers = %self.servers, state = %client.state(), "zookeeper session ended; opening a new one");
            let fresh = connect(&self.connector, &self.servers, self.timeout)
                .await
                .map_err(|error| store_error("reconnect", &error))?;
            *self.current.lock().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
            Ok(fresh)
        };
        match tokio::time::timeout(self.timeout, reconnect).await {
            Ok(answer) => answer,
            Err(_) => Err(StoreError::Unavailable(format!(
                "zookeeper: no new session within {:?}",
                self.timeout
            ))),
        }
    }

    /// The id of the current session (0 when it has ended).
    pub(crate) fn session_id(&self) -> i64 {
        let client = self.current();
        if client.state().is_terminated() {
            0
        } else {
            client.session_id().0
        }
    }

    /// Awaits one request, at most the request timeout.
    pub(crate) async fn bounded<T, E>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, E>>,
    ) -> Result<Result<T, E>, StoreError> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(answer) => Ok(answer),
            Err(_) => Err(StoreError::Unavailable(format!(
                "zookeeper {what}: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// Reads one node: `None` when it does not exist.
    pub(crate) async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, zk::Stat)>, StoreError> {
        let client = self.client().await?;
        match self.bounded("get", client.get_data(path)).await? {
            Ok(found) => Ok(Some(found)),
            Err(zk::Error::NoNode) => Ok(None),
            Err(error) => Err(store_error(&format!("get {path}"), &error)),
        }
    }

    /// Lists the children of a node with its stat: `None` when it does not exist.
    pub(crate) async fn children(
        &self,
        path: &str,
    ) -> Result<Option<(Vec<String>, zk::Stat)>, StoreError> {
        let client = self.client().await?;
        match self.bounded("list", client.get_children(path)).await? {
            Ok(found) => Ok(Some(found)),
            Err(zk::Error::NoNode) => Ok(None),
            Err(error) => Err(store_error(&format!("list {path}"), &error)),
        }
    }

    /// Lists the children of a node: empty when it does not exist.
    pub(crate) async fn names(&self, path: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .children(path)
            .await?
            .map(|(names, _)| names)
            .unwrap_or_default())
    }

    /// Reads many nodes, in multi-read requests of [`READ_BATCH`]; `None` for each that does
    /// not exist. Each batch is a consistent snapshot; the whole is not.
    pub(crate) async fn get_many(
        &self,
        paths: &[String],
    ) -> Result<Vec<Option<(Vec<u8>, zk::Stat)>>, StoreError> {
        let reads: Vec<Read> = paths.iter().cloned().map(Read::Data).collect();
        let got = self.read(&reads).await?;
        Ok(got
            .into_iter()
            .map(|got| match got {
                Got::Data(data, stat) => Some((data, stat)),
                Got::Children(_) | Got::Missing => None,
            })
            .collect())
    }

    /// Performs `reads` in multi-read requests of [`READ_BATCH`]. Each batch is a consistent
    /// snapshot; the whole is not.
    pub(crate) async fn read(&self, reads: &[Read]) -> Result<Vec<Got>, StoreError> {
        let mut found = Vec::with_capacity(reads.len());
        for batch in reads.chunks(READ_BATCH) {
            let client = self.client().await?;
            let mut reader = client.new_multi_reader();
            for read in batch {
                let added = match read {
                    Read::Data(path) => reader.add_get_data(path),
                    Read::Children(path) => reader.add_get_children(path),
                };
                added.map_err(|error| store_error(&format!("read {}", read.path()), &error))?;
            }
            let results = match self.bounded("multi-read", reader.commit()).await? {
                Ok(results) => results,
                Err(error) => return Err(store_error("multi-read", &error)),
            };
            if results.len() != batch.len() {
                return Err(StoreError::Backend(format!(
                    "zookeeper multi-read answered {} results for {} reads",
                    results.len(),
                    batch.len()
                )));
            }
            for (read, result) in batch.iter().zip(results) {
                found.push(match result {
                    zk::MultiReadResult::Data { data, stat } => Got::Data(data, stat),
                    zk::MultiReadResult::Children { children } => Got::Children(children),
                    zk::MultiReadResult::Error {
                        err: zk::Error::NoNode,
                    } => Got::Missing,
                    zk::MultiReadResult::Error { err } => {
                        return Err(store_error(&format!("read {}", read.path()), &err));
                    }
                    other => {
                        return Err(StoreError::Backend(format!(
                            "zookeeper multi-read of {}: unexpected {other:?}",
                            read.path()
                        )));
                    }
                });
            }
        }
        Ok(found)
    }

    /// Applies `ops` in one multi request: all or nothing. The outer error is the request's
    /// (unavailable, refused); the inner one names the op that failed, when the request was
    /// processed and wrote nothing.
    pub(crate) async fn multi(
        &self,
        ops: &[Op],
    ) -> Result<Result<Vec<zk::MultiWriteResult>, Failed>, StoreError> {
        if ops.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let size = size_of(ops);
        if size > REQUEST_MAX {
            return Err(StoreError::Backend(format!(
                "a ZooKeeper transaction of {} ops (~{size} bytes) exceeds the request limit",
                ops.len()
            )));
        }
        let client = self.client().await?;
        let persistent = zk::CreateMode::Persistent.with_acls(self.acls);
        let ephemeral = zk::CreateMode::EphemeralSequential.with_acls(self.acls);
        let mut writer = client.new_multi_writer();
        for op in ops {
            let added = match op {
                Op::Check { path, version } => writer.add_check_version(path, *version),
                Op::Create {
                    path,
                    data,
                    ephemeral_sequential,
                } => {
                    let options = if *ephemeral_sequential {
                        &ephemeral
                    } else {
                        &persistent
                    };
                    writer.add_create(path, data, options)
                }
                Op::Set {
                    path,
                    data,
                    version,
                } => writer.add_set_data(path, data, *version),
                Op::Delete { path, version } => writer.add_delete(path, *version),
            };
            added.map_err(|error| store_error("building a transaction", &error))?;
        }
        match self.bounded("multi", writer.commit()).await? {
            Ok(results) => Ok(Ok(results)),
            Err(zk::MultiWriteError::OperationFailed { index, source }) => Ok(Err(Failed {
                index,
                error: source,
            })),
            Err(zk::MultiWriteError::RequestFailed { source }) => {
                Err(store_error("transaction", &source))
            }
        }
    }

    /// Creates `path` and its missing ancestors (persistent, empty).
    pub(crate) async fn mkdir(&self, path: &str) -> Result<(), zk::Error> {
        let client = self.client().await.map_err(|_| zk::Error::ConnectionLoss)?;
        let options = zk::CreateMode::Persistent.with_acls(self.acls);
        match tokio::time::timeout(self.timeout, client.mkdir(path, &options)).await {
            Ok(answer) => answer,
            Err(_) => Err(zk::Error::Timeout),
        }
    }

    /// Waits until the server this session is connected to has caught up with the leader.
    pub(crate) async fn sync(&self, path: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        self.bounded("sync", client.sync(path))
            .await?
            .map_err(|error| store_error("sync", &error))
    }
}

/// Connects a new client, bounded by `timeout`.
async fn connect(
    connector: &zk::Connector,
    servers: &str,
    timeout: Duration,
) -> Result<zk::Client, zk::Error> {
    match tokio::time::timeout(timeout, connector.clone().connect(servers)).await {
        Ok(answer) => answer,
        Err(_) => Err(zk::Error::Timeout),
    }
}
