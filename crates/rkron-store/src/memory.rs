//! In-memory store: ordered maps under one mutex, for tests and single-process clusters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rkron_core::execution::{parse_execution_id, unix_nanos};
use rkron_core::{Execution, Job};

use crate::{
    Expect, JobOp, JobPage, Lease, LocalLease, MissedFires, Store, StoreError, Version, Versioned,
};

/// An execution's key: job name, `started_at` as Unix nanoseconds, node name.
///
/// A tuple rather than a joined string, so the executions of `foo` and `foobar` never mix.
type ExecutionKey = (String, i64, String);

/// A [`Store`] that keeps everything in process memory.
///
/// Every operation takes one `std` mutex for its whole (synchronous) duration and never holds it
/// across an `.await`, so each operation is atomic.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The last version handed out; shared by every record so versions never repeat.
    last_version: Version,
    jobs: BTreeMap<String, Versioned<Job>>,
    /// Execution metadata, with `output` always empty.
    executions: BTreeMap<ExecutionKey, Execution>,
    /// Non-empty outputs, apart from the metadata.
    outputs: BTreeMap<ExecutionKey, String>,
    /// Running executions as `(started nanos, job, node)`, oldest first.
    running: BTreeSet<(i64, String, String)>,
    meta: BTreeMap<String, String>,
    /// The fire ledger: job → latest dispatched scheduled instant.
    ledger: BTreeMap<String, DateTime<Utc>>,
    lease: LocalLease,
    /// Missed fires by job; only jobs with at least one recorded.
    missed: BTreeMap<String, MissedFires>,
}

impl MemoryStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No operation panics halfway through an update, so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn execution_key(execution: &Execution) -> ExecutionKey {
    (
        execution.job_name.clone(),
        unix_nanos(execution.started_at),
        execution.node_name.clone(),
    )
}

fn running_key((job, started, node): &ExecutionKey) -> (i64, String, String) {
    (*started, job.clone(), node.clone())
}

/// Returns the keys of `job`'s executions in `(started_at, node)` order, touching no other job.
fn job_keys(executions: &BTreeMap<ExecutionKey, Execution>, job: &str) -> Vec<ExecutionKey> {
    let first = (job.to_owned(), i64::MIN, String::new());
    executions
        .range(first..)
        .take_while(|(key, _)| key.0 == job)
        .map(|(key, _)| key.clone())
        .collect()
}

/// Returns true when a record currently at `current` (`None`: absent) satisfies `expect`.
fn expectation_holds(expect: Expect, current: Option<Version>) -> bool {
    match (expect, current) {
        (Expect::Any, _) => true,
        (Expect::Absent, current) => current.is_none(),
        (Expect::Version(expected), Some(current)) => expected == current,
        (Expect::Version(_), None) => false,
    }
}

impl State {
    fn next_version(&mut self) -> Version {
        self.last_version += 1;
        self.last_version
    }

    /// Checks every expectation in order against the state as the earlier ops of the same commit
    /// leave it (a put gets the version it will be written at).
    fn validate(&self, ops: &[JobOp]) -> Result<(), StoreError> {
        let mut pending: HashMap<&str, Option<Version>> = HashMap::new();
        let mut last_version = self.last_version;
        for op in ops {
            let (name, expect, is_put) = match op {
                JobOp::Put { job, expect } => (job.name.as_str(), *expect, true),
                JobOp::Delete { name, expect } => (name.as_str(), *expect, false),
            };
            let current = match pending.get(name) {
                Some(written) => *written,
                None => self.jobs.get(name).map(|stored| stored.version),
            };
            if !expectation_holds(expect, current) {
                return Err(StoreError::Conflict(name.to_owned()));
            }
            let after = if is_put {
                last_version += 1;
                Some(last_version)
            } else {
                None
            };
            pending.insert(name, after);
        }
        Ok(())
    }

    fn put_execution(&mut self, execution: &Execution, retention: usize) {
        let key = execution_key(execution);
        let mut metadata = execution.clone();
        let output = std::mem::take(&mut metadata.output);
        let running_key = running_key(&key);
        if metadata.is_running() {
            self.running.insert(running_key);
        } else {
            self.running.remove(&running_key);
        }
        self.executions.insert(key.clone(), metadata);
        if output.is_empty() {
            self.outputs.remove(&key);
        } else {
            self.outputs.insert(key, output);
        }
        self.trim(&execution.job_name, retention);
    }

    fn trim(&mut self, job: &str, retention: usize) {
        let keys = job_keys(&self.executions, job);
        let excess = keys.len().saturating_sub(retention);
        for key in keys.into_iter().take(excess) {
            self.remove_execution(&key);
        }
    }

    fn delete_executions(&mut self, job: &str) {
        for key in job_keys(&self.executions, job) {
            self.remove_execution(&key);
        }
    }

    fn remove_execution(&mut self, key: &ExecutionKey) {
        self.executions.remove(key);
        self.outputs.remove(key);
        self.running.remove(&running_key(key));
    }

