//! Figures: group-commit throughput with many writers, and paging over 100,000 jobs.
//!
//! They print their measurements (run with `--nocapture`) and assert no timing.
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use rkron_store::testsuite::{execution, job};
use rkron_store::{Expect, JobOp, Store};
use rkron_store_embedded::EmbeddedStore;
use tokio::time::Instant;

const WRITERS: usize = 64;
/// Fewer in debug builds, where redb and serde run several times slower: the figure that matters
/// is the release one (`cargo test --release -p rkron-store-embedded --test it scale`).
const WRITES_PER_WRITER: usize = if cfg!(debug_assertions) { 100 } else { 500 };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_small_writes_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());

    let sequential = 200;
    let started = Instant::now();
    for index in 0..sequential {
        store
            .put_meta("sequential", &index.to_string())
            .await
            .unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "embedded store: {sequential} sequential durable writes in {elapsed:?} \
         ({:.0} writes/s, {:?} each)",
        f64::from(sequential) / elapsed.as_secs_f64(),
        elapsed / sequential
    );

    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for index in 0..WRITES_PER_WRITER {
                let name = format!("job-{writer:03}-{index:05}");
                let op = JobOp::Put {
                    job: job(&name),
                    expect: Expect::Absent,
                };
                store.commit_jobs(vec![op]).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    report("commit_jobs (one job)", started);

    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let name = format!("job-{writer:03}-00000");
            for index in 0..WRITES_PER_WRITER {
                let run = execution(&name, i64::try_from(index).unwrap(), "node-1", true);
                store.put_execution(&run, 100).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    report("put_execution (retention 100)", started);
    assert_eq!(
        store.jobs_page(0, 0).await.unwrap().total,
        WRITERS * WRITES_PER_WRITER
    );
}

fn report(what: &str, started: Instant) {
    let elapsed = started.elapsed();
    let writes = WRITERS * WRITES_PER_WRITER;
    println!(
        "embedded store: {writes} {what} writes from {WRITERS} concurrent writers \
         in {elapsed:?}: {:.0} writes/s",
        writes as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_page_stays_fast_at_100k_jobs() {
    const JOBS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let started = Instant::now();
    for chunk in 0..JOBS / 1_000 {
        let ops = (0..1_000)
            .map(|index| JobOp::Put {
                job: job(&format!("job-{:06}", chunk * 1_000 + index)),
                expect: Expect::Absent,
            })
            .collect();
        store.commit_jobs(ops).await.unwrap();
    }
    println!(
        "embedded store: wrote {JOBS} jobs in 100 commits in {:?}",
        started.elapsed()
    );

    for (start, end) in [(0, 25), (50_000, 50_025), (JOBS - 25, JOBS)] {
        // The first read warms redb's page cache, as a server that has been running would be.
        store.jobs_page(start, end).await.unwrap();
        let started = Instant::now();
        let page = store.jobs_page(start, end).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(page.total, JOBS);
        assert_eq!(page.jobs.len(), 25);
        assert_eq!(page.jobs[0].name, format!("job-{start:06}"));
        println!("embedded store: jobs_page({start}, {end}) of {JOBS} jobs took {elapsed:?}");
    }
    let started = Instant::now();
    let all = store.list_jobs().await.unwrap();
    println!(
        "embedded store: list_jobs of {} jobs took {:?}",
        all.len(),
        started.elapsed()
    );
}
