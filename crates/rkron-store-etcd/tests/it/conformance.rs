//! The shared store conformance suite, against one etcd with a fresh keyspace per store.

use std::sync::atomic::{AtomicUsize, Ordering};

use rkron_store::testsuite;
use rkron_store_etcd::EtcdStore;

use crate::server::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_store_passes_the_conformance_suite() {
    let etcd = Etcd::start().await;
    let opened = AtomicUsize::new(0);
    testsuite::run_all(|| {
        let config = etcd.config(&format!("t{}", opened.fetch_add(1, Ordering::Relaxed)));
        async move { EtcdStore::connect(config).await.unwrap() }
    })
    .await;
}
