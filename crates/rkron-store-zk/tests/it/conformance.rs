//! The shared store conformance suite, against one ZooKeeper with a fresh keyspace per store.

use std::sync::atomic::{AtomicUsize, Ordering};

use rkron_store::testsuite;
use rkron_store_zk::ZkStore;
use tokio::time::Instant;

use crate::server::ZooKeeper;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zk_store_passes_the_conformance_suite() {
    let zk = ZooKeeper::start().await;
    let opened = AtomicUsize::new(0);
    let started = Instant::now();
    testsuite::run_all(|| {
        let config = zk.config(&format!("t{}", opened.fetch_add(1, Ordering::Relaxed)));
        async move { ZkStore::connect(config).await.unwrap() }
    })
    .await;
    eprintln!(
        "conformance suite: {} stores in {:?}",
        opened.load(Ordering::Relaxed),
        started.elapsed()
    );
}
