//! Redis-specific behaviour: keyspace isolation, damaged records, fencing tokens across data
//! loss, concurrent finishes.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use rkron_store::testsuite::{execution, instant, job};
use rkron_store::{Expect, JobOp, Store, StoreError};
use rkron_store_redis::RedisStore;

use crate::server::RedisServer;

macro_rules! assert_corrupt {
    ($answer:expr) => {
        let answer = $answer;
        assert!(
            matches!(answer, Err(StoreError::Corrupt { .. })),
            "{}: expected Corrupt, got {answer:?}",
            stringify!($answer)
        );
    };
}

fn put(name: &str) -> JobOp {
    JobOp::Put {
        job: job(name),
        expect: Expect::Absent,
    }
}

async fn keys(connection: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = connection.keys("*").await.unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn keyspaces_share_nothing() {
    let server = RedisServer::start().await;
    let a = RedisStore::connect(server.config("a")).await.unwrap();
    let b = RedisStore::connect(server.config("a:b")).await.unwrap();

    a.commit_jobs(vec![put("job")]).await.unwrap();
    let mut running = execution("job", 1, "n", false);
    running.finished_at = None;
    a.put_execution(&running, 10).await.unwrap();
    a.put_execution(&execution("job", 2, "n", true), 10)
        .await
        .unwrap();
    a.put_meta("k", "a").await.unwrap();
    a.record_missed("job", &[instant(1)], 1).await.unwrap();
    let lease_a = a
        .acquire_lease("a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    a.record_fires(lease_a.token, &[("job".to_owned(), instant(3))])
        .await
        .unwrap();

    assert!(b.get_job("job").await.unwrap().is_none());
    assert!(b.list_jobs().await.unwrap().is_empty());
    assert_eq!(b.jobs_page(0, 10).await.unwrap().total, 0);
    assert!(b.list_executions("job", true).await.unwrap().is_empty());
    assert!(b.running_executions().await.unwrap().is_empty());
    assert_eq!(b.get_meta("k").await.unwrap(), None);
    assert!(b.fire_ledger().await.unwrap().is_empty());
    assert_eq!(b.missed_fires("job").await.unwrap().total, 0);
    assert_eq!(b.current_lease().await.unwrap(), None);
    let lease_b = b
        .acquire_lease("b", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("b's keyspace has its own lease");
    assert!(matches!(
        b.record_fires(lease_a.token, &[("job".to_owned(), instant(4))])
            .await,
        Err(StoreError::Fenced(_))
    ));
    b.record_fires(lease_b.token, &[("job".to_owned(), instant(4))])
        .await
        .unwrap();

    // Deleting in b touches nothing of a.
    b.commit_jobs(vec![put("job")]).await.unwrap();
    b.commit_jobs(vec![JobOp::Delete {
        name: "job".to_owned(),
        expect: Expect::Any,
    }])
    .await
    .unwrap();
    assert!(a.get_job("job").await.unwrap().is_some());
    assert_eq!(a.list_executions("job", false).await.unwrap().len(), 2);
    assert_eq!(a.running_executions().await.unwrap().len(), 1);
    assert_eq!(a.fire_ledger().await.unwrap().get("job"), Some(&instant(3)));
    assert_eq!(a.missed_fires("job").await.unwrap().total, 2);
    assert_eq!(a.current_lease().await.unwrap(), Some(lease_a));

    // Every key carries its keyspace's hash tag.
    let mut raw = server.raw().await;
    let all = keys(&mut raw).await;
    assert!(
        all.iter()
            .all(|key| key.starts_with("{a}:") || key.starts_with("{a:b}:")),
        "{all:?}"
    );
    let tagged: Vec<&String> = all.iter().filter(|key| key.starts_with("{a}:")).collect();
    for expected in [
        "{a}:job:job",
        "{a}:jobs",
        "{a}:runs:job",
        "{a}:exec:job",
        "{a}:out:job",
        "{a}:running",
        "{a}:ledger",
        "{a}:missed",
        "{a}:leader",
        "{a}:epoch",
        "{a}:meta",
        "{a}:version",
        "{a}:layout",
        "{a}:stamp:job",
    ] {
        assert!(
            tagged.iter().any(|key| *key == expected),
            "{expected} in {tagged:?}"
        );
    }

    // Deleting the job in a leaves only the keyspace-wide keys.
    a.commit_jobs(vec![JobOp::Delete {
        name: "job".to_owned(),
        expect: Expect::Any,
    }])
    .await
    .unwrap();
    let left: Vec<String> = keys(&mut raw)
        .await
        .into_iter()
        .filter(|key| key.starts_with("{a}:"))
        .collect();
    assert_eq!(
        left,
        [
            "{a}:epoch",
            "{a}:layout",
            "{a}:leader",
            "{a}:meta",
            "{a}:version"
        ]
        .map(str::to_owned),
        "only keyspace-wide keys remain (Redis drops emptied hashes)"
    );
}

#[tokio::test]
async fn damaged_records_answer_corrupt_not_panics() {
    let server = RedisServer::start().await;
    let store = RedisStore::connect(server.config("bad")).await.unwrap();
    store.commit_jobs(vec![put("ok")]).await.unwrap();
    let mut raw = server.raw().await;

    let _: () = raw
        .hset_multiple("{bad}:job:broken", &[("v", "1"), ("j", "{")])
        .await
        .unwrap();
    let _: () = raw.zadd("{bad}:jobs", "broken", 0).await.unwrap();
    assert_corrupt!(store.get_job("broken").await);
    assert_corrupt!(store.list_jobs().await);
    assert_corrupt!(store.jobs_page(0, 5).await);
    let _: () = raw.zadd("{bad}:jobs", "listed-only", 0).await.unwrap();
    assert_corrupt!(store.jobs_after(Some("for"), 5).await);
    let _: () = raw
        .hset("{bad}:job:ok", "j", r#"{"name":"other"}"#)
        .await
        .unwrap();
    assert_corrupt!(store.get_job("ok").await);

    let _: () = raw
        .hset("{bad}:ledger", "j", "not an instant")
        .await
        .unwrap();
    assert_corrupt!(store.fire_ledger().await);

    let _: () = raw.hset("{bad}:missed", "j", "[1]").await.unwrap();
    assert_corrupt!(store.missed_fires("j").await);

    let _: () = raw.hset("{bad}:running", "short", "0 {}").await.unwrap();
    assert_corrupt!(store.running_executions().await);

    let run = execution("runs", 1, "n", true);
    store.put_execution(&run, 10).await.unwrap();
    let member: Vec<String> = raw.zrange("{bad}:runs:runs", 0, -1).await.unwrap();
    let _: () = raw
        .hset("{bad}:exec:runs", &member[0], "1 {\"job_name\":")
        .await
        .unwrap();
    assert_corrupt!(store.list_executions("runs", false).await);
    assert_corrupt!(store.get_execution("runs", &run.id()).await);

    let _: () = raw.set("{bad}:leader", "garbage").await.unwrap();
    assert_corrupt!(store.current_lease().await);
    assert_corrupt!(store.acquire_lease("a", Duration::from_secs(5)).await);

    // A key of the wrong type.
    let _: () = raw.set("{bad}:meta", "a string").await.unwrap();
    assert_corrupt!(store.get_meta("k").await);

    // A keyspace written by a newer layout is refused.
    let _: () = raw.set("{newer}:layout", "2").await.unwrap();
    let answer = RedisStore::connect(server.config("newer")).await;
    assert!(
        matches!(&answer, Err(StoreError::Backend(reason)) if reason.contains("layout")),
        "{answer:?}"
    );
}

#[tokio::test]
async fn fencing_tokens_grow_even_after_the_server_lost_its_data() {
    let server = RedisServer::start().await;
    let store = RedisStore::connect(server.config("fence")).await.unwrap();
    let first = store
        .acquire_lease("a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    store.release_lease(&first).await.unwrap();
    // Tenures in quick succession, then the data is lost at once.
    let mut second = first.clone();
    for _ in 0..20 {
        let next = store
            .acquire_lease("b", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert!(next.token > second.token);
        store.release_lease(&next).await.unwrap();
        second = next;
    }
    let second = store
        .acquire_lease("b", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();

    let mut raw = server.raw().await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut raw).await.unwrap();
    assert_eq!(store.current_lease().await.unwrap(), None);
    assert!(matches!(
        store
            .record_fires(second.token, &[("j".to_owned(), instant(1))])
            .await,
        Err(StoreError::Fenced(token)) if token == second.token
    ));
    let third = store
        .acquire_lease("c", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(
        third.token > second.token,
        "{} after {}",
        third.token,
        second.token
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_finishes_of_one_group_lose_no_count() {
    const NODES: i64 = 20;
    let server = RedisServer::start().await;
    let store = Arc::new(RedisStore::connect(server.config("finish")).await.unwrap());
    store.commit_jobs(vec![put("fan")]).await.unwrap();
    let mut tasks = Vec::new();
    for node in 0..NODES {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let run = execution("fan", 1, &format!("node-{node:02}"), node % 2 == 0);
            store.finish_execution(&run, 100).await
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().unwrap().is_some());
    }
    let stored = store.get_job("fan").await.unwrap().unwrap().value;
    assert_eq!(
        (stored.success_count, stored.error_count),
        (10, 10),
        "{stored:?}"
    );
    assert_eq!(stored.status, rkron_core::JobStatus::PartiallyFailed);
    assert_eq!(store.list_executions("fan", false).await.unwrap().len(), 20);
}

#[tokio::test]
async fn finish_status_ignores_runs_trimmed_by_the_same_write() {
    let server = RedisServer::start().await;
    let store = RedisStore::connect(server.config("trim")).await.unwrap();
    store.commit_jobs(vec![put("t")]).await.unwrap();
    // A failed run of group 1, then a successful one of group 1 that pushes it out (retention 1).
    store
        .finish_execution(&execution("t", 1, "a", false), 1)
        .await
        .unwrap();
    let job = store
        .finish_execution(&execution("t", 2, "b", true), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, rkron_core::JobStatus::Success);
    // A late, older run is trimmed at once: the group is judged without it.
    let job = store
        .finish_execution(&execution("t", 0, "c", false), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, rkron_core::JobStatus::Success);
    assert_eq!(job.error_count, 2);
    let runs = store.list_executions("t", false).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].node_name, "b");
}
