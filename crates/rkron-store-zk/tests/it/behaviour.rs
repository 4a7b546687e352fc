//! What is particular to ZooKeeper: requests limited to about 1 MiB (chunked ledger writes,
//! trims and deletes in several multis, long outputs), escaped names, damaged records.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rkron_core::execution::unix_nanos;
use rkron_store::testsuite::{execution, instant, job};
use rkron_store::{Expect, JobOp, Store, StoreError};
use rkron_store_zk::OUTPUT_MAX;
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::server::ZooKeeper;

fn put(name: &str) -> JobOp {
    JobOp::Put {
        job: job(name),
        expect: Expect::Absent,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_of_ten_thousand_fires_is_written_in_fenced_chunks() {
    let zk = ZooKeeper::start().await;
    let store = zk.store("ledger").await;
    let lease = store
        .acquire_lease("leader", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let name = |index: i64| format!("job-{index:05}");
    let first: Vec<(String, DateTime<Utc>)> = (0..10_000)
        .map(|index| (name(index), instant(index)))
        .collect();
    let started = Instant::now();
    store.record_fires(lease.token, &first).await.unwrap();
    let created = started.elapsed();
    let started = Instant::now();
    let ledger = store.fire_ledger().await.unwrap();
    let read = started.elapsed();
    assert_eq!(ledger, first.iter().cloned().collect::<BTreeMap<_, _>>());

    let second: Vec<(String, DateTime<Utc>)> = (0..10_000)
        .map(|index| (name(index), instant(index + 10_000)))
        .collect();
    let started = Instant::now();
    store.record_fires(lease.token, &second).await.unwrap();
    let updated = started.elapsed();
    let started = Instant::now();
    store.record_fires(lease.token, &first).await.unwrap();
    let unchanged = started.elapsed();
    assert_eq!(
        store.fire_ledger().await.unwrap(),
        second.iter().cloned().collect::<BTreeMap<_, _>>(),
        "entries never move back"
    );
    eprintln!(
        "10,000 fires: created in {created:?}, moved forward in {updated:?}, \
         none moving in {unchanged:?}; ledger read in {read:?}"
    );

    // A deposed leader writes no chunk.
    store.release_lease(&lease).await.unwrap();
    let next = store
        .acquire_lease("next", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let third: Vec<(String, DateTime<Utc>)> = (0..10_000)
        .map(|index| (name(index), instant(index + 20_000)))
        .collect();
    assert_eq!(
        store.record_fires(lease.token, &third).await,
        Err(StoreError::Fenced(lease.token))
    );
    assert_eq!(
        store.fire_ledger().await.unwrap(),
        second.iter().cloned().collect::<BTreeMap<_, _>>()
    );
    store.record_fires(next.token, &third).await.unwrap();
}

/// Writes `count` executions of `job` straight into ZooKeeper (much faster than one
/// `put_execution` each), with a long node name so that they fill multis quickly.
async fn seed_executions(zk: &ZooKeeper, keyspace: &str, job: &str, count: i64, node: &str) {
    let client = zk.client().await;
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for dir in ["executions", "outputs"] {
        client
            .mkdir(&format!("/{keyspace}/{dir}/{job}"), &options)
            .await
            .expect("create the run directories");
    }
    for batch in (0..count).collect::<Vec<_>>().chunks(200) {
        let mut writer = client.new_multi_writer();
        for started in batch {
            let run = execution(job, *started, node, true);
            let sortable = unix_nanos(run.started_at).cast_unsigned() ^ (1 << 63);
            let name = format!("{sortable:016x}-{node}");
            let mut metadata = run.clone();
            metadata.output = String::new();
            let data = serde_json::to_vec(&metadata).expect("encode");
            writer
                .add_create(
                    &format!("/{keyspace}/executions/{job}/{name}"),
                    &data,
                    &options,
                )
                .expect("add a create");
            writer
                .add_create(
                    &format!("/{keyspace}/outputs/{job}/{name}"),
                    run.output.as_bytes(),
                    &options,
                )
                .expect("add a create");
        }
        writer.commit().await.expect("seed executions");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_trims_and_deletes_span_several_multis() {
    let zk = ZooKeeper::start().await;
    let store = zk.store("limits").await;
    store.commit_jobs(vec![put("busy")]).await.unwrap();
    let node = "n".repeat(300);
    seed_executions(&zk, "limits", "busy", 1_000, &node).await;
    assert_eq!(
        store.list_executions("busy", false).await.unwrap().len(),
        1_000
    );

    // 991 executions go: about 3,000 deletes of long paths, more than one multi holds.
    let started = Instant::now();
    store
        .put_execution(&execution("busy", 1_000, &node, true), 10)
        .await
        .unwrap();
    eprintln!("trimmed 991 executions in {:?}", started.elapsed());
    let starts: Vec<_> = store
        .list_executions("busy", true)
        .await
        .unwrap()
        .into_iter()
        .map(|run| run.started_at)
        .collect();
    assert_eq!(starts, (991..1_001).map(instant).collect::<Vec<_>>());
    let updated = store
        .finish_execution(&execution("busy", 1_001, &node, false), 2)
        .await
        .unwrap()
        .expect("the job exists");
    assert_eq!(updated.error_count, 1);
    assert_eq!(store.list_executions("busy", false).await.unwrap().len(), 2);

    // Deleting a job whose history does not fit one multi.
    seed_executions(&zk, "limits", "busy", 1_000, &node).await;
    let lease = store
        .acquire_lease("l", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    store
        .record_fires(lease.token, &[("busy".to_owned(), instant(1))])
        .await
        .unwrap();
    let op = JobOp::Delete {
        name: "busy".to_owned(),
        expect: Expect::Any,
    };
    store.commit_jobs(vec![op]).await.unwrap();
    assert!(
        store
            .list_executions("busy", false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.fire_ledger().await.unwrap().is_empty());
    let raw = zk.client().await;
    for dir in ["executions", "outputs"] {
        assert_eq!(
            raw.check_stat(&format!("/limits/{dir}/busy"))
                .await
                .unwrap(),
            None,
            "the {dir} directory of a deleted job goes too"
        );
    }

    // The same through delete_executions.
    seed_executions(&zk, "limits", "busy", 1_000, &node).await;
    store.delete_executions("busy").await.unwrap();
    assert!(
        store
            .list_executions("busy", false)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_outputs_keep_their_tail() {
    let zk = ZooKeeper::start().await;
    let store = zk.store("outputs").await;
    let mut run = execution("loud", 1, "n", true);
    run.output = format!("{}the end", "x".repeat(3 * OUTPUT_MAX));
    store.put_execution(&run, 10).await.unwrap();
    let stored = store
        .get_execution("loud", &run.id())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.output.len(), OUTPUT_MAX);
    assert!(stored.output.ends_with("the end"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_escaped_and_read_back() {
    let zk = ZooKeeper::start().await;
    let store = zk.store("names").await;
    let odd = ["a/b", "ünï code", "", ".", "..", "x+y", "%2F"];
    store
        .commit_jobs(odd.iter().map(|name| put(name)).collect())
        .await
        .unwrap();
    let mut expected: Vec<String> = odd.iter().map(|name| (*name).to_owned()).collect();
    expected.sort();
    let names: Vec<String> = store
        .list_jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|job| job.name)
        .collect();
    assert_eq!(names, expected);
    for name in odd {
        let mut running = execution(name, 5, "host.example.com/+x", true);
        running.finished_at = None;
        store.put_execution(&running, 10).await.unwrap();
        let listed = store.list_executions(name, true).await.unwrap();
        assert_eq!(listed, [running.clone()], "{name:?}");
        assert_eq!(
            store.get_execution(name, &running.id()).await.unwrap(),
            Some(running)
        );
        store.put_meta(name, "v").await.unwrap();
        assert_eq!(store.get_meta(name).await.unwrap().as_deref(), Some("v"));
    }
    let running = store.running_executions().await.unwrap();
    let mut jobs: Vec<String> = running.into_iter().map(|run| run.job_name).collect();
    jobs.sort();
    assert_eq!(jobs, expected);
    let lease = store
        .acquire_lease("l", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let fires: Vec<(String, DateTime<Utc>)> = odd
        .iter()
        .map(|name| ((*name).to_owned(), instant(3)))
        .collect();
    store.record_fires(lease.token, &fires).await.unwrap();
    assert_eq!(
        store.fire_ledger().await.unwrap(),
        fires.into_iter().collect::<BTreeMap<_, _>>()
    );
}

fn corrupt(answer: &Result<impl std::fmt::Debug, StoreError>, path: &str) -> bool {
    matches!(answer, Err(StoreError::Corrupt { key, .. }) if key == path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_records_answer_corrupt() {
    let zk = ZooKeeper::start().await;
    let store = zk.store("bad").await;
    store.commit_jobs(vec![put("broken")]).await.unwrap();
    let raw = zk.client().await;
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    raw.set_data("/bad/jobs/broken", b"{not json", None)
        .await
        .unwrap();
    let answer = store.get_job("broken").await;
    assert!(corrupt(&answer, "/bad/jobs/broken"), "{answer:?}");
    let answer = store.list_jobs().await;
    assert!(corrupt(&answer, "/bad/jobs/broken"), "{answer:?}");

    raw.create("/bad/meta/broken", &[0xff, 0xfe], &options)
        .await
        .unwrap();
    let answer = store.get_meta("broken").await;
    assert!(corrupt(&answer, "/bad/meta/broken"), "{answer:?}");

    raw.create("/bad/ledger/broken", b"yesterday", &options)
        .await
        .unwrap();
    let answer = store.fire_ledger().await;
    assert!(corrupt(&answer, "/bad/ledger/broken"), "{answer:?}");
    let lease = store
        .acquire_lease("l", Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    let answer = store
        .record_fires(lease.token, &[("broken".to_owned(), instant(1))])
        .await;
    assert!(corrupt(&answer, "/bad/ledger/broken"), "{answer:?}");

    raw.mkdir("/bad/executions/broken/garbage", &options)
        .await
        .unwrap();
    let answer = store.list_executions("broken", false).await;
    assert!(
        corrupt(&answer, "/bad/executions/broken/garbage"),
        "{answer:?}"
    );
    raw.create("/bad/missed/broken", b"[]", &options)
        .await
        .unwrap();
    let answer = store.missed_fires("broken").await;
    assert!(corrupt(&answer, "/bad/missed/broken"), "{answer:?}");
}
