//! Unit tests of the embedded store that reach into its file: damaged records.

use std::sync::Arc;

use redb::TableDefinition;
use rkron_core::execution::unix_nanos;
use rkron_store::testsuite::{execution, instant, job};
use rkron_store::{Expect, JobOp, MissedFires, Store, StoreError};

use super::*;

fn is_corrupt<T: fmt::Debug>(answer: &Result<T, StoreError>) -> bool {
    matches!(answer, Err(StoreError::Corrupt { .. }))
}

/// Writes raw bytes into a table behind the store's back.
fn write_raw<K>(
    store: &EmbeddedStore,
    table: TableDefinition<'static, K, &'static [u8]>,
    key: K::SelfType<'_>,
    bytes: &[u8],
) where
    K: redb::Key + 'static,
{
    let transaction = store.db.begin_write().unwrap();
    transaction
        .open_table(table)
        .unwrap()
        .insert(key, bytes)
        .unwrap();
    transaction.commit().unwrap();
}

#[tokio::test]
async fn damaged_job_records_answer_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let ops = ["a", "c"].map(|name| JobOp::Put {
        job: job(name),
        expect: Expect::Absent,
    });
    store.commit_jobs(ops.into()).await.unwrap();
    write_raw(&store, JOBS, b"b".as_slice(), b"\x01garbage");

    assert!(is_corrupt(&store.get_job("b").await));
    assert!(is_corrupt(&store.list_jobs().await));
    assert!(is_corrupt(&store.jobs_page(0, 3).await));
    // Pages that do not hold the damaged record never decode it.
    assert_eq!(store.jobs_page(0, 1).await.unwrap().jobs, [job("a")]);
    assert_eq!(store.jobs_page(2, 3).await.unwrap().jobs, [job("c")]);
    assert_eq!(store.jobs_page(0, 1).await.unwrap().total, 3);

    let stale = JobOp::Put {
        job: job("b"),
        expect: Expect::Version(1),
    };
    assert!(is_corrupt(&store.commit_jobs(vec![stale]).await));
    let finished = store
        .finish_execution(&execution("b", 1, "n", true), 10)
        .await;
    assert!(is_corrupt(&finished), "{finished:?}");
    assert!(
        store.list_executions("b", false).await.unwrap().is_empty(),
        "nothing stored"
    );

    // `Expect::Any` reads nothing, so it repairs the record.
    let repair = JobOp::Put {
        job: job("b"),
        expect: Expect::Any,
    };
    store.commit_jobs(vec![repair]).await.unwrap();
    assert_eq!(store.get_job("b").await.unwrap().unwrap().value, job("b"));
}

#[tokio::test]
async fn damaged_execution_records_answer_corrupt_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let ops = ["bad", "good"].map(|name| JobOp::Put {
        job: job(name),
        expect: Expect::Absent,
    });
    store.commit_jobs(ops.into()).await.unwrap();
    let first = execution("bad", 1, "n", true);
    store.put_execution(&first, 10).await.unwrap();
    let key = (
        b"bad".as_slice(),
        unix_nanos(first.started_at),
        b"n".as_slice(),
    );
    write_raw(&store, EXECUTIONS, key, b"\x01\0\0\0\0\0\0\0\x01{not json");

    assert!(is_corrupt(&store.list_executions("bad", false).await));
    assert!(is_corrupt(&store.get_execution("bad", &first.id()).await));

    // The finish must decode the damaged run of its group after writing: it fails as a whole
    // while the writes batched with it succeed.
    let mut tasks = Vec::new();
    for started in 0..50 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .finish_execution(&execution("good", started, "n", true), 100)
                .await
        }));
    }
    let broken = store
        .finish_execution(&execution("bad", 2, "n", true), 10)
        .await;
    assert!(is_corrupt(&broken), "{broken:?}");
    for task in tasks {
        assert!(task.await.unwrap().unwrap().is_some());
    }
    let good = store.get_job("good").await.unwrap().unwrap().value;
    assert_eq!(good.success_count, 50);
    let bad = store.get_job("bad").await.unwrap().unwrap().value;
    assert_eq!(
        bad.success_count, 0,
        "the failed finish must not update the job"
    );
    let second = execution("bad", 2, "n", true).id();
    assert_eq!(
        store.get_execution("bad", &second).await,
        Ok(None),
        "nor store the run"
    );

    write_raw(
        &store,
        OUTPUTS,
        (
            b"good".as_slice(),
            unix_nanos(execution("good", 3, "n", true).started_at),
            b"n".as_slice(),
        ),
        b"\x01\xff",
    );
    assert!(is_corrupt(
        &store
            .get_execution("good", &execution("good", 3, "n", true).id())
            .await
    ));
    assert!(is_corrupt(&store.list_executions("good", true).await));
    assert_eq!(
        store.list_executions("good", false).await.unwrap().len(),
        50
    );
}

