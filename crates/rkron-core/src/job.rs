//! Jobs: the model, Dkron's validation (order and messages) and the upsert merge rules.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;

/// A string-to-string map, as used by tags, metadata and executor configuration.
pub type StringMap = BTreeMap<String, String>;

/// Concurrency policy of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// Runs may overlap.
    #[default]
    Allow,
    /// A scheduled run is skipped while an execution of the job is running.
    Forbid,
}

impl Concurrency {
    /// Parses Dkron's wire value (`allow`, `forbid` or empty for the default).
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "" | "allow" => Ok(Self::Allow),
            "forbid" => Ok(Self::Forbid),
            _ => Err(ValidationError::Concurrency),
        }
    }

    /// Returns Dkron's wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Forbid => "forbid",
        }
    }
}

/// Status of a job, computed from its latest execution group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Never ran (`""` on the wire).
    #[default]
    #[serde(rename = "")]
    Untriggered,
    /// Every node of the latest group succeeded.
    #[serde(rename = "success")]
    Success,
    /// Every node of the latest group failed.
    #[serde(rename = "failed")]
    Failed,
    /// Some nodes succeeded and some failed.
    #[serde(rename = "partially_failed")]
    PartiallyFailed,
}

impl JobStatus {
    /// Returns Dkron's wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Untriggered => "",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::PartiallyFailed => "partially_failed",
        }
    }

    /// Parses a wire value; `untriggered` is accepted as a synonym of `""` (Dkron's filter value).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "untriggered" => Some(Self::Untriggered),
            "success" => Some(Self::Success),
            "failed" => Some(Self::Failed),
            "partially_failed" => Some(Self::PartiallyFailed),
            _ => None,
        }
    }
}

/// A job definition with its server-maintained counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub name: String,
    pub displayname: String,
    pub timezone: String,
    pub schedule: String,
    pub owner: String,
    pub owner_email: String,
    pub success_count: u64,
    pub error_count: u64,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<DateTime<Utc>>,
    pub disabled: bool,
    pub tags: Option<StringMap>,
    pub metadata: Option<StringMap>,
    pub retries: u32,
    pub dependent_jobs: Option<Vec<String>>,
    pub parent_job: String,
    pub processors: BTreeMap<String, StringMap>,
    pub concurrency: Concurrency,
    pub executor: String,
    pub executor_config: Option<StringMap>,
    pub status: JobStatus,
    pub next: Option<DateTime<Utc>>,
    pub ephemeral: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// rkron: delay before the first retry (Go duration); each later retry doubles it, capped at
    /// one hour. Empty means Dkron's delay.
    #[serde(default)]
    pub retry_interval: String,
    /// rkron: how late a missed fire may still run (Go duration); empty means
    /// [`DEFAULT_STARTING_DEADLINE`].
    #[serde(default)]
    pub starting_deadline: String,
    /// rkron: when to send notifications: comma list of `always`, `success`, `failure`,
    /// `recovery`; empty means `always` (Dkron's behaviour).
    #[serde(default)]
    pub notify_on: String,
    /// rkron: extra e-mail recipients for this job (comma list), besides `owner_email`.
    #[serde(default)]
    pub notify_email: String,
    /// rkron: an extra webhook endpoint for this job, besides the global `webhook-endpoint`.
    #[serde(default)]
    pub notify_webhook: String,
}

/// How late a missed fire may still run when a job sets no `starting_deadline`.
pub const DEFAULT_STARTING_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Longest delay between two retries.
pub const MAX_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// When a job's notifications are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyOn {
    pub success: bool,
    pub failure: bool,
    pub recovery: bool,
}

