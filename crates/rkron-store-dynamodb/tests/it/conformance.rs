//! The shared conformance suite, and the size of one scheduler tick.

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use rkron_store::Store;
use rkron_store::testsuite;
use rkron_store_dynamodb::DynamoStore;
use tokio::time::Instant;

use crate::server::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_with_a_fresh_table_per_store() {
    let moto = Moto::start().await;
    let stores = AtomicUsize::new(0);
    let started = Instant::now();
    testsuite::run_all(|| {
        let table = format!("suite-{}", stores.fetch_add(1, Ordering::Relaxed));
        let config = moto.config(&table);
        async move {
            DynamoStore::connect(config)
                .await
                .unwrap_or_else(|error| panic!("connect to table {table}: {error}"))
        }
    })
    .await;
    eprintln!(
        "conformance suite: {} stores in {:?}",
        stores.load(Ordering::Relaxed),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_fires_takes_ten_thousand_entries_in_one_call() {
    let moto = Moto::start().await;
    let store = moto.store("tick").await;
    let lease = store
        .acquire_lease("leader", std::time::Duration::from_secs(120))
        .await
        .unwrap()
        .unwrap();
    let fires: Vec<(String, DateTime<Utc>)> = (0..10_000)
        .map(|index| (format!("job-{index:05}"), testsuite::instant(index)))
        .collect();
    let first = Instant::now();
    store.record_fires(lease.token, &fires).await.unwrap();
    let first = first.elapsed();
    let later: Vec<(String, DateTime<Utc>)> = fires
        .iter()
        .map(|(job, instant)| (job.clone(), *instant + chrono::TimeDelta::seconds(60)))
        .collect();
    let second = Instant::now();
    store.record_fires(lease.token, &later).await.unwrap();
    let second = second.elapsed();
    let unchanged = Instant::now();
    store.record_fires(lease.token, &later).await.unwrap();
    let unchanged = unchanged.elapsed();
    eprintln!(
        "record_fires of 10,000 entries: {first:?} (new ledger), {second:?} (updating), \
         {unchanged:?} (nothing moves)"
    );
    let ledger = store.fire_ledger().await.unwrap();
    assert_eq!(ledger.len(), 10_000);
    assert!(
        later
            .iter()
            .all(|(job, instant)| ledger.get(job) == Some(instant))
    );
}
