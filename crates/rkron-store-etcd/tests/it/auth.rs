//! etcd authentication: a cluster with auth enabled refuses a store without credentials or with
//! a wrong password, serves one with the right ones, and the store re-authenticates when its
//! token expires.

use std::time::Duration;

use rkron_store::testsuite::{instant, job};
use rkron_store::{Expect, JobOp, Store};
use rkron_store_etcd::{ConnectError, EtcdConfig, EtcdStore};

use crate::server::Etcd;

/// Enables authentication with a `root` user (who must hold the `root` role) of `password`.
async fn enable_auth(etcd: &Etcd, password: &str) {
    let root = serde_json::json!({"name": "root", "password": password});
    etcd.post("/v3/auth/user/add", root).await;
    let role = serde_json::json!({"name": "root"});
    etcd.post("/v3/auth/role/add", role).await;
    let grant = serde_json::json!({"user": "root", "role": "root"});
    etcd.post("/v3/auth/user/grant", grant).await;
    etcd.post("/v3/auth/enable", serde_json::json!({})).await;
}

fn with_credentials(etcd: &Etcd, password: &str) -> EtcdConfig {
    EtcdConfig {
        username: Some("root".to_owned()),
        password: Some(password.to_owned()),
        ..etcd.config("auth")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_required_checked_and_renewed() {
    // Tokens expire after 1 s without use, so the test sees the store re-authenticate.
    let etcd = Etcd::start_with(&["--auth-token-ttl", "1", "--bcrypt-cost", "4"]).await;

    // Before auth is enabled, credentials are tolerated (with a warning) and unused.
    let early = EtcdStore::connect(with_credentials(&etcd, "pw"))
        .await
        .expect("credentials on a cluster without auth");
    enable_auth(&etcd, "pw").await;

    let anonymous = EtcdStore::connect(etcd.config("auth")).await;
    assert!(
        matches!(anonymous, Err(ConnectError::Auth(_))),
        "no credentials: {anonymous:?}"
    );
    let wrong = EtcdStore::connect(with_credentials(&etcd, "wrong")).await;
    assert!(
        matches!(wrong, Err(ConnectError::Auth(_))),
        "wrong password: {wrong:?}"
    );

    let store = EtcdStore::connect(with_credentials(&etcd, "pw"))
        .await
        .expect("the right credentials");
    let op = JobOp::Put {
        job: job("secured"),
        expect: Expect::Absent,
    };
    store
        .commit_jobs(vec![op])
        .await
        .expect("write with a token");
    let lease = store
        .acquire_lease("server-1", Duration::from_secs(5))
        .await
        .expect("acquire")
        .expect("granted");
    store
        .record_fires(lease.token, &[("secured".to_owned(), instant(1))])
        .await
        .expect("fenced write with a token");

    // The token expires: the next call re-authenticates transparently.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let read = store.get_job("secured").await.expect("read after expiry");
    assert!(read.is_some(), "job readable after re-authentication");
    assert!(
        store
            .renew_lease(&lease, Duration::from_secs(5))
            .await
            .expect("renew after expiry"),
        "lease renewed"
    );

    // The store that connected before auth was enabled sent no token; it now authenticates.
    let names: Vec<String> = early
        .list_jobs()
        .await
        .expect("the early store authenticates once auth is on")
        .into_iter()
        .map(|job| job.name)
        .collect();
    assert_eq!(names, ["secured"]);
}
