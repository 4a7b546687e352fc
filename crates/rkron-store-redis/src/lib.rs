//! rkron-store-redis owns rkron's Redis store: one keyspace in one Redis server (or the master a
//! Redis deployment fails over behind one address), for highly available servers.
//!
//! Every write that touches more than one key is one Lua script, which Redis runs atomically
//! (module `scripts`); the key layout is in module `keyspace`. Leadership is a `SET NX PX` key
//! holding `<token> <holder>`; the fencing token comes from a counter that only grows, and
//! [`rkron_store::Store::record_fires`] checks it in the same script that writes the ledger.
//!
//! The connection is a [`redis::aio::ConnectionManager`]: one multiplexed connection that
//! reconnects after a failure. Every operation runs under [`RedisConfig::timeout`], so a dead
//! server answers [`StoreError::Unavailable`] instead of hanging. An operation that times out
//! may still have been applied by the server (it is one script, so entirely or not at all).
//!
//! Durability is the server's: "durable when it returns `Ok`" holds as far as the server's
//! persistence settings (`appendonly yes`, `appendfsync always` for every write) and replication
//! make it so.

mod config;
mod keyspace;
mod reply;
mod scripts;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, RedisError, Script, ServerErrorKind, TlsCertificates, Value};
use rkron_core::execution::{parse_execution_id, unix_nanos};
use rkron_core::{Execution, Job};
use rkron_store::{Expect, JobOp, JobPage, Lease, MissedFires, Store, StoreError, Versioned};

pub use crate::config::{DEFAULT_KEYSPACE, DEFAULT_PORT, DEFAULT_TIMEOUT, RedisConfig};
use crate::keyspace::{
    Keys, LAYOUT_V1, corrupt, decode_execution, decode_instant, decode_job, decode_lease,
    decode_missed, decode_output, encode_execution, encode_instant, encode_job, encode_lease,
    encode_missed, execution_member, group_prefix, split_member, split_running_field,
};

/// How many times a compare-and-set write (`finish_execution`, `record_missed`) is retried when
/// another writer changed what it read, before answering [`StoreError::Conflict`].
const CAS_ATTEMPTS: usize = 100;

/// Jobs read per script by [`Store::list_jobs`], so one call never blocks Redis for long.
const LIST_PAGE: usize = 1_000;

/// The longest lease TTL passed to Redis (about 35 years), so no TTL overflows its clock.
const MAX_TTL_MILLIS: u64 = 1 << 40;

