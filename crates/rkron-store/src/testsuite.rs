//! The conformance suite every [`Store`] backend runs (feature `testsuite`).
//!
//! [`run_all`] runs each check on a fresh store from a factory; every check panics with a message
//! naming the check and the broken expectation. The checks are public so a backend may also run
//! one alone while debugging.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rkron_core::{Execution, Job, JobStatus};

use crate::{Expect, JobOp, MISSED_KEPT, MissedFires, Store, StoreError, Version};

/// Runs every conformance check, each on a fresh store built by `factory`.
///
/// Needs a multi-threaded tokio runtime (the race check spawns tasks).
pub async fn run_all<S, F, Fut>(factory: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    get_missing_job_is_none(&factory().await).await;
    job_crud_round_trips(&factory().await).await;
    versions_strictly_increase(&factory().await).await;
    list_jobs_is_sorted_by_name(&factory().await).await;
    jobs_page_clamps_and_counts(&factory().await).await;
    jobs_after_walks_every_job_once_in_order(&factory().await).await;
    cas_rejects_absent_on_existing_and_stale_versions(&factory().await).await;
    commit_is_all_or_nothing(&factory().await).await;
    commit_validates_ops_in_order(&factory().await).await;
    delete_job_removes_exactly_its_executions(&factory().await).await;
    delete_executions_touches_only_that_job(&factory().await).await;
    executions_are_ordered_by_start_then_node(&factory().await).await;
    retention_keeps_the_newest(&factory().await).await;
    put_execution_replaces_same_key(&factory().await).await;
    finish_execution_updates_job(&factory().await).await;
    finish_execution_on_missing_job_stores_nothing(&factory().await).await;
    output_is_loaded_only_when_asked(&factory().await).await;
    running_executions_are_indexed(&factory().await).await;
    meta_round_trips(&factory().await).await;
    fire_ledger_keeps_the_latest_per_job(&factory().await).await;
    fire_ledger_takes_a_tick_of_ten_thousand_fires(&factory().await).await;
    missed_fires_count_and_keep_the_newest(&factory().await).await;
    missed_fires_of_a_missing_job_are_not_recorded(&factory().await).await;
    delete_job_clears_exactly_its_fire_history(&factory().await).await;
    concurrent_commits_never_lose_updates(Arc::new(factory().await)).await;
    lease_is_exclusive_until_released(&factory().await).await;
    lease_expires_without_renewal(&factory().await).await;
    fencing_rejects_a_deposed_leaders_fires(&factory().await).await;
}

/// Returns a valid job named `name`.
pub fn job(name: &str) -> Job {
    Job {
        name: name.to_owned(),
        schedule: "@every 1m".to_owned(),
        executor: "shell".to_owned(),
        ..Job::default()
    }
}

/// Returns the instant `seconds` after a fixed epoch of the suite.
pub fn instant(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0)
        .single()
        .expect("the suite's instants are representable")
}

/// Returns a finished execution of `job` on `node`, started `started` seconds after the suite's
/// epoch, in group 1, first attempt.
pub fn execution(job: &str, started: i64, node: &str, success: bool) -> Execution {
    Execution {
        job_name: job.to_owned(),
        started_at: instant(started),
        finished_at: Some(instant(started) + TimeDelta::seconds(1)),
        success,
        output: format!("output of {job} at {started} on {node}"),
        node_name: node.to_owned(),
        group: 1,
        attempt: 1,
        scheduled_at: Some(instant(started)),
    }
}

fn put(job: Job, expect: Expect) -> JobOp {
    JobOp::Put { job, expect }
}

fn delete(name: &str, expect: Expect) -> JobOp {
    JobOp::Delete {
        name: name.to_owned(),
        expect,
    }
}

async fn commit<S: Store>(store: &S, ops: Vec<JobOp>, check: &str) {
    if let Err(error) = store.commit_jobs(ops).await {
        panic!("{check}: commit_jobs failed: {error}");
    }
}

async fn expect_conflict<S: Store>(store: &S, ops: Vec<JobOp>, name: &str, check: &str) {
    match store.commit_jobs(ops).await {
        Err(StoreError::Conflict(conflicting)) => assert_eq!(
            conflicting, name,
            "{check}: the conflict must name the job whose expectation failed"
        ),
        other => panic!("{check}: expected Conflict({name}), got {other:?}"),
    }
}

async fn version_of<S: Store>(store: &S, name: &str, check: &str) -> Version {
    match store.get_job(name).await {
        Ok(Some(stored)) => stored.version,
        other => panic!("{check}: expected job {name} to exist, got {other:?}"),
    }
}

async fn job_names<S: Store>(store: &S, check: &str) -> Vec<String> {
    let jobs = store
        .list_jobs()
        .await
        .unwrap_or_else(|e| panic!("{check}: list_jobs: {e}"));
    jobs.into_iter().map(|job| job.name).collect()
}

async fn executions_of<S: Store>(store: &S, job: &str, check: &str) -> Vec<Execution> {
    store
        .list_executions(job, false)
        .await
        .unwrap_or_else(|e| panic!("{check}: list_executions({job}): {e}"))
}

async fn put_execution<S: Store>(store: &S, execution: &Execution, retention: usize, check: &str) {
    if let Err(error) = store.put_execution(execution, retention).await {
        panic!("{check}: put_execution failed: {error}");
    }
}

async fn finish<S: Store>(store: &S, execution: &Execution, check: &str) -> Job {
    match store.finish_execution(execution, 100).await {
        Ok(Some(job)) => job,
        other => panic!("{check}: finish_execution should answer the updated job, got {other:?}"),
    }
}

/// Reading a job that was never written answers `None`.
pub async fn get_missing_job_is_none<S: Store>(store: &S) {
    let check = "get_missing_job_is_none";
    let answer = store.get_job("missing").await;
    assert!(matches!(answer, Ok(None)), "{check}: got {answer:?}");
    assert_eq!(
        job_names(store, check).await,
        Vec::<String>::new(),
        "{check}: store not empty"
    );
}