    fn with_output(&self, key: &ExecutionKey, execution: &Execution) -> Execution {
        let mut full = execution.clone();
        if let Some(output) = self.outputs.get(key) {
            full.output.clone_from(output);
        }
        full
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get_job(&self, name: &str) -> Result<Option<Versioned<Job>>, StoreError> {
        Ok(self.lock().jobs.get(name).cloned())
    }

    async fn list_jobs(&self) -> Result<Vec<Job>, StoreError> {
        Ok(self
            .lock()
            .jobs
            .values()
            .map(|stored| stored.value.clone())
            .collect())
    }

    async fn jobs_page(&self, start: usize, end: usize) -> Result<JobPage, StoreError> {
        let state = self.lock();
        let total = state.jobs.len();
        let jobs = state
            .jobs
            .values()
            .skip(start)
            .take(end.saturating_sub(start))
            .map(|stored| stored.value.clone())
            .collect();
        Ok(JobPage { jobs, total })
    }

    async fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
        use std::ops::Bound;
        let state = self.lock();
        let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
        Ok(state
            .jobs
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(_, stored)| stored.value.clone())
            .collect())
    }

    async fn commit_jobs(&self, ops: Vec<JobOp>) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.validate(&ops)?;
        for op in ops {
            match op {
                JobOp::Put { job, .. } => {
                    let version = state.next_version();
                    state.jobs.insert(
                        job.name.clone(),
                        Versioned {
                            value: job,
                            version,
                        },
                    );
                }
                JobOp::Delete { name, .. } => {
                    state.jobs.remove(&name);
                    state.delete_executions(&name);
                    state.ledger.remove(&name);
                    state.missed.remove(&name);
                }
            }
        }
        Ok(())
    }

    async fn put_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<(), StoreError> {
        self.lock().put_execution(execution, retention);
        Ok(())
    }

    async fn finish_execution(
        &self,
        execution: &Execution,
        retention: usize,
    ) -> Result<Option<Job>, StoreError> {
        let mut state = self.lock();
        let Some(stored) = state.jobs.get(&execution.job_name) else {
            return Ok(None);
        };
        let mut job = stored.value.clone();
        state.put_execution(execution, retention);
        let group = state
            .executions
            .range((execution.job_name.clone(), i64::MIN, String::new())..)
            .take_while(|(key, _)| key.0 == execution.job_name)
            .map(|(_, stored)| stored)
            .filter(|stored| stored.group == execution.group);
        job.record_finished(execution, group);
        let version = state.next_version();
        state.jobs.insert(
            job.name.clone(),
            Versioned {
                value: job.clone(),
                version,
            },
        );
        Ok(Some(job))
    }

    async fn list_executions(
        &self,
        job: &str,
        with_output: bool,
    ) -> Result<Vec<Execution>, StoreError> {
        let state = self.lock();
        let executions = job_keys(&state.executions, job)
            .into_iter()
            .filter_map(|key| {
                let stored = state.executions.get(&key)?;
                Some(if with_output {
                    state.with_output(&key, stored)
                } else {
                    stored.clone()
                })
            })
            .collect();
        Ok(executions)
    }

    async fn get_execution(&self, job: &str, id: &str) -> Result<Option<Execution>, StoreError> {
        let Some((started, node)) = parse_execution_id(id) else {
            return Ok(None);
        };
        let key = (job.to_owned(), started, node.to_owned());
        let state = self.lock();
        Ok(state
            .executions
            .get(&key)
            .map(|stored| state.with_output(&key, stored)))
    }

    async fn delete_executions(&self, job: &str) -> Result<(), StoreError> {
        self.lock().delete_executions(job);
        Ok(())
    }

    async fn running_executions(&self) -> Result<Vec<Execution>, StoreError> {
        let state = self.lock();
        let running = state
            .running
            .iter()
            .filter_map(|(started, job, node)| {
                state
                    .executions
                    .get(&(job.clone(), *started, node.clone()))
                    .cloned()
            })
            .collect();
        Ok(running)
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().meta.get(key).cloned())
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.lock().meta.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    async fn record_fires(
        &self,
        fence: u64,
        fires: &[(String, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.lease.is_current(fence) {
            return Err(StoreError::Fenced(fence));
        }
        for (job, scheduled_at) in fires {
            match state.ledger.get_mut(job) {
                Some(latest) => *latest = (*latest).max(*scheduled_at),
                None => {
                    state.ledger.insert(job.clone(), *scheduled_at);
                }
            }
        }
        Ok(())
    }

    async fn fire_ledger(&self) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        Ok(self.lock().ledger.clone())
    }

    async fn record_missed(
        &self,
        job: &str,
        instants: &[DateTime<Utc>],
        uncounted: u64,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.jobs.contains_key(job) || (instants.is_empty() && uncounted == 0) {
            return Ok(());
        }
        state
            .missed
            .entry(job.to_owned())
            .or_default()
            .record(instants, uncounted);
        Ok(())
    }

    async fn missed_fires(&self, job: &str) -> Result<MissedFires, StoreError> {
        Ok(self.lock().missed.get(job).cloned().unwrap_or_default())
    }

    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>, StoreError> {
        Ok(self.lock().lease.acquire(holder, ttl))
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.lock().lease.renew(lease, ttl))
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.lock().lease.release(lease);
        Ok(())
    }

    async fn current_lease(&self) -> Result<Option<Lease>, StoreError> {
        Ok(self.lock().lease.current().cloned())
    }
}
