//! Leases across sessions: another store judges expiry on its own clock from when it first saw
//! the lease's current version, and a holder whose session closes frees the lease at once.

use std::time::Duration;

use rkron_store::testsuite::instant;
use rkron_store::{Store, StoreError};
use tokio::time::{Instant, sleep};

use crate::server::ZooKeeper;

const TTL: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_store_waits_a_full_ttl_from_the_last_renewal_it_saw() {
    let zk = ZooKeeper::start().await;
    let holder = zk.store("leases").await;
    let observer = zk.store("leases").await;
    let start = Instant::now();
    let a = holder
        .acquire_lease("a", TTL)
        .await
        .unwrap()
        .expect("a free lease");
    assert_eq!(observer.current_lease().await.unwrap(), Some(a.clone()));
    assert_eq!(observer.acquire_lease("b", TTL).await.unwrap(), None);

    sleep(Duration::from_millis(1_000)).await;
    assert!(
        holder.renew_lease(&a, TTL).await.unwrap(),
        "renewed in time"
    );
    let renewed = Instant::now();
    sleep(Duration::from_millis(500)).await;
    // The observer sees the renewal now: its TTL restarts from here.
    assert_eq!(observer.acquire_lease("b", TTL).await.unwrap(), None);
    let seen = Instant::now();

    // The holder's own view ends TTL after it sent the renewal.
    let until = renewed + TTL + Duration::from_millis(100);
    tokio::time::sleep_until(until).await;
    assert!(
        !holder.renew_lease(&a, TTL).await.unwrap(),
        "an expired lease is not renewed"
    );
    let fenced = holder
        .record_fires(a.token, &[("j".to_owned(), instant(1))])
        .await;
    assert_eq!(fenced, Err(StoreError::Fenced(a.token)));
    assert_eq!(holder.current_lease().await.unwrap(), None);
    if Instant::now() + Duration::from_millis(200) < seen + TTL {
        assert_eq!(
            observer.acquire_lease("b", TTL).await.unwrap(),
            None,
            "the observer must wait a whole TTL from when it saw the renewal"
        );
    }

    tokio::time::sleep_until(seen + TTL + Duration::from_millis(100)).await;
    let b = observer
        .acquire_lease("b", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("taken over after the observer's TTL");
    assert!(b.token > a.token);
    assert_eq!(holder.current_lease().await.unwrap(), Some(b.clone()));
    observer
        .record_fires(b.token, &[("j".to_owned(), instant(2))])
        .await
        .expect("the new leader writes");
    eprintln!("takeover after {:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_session_frees_the_lease_at_once() {
    let zk = ZooKeeper::start().await;
    let holder = zk.store("closing").await;
    let other = zk.store("closing").await;
    let a = holder
        .acquire_lease("a", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("granted");
    assert_eq!(
        other
            .acquire_lease("b", Duration::from_secs(60))
            .await
            .unwrap(),
        None
    );
    // The same holder name through another session does not adopt the lease.
    assert_eq!(
        other
            .acquire_lease("a", Duration::from_secs(60))
            .await
            .unwrap(),
        None
    );
    assert!(
        !other
            .renew_lease(&a, Duration::from_secs(60))
            .await
            .unwrap(),
        "another session renewed the lease"
    );
    // Dropping the store closes its session: ZooKeeper deletes the ephemeral lease node.
    drop(holder);
    let deadline = Instant::now() + Duration::from_secs(3);
    let b = loop {
        if let Some(b) = other
            .acquire_lease("b", Duration::from_secs(60))
            .await
            .unwrap()
        {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "the lease of a closed session was not freed"
        );
        sleep(Duration::from_millis(100)).await;
    };
    assert!(b.token > a.token);
    assert_eq!(
        other
            .record_fires(a.token, &[("j".to_owned(), instant(1))])
            .await,
        Err(StoreError::Fenced(a.token))
    );
}
