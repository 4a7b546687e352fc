//! Node runtime tests with the in-memory store and runners standing in for a remote node that
//! stops answering (the cluster issue replaces them with real agents over gRPC).

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rkron_core::{Job, SystemClock};
use rkron_node::{
    AgentRun, AgentRunner, Node, NodeConfig, NodeHandle, Plugins, RunError, RunEvent,
};
use rkron_store::MemoryStore;
use tokio::sync::mpsc;

/// A node that starts runs and then never reports again; `hold` keeps its stream open.
#[derive(Debug, Default)]
struct Vanishing {
    hold: bool,
    streams: Mutex<Vec<mpsc::Sender<RunEvent>>>,
    kills: Mutex<Vec<String>>,
}

#[async_trait]
impl AgentRunner for Vanishing {
    async fn run(
        &self,
        node: &str,
        run: AgentRun,
        events: mpsc::Sender<RunEvent>,
    ) -> Result<(), RunError> {
        let mut e = run.execution;
        e.node_name = node.to_owned();
        e.started_at = rkron_core::Clock::now(&SystemClock);
        events
            .send(RunEvent::Started(e, rkron_executor::OutputBuffer::new()))
            .await
            .unwrap();
        if self.hold {
            self.streams.lock().unwrap().push(events);
        }
        Ok(())
    }

    async fn kill(&self, _node: &str, execution_id: &str, _reason: &str) -> bool {
        self.kills.lock().unwrap().push(execution_id.to_owned());
        true
    }
}

async fn node_with(runner: Arc<Vanishing>) -> NodeHandle {
    let config = NodeConfig::for_test("n1");
    Node::start_with_runner(
        config,
        Arc::new(MemoryStore::new()),
        Plugins::builtins("n1"),
        Arc::new(SystemClock),
        Some(runner),
    )
    .await
    .unwrap()
}

fn job(timeout: &str) -> Job {
    Job {
        name: "j".into(),
        schedule: "@manually".into(),
        executor: "shell".into(),
        executor_config: Some(
            [
                ("command".to_owned(), "sleep 300".to_owned()),
                ("timeout".to_owned(), timeout.to_owned()),
            ]
            .into(),
        ),
        ..Job::default()
    }
}

