//! Damaged records answer `Corrupt` naming the key, never a panic.

use std::time::Duration;

use rkron_store::{Store, StoreError};

use crate::fake::FakeConsul;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_records_are_corrupt() {
    let consul = FakeConsul::start().await;
    let store = consul.store("dmg").await;
    consul.put_raw("dmg/jobs/broken", b"{not json");
    consul.put_raw("dmg/ledger/j", b"12x");
    consul.put_raw("dmg/missed/m", b"[]");
    let read = store.get_job("broken").await;
    assert!(
        matches!(&read, Err(StoreError::Corrupt { key, .. }) if key == "dmg/jobs/broken"),
        "{read:?}"
    );
    assert!(matches!(
        store.list_jobs().await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.jobs_page(0, 10).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.fire_ledger().await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.missed_fires("m").await,
        Err(StoreError::Corrupt { .. })
    ));

    consul.put_raw("dmg/leader", b"nope");
    assert!(matches!(
        store.current_lease().await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.acquire_lease("a", Duration::from_secs(5)).await,
        Err(StoreError::Corrupt { .. })
    ));
}