impl NotifyOn {
    /// Parses a `notify_on` value; empty means always.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let mut on = Self::default();
        if s.trim().is_empty() {
            return Ok(Self {
                success: true,
                failure: true,
                recovery: true,
            });
        }
        for word in s.split(',').map(str::trim) {
            match word {
                "always" => {
                    on = Self {
                        success: true,
                        failure: true,
                        recovery: true,
                    }
                }
                "success" => on.success = true,
                "failure" => on.failure = true,
                "recovery" => on.recovery = true,
                other => return Err(ValidationError::NotifyOn(other.to_owned())),
            }
        }
        Ok(on)
    }

    /// Whether a finished group with status `now` (after `before`) is notified.
    pub fn wants(self, success: bool, previous_failed: bool) -> bool {
        if success {
            self.success || (self.recovery && previous_failed)
        } else {
            self.failure
        }
    }
}

/// A validation failure, with Dkron's message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("name cannot be empty")]
    EmptyName,
    #[error("name contains illegal character '{0}'")]
    IllegalCharacter(char),
    #[error("the job can not have itself as parent")]
    SelfParent,
    #[error("can't parse job schedule: {0}")]
    Schedule(String),
    #[error("invalid concurrency policy value, use \"allow\" or \"forbid\"")]
    Concurrency,
    #[error("{0}")]
    Timezone(String),
    #[error("Error parsing job timeout value")]
    Timeout,
    #[error("Error parsing job memory limit value: {0}")]
    MemLimit(String),
    #[error("Error parsing job retry_interval value: {0}")]
    RetryInterval(String),
    #[error("Error parsing job starting_deadline value: {0}")]
    StartingDeadline(String),
    #[error(
        "invalid notify_on value {0:?}, use a comma list of \"always\", \"success\", \"failure\", \"recovery\""
    )]
    NotifyOn(String),
}

/// Returns the first character Dkron rejects in a job name (anything but `\p{Ll}`, `0-9`, `_`, `-`).
fn illegal_name_char(name: &str) -> Option<char> {
    name.chars().find(|&c| {
        !(c.is_lowercase() && is_unicode_ll(c) || c.is_ascii_digit() || c == '_' || c == '-')
    })
}

/// Approximates Unicode category Ll: lower-case letters that have an upper-case mapping or are
/// alphabetic lower-case (ß, ŉ). `char::is_lowercase` also accepts some Lo/Lm marks like `ª`;
/// those are excluded by requiring the character to be alphabetic and not a modifier letter.
fn is_unicode_ll(c: char) -> bool {
    c.is_alphabetic()
        && c.is_lowercase()
        && !matches!(c, 'ª' | 'º' | '\u{2b0}'..='\u{2ff}' | '\u{1d2c}'..='\u{1d6a}' | '\u{2071}' | '\u{207f}' | '\u{2090}'..='\u{209c}')
}