/// A job can be created, read back, replaced and deleted.
pub async fn job_crud_round_trips<S: Store>(store: &S) {
    let check = "job_crud_round_trips";
    let mut original = job("crud");
    original.tags = Some([("role".to_owned(), "web".to_owned())].into());
    original.last_success = Some(instant(5));
    commit(store, vec![put(original.clone(), Expect::Absent)], check).await;
    let stored = store
        .get_job("crud")
        .await
        .expect("get_job")
        .expect("job stored");
    assert_eq!(
        stored.value, original,
        "{check}: the job must read back as written"
    );

    let mut changed = original.clone();
    changed.schedule = "@every 5m".to_owned();
    commit(
        store,
        vec![put(changed.clone(), Expect::Version(stored.version))],
        check,
    )
    .await;
    let replaced = store
        .get_job("crud")
        .await
        .expect("get_job")
        .expect("job stored");
    assert_eq!(
        replaced.value, changed,
        "{check}: the replacement must read back"
    );

    commit(
        store,
        vec![delete("crud", Expect::Version(replaced.version))],
        check,
    )
    .await;
    let gone = store.get_job("crud").await;
    assert!(
        matches!(gone, Ok(None)),
        "{check}: deleted job still readable: {gone:?}"
    );

    commit(store, vec![delete("crud", Expect::Any)], check).await;
    commit(store, vec![put(job("any"), Expect::Any)], check).await;
    assert_eq!(
        job_names(store, check).await,
        ["any"],
        "{check}: Expect::Any must create"
    );
}

/// Each write of a record gives it a greater version, also across delete and re-create.
pub async fn versions_strictly_increase<S: Store>(store: &S) {
    let check = "versions_strictly_increase";
    commit(store, vec![put(job("v"), Expect::Absent)], check).await;
    let first = version_of(store, "v", check).await;
    commit(store, vec![put(job("v"), Expect::Any)], check).await;
    let second = version_of(store, "v", check).await;
    assert!(second > first, "{check}: {second} must exceed {first}");
    commit(store, vec![put(job("other"), Expect::Any)], check).await;

    commit(store, vec![delete("v", Expect::Version(second))], check).await;
    commit(store, vec![put(job("v"), Expect::Absent)], check).await;
    let recreated = version_of(store, "v", check).await;
    assert!(
        recreated > second,
        "{check}: re-created {recreated} must exceed {second}"
    );
    // A writer that read the record before the delete must not overwrite the new one.
    expect_conflict(
        store,
        vec![put(job("v"), Expect::Version(second))],
        "v",
        check,
    )
    .await;
}

/// `list_jobs` answers every job in name order.
pub async fn list_jobs_is_sorted_by_name<S: Store>(store: &S) {
    let check = "list_jobs_is_sorted_by_name";
    for name in ["c", "ab", "a-b", "b", "a", "a_b"] {
        commit(store, vec![put(job(name), Expect::Absent)], check).await;
    }
    let mut expected = vec!["c", "ab", "a-b", "b", "a", "a_b"];
    expected.sort_unstable();
    assert_eq!(job_names(store, check).await, expected, "{check}");
}

/// `jobs_after` is a cursor: following it page by page visits every job once, in name order.
pub async fn jobs_after_walks_every_job_once_in_order<S: Store>(store: &S) {
    let check = "jobs_after_walks_every_job_once_in_order";
    let names = ["e", "d", "c", "b", "a", "a-b", "ab"];
    let ops = names.map(|name| put(job(name), Expect::Absent));
    commit(store, ops.into(), check).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.jobs_after(cursor.as_deref(), 2).await.expect(check);
        assert!(page.len() <= 2, "{check}: page larger than the limit");
        let Some(last) = page.last() else { break };
        cursor = Some(last.name.clone());
        seen.extend(page.into_iter().map(|j| j.name));
    }
    let mut expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    expected.sort_unstable();
    assert_eq!(seen, expected, "{check}");
    assert!(
        store
            .jobs_after(Some("zzz"), 10)
            .await
            .expect(check)
            .is_empty(),
        "{check}"
    );
    assert!(
        store.jobs_after(None, 0).await.expect(check).is_empty(),
        "{check}"
    );
}

/// `jobs_page` answers the clamped slice in name order with the total count.
pub async fn jobs_page_clamps_and_counts<S: Store>(store: &S) {
    let check = "jobs_page_clamps_and_counts";
    let ops = ["e", "d", "c", "b", "a"].map(|name| put(job(name), Expect::Absent));
    commit(store, ops.into(), check).await;
    let cases: [(usize, usize, &[&str]); 8] = [
        (0, 2, &["a", "b"]),
        (1, 3, &["b", "c"]),
        (3, 10, &["d", "e"]),
        (0, 5, &["a", "b", "c", "d", "e"]),
        (5, 10, &[]),
        (7, 9, &[]),
        (3, 1, &[]),
        (2, 2, &[]),
    ];
    for (start, end, names) in cases {
        let page = store
            .jobs_page(start, end)
            .await
            .unwrap_or_else(|e| panic!("{check}: jobs_page({start}, {end}): {e}"));
        let got: Vec<&str> = page.jobs.iter().map(|job| job.name.as_str()).collect();
        assert_eq!(got, names, "{check}: jobs_page({start}, {end})");
        assert_eq!(page.total, 5, "{check}: total of jobs_page({start}, {end})");
    }
    let empty = store.jobs_page(0, 0).await.expect("jobs_page");
    assert_eq!(
        (empty.jobs.len(), empty.total),
        (0, 5),
        "{check}: jobs_page(0, 0)"
    );
}

/// `Absent` on an existing job and a stale version are conflicts that change nothing.
pub async fn cas_rejects_absent_on_existing_and_stale_versions<S: Store>(store: &S) {
    let check = "cas_rejects_absent_on_existing_and_stale_versions";
    let mut original = job("cas");
    original.owner = "first".to_owned();
    commit(store, vec![put(original.clone(), Expect::Absent)], check).await;
    let read = store
        .get_job("cas")
        .await
        .expect("get_job")
        .expect("stored");

    let mut other = original.clone();
    other.owner = "second".to_owned();
    expect_conflict(
        store,
        vec![put(other.clone(), Expect::Absent)],
        "cas",
        check,
    )
    .await;
    let stale = Expect::Version(read.version + 1_000);
    expect_conflict(store, vec![put(other.clone(), stale)], "cas", check).await;
    expect_conflict(store, vec![delete("cas", stale)], "cas", check).await;
    expect_conflict(
        store,
        vec![put(job("nope"), Expect::Version(read.version))],
        "nope",
        check,
    )
    .await;
    expect_conflict(
        store,
        vec![delete("nope", Expect::Version(read.version))],
        "nope",
        check,
    )
    .await;
    let unchanged = store
        .get_job("cas")
        .await
        .expect("get_job")
        .expect("stored");
    assert_eq!(
        unchanged, read,
        "{check}: a conflicting write must change nothing"
    );
    assert_eq!(
        job_names(store, check).await,
        ["cas"],
        "{check}: nothing else was written"
    );

    // A writer that lost the race with a newer write holds a stale version.
    commit(
        store,
        vec![put(other.clone(), Expect::Version(read.version))],
        check,
    )
    .await;
    expect_conflict(
        store,
        vec![put(original, Expect::Version(read.version))],
        "cas",
        check,
    )
    .await;
    let winner = store
        .get_job("cas")
        .await
        .expect("get_job")
        .expect("stored");
    assert_eq!(
        winner.value, other,
        "{check}: the first CAS write must stay"
    );
}

