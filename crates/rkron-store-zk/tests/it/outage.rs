//! A ZooKeeper outage: a frozen server makes calls answer `Unavailable` after the request
//! timeout, a killed one within it, never a hang or a panic; a restarted one on the same port
//! and data dir serves again with the data written before, also after the session expired.

use std::future::Future;
use std::time::Duration;

use rkron_store::testsuite::job;
use rkron_store::{Expect, JobOp, Store, StoreError};
use rkron_store_zk::{ConnectError, ZkConfig, ZkStore};
use tokio::time::Instant;

use crate::server::{SESSION_TIMEOUT, ZooKeeper};

/// Shorter than the client's own connection timeout (2/5 of the 4 s session timeout), so that
/// the store's request timeout is what answers a frozen server.
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

/// Retries a read until it succeeds (the server is coming back), for up to 20 s.
async fn until_served(store: &ZkStore, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.get_job(name).await {
            Ok(found) => {
                assert!(found.is_some(), "{name} survived the outage");
                return;
            }
            Err(error) if Instant::now() < deadline => {
                eprintln!("waiting for zookeeper: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("zookeeper did not serve again: {error}"),
        }
    }
}

fn put(name: &str) -> JobOp {
    JobOp::Put {
        job: job(name),
        expect: Expect::Absent,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_answers_unavailable_and_recovery_serves_again() {
    let mut zk = ZooKeeper::start().await;
    let config = ZkConfig {
        request_timeout: TIMEOUT,
        ..zk.config("outage")
    };
    let store = ZkStore::connect(config.clone()).await.expect("connect");
    store.commit_jobs(vec![put("before")]).await.expect("write");

    // Frozen: the request is sent and never answered, so the timeout decides.
    zk.pause().await;
    let waited = expect_unavailable(
        "get_job on a frozen zookeeper",
        TIMEOUT + Duration::from_secs(1),
        store.get_job("before"),
    )
    .await;
    assert!(
        waited >= TIMEOUT - Duration::from_millis(100),
        "answered before the timeout: {waited:?}"
    );
    zk.resume();
    until_served(&store, "before").await;

    // Killed, briefly: the session survives the restart.
    zk.kill();
    let within = TIMEOUT + Duration::from_millis(500);
    expect_unavailable(
        "get_job on a dead zookeeper",
        within,
        store.get_job("before"),
    )
    .await;
    expect_unavailable(
        "commit_jobs on a dead zookeeper",
        within,
        store.commit_jobs(vec![put("during")]),
    )
    .await;
    expect_unavailable(
        "acquire_lease on a dead zookeeper",
        within,
        store.acquire_lease("a", Duration::from_secs(5)),
    )
    .await;
    let started = Instant::now();
    let refused = ZkStore::connect(config.clone()).await;
    assert!(
        matches!(refused, Err(ConnectError::Unavailable(_))),
        "connect to a dead zookeeper: {refused:?}"
    );
    assert!(
        started.elapsed() <= within,
        "connect took {:?}",
        started.elapsed()
    );
    zk.restart().await;
    until_served(&store, "before").await;
    store
        .commit_jobs(vec![put("after")])
        .await
        .expect("write after restart");

    // Killed for longer than the session timeout: the session ends, the next calls open a new
    // one, and the lease the old session held is gone.
    let lease = store
        .acquire_lease("a", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("granted");
    zk.kill();
    expect_unavailable(
        "get_job on a dead zookeeper",
        within,
        store.get_job("after"),
    )
    .await;
    tokio::time::sleep(SESSION_TIMEOUT + Duration::from_secs(2)).await;
    expect_unavailable(
        "get_job after the session expired",
        within,
        store.get_job("after"),
    )
    .await;
    zk.restart().await;
    until_served(&store, "after").await;
    let other = ZkStore::connect(config)
        .await
        .expect("connect after restart");
    let deadline = Instant::now() + SESSION_TIMEOUT + Duration::from_secs(5);
    let taken = loop {
        // The server expires the old session one session timeout after it restarted.
        if let Some(taken) = other
            .acquire_lease("b", Duration::from_secs(60))
            .await
            .expect("acquire after restart")
        {
            break taken;
        }
        assert!(
            Instant::now() < deadline,
            "the lease of the expired session was never freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(taken.token > lease.token);
    assert!(
        !store
            .renew_lease(&lease, Duration::from_secs(60))
            .await
            .expect("renew after restart"),
        "a lease of an expired session cannot be renewed"
    );
}