impl Job {
    /// Validates the job as Dkron does, in Dkron's order; the first failure wins (reference §1.2).
    ///
    /// Checks that need the store (the parent must exist) are done by the caller.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.validate_with_concurrency(self.concurrency.as_str())
    }

    /// Validates like [`Job::validate`], checking the submitted concurrency text `concurrency`
    /// at its place in Dkron's order (after the schedule, before the time zone).
    pub fn validate_with_concurrency(&self, concurrency: &str) -> Result<(), ValidationError> {
        if self.name.is_empty() {
            return Err(ValidationError::EmptyName);
        }
        if let Some(c) = illegal_name_char(&self.name) {
            return Err(ValidationError::IllegalCharacter(c));
        }
        if self.parent_job == self.name {
            return Err(ValidationError::SelfParent);
        }
        if !self.schedule.is_empty() || self.parent_job.is_empty() {
            Schedule::parse(&self.schedule, &self.name, "")
                .map_err(|e| ValidationError::Schedule(e.to_string()))?;
        }
        Concurrency::parse(concurrency)?;
        crate::schedule::parse_timezone(&self.timezone).map_err(ValidationError::Timezone)?;
        if self.executor == "shell" {
            let config = self.executor_config.as_ref();
            if let Some(timeout) = config
                .and_then(|c| c.get("timeout"))
                .filter(|t| !t.is_empty())
            {
                crate::duration::parse_go_duration(timeout)
                    .map_err(|_| ValidationError::Timeout)?;
            }
            if let Some(limit) = config.and_then(|c| c.get("mem_limit")) {
                crate::memlimit::parse_mem_limit(limit).map_err(ValidationError::MemLimit)?;
            }
        }
        // rkron's own fields come after Dkron's checks, so Dkron's messages keep their order.
        if !self.retry_interval.is_empty() {
            crate::duration::parse_go_duration(&self.retry_interval)
                .map_err(ValidationError::RetryInterval)?;
        }
        if !self.starting_deadline.is_empty() {
            crate::duration::parse_go_duration(&self.starting_deadline)
                .map_err(ValidationError::StartingDeadline)?;
        }
        NotifyOn::parse(&self.notify_on)?;
        Ok(())
    }

    /// Parses the job's schedule in its time zone; `None` for child jobs without a schedule.
    pub fn parsed_schedule(&self) -> Option<Result<Schedule, crate::ScheduleError>> {
        if !self.parent_job.is_empty() && self.schedule.is_empty() {
            return None;
        }
        Some(Schedule::parse(&self.schedule, &self.name, &self.timezone))
    }

    /// The delay before retry attempt `next_attempt` (2 for the first retry) when the job sets
    /// `retry_interval`: the interval, doubled for each later retry, capped at an hour.
    pub fn retry_delay(&self, next_attempt: u32) -> Option<std::time::Duration> {
        if self.retry_interval.is_empty() {
            return None;
        }
        let base = crate::duration::parse_go_duration(&self.retry_interval).ok()?;
        let doublings = next_attempt.saturating_sub(2).min(20);
        Some(base.saturating_mul(1 << doublings).min(MAX_RETRY_INTERVAL))
    }

    /// How late a missed fire of this job may still run.
    pub fn starting_deadline(&self) -> std::time::Duration {
        crate::duration::parse_go_duration(&self.starting_deadline)
            .unwrap_or(DEFAULT_STARTING_DEADLINE)
    }

    /// Applies a finished execution to the job's counters and status (Dkron's rules): one more
    /// success or error, `last_success`/`last_error` = its `finished_at`, and `status` =
    /// [`group_status`](crate::group_status) of `group`, the stored executions of its group.
    /// Every store backend calls this, so the rule lives in one place.
    pub fn record_finished<'a>(
        &mut self,
        execution: &crate::Execution,
        group: impl IntoIterator<Item = &'a crate::Execution>,
    ) {
        self.status = crate::group_status(group);
        if execution.success {
            self.success_count += 1;
            self.last_success = execution.finished_at.or(self.last_success);
        } else {
            self.error_count += 1;
            self.last_error = execution.finished_at.or(self.last_error);
        }
    }

    /// Returns true when this job is a child (runs only after its parent's successful group).
    pub fn is_child(&self) -> bool {
        !self.parent_job.is_empty()
    }

    /// Returns true when cron may fire this job at `at` (disabled, `starts_at`, `expires_at`).
    pub fn is_schedulable_at(&self, at: DateTime<Utc>) -> bool {
        !self.disabled
            && self.starts_at.is_none_or(|s| at >= s)
            && self.expires_at.is_none_or(|e| at <= e)
    }

    /// Computes `next` for the job as stored: the first fire strictly after `now` in the job's
    /// time zone, no earlier than `starts_at`; `None` for child, manual or exhausted schedules.
    pub fn compute_next(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_child() {
            return None;
        }
        let schedule = self.parsed_schedule()?.ok()?;
        let from = match self.starts_at {
            // The first fire at or after starts_at.
            Some(s) if s > now => s - chrono::TimeDelta::nanoseconds(1),
            _ => now,
        };
        let next = schedule.next_after(from)?;
        match self.expires_at {
            Some(e) if next > e => None,
            _ => Some(next),
        }
    }
}