/// rkron's Redis [`Store`].
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    keys: Keys,
    keyspace: String,
    /// Where the store connects to, without credentials.
    server: String,
    timeout: Duration,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RedisStore")
            .field("server", &self.server)
            .field("keyspace", &self.keyspace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A script's arguments: keys or values.
type Args<'a> = &'a [&'a str];

impl RedisStore {
    /// Connects to the server, checks that it answers (and accepts the credentials), and records
    /// the keyspace layout version in a new keyspace (or checks the one found).
    ///
    /// Fails with [`StoreError::Unavailable`] when the server cannot be reached within
    /// [`RedisConfig::timeout`], and [`StoreError::Backend`] for invalid settings, refused
    /// credentials or a keyspace written by a newer layout.
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let keyspace = config.checked_keyspace()?.to_owned();
        let info = config.connection_info()?;
        let server = config::describe(&info);
        let client = match &config.tls_ca_file {
            Some(path) => {
                let pem = tokio::fs::read(path).await.map_err(|error| {
                    StoreError::Backend(format!(
                        "failed to read the TLS CA file {}: {error}",
                        path.display()
                    ))
                })?;
                let certificates = TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                Client::build_with_tls(info, certificates)
            }
            None => Client::open(info),
        }
        .map_err(|error| StoreError::Backend(format!("invalid Redis settings: {error}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.timeout))
            .set_connection_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connecting = ConnectionManager::new_with_config(client, manager_config);
        let connection = match tokio::time::timeout(config.timeout, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => {
                return Err(connect_error(&server, &error));
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "no answer from Redis at {server} within {:?}",
                    config.timeout
                )));
            }
        };
        let store = Self {
            connection,
            keys: Keys::new(&keyspace),
            keyspace,
            server,
            timeout: config.timeout,
        };
        store.check_layout().await?;
        Ok(store)
    }

    /// The keyspace of the store.
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    async fn check_layout(&self) -> Result<(), StoreError> {
        let layout_key = self.keys.layout();
        let stored = self
            .run(self.eval(&scripts::INIT_LAYOUT, &[&layout_key], &[LAYOUT_V1]))
            .await
            .map_err(|error| match error {
                StoreError::Backend(reason) => StoreError::Backend(format!(
                    "Redis at {} refused the store: {reason}",
                    self.server
                )),
                other => other,
            })?;
        let stored = reply::bytes("the layout check", stored)?;
        match stored.as_deref() {
            Some(version) if version == LAYOUT_V1.as_bytes() => Ok(()),
            Some(version) => Err(StoreError::Backend(format!(
                "keyspace {} has layout version {}; this rkron supports {LAYOUT_V1}",
                self.keyspace,
                String::from_utf8_lossy(version)
            ))),
            None => Err(StoreError::Backend(
                "the layout version could not be recorded".to_owned(),
            )),
        }
    }

    /// Runs one store operation under the deadline.
    async fn run<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(answer) => answer,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer from Redis at {} within {:?}",
                self.server, self.timeout
            ))),
        }
    }

    fn error(&self, error: &RedisError) -> StoreError {
        map_error(&self.keyspace, error)
    }

    /// Runs a script (`EVALSHA`, loading it when the server does not know it).
    async fn eval(
        &self,
        script: &Script,
        keys: Args<'_>,
        args: Args<'_>,
    ) -> Result<Value, StoreError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let mut connection = self.connection.clone();
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|error| self.error(&error))
    }

    /// Runs one command.
    async fn query(&self, command: &redis::Cmd) -> Result<Value, StoreError> {
        let mut connection = self.connection.clone();
        command
            .query_async(&mut connection)
            .await
            .map_err(|error| self.error(&error))
    }

    /// Decodes `{name, version, JSON, …}` triples of the job scripts.
    fn decode_jobs(&self, what: &str, items: Vec<Value>) -> Result<Vec<Job>, StoreError> {
        if !items.len().is_multiple_of(3) {
            return Err(StoreError::Backend(format!(
                "unexpected reply to {what}: {} elements",
                items.len()
            )));
        }
        let mut jobs = Vec::with_capacity(items.len() / 3);
        let mut items = items.into_iter();
        while let (Some(name), Some(version), Some(json)) =
            (items.next(), items.next(), items.next())
        {
            let name = reply::required_bytes(what, name)?;
            let name = String::from_utf8(name)
                .map_err(|error| corrupt(self.keys.jobs(), error.to_string()))?;
            let (Some(version), Some(json)) =
                (reply::bytes(what, version)?, reply::bytes(what, json)?)
            else {
                return Err(corrupt(
                    format!("job {name}"),
                    format!("listed in {} but its record is missing", self.keys.jobs()),
                ));
            };
            jobs.push(decode_job(&name, &version, &json)?.value);
        }
        Ok(jobs)
    }

    async fn read_jobs_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let minimum = after.map_or_else(|| "-".to_owned(), |after| format!("({after}"));
        let limit = limit.min(i64::MAX as usize).to_string();
        let (jobs, prefix) = (self.keys.jobs(), self.keys.job_prefix());
        let answer = self
            .eval(&scripts::JOBS_AFTER, &[&jobs], &[&prefix, &minimum, &limit])
            .await?;
        self.decode_jobs("jobs_after", reply::array("jobs_after", answer)?)
    }

    /// Reads the job, its execution members and the records of `group` for `finish_execution`.
    async fn read_for_finish(
        &self,
        job: &str,
        group: i64,
    ) -> Result<Option<FinishRead>, StoreError> {
        let keys = [
            self.keys.job(job),
            self.keys.runs(job),
            self.keys.exec(job),
            self.keys.stamp(job),
        ];
        let prefix = group_prefix(group);
        let answer = self
            .eval(&scripts::FINISH_READ, &as_strs(&keys), &[&prefix])
            .await?;
        let what = "finish_execution";
        let mut items = reply::array(what, answer)?.into_iter();
        let Some(version) = items.next() else {
            return Ok(None);
        };
        let (Some(json), Some(stamp), Some(members), Some(group), None) = (
            items.next(),
            items.next(),
            items.next(),
            items.next(),
            items.next(),
        ) else {
            return Err(StoreError::Backend(format!("unexpected reply to {what}")));
        };
        let version = reply::required_bytes(what, version)?;
        let json = reply::required_bytes(what, json)?;
        let stored = decode_job(job, &version, &json)?;
        let stamp = String::from_utf8(reply::required_bytes(what, stamp)?)
            .map_err(|_| corrupt(self.keys.stamp(job), "not UTF-8"))?;
        let members = reply::array(what, members)?
            .into_iter()
            .map(|member| reply::required_bytes(what, member))
            .collect::<Result<Vec<_>, _>>()?;
        let group = reply::array(what, group)?;
        let mut records = Vec::with_capacity(group.len() / 2);
        let mut group = group.into_iter();
        while let (Some(member), Some(record)) = (group.next(), group.next()) {
            records.push((
                reply::required_bytes(what, member)?,
                reply::required_bytes(what, record)?,
            ));
        }
        Ok(Some(FinishRead {
            stored,
            stamp,
            members,
            group: records,
        }))
    }
}

