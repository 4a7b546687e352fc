//! What is particular to etcd: transactions of at most 128 operations, damaged records, and
//! etcd leases that keep the TTL they were granted with.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rkron_store::testsuite::{execution, instant, job};
use rkron_store::{Expect, JobOp, Store, StoreError};
use serde_json::json;

use crate::server::Etcd;

fn b64(text: &str) -> String {
    STANDARD.encode(text)
}

/// Lowering the retention trims more executions than one transaction can delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_spans_several_transactions() {
    let etcd = Etcd::start().await;
    let store = etcd.store("limits").await;
    let op = JobOp::Put {
        job: job("busy"),
        expect: Expect::Absent,
    };
    store.commit_jobs(vec![op]).await.unwrap();
    for started in 0..150 {
        store
            .put_execution(&execution("busy", started, "n", true), 1_000)
            .await
            .unwrap();
    }
    // 141 executions go: 423 deletes.
    store
        .put_execution(&execution("busy", 150, "n", true), 10)
        .await
        .unwrap();
    let starts: Vec<_> = store
        .list_executions("busy", true)
        .await
        .unwrap()
        .into_iter()
        .map(|run| run.started_at)
        .collect();
    assert_eq!(starts, (141..151).map(instant).collect::<Vec<_>>());

    // The same through finish_execution, which also updates the job.
    let updated = store
        .finish_execution(&execution("busy", 151, "n", false), 2)
        .await
        .unwrap()
        .expect("the job exists");
    assert_eq!(updated.error_count, 1);
    assert_eq!(store.list_executions("busy", false).await.unwrap().len(), 2);
    let response = etcd
        .post(
            "/v3/kv/range",
            json!({"key": b64("limits/outputs/"), "range_end": b64("limits/outputs0"),
                   "count_only": true}),
        )
        .await;
    assert_eq!(response["count"], "2", "trimmed outputs are gone");
}

/// A commit needing more operations than etcd allows in one transaction is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_commits_are_refused_without_writing() {
    let etcd = Etcd::start().await;
    let store = etcd.store("limits").await;
    // Each delete takes 6 operations (the job and its history): 30 of them take 180.
    let ops: Vec<JobOp> = (0..30)
        .map(|index| JobOp::Delete {
            name: format!("job-{index}"),
            expect: Expect::Any,
        })
        .chain([JobOp::Put {
            job: job("extra"),
            expect: Expect::Absent,
        }])
        .collect();
    let answer = store.commit_jobs(ops).await;
    assert!(matches!(answer, Err(StoreError::Backend(_))), "{answer:?}");
    assert!(store.get_job("extra").await.unwrap().is_none());
}

fn corrupt<T>(answer: &Result<T, StoreError>, key: &str) -> bool {
    matches!(answer, Err(StoreError::Corrupt { key: k, .. }) if k == key)
}

/// Damaged records answer `Corrupt` naming the key; nothing panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_records_are_corrupt() {
    let etcd = Etcd::start().await;
    let store = etcd.store("bad").await;
    for (key, value) in [
        ("bad/jobs/broken", "{not json"),
        ("bad/ledger/broken", "yesterday"),
        ("bad/missed/broken", "[1,2]"),
        ("bad/executions/broken/8000000000000000/n", "null"),
    ] {
        etcd.post("/v3/kv/put", json!({"key": b64(key), "value": b64(value)}))
            .await;
    }
    let answer = store.get_job("broken").await;
    assert!(corrupt(&answer, "bad/jobs/broken"), "{answer:?}");
    let answer = store.list_jobs().await;
    assert!(corrupt(&answer, "bad/jobs/broken"), "{answer:?}");
    let answer = store.fire_ledger().await;
    assert!(corrupt(&answer, "bad/ledger/broken"), "{answer:?}");
    let answer = store.missed_fires("broken").await;
    assert!(corrupt(&answer, "bad/missed/broken"), "{answer:?}");
    let answer = store.list_executions("broken", false).await;
    assert!(
        corrupt(&answer, "bad/executions/broken/8000000000000000/n"),
        "{answer:?}"
    );
    let invalid_utf8 = STANDARD.encode([0xff, 0xfe]);
    etcd.post(
        "/v3/kv/put",
        json!({"key": b64("bad/meta/broken"), "value": invalid_utf8}),
    )
    .await;
    let answer = store.get_meta("broken").await;
    assert!(corrupt(&answer, "bad/meta/broken"), "{answer:?}");
    let lease = store
        .acquire_lease("l", Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    let answer = store
        .record_fires(lease.token, &[("broken".to_owned(), instant(1))])
        .await;
    assert!(corrupt(&answer, "bad/ledger/broken"), "{answer:?}");
}

/// etcd keeps a lease's TTL: renewing with a longer TTL moves the leader key to a longer etcd
/// lease, keeping its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewing_with_a_longer_ttl_keeps_the_token() {
    let etcd = Etcd::start().await;
    let store = etcd.store("ttl").await;
    let granted_ttl = async || -> i64 {
        let leader = etcd
            .post("/v3/kv/range", json!({"key": b64("ttl/leader")}))
            .await;
        let lease = leader["kvs"][0]["lease"].clone();
        let alive = etcd
            .post("/v3/lease/timetolive", json!({"ID": lease}))
            .await;
        alive["grantedTTL"].as_str().unwrap().parse().unwrap()
    };
    let lease = store
        .acquire_lease("a", Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(granted_ttl().await, 2);
    assert!(
        store
            .renew_lease(&lease, Duration::from_secs(20))
            .await
            .unwrap()
    );
    assert_eq!(granted_ttl().await, 20);
    assert_eq!(store.current_lease().await.unwrap(), Some(lease.clone()));
    // Re-acquiring by the same holder (say, after a restart) keeps the token too.
    let again = store
        .acquire_lease("a", Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(again, Some(lease.clone()));
    store.release_lease(&lease).await.unwrap();
    assert_eq!(store.current_lease().await.unwrap(), None);
}