async fn wait_finished(node: &NodeHandle) -> rkron_core::Execution {
    for _ in 0..200 {
        let list = node.executions("j", true).await.unwrap();
        if let Some(e) = list.into_iter().find(|e| e.finished_at.is_some()) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the execution was never finished");
}

#[tokio::test]
async fn a_run_that_never_reports_is_killed_then_failed_after_its_timeout() {
    let runner = Arc::new(Vanishing {
        hold: true,
        ..Vanishing::default()
    });
    let node = node_with(runner.clone()).await;
    node.upsert_job(job("1s")).await.unwrap();
    node.run_job("j").await.unwrap();
    // timeout 1 s + margin 1 s, then the kill request, then 1 s more: failed within ~6 s.
    let e = wait_finished(&node).await;
    assert!(!e.success);
    assert!(
        e.output.contains("no final report from node n1"),
        "{}",
        e.output
    );
    assert_eq!(
        runner.kills.lock().unwrap().len(),
        1,
        "the node was asked to kill it first"
    );
    assert!(node.busy().is_empty(), "no stale running record");
    let job = node.get_job("j").await.unwrap();
    assert_eq!(job.error_count, 1);
}

#[tokio::test]
async fn a_stream_that_ends_without_a_result_fails_the_run_at_once() {
    let runner = Arc::new(Vanishing::default());
    let node = node_with(runner).await;
    node.upsert_job(job("")).await.unwrap();
    node.run_job("j").await.unwrap();
    let e = wait_finished(&node).await;
    assert!(!e.success);
    assert!(
        e.output.contains("ended before the execution reported"),
        "{}",
        e.output
    );
    assert!(node.busy().is_empty());
}

/// Counts the runs it is asked for and reports each as finished at once.
#[derive(Debug, Default)]
struct Counting {
    runs: Mutex<Vec<Option<chrono::DateTime<chrono::Utc>>>>,
    /// What it answers when a new leader asks which runs it accepted.
    accepted: rkron_node::RecentRuns,
}

#[async_trait]
impl AgentRunner for Counting {
    async fn run(
        &self,
        node: &str,
        run: AgentRun,
        events: mpsc::Sender<RunEvent>,
    ) -> Result<(), RunError> {
        self.runs.lock().unwrap().push(run.execution.scheduled_at);
        let mut e = run.execution;
        e.node_name = node.to_owned();
        e.started_at = rkron_core::Clock::now(&SystemClock);
        events
            .send(RunEvent::Started(
                e.clone(),
                rkron_executor::OutputBuffer::new(),
            ))
            .await
            .unwrap();
        e.finished_at = Some(e.started_at);
        e.success = true;
        events.send(RunEvent::Finished(e)).await.unwrap();
        Ok(())
    }

    async fn kill(&self, _node: &str, _execution_id: &str, _reason: &str) -> bool {
        false
    }

    async fn recent_runs(
        &self,
        _node: &str,
        _leader_token: u64,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> Result<rkron_node::RecentRuns, RunError> {
        Ok(self.accepted.clone())
    }
}

#[tokio::test]
async fn a_server_dispatches_only_while_it_holds_the_lease() {
    use rkron_store::Store;
    let store = Arc::new(MemoryStore::new());
    // Another server leads when this one starts.
    let other = store
        .acquire_lease("other", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let mut ticking = job("0s");
    ticking.name = "tick".into();
    ticking.schedule = "@every 1s".into();
    let runner = Arc::new(Counting::default());
    let mut config = NodeConfig::for_test("n1");
    config.lease_ttl = Duration::from_secs(2);
    let node = Node::start_with_runner(
        config,
        store.clone(),
        Plugins::builtins("n1"),
        Arc::new(SystemClock),
        Some(runner.clone()),
    )
    .await
    .unwrap();
    node.upsert_job(ticking).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(!node.is_leader());
    assert!(
        runner.runs.lock().unwrap().is_empty(),
        "ran without the lease"
    );

    // The other server hands over: this one takes the lease and starts firing.
    store.release_lease(&other).await.unwrap();
    let mut led = false;
    for _ in 0..60 {
        if node.is_leader() && !runner.runs.lock().unwrap().is_empty() {
            led = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(led, "never took over");
    let lease = store.current_lease().await.unwrap().unwrap();
    assert_eq!(lease.holder, "n1");
    assert!(lease.token > other.token);
    // It keeps the lease past its TTL by renewing it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(store.current_lease().await.unwrap(), Some(lease));
    assert!(node.is_leader());
    // No scheduled instant was dispatched twice.
    let runs = runner.runs.lock().unwrap().clone();
    let mut instants: Vec<_> = runs.iter().flatten().collect();
    let n = instants.len();
    instants.sort();
    instants.dedup();
    assert_eq!(instants.len(), n, "{runs:?}");
    node.shutdown().await;
    assert_eq!(
        store.current_lease().await.unwrap(),
        None,
        "released on shutdown"
    );
}

/// The in-memory store with two hooks: execution records that take `record_delay` each
/// (counting how many are written at once), and a first fire-ledger read that moves a manual
/// clock forward (a read that takes that long).
#[derive(Debug, Default)]
struct Hooked {
    inner: MemoryStore,
    record_delay: Duration,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    slow_ledger_read: Mutex<Option<(Arc<rkron_core::ManualClock>, chrono::TimeDelta)>>,
}

impl Hooked {
    async fn slowly<T>(&self, write: impl std::future::Future<Output = T>) -> T {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(self.record_delay).await;
        let answer = write.await;
        self.in_flight.fetch_sub(1, SeqCst);
        answer
    }
}

#[async_trait]
impl rkron_store::Store for Hooked {
    async fn get_job(
        &self,
        name: &str,
    ) -> Result<Option<rkron_store::Versioned<Job>>, rkron_store::StoreError> {
        self.inner.get_job(name).await
    }
    async fn list_jobs(&self) -> Result<Vec<Job>, rkron_store::StoreError> {
        self.inner.list_jobs().await
    }
    async fn jobs_page(
        &self,
        start: usize,
        end: usize,
    ) -> Result<rkron_store::JobPage, rkron_store::StoreError> {
        self.inner.jobs_page(start, end).await
    }
    async fn jobs_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Job>, rkron_store::StoreError> {
        self.inner.jobs_after(after, limit).await
    }
    async fn commit_jobs(
        &self,
        ops: Vec<rkron_store::JobOp>,
    ) -> Result<(), rkron_store::StoreError> {
        self.inner.commit_jobs(ops).await
    }
    async fn put_execution(
        &self,
        execution: &rkron_core::Execution,
        retention: usize,
    ) -> Result<(), rkron_store::StoreError> {
        self.slowly(self.inner.put_execution(execution, retention))
            .await
    }
    async fn finish_execution(
        &self,
        execution: &rkron_core::Execution,
        retention: usize,
    ) -> Result<Option<Job>, rkron_store::StoreError> {
        self.slowly(self.inner.finish_execution(execution, retention))
            .await
    }
    async fn list_executions(
        &self,
        job: &str,
        with_output: bool,
    ) -> Result<Vec<rkron_core::Execution>, rkron_store::StoreError> {
        self.inner.list_executions(job, with_output).await
    }
    async fn get_execution(
        &self,
        job: &str,
        id: &str,
    ) -> Result<Option<rkron_core::Execution>, rkron_store::StoreError> {
        self.inner.get_execution(job, id).await
    }
    async fn delete_executions(&self, job: &str) -> Result<(), rkron_store::StoreError> {
        self.inner.delete_executions(job).await
    }
    async fn running_executions(
        &self,
    ) -> Result<Vec<rkron_core::Execution>, rkron_store::StoreError> {
        self.inner.running_executions().await
    }
    async fn get_meta(&self, key: &str) -> Result<Option<String>, rkron_store::StoreError> {
        self.inner.get_meta(key).await
    }
    async fn put_meta(&self, key: &str, value: &str) -> Result<(), rkron_store::StoreError> {
        self.inner.put_meta(key, value).await
    }
    async fn record_fires(
        &self,
        fence: u64,
        fires: &[(String, chrono::DateTime<chrono::Utc>)],
    ) -> Result<(), rkron_store::StoreError> {
        self.inner.record_fires(fence, fires).await
    }
    async fn fire_ledger(
        &self,
    ) -> Result<
        std::collections::BTreeMap<String, chrono::DateTime<chrono::Utc>>,
        rkron_store::StoreError,
    > {
        let slow = self.slow_ledger_read.lock().unwrap().take();
        if let Some((clock, takes)) = slow {
            clock.advance(takes);
        }
        self.inner.fire_ledger().await
    }
    async fn record_missed(
        &self,
        job: &str,
        instants: &[chrono::DateTime<chrono::Utc>],
        uncounted: u64,
    ) -> Result<(), rkron_store::StoreError> {
        self.inner.record_missed(job, instants, uncounted).await
    }
    async fn missed_fires(
        &self,
        job: &str,
    ) -> Result<rkron_store::MissedFires, rkron_store::StoreError> {
        self.inner.missed_fires(job).await
    }
    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<rkron_store::Lease>, rkron_store::StoreError> {
        self.inner.acquire_lease(holder, ttl).await
    }
    async fn renew_lease(
        &self,
        lease: &rkron_store::Lease,
        ttl: Duration,
    ) -> Result<bool, rkron_store::StoreError> {
        self.inner.renew_lease(lease, ttl).await
    }
    async fn release_lease(
        &self,
        lease: &rkron_store::Lease,
    ) -> Result<(), rkron_store::StoreError> {
        self.inner.release_lease(lease).await
    }
    async fn current_lease(&self) -> Result<Option<rkron_store::Lease>, rkron_store::StoreError> {
        self.inner.current_lease().await
    }
}

/// Runs 12 jobs at once on a node whose store takes 100 ms per execution record and answers
/// the most records it was writing at one time.
async fn most_records_at_once(record_concurrency: Option<usize>) -> usize {
    let store = Arc::new(Hooked {
        record_delay: Duration::from_millis(100),
        ..Hooked::default()
    });
    let mut config = NodeConfig::for_test("n1");
    config.record_concurrency = record_concurrency;
    let node = Node::start_with_runner(
        config,
        store.clone(),
        Plugins::builtins("n1"),
        Arc::new(SystemClock),
        Some(Arc::new(Counting::default())),
    )
    .await
    .unwrap();
    let names: Vec<String> = (0..12).map(|i| format!("j{i:02}")).collect();
    for name in &names {
        let mut j = job("0s");
        j.name = name.clone();
        node.upsert_job(j).await.unwrap();
    }
    for name in &names {
        node.run_job(name).await.unwrap();
    }
    let mut recorded = 0;
    for _ in 0..100 {
        recorded = 0;
        for name in &names {
            let list = node.executions(name, false).await.unwrap();
            recorded += list.iter().filter(|e| e.finished_at.is_some()).count();
        }
        if recorded == names.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(recorded, names.len(), "every run is recorded, gate or not");
    node.shutdown().await;
    store.most.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn record_concurrency_bounds_the_execution_records_written_at_once() {
    assert_eq!(most_records_at_once(Some(3)).await, 3);
    let unbounded = most_records_at_once(None).await;
    assert!(
        unbounded > 3,
        "without the bound the burst's records are written together: {unbounded}"
    );
}

/// At takeover the index is built first, then the catch-up reads the store and the clock. When
/// a fire instant passes in between (here a ledger read that takes 500 ms across a second
/// boundary; under load in CI, a slow store), the catch-up serves that fire: the index must
/// not fire it again. (Seen in a loaded run of the etcd failover test: one instant of a
/// 1-second job ran twice on the agent, 0.8 ms apart.)
#[tokio::test]
async fn a_fire_served_by_the_catch_up_is_not_fired_again_by_the_index() {
    let second = |s: i64| chrono::DateTime::from_timestamp(1_893_456_000 + s, 0).unwrap();
    let start = second(10) + chrono::TimeDelta::milliseconds(900);
    let clock = Arc::new(rkron_core::ManualClock::new(start));
    let store = Arc::new(Hooked {
        slow_ledger_read: Mutex::new(Some((clock.clone(), chrono::TimeDelta::milliseconds(500)))),
        ..Hooked::default()
    });
    let mut tick = job("0s");
    tick.name = "tick".into();
    tick.schedule = "@every 1s".into();
    // The previous leader ran the fire at :10 and handled everything up to :10.400.
    let checkpoint = second(10) + chrono::TimeDelta::milliseconds(400);
    left_by_a_previous_leader(&*store, tick, second(10), checkpoint).await;

    let runner = Arc::new(Counting::default());
    let node = Node::start_with_runner(
        NodeConfig::for_test("n1"),
        store.clone(),
        Plugins::builtins("n1"),
        clock.clone(),
        Some(runner.clone()),
    )
    .await
    .unwrap();
    lead_for_half_a_second(&node).await;
    assert_eq!(
        rkron_core::Clock::now(&*clock),
        second(11) + chrono::TimeDelta::milliseconds(400),
        "the ledger read moved the clock across :11"
    );
    node.shutdown().await;
    let runs = runner.runs.lock().unwrap().clone();
    assert_eq!(
        runs,
        [Some(second(11))],
        "the fire at :11 runs exactly once"
    );
}

/// A store where a previous leader wrote a fire of job `cut` at `at` to its ledger and its
/// checkpoint past it, then went away (as if killed between the ledger write and the dispatch).
async fn store_with_a_cut_off_fire(at: chrono::DateTime<chrono::Utc>) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let mut cut = job("0s");
    cut.name = "cut".into();
    cut.schedule = format!("@at {}", at.to_rfc3339());
    let checkpoint = at + chrono::TimeDelta::milliseconds(500);
    left_by_a_previous_leader(&*store, cut, at, checkpoint).await;
    store
}

/// Stores `job` as a previous leader left it: the fire at `fired` in its ledger, its
/// checkpoint at `checkpoint`, and its lease released.
async fn left_by_a_previous_leader(
    store: &dyn rkron_store::Store,
    job: Job,
    fired: chrono::DateTime<chrono::Utc>,
    checkpoint: chrono::DateTime<chrono::Utc>,
) {
    let name = job.name.clone();
    store
        .commit_jobs(vec![rkron_store::JobOp::Put {
            job,
            expect: rkron_store::Expect::Absent,
        }])
        .await
        .unwrap();
    let old = store
        .acquire_lease("old", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    store
        .record_fires(old.token, &[(name, fired)])
        .await
        .unwrap();
    store
        .put_meta("scheduler_checkpoint", &checkpoint.to_rfc3339())
        .await
        .unwrap();
    store.release_lease(&old).await.unwrap();
}

/// What the only node says when the new leader asks which runs it accepted.
#[derive(Debug, Clone, Copy)]
enum NodeSays {
    /// It took the fire.
    Accepted,
    /// It did not take the fire, and it has been up since well before it.
    NotAccepted,
    /// It did not take the fire, but it restarted since: it cannot know.
    RestartedSince,
}

impl NodeSays {
    /// The node's answer to a new leader asking about the cut-off fire of job `cut` at `at`.
    fn answer(self, at: chrono::DateTime<chrono::Utc>) -> rkron_node::RecentRuns {
        let long_ago = at - chrono::TimeDelta::hours(1);
        match self {
            NodeSays::Accepted => rkron_node::RecentRuns {
                runs: vec![("cut".to_owned(), at)],
                complete_from: long_ago,
            },
            NodeSays::NotAccepted => rkron_node::RecentRuns {
                runs: Vec::new(),
                complete_from: long_ago,
            },
            NodeSays::RestartedSince => rkron_node::RecentRuns {
                runs: Vec::new(),
                complete_from: at + chrono::TimeDelta::seconds(1),
            },
        }
    }
}

/// Waits until `node` leads (asserting it does within 2.5 s), then lets it lead for 500 ms.
async fn lead_for_half_a_second(node: &NodeHandle) {
    for _ in 0..50 {
        if node.is_leader() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(node.is_leader());
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Shuts `node` down and answers the instants `runner` was asked to run, each of them `at`.
async fn shut_down_and_take_runs(
    node: NodeHandle,
    runner: &Counting,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<Option<chrono::DateTime<chrono::Utc>>> {
    node.shutdown().await;
    let runs = runner.runs.lock().unwrap().clone();
    assert!(runs.iter().all(|r| *r == Some(at)), "{runs:?}");
    runs
}

async fn lead_after_a_cut_off_fire(says: NodeSays) -> Vec<Option<chrono::DateTime<chrono::Utc>>> {
    let now = rkron_core::Clock::now(&SystemClock);
    let at = chrono::DateTime::from_timestamp(now.timestamp() - 2, 0).unwrap();
    let store = store_with_a_cut_off_fire(at).await;
    let runner = Arc::new(Counting {
        accepted: says.answer(at),
        ..Counting::default()
    });
    let node = Node::start_with_runner(
        NodeConfig::for_test("n1"),
        store.clone(),
        Plugins::builtins("n1"),
        Arc::new(SystemClock),
        Some(runner.clone()),
    )
    .await
    .unwrap();
    lead_for_half_a_second(&node).await;
    shut_down_and_take_runs(node, &runner, at).await
}

#[tokio::test]
async fn a_fire_the_previous_leader_recorded_but_never_handed_out_is_caught_up() {
    assert_eq!(
        lead_after_a_cut_off_fire(NodeSays::NotAccepted).await.len(),
        1,
        "no node accepted it: it runs once"
    );
    assert!(
        lead_after_a_cut_off_fire(NodeSays::Accepted)
            .await
            .is_empty(),
        "a node accepted it: it is not run again"
    );
    assert!(
        lead_after_a_cut_off_fire(NodeSays::RestartedSince)
            .await
            .is_empty(),
        "the node restarted since and cannot tell: it is left alone"
    );
}

/// A fire the previous leader recorded could only have gone to `n2`, which is down at
/// takeover: the fire is unsettled. `n2` then comes back and answers as `says`; answers the
/// scheduled instants the new leader ran.
async fn settle_after_the_node_returns(
    says: NodeSays,
) -> Vec<Option<chrono::DateTime<chrono::Utc>>> {
    use rkron_node::{ClusterParts, LocalAgent, Member, MemberStatus, node_tags};
    use rkron_store::Store;
    let now = rkron_core::Clock::now(&SystemClock);
    let at = chrono::DateTime::from_timestamp(now.timestamp() - 2, 0).unwrap();
    let store = store_with_a_cut_off_fire(at).await;
    // Only n2 carries the job's tag.
    let mut cut = store.get_job("cut").await.unwrap().unwrap();
    cut.value.tags = Some([("pool".to_owned(), "blue".to_owned())].into());
    store
        .commit_jobs(vec![rkron_store::JobOp::Put {
            job: cut.value,
            expect: rkron_store::Expect::Version(cut.version),
        }])
        .await
        .unwrap();
    let runner = Arc::new(Counting {
        accepted: says.answer(at),
        ..Counting::default()
    });
    let config = NodeConfig::for_test("n1");
    let member = |name: &str, user: &[(&str, &str)], server: bool, status| Member {
        name: name.to_owned(),
        addr: "127.0.0.1".into(),
        port: 8946,
        tags: node_tags(
            &user
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            server,
            &config.datacenter,
            &config.region,
            "test",
            "127.0.0.1",
            6868,
        ),
        status,
    };
    let n1 = member("n1", &[], true, MemberStatus::Alive);
    let (members_tx, members) = tokio::sync::watch::channel(vec![
        n1.clone(),
        member("n2", &[("pool", "blue")], false, MemberStatus::Failed),
    ]);
    let plugins = Plugins::builtins("n1");
    let parts = ClusterParts {
        agent: LocalAgent::new(
            "n1".into(),
            plugins.executors.clone(),
            Arc::new(SystemClock),
        ),
        runner: runner.clone(),
        members,
        notices: None,
    };
    let node = Node::start_in_cluster(
        config.clone(),
        store.clone(),
        plugins,
        Arc::new(SystemClock),
        parts,
    )
    .await
    .unwrap();
    lead_for_half_a_second(&node).await;
    assert!(
        runner.runs.lock().unwrap().is_empty(),
        "nothing runs while n2, which may have taken the fire, is down"
    );
    members_tx
        .send(vec![
            n1,
            member("n2", &[("pool", "blue")], false, MemberStatus::Alive),
        ])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    shut_down_and_take_runs(node, &runner, at).await
}

#[tokio::test]
async fn a_cut_off_fire_is_settled_when_the_node_that_may_have_taken_it_returns() {
    assert_eq!(
        settle_after_the_node_returns(NodeSays::NotAccepted)
            .await
            .len(),
        1,
        "the returning node did not take it: it runs once, late"
    );
    assert!(
        settle_after_the_node_returns(NodeSays::Accepted)
            .await
            .is_empty(),
        "the returning node took it: it is not run again"
    );
    assert!(
        settle_after_the_node_returns(NodeSays::RestartedSince)
            .await
            .is_empty(),
        "the returning node cannot tell: it stays unknown"
    );
}

/// A scheduled run job `name` at `at`, as a leader (token 5) sends it.
fn scheduled_run(name: &str, at: chrono::DateTime<chrono::Utc>) -> AgentRun {
    let mut job = job("0s");
    name.clone_into(&mut job.name);
    job.executor_config = Some([("command".to_owned(), "true".to_owned())].into());
    AgentRun {
        execution: rkron_core::Execution {
            job_name: name.to_owned(),
            started_at: at,
            finished_at: None,
            success: false,
            output: String::new(),
            node_name: String::new(),
            group: at.timestamp_nanos_opt().unwrap(),
            attempt: 1,
            scheduled_at: Some(at),
        },
        job: Arc::new(job),
        leader_token: 5,
    }
}

/// A server's previous process accepted two scheduled runs (its journal names them) and was
/// killed before it recorded one of them: the restarted server records that one as failed,
/// saying its outcome is unknown, and leaves the recorded one alone. (No leader runs such a
/// fire again, since the node says it took it: without this record it would vanish.)
#[tokio::test]
async fn a_run_the_previous_process_accepted_and_nobody_recorded_is_recorded_failed() {
    use rkron_node::{ClusterParts, LocalAgent, Member, MemberStatus, node_tags};
    use rkron_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    let now = rkron_core::Clock::now(&SystemClock);
    let at = chrono::DateTime::from_timestamp(now.timestamp() - 5, 0).unwrap();
    for name in ["lost", "kept"] {
        let run = scheduled_run(name, at);
        store
            .commit_jobs(vec![rkron_store::JobOp::Put {
                job: (*run.job).clone(),
                expect: rkron_store::Expect::Absent,
            }])
            .await
            .unwrap();
    }

    // The previous process: it accepts and runs both; only "kept" reaches the store.
    let executors = rkron_executor::ExecutorRegistry::with_builtins();
    let previous = LocalAgent::new("n1".into(), executors.clone(), Arc::new(SystemClock));
    previous.open_journal(dir.path()).unwrap();
    for name in ["lost", "kept"] {
        let (events, mut received) = mpsc::channel(8);
        previous
            .run("n1", scheduled_run(name, at), events)
            .await
            .unwrap();
        while let Some(event) = received.recv().await {
            if let RunEvent::Finished(e) = event {
                if name == "kept" {
                    store.finish_execution(&e, 100).await.unwrap();
                }
                break;
            }
        }
    }
    previous.drain(Duration::from_secs(1)).await;
    drop(previous);

    let agent = LocalAgent::new("n1".into(), executors, Arc::new(SystemClock));
    agent.open_journal(dir.path()).unwrap();
    let config = NodeConfig::for_test("n1");
    let me = Member {
        name: "n1".to_owned(),
        addr: "127.0.0.1".into(),
        port: 8946,
        tags: node_tags(
            &std::collections::BTreeMap::new(),
            true,
            &config.datacenter,
            &config.region,
            "test",
            "127.0.0.1",
            6868,
        ),
        status: MemberStatus::Alive,
    };
    let (_members_tx, members) = tokio::sync::watch::channel(vec![me]);
    let parts = ClusterParts {
        runner: Arc::new(agent.clone()),
        agent,
        members,
        notices: None,
    };
    let grace = config.unreported_grace;
    let node = Node::start_in_cluster(
        config,
        store.clone(),
        Plugins::builtins("n1"),
        Arc::new(SystemClock),
        parts,
    )
    .await
    .unwrap();
    assert!(
        node.executions("lost", false).await.unwrap().is_empty(),
        "nothing is recorded before the grace period"
    );
    let mut lost = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(grace / 5).await;
        lost = node.executions("lost", true).await.unwrap();
        if !lost.is_empty() {
            break;
        }
    }
    assert_eq!(lost.len(), 1, "{lost:?}");
    let e = &lost[0];
    assert!(!e.success && e.finished_at.is_some(), "{e:?}");
    assert_eq!(
        (e.scheduled_at, e.group, e.node_name.as_str()),
        (Some(at), at.timestamp_nanos_opt().unwrap(), "n1")
    );
    assert!(
        e.output.contains("whether its command ran is unknown"),
        "{e:?}"
    );
    let job = store.get_job("lost").await.unwrap().unwrap().value;
    assert_eq!((job.error_count, job.success_count), (1, 0));
    // Give a second record, if there were one, time to land.
    tokio::time::sleep(grace).await;
    let kept = node.executions("kept", false).await.unwrap();
    assert_eq!(kept.len(), 1, "the recorded run is left alone: {kept:?}");
    assert!(kept[0].success);
    assert_eq!(node.executions("lost", false).await.unwrap().len(), 1);
    node.shutdown().await;
}