/// What `finish_execution` reads before computing the job's new state.
struct FinishRead {
    stored: Versioned<Job>,
    /// The job's execution stamp (empty: none).
    stamp: String,
    /// Every execution member of the job, in order.
    members: Vec<Vec<u8>>,
    /// Member and record of every execution of the finished execution's group.
    group: Vec<reply::Pair>,
}

fn as_strs(values: &[String]) -> Vec<&str> {
    values.iter().map(String::as_str).collect()
}

/// Maps a connection failure at start-up.
fn connect_error(server: &str, error: &RedisError) -> StoreError {
    match map_error("", error) {
        StoreError::Unavailable(reason) => {
            StoreError::Unavailable(format!("cannot reach Redis at {server}: {reason}"))
        }
        _ => StoreError::Backend(format!("Redis at {server} refused the connection: {error}")),
    }
}

/// Maps a Redis client error onto the store's error conditions.
fn map_error(keyspace: &str, error: &RedisError) -> StoreError {
    let unreachable = error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal();
    let busy = matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        )
    ) || matches!(error.code(), Some("BUSY" | "OOM" | "MISCONF"));
    if unreachable || busy {
        return StoreError::Unavailable(error.to_string());
    }
    match error.code() {
        Some("WRONGTYPE") => corrupt(
            format!("a key of keyspace {{{keyspace}}}"),
            error.to_string(),
        ),
        Some("NOAUTH") => {
            StoreError::Backend(format!("the Redis server requires a password: {error}"))
        }
        _ => StoreError::Backend(error.to_string()),
    }
}

/// The TTL in whole milliseconds, at least 1.
fn ttl_millis(ttl: Duration) -> String {
    let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    millis.clamp(1, MAX_TTL_MILLIS).to_string()
}

/// The execution's parts as the scripts take them: member, record, output, running flag.
fn execution_args(execution: &Execution) -> Result<(String, String, &str, &str), StoreError> {
    let member = execution_member(unix_nanos(execution.started_at), &execution.node_name);
    let record = encode_execution(execution)?;
    let running = if execution.is_running() { "1" } else { "0" };
    Ok((member, record, execution.output.as_str(), running))
}

fn expect_args(expect: Expect) -> (&'static str, String) {
    match expect {
        Expect::Absent => ("absent", String::new()),
        Expect::Version(version) => ("version", version.to_string()),
        Expect::Any => ("any", String::new()),
    }
}

fn retention_arg(retention: usize) -> String {
    // Lua reads it as a double: clamp where doubles are still exact.
    retention.min(1 << 52).to_string()
}

