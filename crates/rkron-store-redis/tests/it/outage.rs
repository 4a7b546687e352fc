//! A dead or hung server answers `Unavailable` within the timeout; the store recovers once the
//! server is back.

use std::time::Duration;

use rkron_store::testsuite::{instant, job};
use rkron_store::{Expect, JobOp, Store, StoreError};
use rkron_store_redis::{RedisConfig, RedisStore};
use tokio::time::Instant;

use crate::server::RedisServer;

const TIMEOUT: Duration = Duration::from_secs(2);
/// Slack for scheduling on a busy machine.
const SLACK: Duration = Duration::from_millis(1_500);

fn config(server: &RedisServer) -> RedisConfig {
    RedisConfig {
        timeout: TIMEOUT,
        ..server.config("outage")
    }
}

fn put(name: &str) -> Vec<JobOp> {
    vec![JobOp::Put {
        job: job(name),
        expect: Expect::Any,
    }]
}

/// Asserts that `answer` is `Unavailable` and came within the timeout.
fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    answer: &Result<T, StoreError>,
    took: Duration,
) {
    assert!(
        matches!(answer, Err(StoreError::Unavailable(_))),
        "{what}: expected Unavailable, got {answer:?}"
    );
    assert!(took <= TIMEOUT + SLACK, "{what}: took {took:?}");
}

/// Retries `put_meta` until the store answers again.
async fn wait_until_available(store: &RedisStore) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.put_meta("probe", "1").await {
            Ok(()) => return,
            Err(error) if Instant::now() < deadline => {
                eprintln!("still unavailable: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("the store did not recover: {error}"),
        }
    }
}

#[tokio::test]
async fn a_killed_server_answers_unavailable_and_a_restarted_one_serves_again() {
    let mut server = RedisServer::start().await;
    let store = RedisStore::connect(config(&server)).await.unwrap();
    store.commit_jobs(put("before")).await.unwrap();
    server.kill();

    let started = Instant::now();
    let answer = store.get_job("before").await;
    assert_unavailable("get_job", &answer, started.elapsed());
    let started = Instant::now();
    let answer = store.commit_jobs(put("during")).await;
    assert_unavailable("commit_jobs", &answer, started.elapsed());
    let started = Instant::now();
    let answer = store.record_fires(1, &[("j".to_owned(), instant(1))]).await;
    assert_unavailable("record_fires", &answer, started.elapsed());
    let started = Instant::now();
    let answer = store.acquire_lease("a", Duration::from_secs(5)).await;
    assert_unavailable("acquire_lease", &answer, started.elapsed());

    // Nothing persists across this restart (no save, no append-only file), and the script cache
    // starts empty: scripts must be loaded again.
    server.restart().await;
    wait_until_available(&store).await;
    store.commit_jobs(put("after")).await.unwrap();
    let names: Vec<String> = store
        .list_jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|job| job.name)
        .collect();
    assert_eq!(names, ["after"]);
    let lease = store
        .acquire_lease("a", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a free lease");
    store
        .record_fires(lease.token, &[("after".to_owned(), instant(1))])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_hung_server_answers_unavailable_within_the_timeout() {
    let server = RedisServer::start().await;
    let store = RedisStore::connect(config(&server)).await.unwrap();
    store.put_meta("k", "v").await.unwrap();
    let pid = server.pid().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {name} {pid}");
    };

    signal("-STOP");
    rkron_store::testsuite::until_stopped(server.pid()).await;
    let started = Instant::now();
    let answer = store.get_meta("k").await;
    assert_unavailable("get_meta on a stopped server", &answer, started.elapsed());
    let started = Instant::now();
    let answer = store.commit_jobs(put("stuck")).await;
    assert_unavailable(
        "commit_jobs on a stopped server",
        &answer,
        started.elapsed(),
    );
    signal("-CONT");

    wait_until_available(&store).await;
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn connecting_to_nothing_answers_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = RedisConfig {
        addresses: vec![format!("127.0.0.1:{port}")],
        timeout: TIMEOUT,
        ..RedisConfig::default()
    };
    let started = Instant::now();
    let answer = RedisStore::connect(config).await;
    assert_unavailable("connect", &answer, started.elapsed());
}