/// A commit with one failed expectation writes none of its ops.
pub async fn commit_is_all_or_nothing<S: Store>(store: &S) {
    let check = "commit_is_all_or_nothing";
    commit(
        store,
        vec![
            put(job("existing"), Expect::Absent),
            put(job("doomed"), Expect::Absent),
        ],
        check,
    )
    .await;
    let existing = version_of(store, "existing", check).await;
    commit(
        store,
        vec![
            put(job("bystander"), Expect::Absent),
            put(job("with-run"), Expect::Absent),
        ],
        check,
    )
    .await;
    put_execution(store, &execution("with-run", 1, "n1", true), 10, check).await;

    let mut changed = job("existing");
    changed.owner = "changed".to_owned();
    let ops = vec![
        put(job("new"), Expect::Absent),
        delete("doomed", Expect::Any),
        delete("with-run", Expect::Any),
        put(changed.clone(), Expect::Version(existing)),
        put(job("bystander"), Expect::Absent),
    ];
    expect_conflict(store, ops, "bystander", check).await;
    let names = job_names(store, check).await;
    assert_eq!(
        names,
        ["bystander", "doomed", "existing", "with-run"],
        "{check}: partial write"
    );
    let still = store
        .get_job("existing")
        .await
        .expect("get_job")
        .expect("stored");
    assert_eq!(
        (still.version, still.value),
        (existing, job("existing")),
        "{check}: partial write"
    );
    assert_eq!(
        executions_of(store, "with-run", check).await.len(),
        1,
        "{check}: partial delete"
    );

    let ops = vec![
        put(job("new"), Expect::Absent),
        delete("doomed", Expect::Any),
        put(changed.clone(), Expect::Version(existing)),
    ];
    commit(store, ops, check).await;
    let names = job_names(store, check).await;
    assert_eq!(
        names,
        ["bystander", "existing", "new", "with-run"],
        "{check}: all ops apply"
    );
    let updated = store
        .get_job("existing")
        .await
        .expect("get_job")
        .expect("stored");
    assert_eq!(updated.value, changed, "{check}: the put must apply");
}

/// Later ops of one commit see the effect of earlier ones.
pub async fn commit_validates_ops_in_order<S: Store>(store: &S) {
    let check = "commit_validates_ops_in_order";
    commit(store, vec![put(job("swap"), Expect::Absent)], check).await;
    let version = version_of(store, "swap", check).await;
    let mut renamed = job("swap");
    renamed.owner = "re-created".to_owned();
    commit(
        store,
        vec![
            delete("swap", Expect::Version(version)),
            put(renamed.clone(), Expect::Absent),
        ],
        check,
    )
    .await;
    let stored = store
        .get_job("swap")
        .await
        .expect("get_job")
        .expect("stored");
    assert_eq!(
        stored.value, renamed,
        "{check}: delete then create in one commit"
    );
    assert!(
        stored.version > version,
        "{check}: the re-created job needs a newer version"
    );

    let ops = vec![
        put(job("twice"), Expect::Absent),
        put(job("twice"), Expect::Absent),
    ];
    expect_conflict(store, ops, "twice", check).await;
    assert!(
        matches!(store.get_job("twice").await, Ok(None)),
        "{check}: a conflicting commit must not create its first op"
    );
}

/// Deleting job `foo` removes its executions and outputs, never those of `foobar` or `fo`.
pub async fn delete_job_removes_exactly_its_executions<S: Store>(store: &S) {
    let check = "delete_job_removes_exactly_its_executions";
    let names = ["fo", "foo", "foo-bar", "foobar"];
    commit(
        store,
        names.map(|name| put(job(name), Expect::Absent)).into(),
        check,
    )
    .await;
    for name in names {
        for (started, node) in [(1, "a"), (2, "b")] {
            put_execution(store, &execution(name, started, node, true), 10, check).await;
        }
    }
    let foo_run = execution("foo", 1, "a", true);
    commit(store, vec![delete("foo", Expect::Any)], check).await;

    assert!(
        executions_of(store, "foo", check).await.is_empty(),
        "{check}: foo's runs remain"
    );
    let output = store.get_execution("foo", &foo_run.id()).await;
    assert!(
        matches!(output, Ok(None)),
        "{check}: foo's run still readable: {output:?}"
    );
    for name in ["fo", "foo-bar", "foobar"] {
        let runs = executions_of(store, name, check).await;
        assert_eq!(
            runs.len(),
            2,
            "{check}: deleting foo touched the executions of {name}"
        );
        let full = store
            .get_execution(name, &execution(name, 1, "a", true).id())
            .await;
        let full = full.expect("get_execution").expect("execution kept");
        assert_eq!(
            full.output,
            execution(name, 1, "a", true).output,
            "{check}: {name} output"
        );
    }
    // A re-created foo starts without history.
    commit(store, vec![put(job("foo"), Expect::Absent)], check).await;
    assert!(
        executions_of(store, "foo", check).await.is_empty(),
        "{check}: stale runs of foo"
    );
}

/// `delete_executions` removes the executions of exactly one job and keeps the job.
pub async fn delete_executions_touches_only_that_job<S: Store>(store: &S) {
    let check = "delete_executions_touches_only_that_job";
    for name in ["bar", "barb", "ba"] {
        commit(store, vec![put(job(name), Expect::Absent)], check).await;
        put_execution(store, &execution(name, 1, "a", true), 10, check).await;
    }
    store
        .delete_executions("bar")
        .await
        .expect("delete_executions");
    assert!(
        executions_of(store, "bar", check).await.is_empty(),
        "{check}: bar's runs remain"
    );
    assert_eq!(
        executions_of(store, "barb", check).await.len(),
        1,
        "{check}: barb touched"
    );
    assert_eq!(
        executions_of(store, "ba", check).await.len(),
        1,
        "{check}: ba touched"
    );
    assert!(
        store.get_job("bar").await.expect("get_job").is_some(),
        "{check}: job deleted"
    );
    store
        .delete_executions("missing")
        .await
        .expect("deleting nothing succeeds");
}

