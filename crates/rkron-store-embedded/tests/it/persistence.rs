//! Persistence: reopening keeps everything, queued writes are committed at shutdown, and
//! acknowledged writes survive `kill -9`.

use std::time::Duration;

use chrono::TimeDelta;
use rkron_store::testsuite::{execution, instant, job};
use rkron_store::{Expect, JobOp, MissedFires, Store};
use rkron_store_embedded::EmbeddedStore;

use crate::child::{self, WRITE_UNTIL_KILLED};

#[tokio::test]
async fn reopening_keeps_jobs_executions_settings_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let ops = ["a", "b"].map(|name| JobOp::Put {
        job: job(name),
        expect: Expect::Absent,
    });
    store.commit_jobs(ops.into()).await.unwrap();
    let run = execution("a", 1, "node-1", true);
    let finished = store.finish_execution(&run, 10).await.unwrap().unwrap();
    store.put_meta("paused", "true").await.unwrap();
    let version = store.get_job("a").await.unwrap().unwrap().version;
    drop(store);

    let store = EmbeddedStore::open(dir.path()).unwrap();
    let reread = store.get_job("a").await.unwrap().unwrap();
    assert_eq!((reread.value, reread.version), (finished, version));
    assert_eq!(store.list_jobs().await.unwrap().len(), 2);
    assert_eq!(
        store.get_execution("a", &run.id()).await.unwrap(),
        Some(run)
    );
    assert_eq!(
        store.get_meta("paused").await.unwrap().as_deref(),
        Some("true")
    );
    // The version counter survives too: a new write gets a newer version.
    store
        .commit_jobs(vec![JobOp::Put {
            job: job("c"),
            expect: Expect::Absent,
        }])
        .await
        .unwrap();
    assert!(store.get_job("c").await.unwrap().unwrap().version > version);
    store.close().await.unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.list_jobs().await.unwrap().len(), 3);
}

#[tokio::test]
async fn reopening_keeps_the_fire_ledger_and_missed_fires() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    store
        .commit_jobs(vec![JobOp::Put {
            job: job("late"),
            expect: Expect::Absent,
        }])
        .await
        .unwrap();
    let precise = instant(5) + TimeDelta::nanoseconds(7);
    let fires: Vec<_> = (0..1_000)
        .map(|index| (format!("job-{index:04}"), instant(index)))
        .chain([("late".to_owned(), precise)])
        .collect();
    let fence = rkron_store::testsuite::lead(&store, "persistence").await;
    store.record_fires(fence, &fires).await.unwrap();
    store
        .record_missed("late", &[instant(2), instant(1)], 4)
        .await
        .unwrap();
    let ledger = store.fire_ledger().await.unwrap();
    assert_eq!(ledger.len(), 1_001);
    drop(store);

    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.fire_ledger().await.unwrap(), ledger);
    assert_eq!(ledger.get("late"), Some(&precise));
    let missed = MissedFires {
        total: 6,
        recent: vec![instant(1), instant(2)],
    };
    assert_eq!(store.missed_fires("late").await.unwrap(), missed);
    // Entries keep moving forward only after a reopen.
    let fence = rkron_store::testsuite::lead(&store, "persistence").await;
    store
        .record_fires(fence, &[("late".to_owned(), instant(4))])
        .await
        .unwrap();
    store.close().await.unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.fire_ledger().await.unwrap(), ledger);
    assert_eq!(store.missed_fires("late").await.unwrap(), missed);
}

#[tokio::test]
async fn closing_commits_writes_whose_callers_stopped_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    for index in 0..100 {
        let key = format!("key-{index}");
        // Polled once: the request is queued, then the caller gives up on the answer.
        let _ = tokio::time::timeout(Duration::ZERO, store.put_meta(&key, "queued")).await;
    }
    drop(store);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    for index in 0..100 {
        let value = store.get_meta(&format!("key-{index}")).await.unwrap();
        assert_eq!(value.as_deref(), Some("queued"), "key-{index}");
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = child::spawn(dir.path(), WRITE_UNTIL_KILLED);
    let acked = tokio::task::spawn_blocking(move || {
        let acked = child::acked_names(&mut writer, 2_000);
        let status = writer.wait().unwrap();
        (acked, status)
    });
    let (acked, status) = acked.await.unwrap();
    assert!(
        !status.success(),
        "the writer must have been killed: {status:?}"
    );
    assert!(
        acked.len() >= 2_000,
        "the writer acknowledged only {} writes",
        acked.len()
    );

    let store = EmbeddedStore::open(dir.path()).unwrap();
    let page = store.jobs_page(0, 0).await.unwrap();
    for name in &acked {
        assert!(
            store.get_job(name).await.unwrap().is_some(),
            "acknowledged job {name} lost"
        );
    }
    assert!(page.total >= acked.len());
}

#[tokio::test]
async fn fencing_tokens_keep_increasing_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let lease = store
            .acquire_lease("srv", std::time::Duration::from_secs(30))
            .await
            .unwrap()
            .expect("a fresh process takes the lease at once");
        tokens.push(lease.token);
        store.close().await.unwrap();
    }
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}
