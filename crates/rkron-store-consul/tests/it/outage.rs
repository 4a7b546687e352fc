//! A Consul outage: a frozen server makes calls answer `Unavailable` after the timeout, a
//! stopped one at once, never a hang or a panic; restarted on the same port with its data, it
//! serves the same store instance again.

use std::future::Future;
use std::time::Duration;

use rkron_store::testsuite::job;
use rkron_store::{Expect, JobOp, Store, StoreError};
use rkron_store_consul::{ConnectError, ConsulConfig, ConsulStore};
use tokio::time::Instant;

use crate::fake::FakeConsul;

const TIMEOUT: Duration = Duration::from_secs(1);

/// Runs `call`; asserts that it answers `Unavailable` within `within`, and answers the time.
async fn expect_unavailable<T: std::fmt::Debug>(
    what: &str,
    within: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Duration {
    let started = Instant::now();
    let answer = tokio::time::timeout(within + Duration::from_secs(5), call)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung instead of answering Unavailable"));
    let elapsed = started.elapsed();
    assert!(
        matches!(answer, Err(StoreError::Unavailable(_))),
        "{what}: {answer:?}"
    );
    assert!(
        elapsed <= within,
        "{what}: took {elapsed:?}, more than {within:?}"
    );
    elapsed
}

fn create(name: &str) -> Vec<JobOp> {
    vec![JobOp::Put {
        job: job(name),
        expect: Expect::Absent,
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_answers_unavailable_and_recovery_serves_again() {
    let mut consul = FakeConsul::start().await;
    let config = ConsulConfig {
        timeout: TIMEOUT,
        ..consul.config("outage")
    };
    let store = ConsulStore::connect(config.clone()).await.expect("connect");
    store.commit_jobs(create("before")).await.expect("write");

    // Frozen: the request is sent and never answered, so the timeout decides.
    consul.freeze();
    let waited = expect_unavailable(
        "get_job on a frozen Consul",
        TIMEOUT + Duration::from_millis(500),
        store.get_job("before"),
    )
    .await;
    assert!(
        waited >= TIMEOUT - Duration::from_millis(100),
        "answered before the timeout: {waited:?}"
    );
    expect_unavailable(
        "record_fires on a frozen Consul",
        TIMEOUT + Duration::from_millis(500),
        store.record_fires(
            1,
            &[("before".to_owned(), rkron_store::testsuite::instant(1))],
        ),
    )
    .await;
    consul.thaw();
    assert!(store.get_job("before").await.expect("thawed").is_some());

    // Stopped: connections are refused, so calls fail at once.
    consul.stop().await;
    expect_unavailable(
        "get_job on a stopped Consul",
        Duration::from_millis(500),
        store.get_job("before"),
    )
    .await;
    expect_unavailable(
        "commit_jobs on a stopped Consul",
        Duration::from_millis(500),
        store.commit_jobs(create("during")),
    )
    .await;
    expect_unavailable(
        "acquire_lease on a stopped Consul",
        Duration::from_millis(500),
        store.acquire_lease("a", Duration::from_secs(5)),
    )
    .await;
    let refused = ConsulStore::connect(config).await;
    assert!(
        matches!(refused, Err(ConnectError::Unavailable(_))),
        "connect to a stopped Consul: {refused:?}"
    );

    // Restarted on the same port with its data: the same store instance serves again.
    consul.restart().await;
    assert!(
        store
            .get_job("before")
            .await
            .expect("after restart")
            .is_some(),
        "the data survived the outage"
    );
    assert!(store.get_job("during").await.unwrap().is_none());
    store
        .commit_jobs(create("after"))
        .await
        .expect("write after restart");
    let lease = store
        .acquire_lease("a", Duration::from_secs(5))
        .await
        .expect("acquire after restart");
    assert!(lease.is_some(), "the lease is free after the restart");
}