/// Executions list by `started_at` ascending, then node name.
pub async fn executions_are_ordered_by_start_then_node<S: Store>(store: &S) {
    let check = "executions_are_ordered_by_start_then_node";
    // Includes a start before 1970: negative Unix nanoseconds must sort first.
    let before_1970 = -1_800_000_000;
    let inserted = [
        (30, "a"),
        (10, "b"),
        (20, "c"),
        (10, "a"),
        (before_1970, "z"),
        (20, "b"),
    ];
    for (started, node) in inserted {
        put_execution(store, &execution("order", started, node, true), 100, check).await;
    }
    let got: Vec<(DateTime<Utc>, String)> = executions_of(store, "order", check)
        .await
        .into_iter()
        .map(|run| (run.started_at, run.node_name))
        .collect();
    let mut expected: Vec<(DateTime<Utc>, String)> = inserted
        .iter()
        .map(|(started, node)| (instant(*started), (*node).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(got, expected, "{check}");
}

/// Beyond the retention limit, the oldest executions (and their outputs) are deleted.
pub async fn retention_keeps_the_newest<S: Store>(store: &S) {
    let check = "retention_keeps_the_newest";
    for started in 0..105 {
        put_execution(store, &execution("kept", started, "n", true), 100, check).await;
    }
    put_execution(store, &execution("kept-other", 0, "n", true), 100, check).await;
    let runs = executions_of(store, "kept", check).await;
    assert_eq!(runs.len(), 100, "{check}: retention 100 must keep 100");
    let starts: Vec<DateTime<Utc>> = runs.iter().map(|run| run.started_at).collect();
    let expected: Vec<DateTime<Utc>> = (5..105).map(instant).collect();
    assert_eq!(
        starts, expected,
        "{check}: the newest 100 must remain, oldest first"
    );
    let trimmed = store
        .get_execution("kept", &execution("kept", 4, "n", true).id())
        .await;
    assert!(
        matches!(trimmed, Ok(None)),
        "{check}: trimmed run readable: {trimmed:?}"
    );

    // An older execution arriving late is the oldest, so it is trimmed at once.
    put_execution(store, &execution("kept", -1, "n", true), 100, check).await;
    let runs = executions_of(store, "kept", check).await;
    assert_eq!(
        runs.first().map(|run| run.started_at),
        Some(instant(5)),
        "{check}: late run"
    );
    assert_eq!(
        executions_of(store, "kept-other", check).await.len(),
        1,
        "{check}: other job"
    );
}

/// A second write with the same job, start and node replaces the first.
pub async fn put_execution_replaces_same_key<S: Store>(store: &S) {
    let check = "put_execution_replaces_same_key";
    let mut running = execution("upsert", 1, "n", false);
    running.finished_at = None;
    running.output = "partial".to_owned();
    put_execution(store, &running, 10, check).await;
    let finished = execution("upsert", 1, "n", true);
    put_execution(store, &finished, 10, check).await;
    let runs = store
        .list_executions("upsert", true)
        .await
        .expect("list_executions");
    assert_eq!(
        runs,
        std::slice::from_ref(&finished),
        "{check}: the second write must replace the first"
    );

    let mut silent = finished.clone();
    silent.output = String::new();
    put_execution(store, &silent, 10, check).await;
    let read = store
        .get_execution("upsert", &finished.id())
        .await
        .expect("get_execution");
    assert_eq!(
        read,
        Some(silent),
        "{check}: an empty output replaces the old one"
    );
}

/// `finish_execution` stores the run and updates counters, last times and the group status.
pub async fn finish_execution_updates_job<S: Store>(store: &S) {
    let check = "finish_execution_updates_job";
    commit(store, vec![put(job("fin"), Expect::Absent)], check).await;
    let before = version_of(store, "fin", check).await;

    let first = execution("fin", 10, "a", true);
    let after_first = finish(store, &first, check).await;
    assert_eq!(after_first.success_count, 1, "{check}: success_count");
    assert_eq!(after_first.error_count, 0, "{check}: error_count");
    assert_eq!(
        after_first.last_success, first.finished_at,
        "{check}: last_success"
    );
    assert_eq!(
        after_first.status,
        JobStatus::Success,
        "{check}: one success"
    );
    let stored = store
        .get_job("fin")
        .await
        .expect("get_job")
        .expect("stored");
    assert_eq!(
        stored.value, after_first,
        "{check}: the answer must be the stored job"
    );
    assert!(
        stored.version > before,
        "{check}: finishing writes the job, so its version grows"
    );

    let failure = execution("fin", 11, "b", false);
    let after_failure = finish(store, &failure, check).await;
    assert_eq!(
        after_failure.success_count, 1,
        "{check}: success_count after failure"
    );
    assert_eq!(
        after_failure.error_count, 1,
        "{check}: error_count after failure"
    );
    assert_eq!(
        after_failure.last_error, failure.finished_at,
        "{check}: last_error"
    );
    assert_eq!(
        after_failure.last_success, first.finished_at,
        "{check}: last_success kept"
    );
    assert_eq!(
        after_failure.status,
        JobStatus::PartiallyFailed,
        "{check}: success + failure"
    );

    let mut retry = execution("fin", 20, "b", true);
    retry.attempt = 2;
    let after_retry = finish(store, &retry, check).await;
    assert_eq!(
        after_retry.success_count, 2,
        "{check}: success_count after retry"
    );
    assert_eq!(
        after_retry.last_success, retry.finished_at,
        "{check}: last_success after retry"
    );
    assert_eq!(
        after_retry.status,
        JobStatus::Success,
        "{check}: a successful retry wins"
    );

    let mut next_group = execution("fin", 60, "a", false);
    next_group.group = 2;
    let after_next = finish(store, &next_group, check).await;
    assert_eq!(
        after_next.status,
        JobStatus::Failed,
        "{check}: the status is the run's group's"
    );
    assert_eq!(
        after_next.error_count, 2,
        "{check}: error_count in the next group"
    );
    assert_eq!(
        executions_of(store, "fin", check).await.len(),
        4,
        "{check}: runs stored"
    );
    let full = store
        .get_execution("fin", &first.id())
        .await
        .expect("get_execution");
    assert_eq!(
        full,
        Some(first),
        "{check}: the finished run must read back with its output"
    );
}

/// `finish_execution` for a job that does not exist answers `None` and stores nothing.
pub async fn finish_execution_on_missing_job_stores_nothing<S: Store>(store: &S) {
    let check = "finish_execution_on_missing_job_stores_nothing";
    let orphan = execution("ghost", 1, "a", true);
    let answer = store.finish_execution(&orphan, 10).await;
    assert!(matches!(answer, Ok(None)), "{check}: got {answer:?}");
    assert!(
        executions_of(store, "ghost", check).await.is_empty(),
        "{check}: run stored"
    );
    assert!(
        matches!(store.get_job("ghost").await, Ok(None)),
        "{check}: job created"
    );
}

/// Listings carry output only when asked; `get_execution` always does.
pub async fn output_is_loaded_only_when_asked<S: Store>(store: &S) {
    let check = "output_is_loaded_only_when_asked";
    let mut run = execution("out", 1, "node-1", false);
    run.output = "line 1\nline 2 ünïcode\n".repeat(1_000);
    put_execution(store, &run, 10, check).await;

    let listed = executions_of(store, "out", check).await;
    let mut without_output = run.clone();
    without_output.output = String::new();
    assert_eq!(
        listed,
        [without_output],
        "{check}: a listing without output"
    );
    let listed = store
        .list_executions("out", true)
        .await
        .expect("list_executions");
    assert_eq!(listed, [run.clone()], "{check}: a listing with output");

    let got = store
        .get_execution("out", &run.id())
        .await
        .expect("get_execution");
    assert_eq!(
        got,
        Some(run.clone()),
        "{check}: get_execution carries the full output"
    );
    for id in [
        format!("{}-other", run.id()),
        "999-node-1".to_owned(),
        "garbage".to_owned(),
    ] {
        let missing = store.get_execution("out", &id).await;
        assert!(matches!(missing, Ok(None)), "{check}: id {id}: {missing:?}");
    }
    let wrong_job = store.get_execution("ou", &run.id()).await;
    assert!(
        matches!(wrong_job, Ok(None)),
        "{check}: another job's id: {wrong_job:?}"
    );
}

/// `running_executions` lists the unfinished executions of every job, oldest first, and forgets
/// them once finished, trimmed or deleted.
pub async fn running_executions_are_indexed<S: Store>(store: &S) {
    let check = "running_executions_are_indexed";
    let running = |job: &str, started: i64, node: &str| {
        let mut run = execution(job, started, node, false);
        run.finished_at = None;
        run.output = "still going".to_owned();
        run
    };
    let names = ["alpha", "beta", "gamma", "delta"];
    commit(
        store,
        names.map(|name| put(job(name), Expect::Absent)).into(),
        check,
    )
    .await;
    for run in [
        running("beta", 5, "n2"),
        running("alpha", 7, "n1"),
        running("alpha", 3, "n1"),
        execution("alpha", 4, "n1", true),
        running("gamma", 5, "n1"),
        running("delta", 1, "n1"),
        running("beta", 9, "n1"),
    ] {
        put_execution(store, &run, 2, check).await;
    }
    let listed = |runs: Vec<Execution>| -> Vec<(String, DateTime<Utc>, String)> {
        runs.into_iter()
            .map(|run| (run.job_name, run.started_at, run.node_name))
            .collect()
    };
    let expect = |runs: &[(&str, i64, &str)]| -> Vec<(String, DateTime<Utc>, String)> {
        runs.iter()
            .map(|(job, started, node)| ((*job).to_owned(), instant(*started), (*node).to_owned()))
            .collect()
    };
    let all = store
        .running_executions()
        .await
        .expect("running_executions");
    assert!(
        all.iter().all(|run| run.output.is_empty()),
        "{check}: listed without output"
    );
    // alpha's run at 3 was trimmed by retention 2 (alpha keeps 4 and 7).
    let expected = [
        ("delta", 1, "n1"),
        ("beta", 5, "n2"),
        ("gamma", 5, "n1"),
        ("alpha", 7, "n1"),
        ("beta", 9, "n1"),
    ];
    assert_eq!(
        listed(all),
        expect(&expected),
        "{check}: oldest first, trimmed runs gone"
    );

    finish(store, &execution("beta", 5, "n2", true), check).await;
    put_execution(store, &execution("alpha", 7, "n1", false), 2, check).await;
    commit(store, vec![delete("gamma", Expect::Any)], check).await;
    store
        .delete_executions("delta")
        .await
        .expect("delete_executions");
    let all = store
        .running_executions()
        .await
        .expect("running_executions");
    assert_eq!(
        listed(all),
        expect(&[("beta", 9, "n1")]),
        "{check}: finished or deleted runs"
    );
}

/// Settings read back as written; a missing one is `None`.
pub async fn meta_round_trips<S: Store>(store: &S) {
    let check = "meta_round_trips";
    assert!(
        matches!(store.get_meta("paused").await, Ok(None)),
        "{check}: missing key"
    );
    store.put_meta("paused", "true").await.expect("put_meta");
    store.put_meta("paused-at", "").await.expect("put_meta");
    assert_eq!(
        store.get_meta("paused").await,
        Ok(Some("true".to_owned())),
        "{check}"
    );
    assert_eq!(
        store.get_meta("paused-at").await,
        Ok(Some(String::new())),
        "{check}: empty"
    );
    store.put_meta("paused", "false").await.expect("put_meta");
    assert_eq!(
        store.get_meta("paused").await,
        Ok(Some("false".to_owned())),
        "{check}"
    );
}

/// Twenty tasks incrementing one counter with read-modify-write and CAS retries lose nothing.
pub async fn concurrent_commits_never_lose_updates<S: Store>(store: Arc<S>) {
    let check = "concurrent_commits_never_lose_updates";
    const TASKS: u64 = 20;
    commit(&*store, vec![put(job("counter"), Expect::Absent)], check).await;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            loop {
                let read = match store.get_job("counter").await {
                    Ok(Some(read)) => read,
                    other => return Err(format!("get_job: {other:?}")),
                };
                let mut next = read.value;
                next.success_count += 1;
                let ops = vec![put(next, Expect::Version(read.version))];
                match store.commit_jobs(ops).await {
                    Ok(()) => return Ok(()),
                    Err(StoreError::Conflict(_)) => tokio::task::yield_now().await,
                    Err(error) => return Err(format!("commit_jobs: {error}")),
                }
            }
        }));
    }
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("{check}: {error}"),
            Err(error) => panic!("{check}: task failed: {error}"),
        }
    }
    let stored = store
        .get_job("counter")
        .await
        .expect("get_job")
        .expect("stored");
    assert_eq!(stored.value.success_count, TASKS, "{check}: lost updates");
}