#[async_trait]
impl Store for RedisStore {
    async fn get_job(&self, name: &str) -> Result<Option<Versioned<Job>>, StoreError> {
        self.run(async {
            let answer = self
                .query(
                    redis::cmd("HMGET")
                        .arg(self.keys.job(name))
                        .arg("v")
                        .arg("j"),
                )
                .await?;
            let mut fields = reply::array("get_job", answer)?.into_iter();
            let (Some(version), Some(json)) = (fields.next(), fields.next()) else {
                return Err(StoreError::Backend(
                    "unexpected reply to get_job".to_owned(),
                ));
            };
            match (
                reply::bytes("get_job", version)?,
                reply::bytes("get_job", json)?,
            ) {
                (Some(version), Some(json)) => decode_job(name, &version, &json).map(Some),
                (None, None) => Ok(None),
                _ => Err(corrupt(
                    format!("job {name}"),
                    "a field of its record is missing",
                )),
            }
        })
        .await
    }

    async fn list_jobs(&self) -> Result<Vec<Job>, StoreError> {
        // Page by page, so one call never blocks the server for long; a job written during the
        // walk may or may not be listed.
        self.run(async {
            let mut jobs: Vec<Job> = Vec::new();
            loop {
                let after = jobs.last().map(|job| job.name.clone());
                let page = self.read_jobs_after(after.as_deref(), LIST_PAGE).await?;
                let complete = page.len() < LIST_PAGE;
                jobs.extend(page);
                if complete {
                    return Ok(jobs);
                }
            }
        })
        .await
    }

    async fn jobs_page(&self, start: usize, end: usize) -> Result<JobPage, StoreError> {
        self.run(async {
            let limit = i64::MAX as usize;
            let any = start < end && start < limit;
            let first = start.min(limit).to_string();
            let last = end.saturating_sub(1).min(limit).to_string();
            let (jobs, prefix) = (self.keys.jobs(), self.keys.job_prefix());
            let flag = if any { "1" } else { "0" };
            let answer = self
                .eval(
                    &scripts::JOBS_PAGE,
                    &[&jobs],
                    &[&prefix, &first, &last, flag],
                )
                .await?;
            let mut items = reply::array("jobs_page", answer)?.into_iter();
            let (Some(total), Some(page), None) = (items.next(), items.next(), items.next()) else {
                return Err(StoreError::Backend(
                    "unexpected reply to jobs_page".to_owned(),
                ));
            };
            let total = reply::integer("jobs_page", total)?;
            let jobs = self.decode_jobs("jobs_page", reply::array("jobs_page", page)?)?;
            Ok(JobPage {
                jobs,
                total: usize::try_from(total).unwrap_or(0),
            })
        })
        .await
    }

