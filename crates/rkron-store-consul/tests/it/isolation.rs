//! Keyspace isolation: two keyspaces on one fake Consul, one a prefix of the other's name, share
//! nothing: jobs, executions, ledger, missed fires, settings or the leadership lease.

use std::time::Duration;

use rkron_store::testsuite::{execution, instant, job};
use rkron_store::{Expect, JobOp, Store};

use crate::fake::FakeConsul;

fn names(jobs: Vec<rkron_core::Job>) -> Vec<String> {
    jobs.into_iter().map(|job| job.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspaces_do_not_see_each_other() {
    let consul = FakeConsul::start().await;
    let first = consul.store("iso").await;
    let second = consul.store("iso2/").await;
    assert_eq!(
        second.key_prefix(),
        "iso2/",
        "a trailing slash is not doubled"
    );

    for (store, name) in [
        (&first, "shared"),
        (&first, "only-first"),
        (&second, "shared"),
    ] {
        let op = JobOp::Put {
            job: job(name),
            expect: Expect::Absent,
        };
        store.commit_jobs(vec![op]).await.expect("create");
    }
    assert_eq!(
        names(first.list_jobs().await.unwrap()),
        ["only-first", "shared"]
    );
    assert_eq!(names(second.list_jobs().await.unwrap()), ["shared"]);
    assert_eq!(second.jobs_page(0, 10).await.unwrap().total, 1);
    assert!(second.get_job("only-first").await.unwrap().is_none());

    for store in [&first, &second] {
        store
            .put_execution(&execution("shared", 1, "n", true), 10)
            .await
            .unwrap();
        store
            .record_missed("shared", &[instant(1)], 0)
            .await
            .unwrap();
    }
    first.put_meta("paused", "true").await.unwrap();
    assert_eq!(second.get_meta("paused").await.unwrap(), None);

    // Both keyspaces have a leader of their own.
    let ttl = Duration::from_secs(10);
    let first_lease = first.acquire_lease("a", ttl).await.unwrap().expect("first");
    let second_lease = second
        .acquire_lease("b", ttl)
        .await
        .unwrap()
        .expect("second");
    first
        .record_fires(first_lease.token, &[("shared".to_owned(), instant(5))])
        .await
        .unwrap();
    assert!(second.fire_ledger().await.unwrap().is_empty());
    assert_eq!(
        second
            .record_fires(first_lease.token, &[("shared".to_owned(), instant(5))])
            .await,
        Err(rkron_store::StoreError::Fenced(first_lease.token)),
        "a token of another keyspace does not fence this one"
    );

    // Deleting the job in one keyspace leaves the other's history alone.
    let op = JobOp::Delete {
        name: "shared".to_owned(),
        expect: Expect::Any,
    };
    first.commit_jobs(vec![op]).await.unwrap();
    assert!(
        first
            .list_executions("shared", false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        second.list_executions("shared", false).await.unwrap().len(),
        1
    );
    assert_eq!(second.missed_fires("shared").await.unwrap().total, 1);
    assert_eq!(
        second.current_lease().await.unwrap().as_ref(),
        Some(&second_lease)
    );
}