async fn record_fires<S: Store>(store: &S, fires: &[(&str, DateTime<Utc>)], check: &str) {
    let fires: Vec<(String, DateTime<Utc>)> = fires
        .iter()
        .map(|(job, scheduled_at)| ((*job).to_owned(), *scheduled_at))
        .collect();
    let fence = lead(store, check).await;
    if let Err(error) = store.record_fires(fence, &fires).await {
        panic!("{check}: record_fires failed: {error}");
    }
}

/// Takes (or renews) the lease for the suite's leader `suite-leader`; answers its token.
pub async fn lead<S: Store>(store: &S, check: &str) -> u64 {
    store
        .acquire_lease("suite-leader", SUITE_LEADER_TTL)
        .await
        .unwrap_or_else(|e| panic!("{check}: acquire_lease: {e}"))
        .unwrap_or_else(|| panic!("{check}: the suite leader could not take the lease"))
        .token
}

/// The lease TTL of the expiry check: 2 s, because etcd does not grant shorter leases.
const LEASE_TTL: Duration = Duration::from_secs(2);

/// The lease TTL of the suite's leader in the checks that are not about leases: long enough
/// that a slow backend on a loaded machine (a 10,000-fire tick takes seconds on some) is not
/// fenced half-way.
const SUITE_LEADER_TTL: Duration = Duration::from_secs(60);