    async fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
        self.run(self.read_jobs_after(after, limit)).await
    }

    async fn commit_jobs(&self, ops: Vec<JobOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.run(async {
            let mut keys = vec![
                self.keys.version(),
                self.keys.jobs(),
                self.keys.running(),
                self.keys.ledger(),
                self.keys.missed(),
            ];
            let mut args: Vec<String> = Vec::with_capacity(ops.len() * 5);
            for op in &ops {
                let (kind, name, expect, json) = match op {
                    JobOp::Put { job, expect } => {
                        ("put", job.name.as_str(), *expect, encode_job(job)?)
                    }
                    JobOp::Delete { name, expect } => {
                        ("delete", name.as_str(), *expect, String::new())
                    }
                };
                let (expect, wanted) = expect_args(expect);
                keys.extend([
                    self.keys.job(name),
                    self.keys.runs(name),
                    self.keys.exec(name),
                    self.keys.out(name),
                    self.keys.stamp(name),
                ]);
                args.extend([
                    kind.to_owned(),
                    name.to_owned(),
                    expect.to_owned(),
                    wanted,
                    json,
                ]);
            }
            let answer = self
                .eval(&scripts::COMMIT_JOBS, &as_strs(&keys), &as_strs(&args))
                .await?;
            match reply::status("commit_jobs", answer)? {
                (word, _) if word == "ok" => Ok(()),
                (word, rest) if word == "conflict" => {
                    let name = rest
                        .into_iter()
                        .next()
                        .map(|name| reply::required_bytes("commit_jobs", name))
                        .transpose()?
                        .unwrap_or_default();
                    Err(StoreError::Conflict(
                        String::from_utf8_lossy(&name).into_owned(),
                    ))
                }
                (word, _) => Err(StoreError::Backend(format!(
                    "unexpected status {word} in reply to commit_jobs"
                ))),
            }
        })
        .await
    }

    async fn put_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<(), StoreError> {
        self.run(async {
            let job = &execution.job_name;
            let (member, record, output, running) = execution_args(execution)?;
            let keys = [
                self.keys.runs(job),
                self.keys.exec(job),
                self.keys.out(job),
                self.keys.running(),
                self.keys.version(),
                self.keys.stamp(job),
            ];
            let retention = retention_arg(retention);
            let args = [job.as_str(), &member, &record, output, running, &retention];
            let answer = self
                .eval(&scripts::PUT_EXECUTION, &as_strs(&keys), &args)
                .await?;
            reply::expect_ok("put_execution", answer)
        })
        .await
    }

    async fn finish_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<Option<Job>, StoreError> {
        self.run(async {
            let job = &execution.job_name;
            let (member, record, output, running) = execution_args(execution)?;
            let keys = [
                self.keys.job(job),
                self.keys.runs(job),
                self.keys.exec(job),
                self.keys.out(job),
                self.keys.running(),
                self.keys.version(),
                self.keys.stamp(job),
            ];
            let retention_text = retention_arg(retention);
            for _ in 0..CAS_ATTEMPTS {
                let Some(read) = self.read_for_finish(job, execution.group).await? else {
                    return Ok(None);
                };
                // The executions as the write will leave them: the new one in place of any with
                // its key, then the oldest beyond the retention trimmed.
                let mut members = read.members;
                if let Err(position) = members.binary_search_by(|m| m.as_slice().cmp(member.as_bytes())) {
                    members.insert(position, member.as_bytes().to_vec());
                }
                let excess = members.len().saturating_sub(retention);
                let trimmed: HashSet<&[u8]> = members[..excess].iter().map(Vec::as_slice).collect();
                let mut group = Vec::with_capacity(read.group.len() + 1);
                for (stored_member, stored_record) in &read.group {
                    if stored_member == member.as_bytes() || trimmed.contains(stored_member.as_slice()) {
                        continue;
                    }
                    let Some((started, node)) = split_member(stored_member) else {
                        return Err(corrupt(
                            self.keys.runs(job),
                            format!("bad member {}", String::from_utf8_lossy(stored_member)),
                        ));
                    };
                    group.push(decode_execution(job.as_bytes(), started, node, stored_record)?);
                }
                if !trimmed.contains(member.as_bytes()) {
                    group.push(execution.clone());
                }
                let mut updated = read.stored.value.clone();
                updated.record_finished(execution, &group);
                let json = encode_job(&updated)?;
                let version = read.stored.version.to_string();
                let args = [
                    version.as_str(),
                    &read.stamp,
                    &json,
                    job,
                    &member,
                    &record,
                    output,
                    running,
                    &retention_text,
                ];
                let answer = self
                    .eval(&scripts::FINISH_WRITE, &as_strs(&keys), &args)
                    .await?;
                match reply::status("finish_execution", answer)? {
                    (word, _) if word == "ok" => return Ok(Some(updated)),
                    (word, _) if word == "absent" => return Ok(None),
                    (word, _) if word == "retry" => {
                        tracing::debug!(job = %job, "finish_execution raced another write; retrying");
                        tokio::task::yield_now().await;
                    }
                    (word, _) => {
                        return Err(StoreError::Backend(format!(
                            "unexpected status {word} in reply to finish_execution"
                        )));
                    }
                }
            }
            Err(StoreError::Conflict(job.clone()))
        })
        .await
    }

    async fn list_executions(
        &self,
        job: &str,
        with_output: bool,
    ) -> Result<Vec<Execution>, StoreError> {
        self.run(async {
            let keys = [self.keys.runs(job), self.keys.exec(job), self.keys.out(job)];
            let flag = if with_output { "1" } else { "0" };
            let answer = self
                .eval(&scripts::LIST_EXECUTIONS, &as_strs(&keys), &[flag])
                .await?;
            let what = "list_executions";
            let items = reply::array(what, answer)?;
            let width = if with_output { 3 } else { 2 };
            let mut executions = Vec::with_capacity(items.len() / width);
            let mut items = items.into_iter();
            while let Some(member) = items.next() {
                let member = reply::required_bytes(what, member)?;
                let record = items
                    .next()
                    .map(|record| reply::bytes(what, record))
                    .transpose()?
                    .flatten();
                let output = if with_output {
                    items
                        .next()
                        .map(|output| reply::bytes(what, output))
                        .transpose()?
                        .flatten()
                } else {
                    None
                };
                let Some((started, node)) = split_member(&member) else {
                    return Err(corrupt(
                        self.keys.runs(job),
                        format!("bad member {}", String::from_utf8_lossy(&member)),
                    ));
                };
                let Some(record) = record else {
                    return Err(corrupt(
                        self.keys.exec(job),
                        format!("no record for member {}", String::from_utf8_lossy(&member)),
                    ));
                };
                let mut execution = decode_execution(job.as_bytes(), started, node, &record)?;
                if let Some(output) = output {
                    execution.output =
                        decode_output(|| format!("output of {job}/{}", execution.id()), output)?;
                }
                executions.push(execution);
            }
            Ok(executions)
        })
        .await
    }

    async fn get_execution(&self, job: &str, id: &str) -> Result<Option<Execution>, StoreError> {
        let Some((started, node)) = parse_execution_id(id) else {
            return Ok(None);
        };
        self.run(async {
            let member = execution_member(started, node);
            let mut pipeline = redis::pipe();
            pipeline
                .atomic()
                .hget(self.keys.exec(job), &member)
                .hget(self.keys.out(job), &member);
            let mut connection = self.connection.clone();
            let answer: Value = pipeline
                .query_async(&mut connection)
                .await
                .map_err(|error| self.error(&error))?;
            let what = "get_execution";
            let mut items = reply::array(what, answer)?.into_iter();
            let (Some(record), Some(output)) = (items.next(), items.next()) else {
                return Err(StoreError::Backend(format!("unexpected reply to {what}")));
            };
            let Some(record) = reply::bytes(what, record)? else {
                return Ok(None);
            };
            let mut execution =
                decode_execution(job.as_bytes(), started, node.as_bytes(), &record)?;
            if let Some(output) = reply::bytes(what, output)? {
                execution.output = decode_output(|| format!("output of {job}/{id}"), output)?;
            }
            Ok(Some(execution))
        })
        .await
    }

    async fn delete_executions(&self, job: &str) -> Result<(), StoreError> {
        self.run(async {
            let keys = [
                self.keys.runs(job),
                self.keys.exec(job),
                self.keys.out(job),
                self.keys.running(),
                self.keys.stamp(job),
            ];
            let answer = self
                .eval(&scripts::DELETE_EXECUTIONS, &as_strs(&keys), &[job])
                .await?;
            reply::expect_ok("delete_executions", answer)
        })
        .await
    }

    async fn running_executions(&self) -> Result<Vec<Execution>, StoreError> {
        self.run(async {
            let running = self.keys.running();
            let answer = self.query(redis::cmd("HGETALL").arg(&running)).await?;
            let mut executions = Vec::new();
            for (field, record) in reply::pairs("running_executions", answer)? {
                let Some((started, job, node)) = split_running_field(&field) else {
                    return Err(corrupt(
                        &running,
                        format!("bad field {}", String::from_utf8_lossy(&field)),
                    ));
                };
                executions.push(decode_execution(job, started, node, &record)?);
            }
            executions.sort_by(|a, b| {
                (a.started_at, &a.job_name, &a.node_name).cmp(&(
                    b.started_at,
                    &b.job_name,
                    &b.node_name,
                ))
            });
            Ok(executions)
        })
        .await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.run(async {
            let meta = self.keys.meta();
            let answer = self.query(redis::cmd("HGET").arg(&meta).arg(key)).await?;
            reply::bytes("get_meta", answer)?
                .map(|value| {
                    String::from_utf8(value)
                        .map_err(|error| corrupt(format!("setting {key}"), error.to_string()))
                })
                .transpose()
        })
        .await
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.run(async {
            self.query(redis::cmd("HSET").arg(self.keys.meta()).arg(key).arg(value))
                .await?;
            Ok(())
        })
        .await
    }

    async fn record_fires(
        &self,
        fence: u64,
        fires: &[(String, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        // The latest instant of each job, so the script writes each job once.
        let mut latest: HashMap<&str, DateTime<Utc>> = HashMap::with_capacity(fires.len());
        for (job, scheduled_at) in fires {
            latest
                .entry(job.as_str())
                .and_modify(|instant| *instant = (*instant).max(*scheduled_at))
                .or_insert(*scheduled_at);
        }
        let fence_text = fence.to_string();
        let mut args: Vec<String> = Vec::with_capacity(1 + 2 * latest.len());
        args.push(fence_text);
        for (job, instant) in latest {
            args.push(job.to_owned());
            args.push(encode_instant(instant));
        }
        self.run(async {
            let keys = [self.keys.leader(), self.keys.ledger()];
            let answer = self
                .eval(&scripts::RECORD_FIRES, &as_strs(&keys), &as_strs(&args))
                .await?;
            match reply::status("record_fires", answer)? {
                (word, _) if word == "ok" => Ok(()),
                (word, _) if word == "fenced" => Err(StoreError::Fenced(fence)),
                (word, _) => Err(StoreError::Backend(format!(
                    "unexpected status {word} in reply to record_fires"
                ))),
            }
        })
        .await
    }

    async fn fire_ledger(&self) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        self.run(async {
            let ledger = self.keys.ledger();
            let answer = self.query(redis::cmd("HGETALL").arg(&ledger)).await?;
            let mut entries = BTreeMap::new();
            for (job, value) in reply::pairs("fire_ledger", answer)? {
                let job =
                    String::from_utf8(job).map_err(|error| corrupt(&ledger, error.to_string()))?;
                let Some(instant) = decode_instant(&value) else {
                    return Err(corrupt(
                        format!("fire ledger entry of job {job}"),
                        format!("not an instant: {}", String::from_utf8_lossy(&value)),
                    ));
                };
                entries.insert(job, instant);
            }
            Ok(entries)
        })
        .await
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
        self.run(async {
            let keys = [self.keys.job(job), self.keys.missed()];
            let keys = as_strs(&keys);
            for _ in 0..CAS_ATTEMPTS {
                let answer = self.eval(&scripts::MISSED_READ, &keys, &[job]).await?;
                let mut items = reply::array("record_missed", answer)?.into_iter();
                let (Some(exists), Some(old)) = (items.next(), items.next()) else {
                    return Err(StoreError::Backend(
                        "unexpected reply to record_missed".to_owned(),
                    ));
                };
                if reply::integer("record_missed", exists)? == 0 {
                    return Ok(());
                }
                let old = reply::bytes("record_missed", old)?;
                let mut missed = match &old {
                    Some(record) => decode_missed(job, record)?,
                    None => MissedFires::default(),
                };
                missed.record(instants, uncounted);
                let new = encode_missed(&missed);
                let old_text = match &old {
                    Some(record) => std::str::from_utf8(record).map_err(|error| {
                        corrupt(format!("missed fires of job {job}"), error.to_string())
                    })?,
                    None => "",
                };
                let had = if old.is_some() { "1" } else { "0" };
                let answer = self
                    .eval(&scripts::MISSED_WRITE, &keys, &[job, had, old_text, &new])
                    .await?;
                match reply::status("record_missed", answer)? {
                    (word, _) if word == "ok" || word == "absent" => return Ok(()),
                    (word, _) if word == "retry" => tokio::task::yield_now().await,
                    (word, _) => {
                        return Err(StoreError::Backend(format!(
                            "unexpected status {word} in reply to record_missed"
                        )));
                    }
                }
            }
            Err(StoreError::Conflict(job.to_owned()))
        })
        .await
    }

    async fn missed_fires(&self, job: &str) -> Result<MissedFires, StoreError> {
        self.run(async {
            let answer = self
                .query(redis::cmd("HGET").arg(self.keys.missed()).arg(job))
                .await?;
            match reply::bytes("missed_fires", answer)? {
                Some(record) => decode_missed(job, &record),
                None => Ok(MissedFires::default()),
            }
        })
        .await
    }

    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        self.run(async {
            let keys = [self.keys.leader(), self.keys.epoch()];
            let ttl = ttl_millis(ttl);
            let answer = self
                .eval(&scripts::ACQUIRE_LEASE, &as_strs(&keys), &[holder, &ttl])
                .await?;
            match reply::status("acquire_lease", answer)? {
                (word, rest) if word == "ok" || word == "held" => {
                    let Some(token) = rest.into_iter().next() else {
                        return Err(StoreError::Backend(
                            "unexpected reply to acquire_lease".to_owned(),
                        ));
                    };
                    Ok(Some(Lease {
                        holder: holder.to_owned(),
                        token: reply::unsigned("acquire_lease", token)?,
                    }))
                }
                (word, _) if word == "taken" => Ok(None),
                (word, _) if word == "corrupt" => {
                    Err(corrupt(self.keys.leader(), "not <token> <holder>"))
                }
                (word, _) => Err(StoreError::Backend(format!(
                    "unexpected status {word} in reply to acquire_lease"
                ))),
            }
        })
        .await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        self.run(async {
            let leader = self.keys.leader();
            let value = encode_lease(lease.token, &lease.holder);
            let ttl = ttl_millis(ttl);
            let answer = self
                .eval(&scripts::RENEW_LEASE, &[&leader], &[&value, &ttl])
                .await?;
            Ok(reply::integer("renew_lease", answer)? == 1)
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.run(async {
            let leader = self.keys.leader();
            let value = encode_lease(lease.token, &lease.holder);
            self.eval(&scripts::RELEASE_LEASE, &[&leader], &[&value])
                .await?;
            Ok(())
        })
        .await
    }

    async fn current_lease(&self) -> Result<Option<Lease>, StoreError> {
        self.run(async {
            let leader = self.keys.leader();
            let answer = self.query(redis::cmd("GET").arg(&leader)).await?;
            let Some(value) = reply::bytes("current_lease", answer)? else {
                return Ok(None);
            };
            match decode_lease(&value) {
                Some((token, holder)) => Ok(Some(Lease { holder, token })),
                None => Err(corrupt(leader, "not <token> <holder>")),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_whole_positive_milliseconds() {
        assert_eq!(ttl_millis(Duration::ZERO), "1");
        assert_eq!(ttl_millis(Duration::from_micros(1_500)), "1");
        assert_eq!(ttl_millis(Duration::from_secs(2)), "2000");
        assert_eq!(ttl_millis(Duration::MAX), MAX_TTL_MILLIS.to_string());
    }

    #[test]
    fn every_script_compiles_to_one_hash() {
        let all = [
            &scripts::COMMIT_JOBS,
            &scripts::PUT_EXECUTION,
            &scripts::FINISH_READ,
            &scripts::FINISH_WRITE,
            &scripts::DELETE_EXECUTIONS,
            &scripts::LIST_EXECUTIONS,
            &scripts::JOBS_PAGE,
            &scripts::JOBS_AFTER,
            &scripts::RECORD_FIRES,
            &scripts::MISSED_READ,
            &scripts::MISSED_WRITE,
            &scripts::ACQUIRE_LEASE,
            &scripts::RENEW_LEASE,
            &scripts::RELEASE_LEASE,
            &scripts::INIT_LAYOUT,
        ];
        let hashes: HashSet<&str> = all.iter().map(|script| script.get_hash()).collect();
        assert_eq!(hashes.len(), all.len());
    }
}