#[tokio::test]
async fn damaged_setting_answers_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    write_raw(&store, META, b"k".as_slice(), b"\x07v");
    assert!(is_corrupt(&store.get_meta("k").await));
    store.put_meta("k", "v").await.unwrap();
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn damaged_missed_fires_answer_corrupt_until_the_job_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let ops = ["late", "other"].map(|name| JobOp::Put {
        job: job(name),
        expect: Expect::Absent,
    });
    store.commit_jobs(ops.into()).await.unwrap();
    store
        .record_missed("other", &[instant(1)], 0)
        .await
        .unwrap();
    let mut out_of_order = vec![1, 0, 0, 0, 0, 0, 0, 0, 2];
    out_of_order.extend_from_slice(&5_i64.to_be_bytes());
    out_of_order.extend_from_slice(&4_i64.to_be_bytes());
    let damaged: [&[u8]; 5] = [
        b"",
        b"\x02",
        b"\x01\0\0\0",
        b"\x01\0\0\0\0\0\0\0\x01\0\0",
        &out_of_order,
    ];
    for bytes in damaged {
        write_raw(&store, MISSED, b"late".as_slice(), bytes);
        let read = store.missed_fires("late").await;
        assert!(is_corrupt(&read), "{bytes:?}: {read:?}");
        // A write that would merge into the damaged record fails and writes nothing.
        let recorded = store.record_missed("late", &[instant(1)], 1).await;
        assert!(is_corrupt(&recorded), "{bytes:?}: {recorded:?}");
    }
    let mut too_many = vec![1, 0, 0, 0, 0, 0, 0, 0, 0];
    for nanos in 0..=i64::try_from(rkron_store::MISSED_KEPT).unwrap() {
        too_many.extend_from_slice(&nanos.to_be_bytes());
    }
    write_raw(&store, MISSED, b"late".as_slice(), &too_many);
    assert!(is_corrupt(&store.missed_fires("late").await));
    assert_eq!(
        store.missed_fires("other").await.unwrap().total,
        1,
        "another job's record still reads"
    );

    // Deleting the job removes the record without decoding it.
    let delete = JobOp::Delete {
        name: "late".to_owned(),
        expect: Expect::Any,
    };
    store.commit_jobs(vec![delete]).await.unwrap();
    assert_eq!(
        store.missed_fires("late").await.unwrap(),
        MissedFires::default()
    );
}

#[tokio::test]
async fn ledger_entry_with_a_non_utf8_name_answers_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let transaction = store.db.begin_write().unwrap();
    transaction
        .open_table(LEDGER)
        .unwrap()
        .insert(b"\xff".as_slice(), 1)
        .unwrap();
    transaction.commit().unwrap();
    let ledger = store.fire_ledger().await;
    assert!(is_corrupt(&ledger), "{ledger:?}");
}

#[tokio::test]
async fn a_file_without_the_fire_tables_opens_and_gains_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    store
        .commit_jobs(vec![JobOp::Put {
            job: job("old"),
            expect: Expect::Absent,
        }])
        .await
        .unwrap();
    // Make the file look like one written before the fire ledger existed.
    let transaction = store.db.begin_write().unwrap();
    assert!(transaction.delete_table(LEDGER).unwrap());
    assert!(transaction.delete_table(MISSED).unwrap());
    transaction.commit().unwrap();
    drop(store);

    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(store.fire_ledger().await.unwrap().is_empty());
    assert_eq!(
        store.missed_fires("old").await.unwrap(),
        MissedFires::default()
    );
    let fence = rkron_store::testsuite::lead(&store, "delete clears history").await;
    store
        .record_fires(fence, &[("old".to_owned(), instant(1))])
        .await
        .unwrap();
    store.record_missed("old", &[instant(0)], 0).await.unwrap();
    assert_eq!(
        store.fire_ledger().await.unwrap().get("old"),
        Some(&instant(1))
    );
    assert_eq!(store.missed_fires("old").await.unwrap().total, 1);
    assert_eq!(
        store.get_job("old").await.unwrap().unwrap().value,
        job("old")
    );
}

#[tokio::test]
async fn newer_keyspace_version_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let transaction = store.db.begin_write().unwrap();
    transaction
        .open_table(INTERNAL)
        .unwrap()
        .insert(KEYSPACE_VERSION, KEYSPACE_V1 + 1)
        .unwrap();
    transaction.commit().unwrap();
    drop(store);
    let error = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(error, OpenError::Unusable { .. }), "{error:?}");
    assert!(error.to_string().contains("keyspace version 2"), "{error}");
}

#[test]
fn garbage_file_is_unusable_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), vec![0x5a; 64 * 1024]).unwrap();
    let error = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(error, OpenError::Unusable { .. } | OpenError::Open { .. }),
        "{error:?}"
    );
}
