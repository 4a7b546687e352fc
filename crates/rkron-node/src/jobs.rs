//! Job operations of the node handle: validated, merged, compare-and-swap writes, listings and
//! executions. Any server can take these; the scheduler hears of every change at once.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rkron_core::job::{UpsertPlan, plan_upsert, remove_dependent};
use rkron_core::{Execution, Job, JobStatus};
use rkron_store::{Expect, JobOp, StoreError, Versioned};

use crate::scheduler::Msg;
use crate::{NodeError, NodeHandle};

/// How often a write retries after losing a compare-and-swap race.
const CAS_ATTEMPTS: usize = 16;
/// Longest parent chain followed when checking for cycles.
const MAX_ANCESTRY: usize = 1_000;

/// Fields `GET /v1/jobs` can sort by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortField {
    #[default]
    Name,
    Displayname,
    Schedule,
    SuccessCount,
    ErrorCount,
    LastSuccess,
    LastError,
    Next,
}

impl SortField {
    /// Parses Dkron's `_sort` values (`id` means `name`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "id" | "name" => Self::Name,
            "displayname" => Self::Displayname,
            "schedule" => Self::Schedule,
            "success_count" => Self::SuccessCount,
            "error_count" => Self::ErrorCount,
            "last_success" => Self::LastSuccess,
            "last_error" => Self::LastError,
            "next" => Self::Next,
            _ => return None,
        })
    }
}

/// A `GET /v1/jobs` query.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    /// Every pair must be in the job's metadata.
    pub metadata: BTreeMap<String, String>,
    /// Case-sensitive substring of name or displayname.
    pub q: Option<String>,
    pub status: Option<JobStatus>,
    pub disabled: Option<bool>,
    /// A filter value no job can have was given (Dkron's exact-match filters then match nothing).
    pub match_nothing: bool,
    pub sort: SortField,
    pub descending: bool,
    pub start: usize,
    /// Exclusive end; `None` means the total.
    pub end: Option<usize>,
}

impl JobQuery {
    fn filters(&self) -> bool {
        self.match_nothing
            || !self.metadata.is_empty()
            || self.q.is_some()
            || self.status.is_some()
            || self.disabled.is_some()
    }

    fn matches(&self, job: &Job) -> bool {
        let metadata_ok = self.metadata.is_empty()
            || job
                .metadata
                .as_ref()
                .is_some_and(|m| self.metadata.iter().all(|(k, v)| m.get(k) == Some(v)));
        let q_ok = self
            .q
            .as_ref()
            .is_none_or(|q| job.name.contains(q.as_str()) || job.displayname.contains(q.as_str()));
        let status_ok = self.status.is_none_or(|s| job.status == s);
        let disabled_ok = self.disabled.is_none_or(|d| job.disabled == d);
        !self.match_nothing && metadata_ok && q_ok && status_ok && disabled_ok
    }
}

/// Stored jobs counted by status and by `disabled` ([`NodeHandle::job_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Every stored job.
    pub total: usize,
    /// Jobs whose latest group succeeded.
    pub success: usize,
    /// Jobs whose latest group failed on every node.
    pub failed: usize,
    /// Jobs whose latest group failed on some nodes.
    pub partially_failed: usize,
    /// Jobs that never ran.
    pub untriggered: usize,
    /// Jobs with `disabled: true` (whatever their status).
    pub disabled: usize,
}

fn compare(field: SortField, a: &Job, b: &Job) -> Ordering {
    let primary = match field {
        SortField::Name => Ordering::Equal,
        SortField::Displayname => a.displayname.cmp(&b.displayname),
        SortField::Schedule => a.schedule.cmp(&b.schedule),
        SortField::SuccessCount => a.success_count.cmp(&b.success_count),
        SortField::ErrorCount => a.error_count.cmp(&b.error_count),
        SortField::LastSuccess => a.last_success.cmp(&b.last_success),
        SortField::LastError => a.last_error.cmp(&b.last_error),
        SortField::Next => a.next.cmp(&b.next),
    };
    primary.then_with(|| a.name.cmp(&b.name))
}

fn version_of<T>(v: Option<&Versioned<T>>) -> Expect {
    v.map_or(Expect::Absent, |v| Expect::Version(v.version))
}

