//! The scheduler driver: runs on the leader, keeps every schedulable job in the core's
//! [`ScheduleIndex`] and fires due jobs. It sleeps until the earliest next fire, a job change,
//! or the next checkpoint; it never scans all jobs per tick.
//!
//! ```text
//!  start ─► index every job ─► catch up fires in (checkpoint, now] ─┐
//!                                                                   ▼
//!        ┌──── wait: next fire │ job change │ 1 s checkpoint ◄──── loop
//!        ▼
//!   pop due ─► late beyond starting_deadline? ─► record missed
//!        └──► fire ledger (one durable write per tick) ─► dispatch
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rkron_core::Job;
use rkron_core::catchup::plan_catch_up;
use rkron_core::index::{Due, ScheduleIndex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use rkron_store::{Lease, StoreError};

use crate::Inner;

/// How far ahead of their instant fires are taken from the index: enough to write their fire
/// ledger entries before the instant, so the durable write does not delay dispatch.
const LOOKAHEAD: TimeDelta = TimeDelta::milliseconds(25);

/// Longest sleep of the loop: the checkpoint advances at least this often.
const CHECKPOINT_PERIOD: Duration = Duration::from_secs(1);

/// A fire dispatched less than this late is on time, whatever its starting deadline: the
/// deadline is for outages and overload, not for the scheduler's own dispatch latency.
const ON_TIME: Duration = Duration::from_secs(1);

/// Meta key: every fire at or before this instant was dispatched or recorded as missed.
pub(crate) const META_CHECKPOINT: &str = "scheduler_checkpoint";

/// How far back a new leader looks for fires its predecessor wrote to the ledger but may not
/// have handed to any node: a little less than nodes remember the runs they accepted.
const CUT_OFF_LOOKBACK: Duration = Duration::from_secs(crate::RECENT_RUNS_KEPT.as_secs() - 20);

/// How long a new leader waits at most for each member's list of accepted runs (less with a
/// short lease: see `cut_off_fires`).
const RECENT_RUNS_TIMEOUT: Duration = Duration::from_secs(2);

/// Job changes the scheduler hears about.
#[derive(Debug)]
pub(crate) enum Msg {
    Upsert(Box<Job>),
    Remove(String),
}

/// The leader's scheduler.
#[derive(Debug)]
pub(crate) struct Scheduler {
    inner: Arc<Inner>,
    index: ScheduleIndex<Job>,
    /// Jobs loaded at start whose schedule has no future fire (an `@at` that passed while the
    /// server was down): they are not indexed, but the catch-up still considers them.
    exhausted: Vec<(Arc<Job>, rkron_core::Schedule)>,
    /// The lease this server leads under, while it does.
    tenure: Option<Tenure>,
    /// Fires the previous leader recorded that may have gone to nodes that could not say, at
    /// takeover, whether they took them; settled when those nodes answer (see `settle`).
    unsettled: Vec<Unsettled>,
    /// The question to returning nodes in flight, if any, and when the last one started.
    asking: Option<tokio::task::JoinHandle<Vec<NodeAnswer>>>,
    last_ask: Option<tokio::time::Instant>,
}

/// A fire of the previous leader's ledger with no known outcome: no node that answered took
/// it, and `nodes` could have taken it but could not say (down, not answering, or restarted
/// without their journal).
#[derive(Debug)]
struct Unsettled {
    job: String,
    at: DateTime<Utc>,
    nodes: std::collections::BTreeSet<String>,
}

/// A node's answer to `RecentRuns`, or why there is none.
type NodeAnswer = (String, Result<crate::RecentRuns, String>);

/// Asks each of `nodes` at once which scheduled runs it accepted since `since` (raising its
/// fence to `token`), waiting at most `wait` for each.
async fn ask_recent_runs(
    runner: Arc<dyn crate::AgentRunner>,
    nodes: impl Iterator<Item = String>,
    token: u64,
    since: DateTime<Utc>,
    wait: Duration,
) -> Vec<NodeAnswer> {
    let mut asks = tokio::task::JoinSet::new();
    for node in nodes {
        let runner = runner.clone();
        asks.spawn(async move {
            let answer =
                match tokio::time::timeout(wait, runner.recent_runs(&node, token, since)).await {
                    Ok(Ok(recent)) => Ok(recent),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("no answer in time".to_owned()),
                };
            (node, answer)
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = asks.join_next().await {
        if let Ok(answer) = joined {
            answers.push(answer);
        }
    }
    answers
}

/// At most this many unsettled fires are kept (the rest are not followed: they stay unknown).
const UNSETTLED_MAX: usize = 100_000;

/// How long an unsettled fire is followed: its nodes may come back later, but then it is past
/// any usual starting deadline and would only be recorded missed.
const UNSETTLED_FOLLOWED: Duration = Duration::from_secs(24 * 3600);

/// One tenure as leader: the lease and when it must be renewed by.
#[derive(Debug)]
struct Tenure {
    lease: Lease,
    /// When the next renewal is due.
    renew_at: tokio::time::Instant,
    /// Until when the lease is surely still ours: a quarter of the TTL before it can expire in
    /// the store, counted from before the last confirmed request. Past it, no dispatch.
    valid_until: tokio::time::Instant,
}

impl Tenure {
    /// A tenure whose lease was granted for `ttl` by a request sent at `sent_at`.
    fn new(lease: Lease, sent_at: tokio::time::Instant, ttl: Duration) -> Self {
        let mut tenure = Self {
            lease,
            renew_at: sent_at,
            valid_until: sent_at,
        };
        tenure.renewed(sent_at, ttl);
        tenure
    }

    /// Records a confirmed grant or renewal for `ttl` of a request sent at `sent_at`: the
    /// store's expiry is later than `sent_at + ttl`, so counting from `sent_at` is safe.
    fn renewed(&mut self, sent_at: tokio::time::Instant, ttl: Duration) {
        self.renew_at = sent_at + ttl / 3;
        self.valid_until = sent_at + ttl - ttl / 4;
    }
}

impl Scheduler {
    /// Creates a scheduler with an empty index.
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Self {
            inner,
            index: ScheduleIndex::new(),
            exhausted: Vec::new(),
            tenure: None,
            unsettled: Vec::new(),
            asking: None,
            last_ask: None,
        }
    }

    fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Remove(name) => {
                self.index.remove(&name);
            }
            Msg::Upsert(job) => {
                self.index_job(*job);
            }
        }
    }

    /// Indexes a job (or takes it out when it is disabled, a child, or unschedulable). A job
    /// whose schedule never fires again is answered back with its schedule, parsed once, so
    /// start-up can still catch up what it missed.
    fn index_job(&mut self, job: Job) -> Option<(Job, rkron_core::Schedule)> {
        if job.disabled || job.is_child() {
            self.index.remove(&job.name);
            return None;
        }
        let Some(Ok(schedule)) = job.parsed_schedule() else {
            self.index.remove(&job.name);
            return None;
        };
        let now = self.inner.clock.now();
        let after = match job.starts_at {
            Some(s) if s > now => s - TimeDelta::nanoseconds(1),
            _ => now,
        };
        if schedule.next_after(after).is_none() {
            self.index.remove(&job.name);
            return Some((job, schedule));
        }
        let name = job.name.clone();
        self.index.upsert(&name, schedule, after, job);
        None
    }

    /// Leads while it holds the store's lease: takes the lease, indexes every stored job,
    /// catches up what was missed while no scheduler ran, then fires due jobs until `cancel`
    /// fires or the lease is lost (then it stops dispatching and campaigns again).
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        cancel: CancellationToken,
    ) {
        let settle = self.inner.config.view_settle;
        if !settle.is_zero() {
            tracing::info!(
                wait = ?settle,
                "waiting for the member list to fill from gossip before campaigning for the leadership"
            );
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep_until(self.inner.started + settle) => {}
            }
        }
        loop {
            let Some((lease, sent_at)) = self.campaign(&cancel).await else {
                break;
            };
            self.tenure = Some(Tenure::new(lease, sent_at, self.inner.config.lease_ttl));
            self.publish_tenure();
            // Changes that came while not leading are in the store: the load sees them.
            while rx.try_recv().is_ok() {}
            self.load().await;
            tracing::info!(jobs = self.index.len(), "scheduler started");
            self.catch_up().await;
            self.exhausted = Vec::new();
            let stopped = if self.lost() {
                false
            } else {
                self.inner
                    .scheduling
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                self.lead(&mut rx, &cancel).await
            };
            self.inner
                .scheduling
                .store(false, std::sync::atomic::Ordering::SeqCst);
            self.index = ScheduleIndex::new();
            let tenure = self.tenure.take();
            self.publish_tenure();
            if let Some(tenure) = tenure
                && stopped
            {
                // Hand over at once instead of making the next leader wait for expiry.
                if let Err(e) = self.inner.store.release_lease(&tenure.lease).await {
                    tracing::warn!(error = %e, "could not release the lease");
                }
            }
            if stopped {
                break;
            }
            tracing::error!("leadership lost: this server stopped dispatching and campaigns again");
            // A store that answers the lease but fails writes must not make this loop spin.
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// Waits until this server holds the lease (`None` when cancelled first).
    /// Answers the lease and when the winning request was sent.
    async fn campaign(&self, cancel: &CancellationToken) -> Option<(Lease, tokio::time::Instant)> {
        let me = self.inner.config.node_name.clone();
        let ttl = self.inner.config.lease_ttl;
        let mut waiting_logged = false;
        loop {
            let sent_at = tokio::time::Instant::now();
            match self.inner.store.acquire_lease(&me, ttl).await {
                Ok(Some(lease)) => {
                    tracing::info!(token = lease.token, "took the leadership lease");
                    return Some((lease, sent_at));
                }
                Ok(None) => {
                    if !waiting_logged {
                        tracing::info!("another server leads; waiting for its lease");
                        waiting_logged = true;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not campaign for the lease; retrying"),
            }
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(ttl / 4) => {}
            }
        }
    }

    /// Whether the lease may have expired in the store: no renewal confirmed within the
    /// safe part of its TTL.
    fn lost(&self) -> bool {
        self.tenure
            .as_ref()
            .is_none_or(|t| tokio::time::Instant::now() >= t.valid_until)
    }

    /// Renews the lease when due; answers whether this server still leads.
    async fn keep_lease(&mut self) -> bool {
        let ttl = self.inner.config.lease_ttl;
        let Some(tenure) = self.tenure.as_mut() else {
            return false;
        };
        let now = tokio::time::Instant::now();
        if now >= tenure.renew_at {
            // The deadline counts from before the request: the store's expiry is later. A
            // request still unanswered when the lease may have expired is given up.
            let renewal = tokio::time::timeout_at(
                tenure.valid_until,
                self.inner.store.renew_lease(&tenure.lease, ttl),
            );
            match renewal.await {
                Ok(Ok(true)) => tenure.renewed(now, ttl),
                Ok(Ok(false)) => {
                    tracing::error!(token = tenure.lease.token, "the lease was taken over");
                    tenure.valid_until = now;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not renew the lease; retrying");
                    tenure.renew_at = now + ttl / 10;
                }
                Err(_) => {
                    tracing::error!(
                        token = tenure.lease.token,
                        "no answer to the lease renewal before the lease could expire"
                    );
                }
            }
        }
        self.publish_tenure();
        !self.lost()
    }

    /// Makes `NodeHandle::is_leader` answer from this tenure: leading only while the lease is
    /// surely held, so two servers never both say they lead.
    fn publish_tenure(&self) {
        let until = self.tenure.as_ref().map(|t| t.valid_until);
        if let Some(tenure) = &self.tenure {
            self.inner
                .lease_token
                .store(tenure.lease.token, std::sync::atomic::Ordering::SeqCst);
        }
        if let Ok(mut slot) = self.inner.lease_until.lock() {
            *slot = until;
        }
    }

    /// The leader's loop; answers `true` when cancelled, `false` when the lease was lost.
    async fn lead(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Msg>,
        cancel: &CancellationToken,
    ) -> bool {
        let mut last_checkpoint: Option<DateTime<Utc>> = None;
        let mut next_resync = self
            .inner
            .config
            .resync_period
            .map(|period| tokio::time::Instant::now() + period);
        loop {
            if !self.keep_lease().await {
                return false;
            }
            if let (Some(at), Some(period)) = (next_resync, self.inner.config.resync_period)
                && tokio::time::Instant::now() >= at
            {
                self.resync().await;
                next_resync = Some(tokio::time::Instant::now() + period);
            }
            let now = self.inner.clock.now();
            // Fires due within LOOKAHEAD are taken now, so their ledger write is done before
            // their instant and dispatch starts on time (see `fire_due`).
            let due = self.index.pop_due(now + LOOKAHEAD);
            if !due.is_empty() {
                self.fire_due(due, now).await;
            }
            if self.lost() {
                return false;
            }
            if last_checkpoint.is_none_or(|t| now - t >= TimeDelta::seconds(1)) {
                self.checkpoint(now).await;
                last_checkpoint = Some(now);
                if !self.settle().await {
                    return false;
                }
            }
            let until_next = match self.index.peek_deadline() {
                Some(deadline) => (deadline - LOOKAHEAD - self.inner.clock.now())
                    .to_std()
                    .unwrap_or_default(),
                None => CHECKPOINT_PERIOD,
            };
            let until_renew = self.tenure.as_ref().map_or(Duration::ZERO, |t| {
                t.renew_at
                    .saturating_duration_since(tokio::time::Instant::now())
            });
            tokio::select! {
                () = cancel.cancelled() => return true,
                msg = rx.recv() => {
                    let Some(msg) = msg else { return true };
                    self.apply(msg);
                    while let Ok(more) = rx.try_recv() {
                        self.apply(more);
                    }
                }
                () = tokio::time::sleep(until_next.min(CHECKPOINT_PERIOD).min(until_renew)) => {}
            }
        }
    }

    /// Indexes every stored job, a page at a time, so start-up never holds all decoded jobs
    /// twice. Changes that arrive meanwhile wait in the channel and are applied after.
    async fn load(&mut self) {
        const PAGE: usize = 1_000;
        let mut cursor: Option<String> = None;
        loop {
            let page = match self.inner.store.jobs_after(cursor.as_deref(), PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "could not load jobs; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some(last) = page.last() else { break };
            cursor = Some(last.name.clone());
            for job in page {
                if let Some((job, schedule)) = self.index_job(job) {
                    self.exhausted.push((Arc::new(job), schedule));
                }
            }
        }
    }

    /// Re-reads every job and reindexes those that changed, and unindexes those that are gone:
    /// the safety net for job-change notices from other servers that never arrived. Runs in the
    /// scheduler task, after every popped fire was dispatched, so a reindexed job never gets a
    /// fire it already had.
    async fn resync(&mut self) {
        const PAGE: usize = 1_000;
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        let mut changed = 0usize;
        loop {
            let page = match self.inner.store.jobs_after(cursor.as_deref(), PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "could not resync jobs; trying again later");
                    return;
                }
            };
            let Some(last) = page.last() else { break };
            cursor = Some(last.name.clone());
            for job in page {
                seen.insert(job.name.clone());
                let same = self
                    .index
                    .payload_of(&job.name)
                    .is_some_and(|indexed| schedule_fields_equal(&indexed, &job));
                if !same {
                    changed += 1;
                    self.index_job(job);
                }
            }
        }
        let gone: Vec<String> = self
            .index
            .iter()
            .map(|(name, _, _)| name.to_owned())
            .filter(|name| !seen.contains(name))
            .collect();
        for name in &gone {
            self.index.remove(name);
        }
        if changed > 0 || !gone.is_empty() {
            tracing::info!(changed, removed = gone.len(), "resync applied job changes");
        }
    }

    /// Records that every fire up to `now` was handled, so a restart knows where to catch up from.
    async fn checkpoint(&self, now: DateTime<Utc>) {
        let Some(deadline) = self.tenure.as_ref().map(|t| t.valid_until) else {
            return;
        };
        let value = now.to_rfc3339();
        let written =
            tokio::time::timeout_at(deadline, self.inner.store.put_meta(META_CHECKPOINT, &value));
        match written.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not write the scheduler checkpoint"),
            Err(_) => tracing::warn!(
                "the scheduler checkpoint was not written before the lease could expire"
            ),
        }
    }

    /// Fires due jobs: late fires beyond their starting deadline and skipped ones are recorded
    /// as missed; the rest go to the fire ledger in one write, then to dispatch.
    async fn fire_due(&mut self, due: Vec<Due<Job>>, now: DateTime<Utc>) {
        let mut ledger = Vec::with_capacity(due.len());
        let mut to_fire = Vec::with_capacity(due.len());
        for d in due {
            let job = d.payload;
            if d.missed > 0 {
                tracing::warn!(job = %d.name, missed = d.missed, "scheduler was behind; older due fires are recorded as missed");
                self.record_missed(&job.name, Vec::new(), u64::from(d.missed));
            }
            if !job.is_schedulable_at(d.scheduled_at) {
                tracing::debug!(job = %d.name, "not runnable now (starts_at/expires_at)");
                continue;
            }
            let late = (now - d.scheduled_at).to_std().unwrap_or_default();
            if late > job.starting_deadline().max(ON_TIME) {
                tracing::warn!(job = %d.name, late = ?late, "fire is past its starting deadline; recorded as missed");
                self.record_missed(&job.name, vec![d.scheduled_at], 0);
                continue;
            }
            ledger.push((job.name.clone(), d.scheduled_at));
            to_fire.push((job, d.scheduled_at));
        }
        if !self.record_fires(&ledger).await {
            return;
        }
        metrics::counter!("rkron_fires_total").increment(to_fire.len() as u64);
        to_fire.sort_by_key(|(_, at)| *at);
        for (job, at) in to_fire {
            self.wait_for(at).await;
            crate::dispatch::fire(&self.inner, job, Some(at)).await;
        }
    }

    /// Waits until the clock reaches `at` (at most LOOKAHEAD): sleeps to a millisecond before,
    /// since timers wake up to a millisecond late, then yields until the instant.
    async fn wait_for(&self, at: DateTime<Utc>) {
        loop {
            let Ok(left) = (at - self.inner.clock.now()).to_std() else {
                return;
            };
            if left.is_zero() {
                return;
            }
            match left.checked_sub(Duration::from_millis(1)) {
                Some(sleep) if !sleep.is_zero() => tokio::time::sleep(sleep).await,
                _ => tokio::task::yield_now().await,
            }
        }
    }

    /// Writes fires to the ledger, fenced by this tenure's token, before they are dispatched;
    /// answers whether to dispatch them. Any failure (fenced: another server leads; or the
    /// store did not take the write before the lease could expire) makes this server step
    /// down without dispatching: the fires stay unrecorded and the checkpoint does not pass
    /// them, so whoever leads next (this server again, after re-reading the store) catches
    /// them up, and a fire is never run by two leaders.
    async fn record_fires(&mut self, fires: &[(String, DateTime<Utc>)]) -> bool {
        if fires.is_empty() {
            return !self.lost();
        }
        let Some((token, deadline)) = self.tenure.as_ref().map(|t| (t.lease.token, t.valid_until))
        else {
            return false;
        };
        let written =
            tokio::time::timeout_at(deadline, self.inner.store.record_fires(token, fires));
        let why = match written.await {
            Ok(Ok(())) => return !self.lost(),
            Ok(Err(StoreError::Fenced(_))) => "fenced: another server leads".to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer before the lease could expire".to_owned(),
        };
        tracing::error!(token, fires = fires.len(), reason = %why, "could not write the fire ledger; not dispatching, stepping down to catch up");
        if let Some(tenure) = self.tenure.as_mut() {
            tenure.valid_until = tokio::time::Instant::now();
        }
        self.publish_tenure();
        false
    }

    fn record_missed(&self, job: &str, instants: Vec<DateTime<Utc>>, uncounted: u64) {
        let count = instants.len() as u64 + uncounted;
        metrics::counter!("rkron_missed_fires_total", "job_name" => job.to_owned())
            .increment(count);
        let (store, job) = (self.inner.store.clone(), job.to_owned());
        self.inner.tasks.spawn(async move {
            if let Err(e) = store.record_missed(&job, &instants, uncounted).await {
                tracing::warn!(job = %job, error = %e, "could not record missed fires");
            }
        });
    }

    /// Applies each job's catch-up policy to the fires due while no scheduler ran: since the
    /// last checkpoint (or the job's last recorded fire, if later) up to now.
    async fn catch_up(&mut self) {
        let checkpoint = match self.inner.store.get_meta(META_CHECKPOINT).await {
            Ok(Some(text)) => DateTime::parse_from_rfc3339(&text)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "could not read the scheduler checkpoint; no catch-up");
                None
            }
        };
        let Some(checkpoint) = checkpoint else { return };
        let ledger = match self.inner.store.fire_ledger().await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "could not read the fire ledger; no catch-up");
                return;
            }
        };
        let now = self.inner.clock.now();
        let cut_off = self.cut_off_fires(&ledger, now).await;
        let (mut ran, mut missed) = (0usize, 0u64);
        let mut ledger_entries = Vec::new();
        let mut to_fire = Vec::new();
        // Jobs whose indexed next fire this catch-up serves: the index was built before `now`
        // was read (a slow store read or a second boundary in between), so without this
        // those fires would run twice.
        let mut served = Vec::new();
        let exhausted = self
            .exhausted
            .iter()
            .map(|(job, s)| (job.name.as_str(), s, job));
        for (name, schedule, job) in self.index.iter().chain(exhausted) {
            let since = match ledger.get(name) {
                // Never handed to a node: that fire is due again, as if it had been missed.
                Some(&l) if cut_off.contains(name) => l - TimeDelta::nanoseconds(1),
                Some(&l) => l.max(checkpoint),
                None => checkpoint,
            };
            let plan = plan_catch_up(schedule, since, now, job.starting_deadline(), |at| {
                job.is_schedulable_at(at)
            });
            let handled = since.max(now);
            if self.index.next_of(name).is_some_and(|next| next <= handled) {
                served.push((name.to_owned(), handled));
            }
            if !plan.missed.is_empty() || plan.uncounted > 0 {
                missed += plan.missed.len() as u64 + plan.uncounted;
                self.record_missed(name, plan.missed, plan.uncounted);
            }
            if let Some(at) = plan.run {
                ran += 1;
                ledger_entries.push((name.to_owned(), at));
                to_fire.push((job.clone(), at));
            }
        }
        // The index fires only what comes after what the catch-up handled.
        for (name, handled) in &served {
            self.index.skip_through(name, *handled);
        }
        if !self.record_fires(&ledger_entries).await {
            return;
        }
        for (job, at) in to_fire {
            crate::dispatch::fire(&self.inner, job, Some(at)).await;
        }
        tracing::info!(since = %checkpoint, caught_up = ran, missed, cut_off = cut_off.len(), reindexed = served.len(), "catch-up of fires missed while no scheduler ran");
    }

    /// The jobs whose latest ledger entry is a fire the previous leader recorded but never
    /// handed to any node: it died between its ledger write and the dispatch. Every member is
    /// asked which scheduled runs it accepted (which also makes it refuse the previous
    /// leader's runs from now on), then the store for the fires no member names. A job that
    /// could have run on a member that cannot be asked (failed, left, or not answering) is
    /// left out: its fire may have run there.
    async fn cut_off_fires(
        &mut self,
        ledger: &std::collections::BTreeMap<String, DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> std::collections::HashSet<String> {
        use std::collections::HashSet;
        let mut cut_off = HashSet::new();
        let Some(token) = self.tenure.as_ref().map(|t| t.lease.token) else {
            return cut_off;
        };
        let lookback = TimeDelta::from_std(CUT_OFF_LOOKBACK).unwrap_or(TimeDelta::MAX);
        let jobs: std::collections::HashMap<&str, &Arc<Job>> = self
            .index
            .iter()
            .map(|(name, _, job)| (name, job))
            .chain(
                self.exhausted
                    .iter()
                    .map(|(job, _)| (job.name.as_str(), job)),
            )
            .collect();
        let candidates: Vec<(&str, DateTime<Utc>, &Arc<Job>)> = ledger
            .iter()
            .filter(|(_, at)| **at <= now && now - **at <= lookback)
            .filter_map(|(name, at)| {
                jobs.get(name.as_str())
                    .map(|job| (name.as_str(), *at, *job))
            })
            .collect();
        let Some(since) = candidates.iter().map(|(_, at, _)| *at).min() else {
            return cut_off;
        };
        let members = self.inner.members.borrow().clone();
        // The catch-up runs before the lease is renewed again: a member that does not answer
        // must not keep this server past its renewal.
        let wait = RECENT_RUNS_TIMEOUT.min(self.inner.config.lease_ttl / 4);
        let alive = members
            .iter()
            .filter(|m| m.status == crate::MemberStatus::Alive)
            .map(|m| m.name.clone());
        let answers = ask_recent_runs(self.inner.runner.clone(), alive, token, since, wait).await;
        let mut accepted: HashSet<(String, DateTime<Utc>)> = HashSet::new();
        // Members whose memory does not reach back to an instant: from when each one's list
        // is complete (`MAX_UTC`: nothing known about it).
        let mut complete_from: Vec<(&crate::Member, DateTime<Utc>)> = members
            .iter()
            .filter(|m| m.status != crate::MemberStatus::Alive)
            .map(|m| (m, DateTime::<Utc>::MAX_UTC))
            .collect();
        for (node, answer) in answers {
            let from = match answer {
                Ok(recent) => {
                    accepted.extend(recent.runs);
                    recent.complete_from
                }
                Err(why) => {
                    tracing::warn!(node = %node, error = %why, "could not ask a node which runs it accepted");
                    DateTime::<Utc>::MAX_UTC
                }
            };
            complete_from.extend(members.iter().filter(|m| m.name == node).map(|m| (m, from)));
        }
        let region = self.inner.config.region.as_str();
        let mut left_alone = Vec::new();
        for (name, at, job) in candidates {
            if accepted.contains(&(name.to_owned(), at)) {
                continue;
            }
            // A member that cannot tell whether it took this fire (it cannot be asked, or it
            // restarted since without its journal) may have run it, if the job could go there.
            let unsure: std::collections::BTreeSet<String> = complete_from
                .iter()
                .filter(|(_, from)| at < *from)
                .filter(|(m, _)| {
                    let mut candidate = m.candidate();
                    candidate.alive = true;
                    let mut rng = rand::rng();
                    !rkron_core::tags::select_targets(
                        job.tags.as_ref(),
                        &[candidate],
                        region,
                        &mut rng,
                    )
                    .is_empty()
                })
                .map(|(m, _)| m.name.clone())
                .collect();
            if !unsure.is_empty() {
                left_alone.push(Unsettled {
                    job: name.to_owned(),
                    at,
                    nodes: unsure,
                });
                continue;
            }
            match self.ran(name, at).await {
                Ok(false) => {
                    tracing::warn!(job = name, scheduled_at = %at, "the previous leader recorded this fire but never handed it to a node; it is caught up");
                    cut_off.insert(name.to_owned());
                }
                Ok(true) => {}
                Err(e) => {
                    tracing::warn!(job = name, error = %e, "could not read executions to tell whether a fire ran");
                }
            }
        }
        if let Some(first) = left_alone.first() {
            // One line, not one per job (a dead node may have been the target of thousands),
            // and no store read for them now: most of these fires ran and are recorded.
            tracing::info!(
                fires = left_alone.len(),
                first_job = %first.job,
                first_scheduled_at = %first.at,
                "some fires the previous leader recorded could have gone to a node that cannot say \
                 yet whether it took them (down, not answering, or restarted without its \
                 accepted-runs journal); they are settled when it answers"
            );
        }
        self.unsettled = left_alone;
        if let Some(stale) = self.asking.take() {
            stale.abort();
        }
        self.last_ask = None;
        self.unsettled.truncate(UNSETTLED_MAX);
        cut_off
    }

    /// Settles fires left unsettled at takeover, once the nodes that could not say whether
    /// they took them can: each returning node is asked once which runs it accepted (in a task,
    /// so the loop never waits for it). A fire a node took is done; one that no node took and
    /// that has no execution record runs now if it is within its starting deadline and the job
    /// has not fired since, and is recorded missed otherwise; one a node still cannot vouch for
    /// (it restarted without its journal) stays unknown. Answers `false` when the lease was
    /// lost on a ledger write.
    async fn settle(&mut self) -> bool {
        if self.unsettled.is_empty() {
            return true;
        }
        let now = self.inner.clock.now();
        let horizon = TimeDelta::from_std(UNSETTLED_FOLLOWED).unwrap_or(TimeDelta::MAX);
        let before = self.unsettled.len();
        self.unsettled.retain(|u| now - u.at <= horizon);
        if self.unsettled.len() < before {
            tracing::info!(
                fires = before - self.unsettled.len(),
                "fires whose nodes never said whether they took them are no longer followed"
            );
        }
        if let Some(asking) = self.asking.take_if(|task| task.is_finished()) {
            let answers = asking.await.unwrap_or_default();
            self.apply_answers(answers);
            if !self.run_settled(now).await {
                return false;
            }
        }
        if self.asking.is_some()
            || self
                .last_ask
                .is_some_and(|t| t.elapsed() < RECENT_RUNS_TIMEOUT)
        {
            return true;
        }
        let Some(token) = self.tenure.as_ref().map(|t| t.lease.token) else {
            return true;
        };
        let wanted: std::collections::BTreeSet<&String> =
            self.unsettled.iter().flat_map(|u| u.nodes.iter()).collect();
        let alive: Vec<String> = self
            .inner
            .members
            .borrow()
            .iter()
            .filter(|m| m.status == crate::MemberStatus::Alive && wanted.contains(&m.name))
            .map(|m| m.name.clone())
            .collect();
        let Some(since) = self.unsettled.iter().map(|u| u.at).min() else {
            return true;
        };
        if alive.is_empty() {
            return true;
        }
        let runner = self.inner.runner.clone();
        self.last_ask = Some(tokio::time::Instant::now());
        self.asking = Some(tokio::spawn(ask_recent_runs(
            runner,
            alive.into_iter(),
            token,
            since,
            RECENT_RUNS_TIMEOUT,
        )));
        true
    }

    /// Takes returning nodes' answers into the unsettled fires: a fire a node took is done; a
    /// node that can vouch it did not take one is struck from it; a fire a node that answered
    /// still cannot vouch for is given up (it stays unknown).
    fn apply_answers(&mut self, answers: Vec<NodeAnswer>) {
        let mut given_up = 0usize;
        let mut taken: Vec<(String, String, DateTime<Utc>)> = Vec::new();
        for (node, answer) in answers {
            let recent = match answer {
                Ok(recent) => recent,
                Err(why) => {
                    tracing::warn!(node = %node, error = %why, "could not ask a returning node which runs it accepted; asking again later");
                    continue;
                }
            };
            let took: std::collections::HashSet<(&str, DateTime<Utc>)> = recent
                .runs
                .iter()
                .map(|(job, at)| (job.as_str(), *at))
                .collect();
            self.unsettled.retain_mut(|u| {
                if !u.nodes.contains(&node) {
                    return true;
                }
                if took.contains(&(u.job.as_str(), u.at)) {
                    taken.push((node.clone(), u.job.clone(), u.at));
                    return false;
                }
                if recent.complete_from <= u.at {
                    u.nodes.remove(&node);
                    return true;
                }
                given_up += 1;
                false
            });
        }
        if let Some((node, job, at)) = taken.first() {
            // A node that accepted a run and then went down may not have started it: its
            // journal names what it accepted, so such a run is not run again (at most once).
            tracing::info!(
                fires = taken.len(),
                first_node = %node,
                first_job = %job,
                first_scheduled_at = %at,
                "a returning node says it accepted some fires the previous leader recorded; \
                 they are not run again"
            );
        }
        if given_up > 0 {
            tracing::info!(
                fires = given_up,
                "a node that came back cannot say whether it took some fires the previous leader \
                 recorded (it restarted without its accepted-runs journal); they stay unknown, \
                 neither run again nor recorded missed"
            );
        }
    }

    /// Whether an execution of `job`'s fire at `at` is stored.
    async fn ran(&self, job: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let list = self.inner.store.list_executions(job, false).await?;
        Ok(list.iter().any(|e| e.scheduled_at == Some(at)))
    }

    /// Runs (or records missed) the unsettled fires that no node can have taken.
    async fn run_settled(&mut self, now: DateTime<Utc>) -> bool {
        let (ready, rest): (Vec<Unsettled>, Vec<Unsettled>) = std::mem::take(&mut self.unsettled)
            .into_iter()
            .partition(|u| u.nodes.is_empty());
        self.unsettled = rest;
        for u in ready {
            let job = match self.inner.store.get_job(&u.job).await {
                Ok(Some(versioned)) => versioned.value,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(job = %u.job, error = %e, "could not read a job to settle a fire; it stays unknown");
                    continue;
                }
            };
            if job.disabled || !job.is_schedulable_at(u.at) {
                continue;
            }
            match self.ran(&u.job, u.at).await {
                Ok(false) => {}
                Ok(true) => continue,
                Err(e) => {
                    tracing::warn!(job = %u.job, error = %e, "could not read executions to settle a fire; it stays unknown");
                    continue;
                }
            }
            let fired_since = job
                .parsed_schedule()
                .and_then(Result::ok)
                .and_then(|schedule| schedule.next_after(u.at))
                .is_some_and(|next| next <= now);
            let deadline = TimeDelta::from_std(job.starting_deadline()).unwrap_or(TimeDelta::MAX);
            if fired_since || now - u.at > deadline {
                tracing::warn!(job = %u.job, scheduled_at = %u.at, "a fire the previous leader recorded never ran (its node said so on its return); too late to run, recorded missed");
                self.record_missed(&u.job, vec![u.at], 0);
                continue;
            }
            if !self.record_fires(&[(u.job.clone(), u.at)]).await {
                return false;
            }
            tracing::warn!(job = %u.job, scheduled_at = %u.at, "a fire the previous leader recorded never ran (its node said so on its return); it runs now");
            crate::dispatch::fire(&self.inner, Arc::new(job), Some(u.at)).await;
        }
        true
    }
}

/// Whether two versions of a job schedule and run the same way; counters and status (which
/// change with every execution) do not count.
fn schedule_fields_equal(a: &Job, b: &Job) -> bool {
    let mut a = a.clone();
    a.success_count = b.success_count;
    a.error_count = b.error_count;
    a.last_success = b.last_success;
    a.last_error = b.last_error;
    a.status = b.status;
    a.next = b.next;
    a == *b
}
