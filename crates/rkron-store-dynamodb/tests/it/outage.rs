//! A dead or hung endpoint answers `Unavailable` within the timeout; the store serves again once
//! the endpoint is back.

use std::time::Duration;

use nix::sys::signal::Signal;
use rkron_store::testsuite::{instant, job};
use rkron_store::{Expect, JobOp, Store, StoreError};
use rkron_store_dynamodb::{DynamoConfig, DynamoStore};
use tokio::time::Instant;

use crate::server::Moto;

const TIMEOUT: Duration = Duration::from_secs(2);
/// Slack for scheduling on a busy machine.
const SLACK: Duration = Duration::from_millis(1_500);

fn config(moto: &Moto, table: &str) -> DynamoConfig {
    DynamoConfig {
        timeout: TIMEOUT,
        ..moto.config(table)
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

/// Retries `what` until it succeeds.
async fn wait_until_available<F, Fut>(what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match attempt().await {
            Ok(()) => return,
            Err(error) if Instant::now() < deadline => {
                eprintln!("{what}: still unavailable: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("{what}: the store did not recover: {error}"),
        }
    }
}

#[tokio::test]
async fn a_killed_endpoint_answers_unavailable_and_a_restarted_one_serves_again() {
    let mut moto = Moto::start().await;
    let store = DynamoStore::connect(config(&moto, "outage")).await.unwrap();
    store.commit_jobs(put("before")).await.unwrap();
    moto.kill();

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
    let started = Instant::now();
    let answer = DynamoStore::connect(config(&moto, "outage")).await;
    assert_unavailable("connect", &answer, started.elapsed());

    // moto keeps nothing across a restart, not even the table: connecting again creates it,
    // and then the first store, whose client saw its connections die, serves again too.
    moto.restart().await;
    wait_until_available("connect", || async {
        DynamoStore::connect(config(&moto, "outage"))
            .await
            .map(|_| ())
    })
    .await;
    wait_until_available("put_meta", || store.put_meta("probe", "1")).await;
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
async fn a_hung_endpoint_answers_unavailable_within_the_timeout() {
    let moto = Moto::start().await;
    let store = DynamoStore::connect(config(&moto, "hung")).await.unwrap();
    store.put_meta("k", "v").await.unwrap();

    moto.pause().await;
    let started = Instant::now();
    let answer = store.get_meta("k").await;
    assert_unavailable("get_meta on a stopped endpoint", &answer, started.elapsed());
    let started = Instant::now();
    let answer = store.commit_jobs(put("stuck")).await;
    assert_unavailable(
        "commit_jobs on a stopped endpoint",
        &answer,
        started.elapsed(),
    );
    moto.signal(Signal::SIGCONT);

    wait_until_available("put_meta", || store.put_meta("probe", "1")).await;
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn connecting_to_nothing_answers_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = DynamoConfig {
        endpoint: Some(format!("127.0.0.1:{port}")),
        region: "us-east-1".to_owned(),
        access_key: Some("test".to_owned()),
        secret_key: Some("test".to_owned()),
        create_table: true,
        timeout: TIMEOUT,
        ..DynamoConfig::default()
    };
    let started = Instant::now();
    let answer = DynamoStore::connect(config).await;
    assert_unavailable("connect", &answer, started.elapsed());
}