impl NodeHandle {
    /// Fills in `next` as of now: schedules are pure functions of spec, zone and name, so any
    /// server computes the same value the leader's index holds.
    fn with_next(&self, mut job: Job) -> Job {
        job.next = job.compute_next(self.now());
        job
    }

    /// Creates or replaces a job (Dkron's upsert rules) and returns it as stored.
    pub async fn upsert_job(&self, submitted: Job) -> Result<Job, NodeError> {
        if self.is_paused().await {
            return Err(NodeError::Paused);
        }
        let store = &self.inner.store;
        for _ in 0..CAS_ATTEMPTS {
            let stored = store.get_job(&submitted.name).await?;
            let previous_parent = stored
                .as_ref()
                .map(|s| s.value.parent_job.clone())
                .unwrap_or_default();
            let old_parent =
                if !previous_parent.is_empty() && previous_parent != submitted.parent_job {
                    store.get_job(&previous_parent).await?
                } else {
                    None
                };
            let new_parent = if submitted.parent_job.is_empty() {
                None
            } else {
                store.get_job(&submitted.parent_job).await?
            };
            let ancestors = match &new_parent {
                Some(p) => self.ancestors(&p.value).await?,
                None => Vec::new(),
            };
            let UpsertPlan {
                job,
                old_parent: old_p,
                new_parent: new_p,
            } = plan_upsert(
                submitted.clone(),
                stored.as_ref().map(|s| &s.value),
                old_parent.as_ref().map(|p| &p.value),
                new_parent.as_ref().map(|p| &p.value),
                &ancestors,
                self.now(),
            )?;
            let mut ops = vec![JobOp::Put {
                job: job.clone(),
                expect: version_of(stored.as_ref()),
            }];
            if let Some(p) = old_p {
                ops.push(JobOp::Put {
                    job: p,
                    expect: version_of(old_parent.as_ref()),
                });
            }
            if let Some(p) = new_p {
                ops.push(JobOp::Put {
                    job: p,
                    expect: version_of(new_parent.as_ref()),
                });
            }
            match store.commit_jobs(ops).await {
                Ok(()) => {
                    self.notify(Msg::Upsert(Box::new(job.clone())));
                    return Ok(job);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(NodeError::Contended(submitted.name))
    }

    /// Names above `job` in its parent chain (its parent, grandparent, …), `job` included.
    async fn ancestors(&self, job: &Job) -> Result<Vec<String>, NodeError> {
        let mut names = vec![job.name.clone()];
        let mut parent = job.parent_job.clone();
        while !parent.is_empty() && names.len() < MAX_ANCESTRY && !names.contains(&parent) {
            names.push(parent.clone());
            parent = match self.inner.store.get_job(&parent).await? {
                Some(p) => p.value.parent_job,
                None => String::new(),
            };
        }
        Ok(names)
    }

    /// Reads one job.
    pub async fn get_job(&self, name: &str) -> Result<Job, NodeError> {
        match self.inner.store.get_job(name).await? {
            Some(v) => Ok(self.with_next(v.value)),
            None => Err(NodeError::JobNotFound),
        }
    }

    /// Lists jobs for a query; answers the page and the number of matching jobs.
    ///
    /// Unfiltered listings in name order page straight from the store's ordered index.
    pub async fn list_jobs(&self, query: &JobQuery) -> Result<(Vec<Job>, usize), NodeError> {
        let store = &self.inner.store;
        if !query.filters() && query.sort == SortField::Name {
            let page = if query.descending {
                // Positions count from the end, so the total is needed first.
                let total = store.jobs_page(0, 0).await?.total;
                let end = query.end.unwrap_or(total).min(total);
                let start = query.start.min(end);
                let mut page = store.jobs_page(total - end, total - start).await?;
                page.jobs.reverse();
                page
            } else {
                // The store clamps the range and counts the total in the same read.
                store
                    .jobs_page(query.start, query.end.unwrap_or(usize::MAX))
                    .await?
            };
            let jobs = page.jobs.into_iter().map(|j| self.with_next(j)).collect();
            return Ok((jobs, page.total));
        }
        let mut jobs: Vec<Job> = store
            .list_jobs()
            .await?
            .into_iter()
            .filter(|j| query.matches(j))
            .map(|j| self.with_next(j))
            .collect();
        jobs.sort_by(|a, b| compare(query.sort, a, b));
        if query.descending {
            jobs.reverse();
        }
        let total = jobs.len();
        let end = query.end.unwrap_or(total).min(total);
        let start = query.start.min(end);
        Ok((jobs.drain(start..end).collect(), total))
    }

    /// Counts the stored jobs by status and by `disabled` (the dashboard's overview), in one
    /// read and without computing any `next`.
    pub async fn job_counts(&self) -> Result<JobCounts, NodeError> {
        let mut counts = JobCounts::default();
        for job in self.inner.store.list_jobs().await? {
            counts.total += 1;
            match job.status {
                JobStatus::Success => counts.success += 1,
                JobStatus::Failed => counts.failed += 1,
                JobStatus::PartiallyFailed => counts.partially_failed += 1,
                JobStatus::Untriggered => counts.untriggered += 1,
            }
            if job.disabled {
                counts.disabled += 1;
            }
        }
        Ok(counts)
    }

    /// Deletes a job and its executions; refuses while it has dependent jobs.
    pub async fn delete_job(&self, name: &str) -> Result<Job, NodeError> {
        let store = &self.inner.store;
        for _ in 0..CAS_ATTEMPTS {
            let Some(stored) = store.get_job(name).await? else {
                return Err(NodeError::JobNotFound);
            };
            if stored
                .value
                .dependent_jobs
                .as_ref()
                .is_some_and(|d| !d.is_empty())
            {
                return Err(NodeError::HasDependents);
            }
            let mut ops = vec![JobOp::Delete {
                name: name.to_owned(),
                expect: Expect::Version(stored.version),
            }];
            let parent = if stored.value.is_child() {
                store.get_job(&stored.value.parent_job).await?
            } else {
                None
            };
            if let Some(parent) = parent {
                let mut updated = parent.value.clone();
                remove_dependent(&mut updated, name);
                ops.push(JobOp::Put {
                    job: updated,
                    expect: Expect::Version(parent.version),
                });
            }
            match store.commit_jobs(ops).await {
                Ok(()) => {
                    self.notify(Msg::Remove(name.to_owned()));
                    return Ok(self.with_next(stored.value));
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(NodeError::Contended(name.to_owned()))
    }

    /// Flips `disabled` and returns the job.
    pub async fn toggle_job(&self, name: &str) -> Result<Job, NodeError> {
        self.update_job(name, |job| job.disabled = !job.disabled)
            .await
    }

    /// Deletes every execution of a job and resets its counters.
    pub async fn delete_executions(&self, name: &str) -> Result<Job, NodeError> {
        self.get_job(name).await?;
        self.inner.store.delete_executions(name).await?;
        self.update_job(name, |job| {
            job.success_count = 0;
            job.error_count = 0;
            job.last_success = None;
            job.last_error = None;
            job.status = JobStatus::Untriggered;
        })
        .await
    }

    /// Applies `change` to a stored job with compare-and-swap, and tells the scheduler.
    pub(crate) async fn update_job(
        &self,
        name: &str,
        change: impl Fn(&mut Job),
    ) -> Result<Job, NodeError> {
        let store = &self.inner.store;
        for _ in 0..CAS_ATTEMPTS {
            let Some(stored) = store.get_job(name).await? else {
                return Err(NodeError::JobNotFound);
            };
            let mut job = stored.value;
            change(&mut job);
            job.next = job.compute_next(self.now());
            let op = JobOp::Put {
                job: job.clone(),
                expect: Expect::Version(stored.version),
            };
            match store.commit_jobs(vec![op]).await {
                Ok(()) => {
                    self.notify(Msg::Upsert(Box::new(job.clone())));
                    return Ok(job);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(NodeError::Contended(name.to_owned()))
    }

    /// Lists a job's executions (ascending by start); `with_output` loads outputs.
    pub async fn executions(
        &self,
        job: &str,
        with_output: bool,
    ) -> Result<Vec<Execution>, NodeError> {
        self.get_job(job).await?;
        Ok(self.inner.store.list_executions(job, with_output).await?)
    }

    /// Reads the fires of a job that were due but not run (scheduler down, busy, or past the
    /// job's starting deadline).
    pub async fn missed_fires(&self, job: &str) -> Result<rkron_store::MissedFires, NodeError> {
        self.get_job(job).await?;
        Ok(self.inner.store.missed_fires(job).await?)
    }

    /// Reads one execution with its full output.
    pub async fn execution(&self, job: &str, id: &str) -> Result<Execution, NodeError> {
        self.get_job(job).await?;
        self.inner
            .store
            .get_execution(job, id)
            .await?
            .ok_or(NodeError::ExecutionNotFound)
    }

    /// Restores jobs from a backup (the output of `GET /v1/jobs`): parents before children.
    /// Answers one line per job, `success create <name>` or `fail create <name>: <why>`.
    ///
    /// Like Dkron, the whole file is checked first: a child whose parent is neither in the file
    /// nor stored, or a cycle among the file's jobs, rejects the restore before anything is written.
    pub async fn restore(&self, jobs: Vec<Job>) -> Result<Vec<String>, NodeError> {
        let names: std::collections::BTreeSet<&str> =
            jobs.iter().map(|j| j.name.as_str()).collect();
        for job in jobs.iter().filter(|j| j.is_child()) {
            if !names.contains(job.parent_job.as_str())
                && self.inner.store.get_job(&job.parent_job).await?.is_none()
            {
                return Err(NodeError::Invalid(format!(
                    "restore: job {} has parent {}, which is neither in the file nor stored",
                    job.name, job.parent_job
                )));
            }
        }
        let parents: BTreeMap<&str, &str> = jobs
            .iter()
            .map(|j| (j.name.as_str(), j.parent_job.as_str()))
            .collect();
        for job in &jobs {
            let mut cursor = job.parent_job.as_str();
            for _ in 0..=jobs.len() {
                if cursor.is_empty() {
                    break;
                }
                if cursor == job.name {
                    return Err(NodeError::Invalid(format!(
                        "restore: dependency cycle through job {}",
                        job.name
                    )));
                }
                cursor = parents.get(cursor).copied().unwrap_or("");
            }
        }
        let mut pending = jobs;
        let mut results = Vec::new();
        let mut done: Vec<String> = Vec::new();
        // Repeatedly take the jobs whose parent is absent from the pending set.
        while !pending.is_empty() {
            let names: Vec<String> = pending.iter().map(|j| j.name.clone()).collect();
            let (ready, rest): (Vec<Job>, Vec<Job>) = pending.into_iter().partition(|j| {
                !j.is_child() || !names.contains(&j.parent_job) || done.contains(&j.parent_job)
            });
            if ready.is_empty() {
                for j in rest {
                    results.push(format!(
                        "fail create {}: dependency cycle in the backup",
                        j.name
                    ));
                }
                break;
            }
            for mut job in ready {
                // Dependents are rebuilt from the children's parent_job, never copied (a set).
                job.dependent_jobs = None;
                let name = job.name.clone();
                match self.upsert_job(job).await {
                    Ok(_) => results.push(format!("success create {name}")),
                    Err(e) => results.push(format!("fail create {name}: {e}")),
                }
                done.push(name);
            }
            pending = rest;
        }
        Ok(results)
    }

    pub(crate) fn notify(&self, msg: Msg) {
        let name = match &msg {
            Msg::Upsert(job) => job.name.clone(),
            Msg::Remove(name) => name.clone(),
        };
        // The scheduler is gone only during shutdown, when nothing needs scheduling.
        let _ = self.inner.scheduler_tx.send(msg);
        // Another server leads: tell it (it also resyncs periodically, so a lost notice only
        // delays the change).
        if let Some(notices) = self.inner.notices.clone()
            && !self.is_leader()
        {
            let handle = self.clone();
            self.inner.tasks.spawn(async move {
                // Right after start-up gossip may not list the leader yet (its RPC address is
                // in its tags): wait a little for it rather than leave it to the resync.
                for _ in 0..20 {
                    match handle.leader().await {
                        Some(leader) if leader.name == handle.node_name() => return,
                        Some(leader) if leader.tags.contains_key("rpc_addr") => {
                            notices.job_changed(&leader, &name).await;
                            return;
                        }
                        _ => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
                    }
                }
                tracing::warn!(job = %name, "no leader known to notify of a job change; its resync will pick it up");
            });
        }
    }
}