async fn lease_is_exclusive_until_released<S: Store>(store: &S) {
    let check = "lease_is_exclusive_until_released";
    let a = store
        .acquire_lease("a", Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{check}: {e}"))
        .unwrap_or_else(|| panic!("{check}: a free lease was not granted"));
    assert_eq!(a.holder, "a", "{check}");
    assert_eq!(
        store
            .acquire_lease("b", Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{check}: {e}")),
        None,
        "{check}: b took a lease a holds"
    );
    assert_eq!(
        store
            .current_lease()
            .await
            .unwrap_or_else(|e| panic!("{check}: {e}"))
            .as_ref(),
        Some(&a),
        "{check}"
    );
    let again = store
        .acquire_lease("a", Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{check}: {e}"));
    assert_eq!(
        again.as_ref(),
        Some(&a),
        "{check}: re-acquiring renews with the same token"
    );
    assert!(
        store
            .renew_lease(&a, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{check}: {e}")),
        "{check}: renew"
    );
    store
        .release_lease(&a)
        .await
        .unwrap_or_else(|e| panic!("{check}: {e}"));
    assert_eq!(
        store
            .current_lease()
            .await
            .unwrap_or_else(|e| panic!("{check}: {e}")),
        None,
        "{check}: released"
    );
    let b = store
        .acquire_lease("b", Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{check}: {e}"))
        .unwrap_or_else(|| panic!("{check}: a released lease was not handed over"));
    assert!(
        b.token > a.token,
        "{check}: tokens increase: {} then {}",
        a.token,
        b.token
    );
    assert!(
        !store
            .renew_lease(&a, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{check}: {e}")),
        "{check}: a deposed holder renewed"
    );
    store
        .release_lease(&a)
        .await
        .unwrap_or_else(|e| panic!("{check}: {e}"));
    assert_eq!(
        store
            .current_lease()
            .await
            .unwrap_or_else(|e| panic!("{check}: {e}"))
            .as_ref(),
        Some(&b),
        "{check}: a stale release must not free b's lease"
    );
}

async fn lease_expires_without_renewal<S: Store>(store: &S) {
    let check = "lease_expires_without_renewal";
    let a = store
        .acquire_lease("a", LEASE_TTL)
        .await
        .unwrap_or_else(|e| panic!("{check}: {e}"))
        .unwrap_or_else(|| panic!("{check}: not granted"));
    tokio::time::sleep(LEASE_TTL + Duration::from_millis(1_500)).await;
    let b = store
        .acquire_lease("b", Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{check}: {e}"))
        .unwrap_or_else(|| panic!("{check}: an expired lease was not handed over"));
    assert!(b.token > a.token, "{check}");
    assert!(
        !store
            .renew_lease(&a, LEASE_TTL)
            .await
            .unwrap_or_else(|e| panic!("{check}: {e}")),
        "{check}: expired lease renewed"
    );
}

async fn fencing_rejects_a_deposed_leaders_fires<S: Store>(store: &S) {
    let check = "fencing_rejects_a_deposed_leaders_fires";
    let t1 = instant(1_000);
    let t2 = instant(2_000);
    let a = store
        .acquire_lease("a", Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{check}: {e}"))
        .unwrap_or_else(|| panic!("{check}: not granted"));
    store
        .record_fires(a.token, &[("j".to_owned(), t1)])
        .await
        .unwrap_or_else(|e| panic!("{check}: the leader's write: {e}"));
    store
        .release_lease(&a)
        .await
        .unwrap_or_else(|e| panic!("{check}: {e}"));
    let b = store
        .acquire_lease("b", Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{check}: {e}"))
        .unwrap_or_else(|| panic!("{check}: not granted"));
    let stale = store.record_fires(a.token, &[("j".to_owned(), t2)]).await;
    assert_eq!(stale, Err(StoreError::Fenced(a.token)), "{check}");
    assert_eq!(
        ledger_of(store, check).await,
        ledger(&[("j", t1)]),
        "{check}: nothing written"
    );
    store
        .record_fires(b.token, &[("j".to_owned(), t2)])
        .await
        .unwrap_or_else(|e| panic!("{check}: the new leader's write: {e}"));
    assert_eq!(
        ledger_of(store, check).await,
        ledger(&[("j", t2)]),
        "{check}"
    );
    store
        .release_lease(&b)
        .await
        .unwrap_or_else(|e| panic!("{check}: {e}"));
    let none = store.record_fires(b.token, &[("j".to_owned(), t2)]).await;
    assert_eq!(
        none,
        Err(StoreError::Fenced(b.token)),
        "{check}: no lease, no write"
    );
}

async fn ledger_of<S: Store>(store: &S, check: &str) -> BTreeMap<String, DateTime<Utc>> {
    store
        .fire_ledger()
        .await
        .unwrap_or_else(|e| panic!("{check}: fire_ledger: {e}"))
}

fn ledger(entries: &[(&str, DateTime<Utc>)]) -> BTreeMap<String, DateTime<Utc>> {
    entries
        .iter()
        .map(|(job, scheduled_at)| ((*job).to_owned(), *scheduled_at))
        .collect()
}

async fn record_missed<S: Store>(
    store: &S,
    job: &str,
    instants: &[DateTime<Utc>],
    uncounted: u64,
    check: &str,
) {
    if let Err(error) = store.record_missed(job, instants, uncounted).await {
        panic!("{check}: record_missed({job}) failed: {error}");
    }
}

async fn missed_of<S: Store>(store: &S, job: &str, check: &str) -> MissedFires {
    store
        .missed_fires(job)
        .await
        .unwrap_or_else(|e| panic!("{check}: missed_fires({job}): {e}"))
}

fn missed(total: u64, seconds: impl IntoIterator<Item = i64>) -> MissedFires {
    MissedFires {
        total,
        recent: seconds.into_iter().map(instant).collect(),
    }
}

/// The fire ledger starts empty and keeps, per job, the latest instant ever recorded: across
/// calls and within one call, to the nanosecond, before 1970 too.
pub async fn fire_ledger_keeps_the_latest_per_job<S: Store>(store: &S) {
    let check = "fire_ledger_keeps_the_latest_per_job";
    assert_eq!(
        ledger_of(store, check).await,
        ledger(&[]),
        "{check}: a new store has an empty ledger"
    );
    record_fires(store, &[], check).await;
    assert!(
        ledger_of(store, check).await.is_empty(),
        "{check}: recording no fires"
    );

    let precise = instant(10) + TimeDelta::nanoseconds(123_456_789);
    let before_1970 = instant(-1_800_000_000);
    record_fires(
        store,
        &[
            ("a", instant(7)),
            ("b", instant(5)),
            ("a", precise),
            ("a", instant(3)),
            ("old", before_1970),
        ],
        check,
    )
    .await;
    assert_eq!(
        ledger_of(store, check).await,
        ledger(&[("a", precise), ("b", instant(5)), ("old", before_1970)]),
        "{check}: the latest fire of each job within one call"
    );

    record_fires(
        store,
        &[
            ("a", instant(10)),
            ("b", instant(20)),
            ("c", instant(1)),
            ("old", before_1970 - TimeDelta::seconds(1)),
        ],
        check,
    )
    .await;
    assert_eq!(
        ledger_of(store, check).await,
        ledger(&[
            ("a", precise),
            ("b", instant(20)),
            ("c", instant(1)),
            ("old", before_1970),
        ]),
        "{check}: entries move forward across calls, never back"
    );
    record_fires(store, &[("a", precise)], check).await;
    assert_eq!(
        ledger_of(store, check).await.get("a"),
        Some(&precise),
        "{check}: the same instant again"
    );
    assert!(
        job_names(store, check).await.is_empty(),
        "{check}: recording fires creates no job"
    );
}

/// One call records a whole tick of 10,000 fires (some jobs twice) atomically.
pub async fn fire_ledger_takes_a_tick_of_ten_thousand_fires<S: Store>(store: &S) {
    let check = "fire_ledger_takes_a_tick_of_ten_thousand_fires";
    const FIRES: i64 = 10_000;
    let name = |index: i64| format!("job-{index:05}");
    let first: Vec<(String, DateTime<Utc>)> = (0..FIRES)
        .map(|index| (name(index), instant(index)))
        .collect();
    store
        .record_fires(lead(store, check).await, &first)
        .await
        .unwrap_or_else(|e| panic!("{check}: record_fires of {FIRES}: {e}"));
    let expected: BTreeMap<String, DateTime<Utc>> = first.iter().cloned().collect();
    assert_eq!(
        ledger_of(store, check).await,
        expected,
        "{check}: every fire of the tick"
    );

    // The next tick: even jobs move on, odd ones carry an older instant; the last 100 jobs of
    // the first tick appear twice, the later of the two counting.
    let mut second: Vec<(String, DateTime<Utc>)> = (0..FIRES)
        .map(|index| {
            let offset = if index % 2 == 0 { FIRES } else { -FIRES };
            (name(index), instant(index + offset))
        })
        .collect();
    second.extend((FIRES - 100..FIRES).map(|index| (name(index), instant(index + 3 * FIRES))));
    store
        .record_fires(lead(store, check).await, &second)
        .await
        .unwrap_or_else(|e| panic!("{check}: record_fires of {}: {e}", second.len()));
    let expected: BTreeMap<String, DateTime<Utc>> = (0..FIRES)
        .map(|index| {
            let latest = if index >= FIRES - 100 {
                index + 3 * FIRES
            } else if index % 2 == 0 {
                index + FIRES
            } else {
                index
            };
            (name(index), instant(latest))
        })
        .collect();
    assert_eq!(
        ledger_of(store, check).await,
        expected,
        "{check}: the second tick moves entries forward only"
    );
}

/// `record_missed` adds every instant and the uncounted ones to the total and keeps the newest
/// [`MISSED_KEPT`] distinct instants, ascending; an unknown job reads as the default.
pub async fn missed_fires_count_and_keep_the_newest<S: Store>(store: &S) {
    let check = "missed_fires_count_and_keep_the_newest";
    assert_eq!(
        missed_of(store, "unknown", check).await,
        MissedFires::default(),
        "{check}: nothing recorded for a job that does not exist"
    );
    commit(
        store,
        vec![
            put(job("late"), Expect::Absent),
            put(job("lat"), Expect::Absent),
        ],
        check,
    )
    .await;
    assert_eq!(
        missed_of(store, "late", check).await,
        MissedFires::default(),
        "{check}: nothing recorded yet"
    );

    record_missed(
        store,
        "late",
        &[instant(3), instant(1), instant(2)],
        5,
        check,
    )
    .await;
    assert_eq!(
        missed_of(store, "late", check).await,
        missed(8, [1, 2, 3]),
        "{check}: instants sorted, uncounted added to the total"
    );

    record_missed(
        store,
        "late",
        &[instant(2), instant(4), instant(4)],
        0,
        check,
    )
    .await;
    assert_eq!(
        missed_of(store, "late", check).await,
        missed(11, [1, 2, 3, 4]),
        "{check}: duplicates are kept once, yet counted"
    );

    record_missed(store, "late", &[], 7, check).await;
    assert_eq!(
        missed_of(store, "late", check).await,
        missed(18, [1, 2, 3, 4]),
        "{check}: uncounted alone"
    );
    record_missed(store, "late", &[], 0, check).await;
    assert_eq!(
        missed_of(store, "late", check).await.total,
        18,
        "{check}: recording nothing"
    );

    // 150 newer instants, newest first: only the newest MISSED_KEPT of all remain.
    let many: Vec<DateTime<Utc>> = (10..160).rev().map(instant).collect();
    record_missed(store, "late", &many, 0, check).await;
    let kept = i64::try_from(MISSED_KEPT).expect("MISSED_KEPT fits an i64");
    assert_eq!(
        missed_of(store, "late", check).await,
        missed(168, 160 - kept..160),
        "{check}: the newest {MISSED_KEPT}, ascending"
    );

    // An instant older than every kept one is counted but not kept.
    let precise = instant(200) + TimeDelta::nanoseconds(1);
    record_missed(store, "late", &[instant(0), precise], 0, check).await;
    let mut expected = missed(170, 161 - kept..160);
    expected.recent.push(precise);
    assert_eq!(
        missed_of(store, "late", check).await,
        expected,
        "{check}: older instants drop out first"
    );
    assert_eq!(
        missed_of(store, "lat", check).await,
        MissedFires::default(),
        "{check}: another job"
    );
}

/// `record_missed` for a job that does not exist succeeds and stores nothing, not even for a
/// job created later with that name.
pub async fn missed_fires_of_a_missing_job_are_not_recorded<S: Store>(store: &S) {
    let check = "missed_fires_of_a_missing_job_are_not_recorded";
    record_missed(store, "ghost", &[instant(1)], 3, check).await;
    assert_eq!(
        missed_of(store, "ghost", check).await,
        MissedFires::default(),
        "{check}: recorded for a missing job"
    );
    assert!(
        job_names(store, check).await.is_empty(),
        "{check}: job created"
    );
    commit(store, vec![put(job("ghost"), Expect::Absent)], check).await;
    assert_eq!(
        missed_of(store, "ghost", check).await,
        MissedFires::default(),
        "{check}: the earlier record surfaced once the job exists"
    );
    record_missed(store, "ghost", &[instant(1)], 3, check).await;
    assert_eq!(
        missed_of(store, "ghost", check).await,
        missed(4, [1]),
        "{check}: recorded once the job exists"
    );
}

/// Deleting job `foo` removes its ledger entry and missed fires, never those of `foobar` or
/// `fo`; `delete_executions` keeps them; a re-created `foo` starts clean.
pub async fn delete_job_clears_exactly_its_fire_history<S: Store>(store: &S) {
    let check = "delete_job_clears_exactly_its_fire_history";
    let names = ["fo", "foo", "foo-bar", "foobar"];
    commit(
        store,
        names.map(|name| put(job(name), Expect::Absent)).into(),
        check,
    )
    .await;
    let fires: Vec<(&str, DateTime<Utc>)> = names.iter().map(|name| (*name, instant(9))).collect();
    record_fires(store, &fires, check).await;
    for name in names {
        record_missed(store, name, &[instant(1), instant(2)], 1, check).await;
    }

    store
        .delete_executions("foo")
        .await
        .expect("delete_executions");
    assert_eq!(
        ledger_of(store, check).await,
        ledger(&fires),
        "{check}: delete_executions touched the ledger"
    );
    assert_eq!(
        missed_of(store, "foo", check).await,
        missed(3, [1, 2]),
        "{check}: delete_executions touched the missed fires"
    );

    commit(store, vec![delete("foo", Expect::Any)], check).await;
    assert_eq!(
        ledger_of(store, check).await,
        ledger(&[
            ("fo", instant(9)),
            ("foo-bar", instant(9)),
            ("foobar", instant(9)),
        ]),
        "{check}: exactly foo's ledger entry goes"
    );
    assert_eq!(
        missed_of(store, "foo", check).await,
        MissedFires::default(),
        "{check}: foo's missed fires remain"
    );
    for name in ["fo", "foo-bar", "foobar"] {
        assert_eq!(
            missed_of(store, name, check).await,
            missed(3, [1, 2]),
            "{check}: deleting foo touched the missed fires of {name}"
        );
    }

    commit(store, vec![put(job("foo"), Expect::Absent)], check).await;
    assert!(
        !ledger_of(store, check).await.contains_key("foo"),
        "{check}: a re-created foo has a stale ledger entry"
    );
    assert_eq!(
        missed_of(store, "foo", check).await,
        MissedFires::default(),
        "{check}: a re-created foo has stale missed fires"
    );
}

/// Waits until every thread of process `pid` is stopped (state `T` in `/proc/<pid>/task/*/stat`),
/// after the caller sent it SIGSTOP; panics after 10 s.
///
/// `kill(SIGSTOP)` returns before a multi-threaded process has stopped: one of its threads must
/// first be scheduled to begin the group stop, and on a loaded machine another thread may
/// meanwhile still answer a request (a CI run saw a "frozen" ZooKeeper answer a read). A test
/// that freezes a server calls this before it relies on the freeze.
pub async fn until_stopped(pid: u32) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match all_threads_stopped(pid) {
            Some(true) => return,
            Some(false) => {}
            None => panic!("process {pid} is gone: it cannot be frozen"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} did not stop within 10 s of SIGSTOP"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Whether every thread of `pid` is stopped; `None` when the process does not exist.
fn all_threads_stopped(pid: u32) -> Option<bool> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut seen = false;
    for task in tasks.flatten() {
        // A thread that exited between listing and reading does not count.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        seen = true;
        if !matches!(thread_state(&stat), Some('T' | 't')) {
            return Some(false);
        }
    }
    Some(seen)
}

/// The state letter of a `/proc/<pid>/task/<tid>/stat` line (the field after the name, which
/// is in parentheses and may itself hold spaces and parentheses).
fn thread_state(stat: &str) -> Option<char> {
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.trim_start().chars().next()
}

/// Whether process `pid` holds a listening TCP socket on `port` (Linux `/proc`).
///
/// Test servers start on ports that were free a moment before; another test's server may take
/// the port meanwhile, and then a readiness probe on that port is answered by the wrong server
/// while ours is about to exit with "address already in use". A probe counts only when this
/// answers true.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        inodes.extend(listening_inodes(&text, port));
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .is_some_and(|inode| inodes.iter().any(|listening| listening == inode))
        })
    })
}

/// The inodes of the sockets listening on `port` in one `/proc/net/tcp*` table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let (_, hex_port) = local.rsplit_once(':')?;
            let listening = u16::from_str_radix(hex_port, 16).ok() == Some(port)
                && fields.get(3) == Some(&LISTEN);
            listening.then(|| fields.get(9).map(|inode| (*inode).to_owned()))?
        })
        .collect()
}

#[cfg(test)]
mod listener_tests {
    use super::listens_on;

    #[test]
    fn the_state_follows_the_parenthesised_name() {
        assert_eq!(super::thread_state("42 (java) S 1 42"), Some('S'));
        assert_eq!(super::thread_state("42 (a) (b) T 1 42"), Some('T'));
        assert_eq!(super::thread_state("garbage"), None);
    }

    #[tokio::test]
    async fn a_stopped_child_is_seen_stopped_and_a_running_one_is_not() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        assert_eq!(super::all_threads_stopped(pid), Some(false), "running");
        let status = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        super::until_stopped(pid).await;
        assert_eq!(super::all_threads_stopped(pid), Some(true), "stopped");
        child.kill().expect("kill sleep");
        child.wait().expect("reap sleep");
        assert_eq!(super::all_threads_stopped(pid), None, "gone");
    }

    #[test]
    fn a_process_owns_its_listener_and_not_a_port_it_does_not_hold() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        assert!(listens_on(std::process::id(), port), "our own listener");
        // PID 1 (init or the container's first process) does not hold this test's port.
        assert!(!listens_on(1, port), "another process's listener");
        drop(listener);
        assert!(!listens_on(std::process::id(), port), "a closed listener");
    }
}
