//! An etcd outage: a frozen server makes calls answer `Unavailable` after the request timeout,
//! a killed one at once, never a hang or a panic; a restarted one on the same data dir serves
//! again, with the data written before. A dead endpoint in the list is skipped.

use std::future::Future;
use std::time::Duration;

use rkron_store::testsuite::job;
use rkron_store::{Expect, JobOp, Store, StoreError};
use rkron_store_etcd::{EtcdConfig, EtcdStore};
use tokio::time::Instant;

use crate::server::Etcd;

const TIMEOUT: Duration = Duration::from_secs(2);

/// tcpmux's privileged port: no test server listens there, so connections are refused.
const DEAD_ENDPOINT: &str = "127.0.0.1:1";

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

/// Retries a read until it succeeds (the server is coming back), for up to 20 s.
async fn until_served(store: &EtcdStore, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.get_job(name).await {
            Ok(found) => {
                assert!(found.is_some(), "{name} survived the outage");
                return;
            }
            Err(error) if Instant::now() < deadline => {
                eprintln!("waiting for etcd: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("etcd did not serve again: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_answers_unavailable_and_recovery_serves_again() {
    let mut etcd = Etcd::start().await;
    // A port nothing listens on (a released port-0 port could be taken by another test's
    // server meanwhile), listed first: the store moves on to the live endpoint.
    let dead_endpoint = DEAD_ENDPOINT.to_owned();
    let store = EtcdStore::connect(EtcdConfig {
        endpoints: vec![dead_endpoint.clone(), etcd.endpoint()],
        request_timeout: TIMEOUT,
        ..etcd.config("outage")
    })
    .await
    .expect("connect past a dead endpoint");
    let op = JobOp::Put {
        job: job("before"),
        expect: Expect::Absent,
    };
    store.commit_jobs(vec![op]).await.expect("write");

    // Frozen: the request is sent and never answered, so the timeout decides.
    etcd.pause().await;
    let waited = expect_unavailable(
        "get_job on a frozen etcd",
        TIMEOUT + Duration::from_secs(1),
        store.get_job("before"),
    )
    .await;
    assert!(
        waited >= TIMEOUT - Duration::from_millis(100),
        "answered before the timeout: {waited:?}"
    );
    etcd.resume();
    until_served(&store, "before").await;

    // Killed: connections are refused, so every endpoint fails at once.
    etcd.kill();
    expect_unavailable(
        "get_job on a dead etcd",
        Duration::from_secs(1),
        store.get_job("before"),
    )
    .await;
    let op = JobOp::Put {
        job: job("during"),
        expect: Expect::Absent,
    };
    expect_unavailable(
        "commit_jobs on a dead etcd",
        Duration::from_secs(1),
        store.commit_jobs(vec![op]),
    )
    .await;
    expect_unavailable(
        "acquire_lease on a dead etcd",
        Duration::from_secs(1),
        store.acquire_lease("a", Duration::from_secs(5)),
    )
    .await;
    let refused = EtcdStore::connect(EtcdConfig {
        endpoints: vec![dead_endpoint, etcd.endpoint()],
        ..etcd.config("outage")
    })
    .await;
    assert!(
        matches!(refused, Err(rkron_store_etcd::ConnectError::Unavailable(_))),
        "connect to a dead etcd: {refused:?}"
    );

    // Restarted on the same data dir and ports: the same store instance serves again.
    etcd.restart().await;
    until_served(&store, "before").await;
    let op = JobOp::Put {
        job: job("after"),
        expect: Expect::Absent,
    };
    store
        .commit_jobs(vec![op])
        .await
        .expect("write after restart");
    let lease = store
        .acquire_lease("a", Duration::from_secs(5))
        .await
        .expect("acquire after restart");
    assert!(lease.is_some(), "the lease is free after the restart");
}
