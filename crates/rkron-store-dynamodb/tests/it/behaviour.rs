//! Behaviour particular to the DynamoDB store: table handling, item limits, fencing across
//! chunks and clocks, corrupt items.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::TimeDelta;
use rkron_core::{Clock, ManualClock, SystemClock};
use rkron_store::testsuite::{execution, instant, job};
use rkron_store::{Expect, JobOp, Store, StoreError};
use rkron_store_dynamodb::{DynamoConfig, DynamoStore, FIRES_PER_TRANSACTION};

use crate::server::Moto;

fn put(name: &str) -> JobOp {
    JobOp::Put {
        job: job(name),
        expect: Expect::Absent,
    }
}

fn delete(name: &str) -> JobOp {
    JobOp::Delete {
        name: name.to_owned(),
        expect: Expect::Any,
    }
}

async fn names(store: &DynamoStore) -> Vec<String> {
    store
        .list_jobs()
        .await
        .expect("list_jobs")
        .into_iter()
        .map(|job| job.name)
        .collect()
}

#[tokio::test]
async fn a_missing_table_is_created_only_when_asked() {
    let moto = Moto::start().await;
    let refused = DynamoStore::connect(DynamoConfig {
        create_table: false,
        ..moto.config("absent")
    })
    .await;
    match refused {
        Err(StoreError::Backend(message)) => assert!(message.contains("absent"), "{message}"),
        other => panic!("expected Backend, got {other:?}"),
    }
    let created = moto.store("absent").await;
    created.put_meta("k", "v").await.unwrap();
    // A second server finds the table and the layout version.
    let second = DynamoStore::connect(DynamoConfig {
        create_table: false,
        ..moto.config("absent")
    })
    .await
    .unwrap();
    assert_eq!(second.get_meta("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(second.table(), "absent");
}

#[tokio::test]
async fn tables_do_not_share_records() {
    let moto = Moto::start().await;
    let one = moto.store("one").await;
    let two = moto.store("two").await;
    one.commit_jobs(vec![put("a")]).await.unwrap();
    one.put_meta("k", "1").await.unwrap();
    let lease = one
        .acquire_lease("x", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(names(&two).await.is_empty());
    assert_eq!(two.get_meta("k").await.unwrap(), None);
    assert_eq!(two.current_lease().await.unwrap(), None);
    let other = two
        .acquire_lease("y", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the other table's lease is free");
    assert_eq!((lease.token, other.token), (1, 1));
}

#[tokio::test]
async fn a_layout_from_a_newer_rkron_is_refused() {
    let moto = Moto::start().await;
    moto.store("layout").await;
    let item = HashMap::from([
        ("pk".to_owned(), AttributeValue::S("layout".to_owned())),
        ("sk".to_owned(), AttributeValue::S("version".to_owned())),
        ("value".to_owned(), AttributeValue::S("99".to_owned())),
    ]);
    moto.raw()
        .put_item()
        .table_name("layout")
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    match DynamoStore::connect(moto.config("layout")).await {
        Err(StoreError::Backend(message)) => assert!(message.contains("99"), "{message}"),
        other => panic!("expected Backend, got {other:?}"),
    }
}

#[tokio::test]
async fn corrupt_items_answer_corrupt() {
    let moto = Moto::start().await;
    let store = moto.store("corrupt").await;
    store.commit_jobs(vec![put("good")]).await.unwrap();
    let item = HashMap::from([
        ("pk".to_owned(), AttributeValue::S("job".to_owned())),
        ("sk".to_owned(), AttributeValue::S("bad".to_owned())),
        ("body".to_owned(), AttributeValue::S("{not json".to_owned())),
        ("ver".to_owned(), AttributeValue::N("1".to_owned())),
    ]);
    moto.raw()
        .put_item()
        .table_name("corrupt")
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    let answer = store.get_job("bad").await;
    assert!(
        matches!(&answer, Err(StoreError::Corrupt { key, .. }) if key.contains("bad")),
        "{answer:?}"
    );
    assert!(matches!(
        store.list_jobs().await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(store.get_job("good").await.unwrap().is_some());
}

#[tokio::test]
async fn deleting_a_job_with_a_long_history_deletes_it_all() {
    let moto = Moto::start().await;
    let store = moto.store("history").await;
    store
        .commit_jobs(vec![put("long"), put("longer")])
        .await
        .unwrap();
    // 60 executions of 3 items each (metadata, output, and the running index for some): more
    // than one transaction holds, so most go in follow-up batches.
    for started in 0..60 {
        let mut run = execution("long", started, "n", true);
        if started % 2 == 0 {
            run.finished_at = None;
        }
        store.put_execution(&run, 1_000).await.unwrap();
    }
    store
        .put_execution(&execution("longer", 1, "n", true), 1_000)
        .await
        .unwrap();
    assert_eq!(store.list_executions("long", true).await.unwrap().len(), 60);
    assert_eq!(store.running_executions().await.unwrap().len(), 30);

    store.commit_jobs(vec![delete("long")]).await.unwrap();
    assert_eq!(names(&store).await, ["longer"]);
    assert!(
        store
            .list_executions("long", true)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.running_executions().await.unwrap().is_empty());
    let raw = moto
        .raw()
        .query()
        .table_name("history")
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("out#long".to_owned()))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.count, 0, "outputs of the deleted job remain");
    assert_eq!(
        store.list_executions("longer", false).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn lowering_the_retention_trims_beyond_one_transaction() {
    let moto = Moto::start().await;
    let store = moto.store("trim").await;
    store.commit_jobs(vec![put("t")]).await.unwrap();
    for started in 0..50 {
        store
            .put_execution(&execution("t", started, "n", true), 1_000)
            .await
            .unwrap();
    }
    // Retention 2 trims 49 runs (98 items with their outputs) while writing the new one.
    let finished = store
        .finish_execution(&execution("t", 100, "n", true), 2)
        .await
        .unwrap()
        .expect("the job exists");
    assert_eq!(finished.success_count, 1);
    let left: Vec<_> = store
        .list_executions("t", true)
        .await
        .unwrap()
        .into_iter()
        .map(|run| run.started_at)
        .collect();
    assert_eq!(left, [instant(49), instant(100)]);
}

#[tokio::test]
async fn a_commit_beyond_one_transaction_is_refused_whole() {
    let moto = Moto::start().await;
    let store = moto.store("big").await;
    let ops: Vec<JobOp> = (0..34).map(|i| delete(&format!("d{i}"))).collect();
    let mut with_put = ops.clone();
    with_put.insert(0, put("first"));
    match store.commit_jobs(with_put).await {
        Err(StoreError::Backend(message)) => assert!(message.contains("100"), "{message}"),
        other => panic!("expected Backend, got {other:?}"),
    }
    assert!(names(&store).await.is_empty());
    // 33 deletes fit.
    store.commit_jobs(ops[..33].to_vec()).await.unwrap();
    let creates: Vec<JobOp> = (0..100).map(|i| put(&format!("c{i:03}"))).collect();
    store.commit_jobs(creates).await.unwrap();
    assert_eq!(names(&store).await.len(), 100);
}

#[tokio::test]
async fn a_deposed_leaders_tick_of_several_chunks_records_nothing() {
    let moto = Moto::start().await;
    let store = moto.store("chunks").await;
    let a = store
        .acquire_lease("a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let fires: Vec<(String, chrono::DateTime<chrono::Utc>)> = (0..FIRES_PER_TRANSACTION * 2 + 5)
        .map(|i| (format!("j{i:04}"), instant(1)))
        .collect();
    store.record_fires(a.token, &fires).await.unwrap();
    assert_eq!(store.fire_ledger().await.unwrap().len(), fires.len());

    // Another server takes over; a's next tick records nothing, not even its first chunk.
    store.release_lease(&a).await.unwrap();
    let b = store
        .acquire_lease("b", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let later: Vec<_> = fires
        .iter()
        .map(|(job, at)| (job.clone(), *at + TimeDelta::seconds(60)))
        .collect();
    assert_eq!(
        store.record_fires(a.token, &later).await,
        Err(StoreError::Fenced(a.token))
    );
    let ledger = store.fire_ledger().await.unwrap();
    assert!(ledger.values().all(|at| *at == instant(1)));
    // Nothing to move forward still tells a deposed leader that it is deposed.
    assert_eq!(
        store.record_fires(a.token, &fires).await,
        Err(StoreError::Fenced(a.token))
    );
    store.record_fires(b.token, &later).await.unwrap();
    assert!(
        store
            .fire_ledger()
            .await
            .unwrap()
            .values()
            .all(|at| *at == instant(61))
    );
}

#[tokio::test]
async fn a_clock_running_ahead_takes_the_lease_early_and_fencing_still_holds() {
    let moto = Moto::start().await;
    let honest = moto.store("skew").await;
    let ahead = Arc::new(ManualClock::new(SystemClock.now() + TimeDelta::seconds(60)));
    let skewed = DynamoStore::connect(moto.config("skew"))
        .await
        .unwrap()
        .with_clock(ahead.clone());
    let a = honest
        .acquire_lease("a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    // To a clock a minute ahead, a's 30 s lease has expired already: the documented
    // assumption (clocks agree to well within the TTL) is broken, and b takes over.
    let b = skewed
        .acquire_lease("b", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the skewed server sees an expired lease");
    assert!(b.token > a.token);
    // a still believes it leads, but its writes are fenced by the token.
    assert!(
        !honest
            .renew_lease(&a, Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert_eq!(
        honest
            .record_fires(a.token, &[("j".to_owned(), instant(1))])
            .await,
        Err(StoreError::Fenced(a.token))
    );
    skewed
        .record_fires(b.token, &[("j".to_owned(), instant(2))])
        .await
        .unwrap();
    assert_eq!(
        honest.fire_ledger().await.unwrap().get("j"),
        Some(&instant(2))
    );
    // And to the honest clock b's lease, written 60 s ahead, lasts 60 s longer.
    assert_eq!(honest.current_lease().await.unwrap(), Some(b));
    ahead.advance(TimeDelta::seconds(31));
    assert_eq!(skewed.current_lease().await.unwrap(), None);
}

#[tokio::test]
async fn a_lost_version_counter_catches_up_with_the_stored_versions() {
    let moto = Moto::start().await;
    let store = moto.store("counter").await;
    store.commit_jobs(vec![put("a")]).await.unwrap();
    for _ in 0..3 {
        let any = JobOp::Put {
            job: job("a"),
            expect: Expect::Any,
        };
        store.commit_jobs(vec![any]).await.unwrap();
    }
    let before = store.get_job("a").await.unwrap().unwrap().version;
    moto.raw()
        .delete_item()
        .table_name("counter")
        .key("pk", AttributeValue::S("counter".to_owned()))
        .key("sk", AttributeValue::S("version".to_owned()))
        .send()
        .await
        .unwrap();

    let any = JobOp::Put {
        job: job("a"),
        expect: Expect::Any,
    };
    store.commit_jobs(vec![any]).await.unwrap();
    let after_put = store.get_job("a").await.unwrap().unwrap().version;
    assert!(after_put > before, "{after_put} after {before}");
    let cas = JobOp::Put {
        job: job("a"),
        expect: Expect::Version(after_put),
    };
    store.commit_jobs(vec![cas]).await.unwrap();
    let after_cas = store.get_job("a").await.unwrap().unwrap().version;
    assert!(after_cas > after_put, "{after_cas} after {after_put}");

    moto.raw()
        .delete_item()
        .table_name("counter")
        .key("pk", AttributeValue::S("counter".to_owned()))
        .key("sk", AttributeValue::S("version".to_owned()))
        .send()
        .await
        .unwrap();
    let finished = store
        .finish_execution(&execution("a", 1, "n", true), 10)
        .await
        .unwrap()
        .expect("the job exists");
    let stored = store.get_job("a").await.unwrap().unwrap();
    assert_eq!(stored.value, finished);
    assert!(
        stored.version > after_cas,
        "{} after {after_cas}",
        stored.version
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_finishes_from_two_servers_count_every_execution() {
    let moto = Moto::start().await;
    let first = Arc::new(moto.store("finishes").await);
    let second = Arc::new(moto.store("finishes").await);
    first.commit_jobs(vec![put("busy")]).await.unwrap();
    let mut tasks = Vec::new();
    for index in 0..12 {
        let store = Arc::clone(if index % 2 == 0 { &first } else { &second });
        tasks.push(tokio::spawn(async move {
            let run = execution("busy", index, &format!("node-{index}"), index % 3 != 0);
            store.finish_execution(&run, 100).await
        }));
    }
    for task in tasks {
        let answer = task.await.unwrap();
        assert!(matches!(answer, Ok(Some(_))), "{answer:?}");
    }
    let job = first.get_job("busy").await.unwrap().unwrap().value;
    assert_eq!((job.success_count, job.error_count), (8, 4));
    assert_eq!(
        first.list_executions("busy", false).await.unwrap().len(),
        12
    );
}
