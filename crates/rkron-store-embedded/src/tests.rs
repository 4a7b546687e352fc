//! Unit tests of the embedded store that reach into its file: damaged records.

use std::sync::Arc;

use redb::TableDefinition;
use rkron_core::execution::unix_nanos;
use rkron_store::testsuite::{execution, job};
use rkron_store::{Expect, JobOp, Store, StoreError};

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