/// The outcome of merging a submitted job into the store: every job record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertPlan {
    /// The job as it will be stored.
    pub job: Job,
    /// The old parent with this job removed from its `dependent_jobs`, if the parent changed.
    pub old_parent: Option<Job>,
    /// The new parent with this job added to its `dependent_jobs`, if it changed.
    pub new_parent: Option<Job>,
}

/// Why an upsert cannot proceed (beyond validation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpsertError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("specified parent job not found")]
    ParentNotFound,
    #[error("dependency cycle: {0}")]
    Cycle(String),
}

/// Merges a submitted job with what is stored (reference §1.3) and plans the parent bookkeeping.
///
/// `stored` is the current record of the same name, `old_parent` the stored record of the stored
/// job's parent (if any), `new_parent` the stored record of the submitted parent (if any),
/// `ancestors_of_new_parent` the names above the new parent (used to reject cycles).
pub fn plan_upsert(
    mut submitted: Job,
    stored: Option<&Job>,
    old_parent: Option<&Job>,
    new_parent: Option<&Job>,
    ancestors_of_new_parent: &[String],
    now: DateTime<Utc>,
) -> Result<UpsertPlan, UpsertError> {
    submitted.validate()?;
    if submitted.is_child() && new_parent.is_none() {
        return Err(UpsertError::ParentNotFound);
    }
    if ancestors_of_new_parent.iter().any(|a| a == &submitted.name) {
        return Err(UpsertError::Cycle(format!(
            "job {} is an ancestor of its parent {}",
            submitted.name, submitted.parent_job
        )));
    }
    // Dependent jobs are server-maintained; a set, never duplicated (DESIGN §8).
    submitted.dependent_jobs = dedup(submitted.dependent_jobs.take());
    if let Some(stored) = stored {
        submitted.last_error = max_opt(submitted.last_error, stored.last_error);
        submitted.last_success = max_opt(submitted.last_success, stored.last_success);
        submitted.success_count = submitted.success_count.max(stored.success_count);
        submitted.error_count = submitted.error_count.max(stored.error_count);
        if stored
            .dependent_jobs
            .as_ref()
            .is_some_and(|d| !d.is_empty())
        {
            submitted.dependent_jobs = stored.dependent_jobs.clone();
        }
        if stored.status != JobStatus::Untriggered {
            submitted.status = stored.status;
        }
    }
    // rkron computes `next` from the schedule in the job's time zone (Dkron ignores the zone, #1031).
    submitted.next = submitted.compute_next(now);

    let previous_parent = stored.map(|s| s.parent_job.as_str()).unwrap_or("");
    let mut plan = UpsertPlan {
        job: submitted,
        old_parent: None,
        new_parent: None,
    };
    let parent_changed = previous_parent != plan.job.parent_job;
    if let Some(old) = old_parent.filter(|p| parent_changed && p.name == previous_parent) {
        let mut old = old.clone();
        remove_dependent(&mut old, &plan.job.name);
        plan.old_parent = Some(old);
    }
    if let Some(parent) = new_parent.filter(|p| p.name == plan.job.parent_job) {
        let has = parent
            .dependent_jobs
            .as_ref()
            .is_some_and(|d| d.contains(&plan.job.name));
        if !has {
            let mut parent = parent.clone();
            parent
                .dependent_jobs
                .get_or_insert_with(Vec::new)
                .push(plan.job.name.clone());
            plan.new_parent = Some(parent);
        }
    }
    Ok(plan)
}

/// Removes `child` from `parent.dependent_jobs`; an emptied list becomes `null` as in Dkron.
pub fn remove_dependent(parent: &mut Job, child: &str) {
    if let Some(deps) = parent.dependent_jobs.as_mut() {
        deps.retain(|d| d != child);
        if deps.is_empty() {
            parent.dependent_jobs = None;
        }
    }
}

fn dedup(list: Option<Vec<String>>) -> Option<Vec<String>> {
    let list = list?;
    let mut seen = BTreeSet::new();
    Some(
        list.into_iter()
            .filter(|d| seen.insert(d.clone()))
            .collect(),
    )
}

fn max_opt(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
