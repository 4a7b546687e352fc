//! Scenario `requests`: requests per second and latency of `POST /v1/jobs` (distinct names) and
//! `GET /v1/jobs/{job}`, each with 32 concurrent clients on one fresh server.

use std::sync::Arc;

use crate::jobs::{self, Executor, NEVER};
use crate::load::{self, LoadResult};
use crate::report::{Section, duration, millis, rate, thousands};
use crate::server::BenchServer;
use crate::{BenchResult, Context};

/// Concurrent clients.
const CONCURRENCY: usize = 32;
/// `POST /v1/jobs` requests in a full run.
const POSTS: usize = 20_000;
/// `GET /v1/jobs/{job}` requests in a full run.
const GETS: usize = 50_000;

fn add_rows(section: &mut Section, label: &str, result: &LoadResult, server_cpu: f64) {
    section.info(
        format!("{label}: requests/s"),
        format!(
            "{} ({} in {})",
            rate(result.per_second()),
            thousands(result.total as u64),
            duration(result.elapsed)
        ),
    );
    section.info(
        format!("{label}: latency p50 / p99 / max"),
        format!(
            "{} / {} / {}",
            millis(result.quantile_ms(0.5)),
            millis(result.quantile_ms(0.99)),
            millis(result.max_ms())
        ),
    );
    section.info(
        format!("{label}: server CPU per request"),
        format!(
            "{:.0} µs ({:.0}% of one core)",
            server_cpu / result.total as f64 * 1e6,
            server_cpu / result.elapsed.as_secs_f64() * 100.0
        ),
    );
    section.target(
        format!("{label}: errors"),
        thousands(result.errors as u64),
        "0",
        result.errors == 0,
    );
    for example in &result.error_examples {
        section.note(format!("{label} error: {example}"));
    }
}

/// Runs the scenario and prints its table.
pub(crate) async fn run(context: &Context) -> BenchResult<Section> {
    let (posts, gets) = if context.quick {
        (POSTS / 10, GETS / 10)
    } else {
        (POSTS, GETS)
    };
    println!(
        "\n[requests] {} POST /v1/jobs then {} GET /v1/jobs/{{job}}, {CONCURRENCY} concurrent",
        thousands(posts as u64),
        thousands(gets as u64)
    );
    let mut section = Section::new(format!("requests, {CONCURRENCY} clients"));
    let mut server = BenchServer::new(&context.rkron)?;
    server.start().await?;

    let cpu_before = server.cpu_seconds()?;
    let created = jobs::create(
        &server,
        "req",
        posts,
        CONCURRENCY,
        NEVER,
        &Executor::ShellTrue,
    )
    .await;
    let cpu_posted = server.cpu_seconds()?;
    add_rows(
        &mut section,
        "POST /v1/jobs",
        &created,
        cpu_posted - cpu_before,
    );

    let http = server.http().clone();
    let urls: Arc<Vec<String>> = Arc::new(
        (1..=posts)
            .map(|i| server.url(&format!("/v1/jobs/{}", jobs::name("req", i))))
            .collect(),
    );
    let read = load::drive(gets, CONCURRENCY, move |i| {
        let request = http.get(urls[i % urls.len()].as_str());
        async move { load::send(request, &[200]).await.map(|_| ()) }
    })
    .await;
    let cpu_read = server.cpu_seconds()?;
    add_rows(
        &mut section,
        "GET /v1/jobs/{job}",
        &read,
        cpu_read - cpu_posted,
    );
    let memory = server.memory()?;
    section.info(
        format!("server RSS after, with {} jobs", thousands(posts as u64)),
        crate::report::kib_as_mb(memory.rss_kib),
    );
    section.note(
        "the bench client shares the 2 cores with the server: figures are for the pair, not the server alone",
    );
    server.stop().await?;
    section.print();
    Ok(section)
}
