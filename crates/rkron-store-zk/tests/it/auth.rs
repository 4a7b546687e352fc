//! Digest authentication: a keyspace created with credentials is closed to sessions without
//! them or with another password; the right credentials serve it, across a new session too.

use std::time::Duration;

use rkron_store::testsuite::{instant, job};
use rkron_store::{Expect, JobOp, Store};
use rkron_store_zk::{ConnectError, ZkConfig, ZkStore};

use crate::server::ZooKeeper;

fn with_credentials(zk: &ZooKeeper, password: &str) -> ZkConfig {
    ZkConfig {
        username: Some("rkron".to_owned()),
        password: Some(password.to_owned()),
        ..zk.config("secured")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_guard_the_keyspace() {
    let zk = ZooKeeper::start().await;
    let store = ZkStore::connect(with_credentials(&zk, "pw"))
        .await
        .expect("the first store creates the keyspace");
    let printed = format!("{store:?} {:?}", with_credentials(&zk, "pw"));
    assert!(!printed.contains("\"pw\""), "{printed}");
    let op = JobOp::Put {
        job: job("secret"),
        expect: Expect::Absent,
    };
    store.commit_jobs(vec![op]).await.expect("write");
    let lease = store
        .acquire_lease("server-1", Duration::from_secs(10))
        .await
        .expect("acquire")
        .expect("granted");
    store
        .record_fires(lease.token, &[("secret".to_owned(), instant(1))])
        .await
        .expect("fenced write");

    let anonymous = ZkStore::connect(zk.config("secured")).await;
    assert!(
        matches!(anonymous, Err(ConnectError::Auth(_))),
        "no credentials: {anonymous:?}"
    );
    let wrong = ZkStore::connect(with_credentials(&zk, "wrong")).await;
    assert!(
        matches!(wrong, Err(ConnectError::Auth(_))),
        "wrong password: {wrong:?}"
    );
    let other_user = ZkStore::connect(ZkConfig {
        username: Some("intruder".to_owned()),
        ..with_credentials(&zk, "pw")
    })
    .await;
    assert!(
        matches!(other_user, Err(ConnectError::Auth(_))),
        "another user: {other_user:?}"
    );

    // A raw anonymous session cannot read the job either.
    let raw = zk.client().await;
    let read = raw.get_data("/secured/jobs/secret").await;
    assert_eq!(read.unwrap_err(), zookeeper_client::Error::NoAuth);

    // The right credentials in another session read everything back.
    let again = ZkStore::connect(with_credentials(&zk, "pw"))
        .await
        .expect("the right credentials");
    assert!(again.get_job("secret").await.unwrap().is_some());
    assert_eq!(again.current_lease().await.unwrap(), Some(lease));
    assert_eq!(again.fire_ledger().await.unwrap().len(), 1);

    // Other keyspaces on the same server stay open to anyone.
    let open = zk.store("open").await;
    assert!(open.list_jobs().await.unwrap().is_empty());

    let bad = ZkStore::connect(ZkConfig {
        username: None,
        ..with_credentials(&zk, "pw")
    })
    .await;
    assert!(matches!(bad, Err(ConnectError::Config(_))), "{bad:?}");
}
