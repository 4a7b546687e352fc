//! The shared store conformance suite, against one fake Consul with a fresh keyspace per store.

use std::sync::atomic::{AtomicUsize, Ordering};

use rkron_store::testsuite;
use rkron_store_consul::ConsulStore;

use crate::fake::FakeConsul;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consul_store_passes_the_conformance_suite() {
    let consul = FakeConsul::start().await;
    let opened = AtomicUsize::new(0);
    testsuite::run_all(|| {
        let config = consul.config(&format!("t{}", opened.fetch_add(1, Ordering::Relaxed)));
        async move { ConsulStore::connect(config).await.unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_store_passes_the_conformance_suite_with_a_token() {
    let consul = FakeConsul::start_with_token(Some("s3cret")).await;
    let opened = AtomicUsize::new(0);
    testsuite::run_all(|| {
        let mut config = consul.config(&format!("t{}", opened.fetch_add(1, Ordering::Relaxed)));
        config.token = Some("s3cret".to_owned());
        async move { ConsulStore::connect(config).await.unwrap() }
    })
    .await;
}
