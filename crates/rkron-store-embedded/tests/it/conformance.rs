//! The shared store conformance suite, run against the embedded store on temp dirs.

use std::sync::atomic::{AtomicUsize, Ordering};

use rkron_store::testsuite;
use rkron_store_embedded::EmbeddedStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_passes_the_conformance_suite() {
    let root = tempfile::tempdir().unwrap();
    let opened = AtomicUsize::new(0);
    testsuite::run_all(|| {
        let data_dir = root
            .path()
            .join(opened.fetch_add(1, Ordering::Relaxed).to_string());
        async move { EmbeddedStore::open(&data_dir).unwrap() }
    })
    .await;
}
