//! Integration tests of rkron-store: the conformance suite against [`MemoryStore`].

use rkron_store::MemoryStore;
use rkron_store::testsuite;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_conformance_suite() {
    testsuite::run_all(|| async { MemoryStore::new() }).await;
}
