//! Token auth: a fake Consul with ACLs refuses a store without a token or with a wrong one,
//! serves one with the right token, and the token never shows in debug output.

use std::time::Duration;

use rkron_store::testsuite::{instant, job};
use rkron_store::{Expect, JobOp, Store};
use rkron_store_consul::{ConnectError, ConsulConfig, ConsulStore};

use crate::fake::FakeConsul;

fn with_token(consul: &FakeConsul, token: &str) -> ConsulConfig {
    ConsulConfig {
        token: Some(token.to_owned()),
        ..consul.config("auth")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_checked_and_hidden() {
    let consul = FakeConsul::start_with_token(Some("s3cret-token")).await;

    let anonymous = ConsulStore::connect(consul.config("auth")).await;
    assert!(
        matches!(anonymous, Err(ConnectError::Auth(_))),
        "no token: {anonymous:?}"
    );
    let wrong = ConsulStore::connect(with_token(&consul, "wrong")).await;
    assert!(
        matches!(wrong, Err(ConnectError::Auth(_))),
        "wrong token: {wrong:?}"
    );

    let config = with_token(&consul, "s3cret-token");
    assert!(!format!("{config:?}").contains("s3cret-token"));
    let store = ConsulStore::connect(config).await.expect("the right token");
    assert!(!format!("{store:?}").contains("s3cret-token"));
    let op = JobOp::Put {
        job: job("secured"),
        expect: Expect::Absent,
    };
    store
        .commit_jobs(vec![op])
        .await
        .expect("write with a token");
    assert!(store.get_job("secured").await.unwrap().is_some());
    let lease = store
        .acquire_lease("server-1", Duration::from_secs(5))
        .await
        .expect("acquire")
        .expect("granted");
    store
        .record_fires(lease.token, &[("secured".to_owned(), instant(1))])
        .await
        .expect("fenced write with a token");
    assert!(
        store
            .renew_lease(&lease, Duration::from_secs(5))
            .await
            .unwrap()
    );
}
