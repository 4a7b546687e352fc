//! Scenario `startup`: stores 100,000 jobs, stops the server with SIGTERM and starts it again on
//! the same data dir, measuring the time until it leads (`/v1/isleader` 200: API up and every job indexed), resident memory,
//! the latency of the first jobs page and the size of the data file.

use std::time::{Duration, Instant};

use rkron_api_types::JobOut;

use crate::jobs::{self, Executor, NEVER};
use crate::report::{Section, bytes_as_mb, duration, kib_as_mb, median, millis, rate, thousands};
use crate::server::BenchServer;
use crate::{BenchResult, Context};

/// Jobs stored in a full run.
const JOBS: usize = 100_000;
/// Jobs stored in a quick run.
const QUICK_JOBS: usize = 5_000;
/// Job creations in flight.
const CREATE_CONCURRENCY: usize = 64;
/// Restarts measured.
const RESTARTS: usize = 3;
/// Page requests timed per restart.
const PAGES: usize = 20;
/// The first page of the listing.
const PAGE_PATH: &str = "/v1/jobs?_start=0&_end=25";
/// How long after ready the settled memory is read (background work may go on after ready).
const SETTLE: Duration = Duration::from_secs(5);
/// The memory target with 100,000 jobs, in MB (10^6 bytes).
const RSS_TARGET_MB: f64 = 200.0;

/// One timed `GET` of a jobs page: latency in ms, `X-Total-Count`, and the jobs it held.
async fn get_page(server: &BenchServer, path: &str) -> BenchResult<(f64, usize, usize, usize)> {
    let sent = Instant::now();
    let response = server.http().get(server.url(path)).send().await?;
    let status = response.status();
    let total = response
        .headers()
        .get("X-Total-Count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = response.bytes().await?;
    let ms = sent.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() {
        return Err(format!("GET {path} answered {status}").into());
    }
    let jobs: Vec<JobOut> = serde_json::from_slice(&body)?;
    Ok((ms, total, jobs.len(), body.len()))
}

fn mb(kib: u64) -> f64 {
    (kib * 1024) as f64 / 1e6
}

/// Runs the scenario and prints its table.
pub(crate) async fn run(context: &Context) -> BenchResult<Section> {
    let count = if context.quick { QUICK_JOBS } else { JOBS };
    let mut section = Section::new(format!("startup, {} jobs", thousands(count as u64)));
    println!(
        "\n[startup] creating {} jobs ({CREATE_CONCURRENCY} in flight), then {RESTARTS} restarts",
        thousands(count as u64)
    );

    let mut server = BenchServer::new(&context.rkron)?;
    let empty_ready = server.start().await?;
    let empty = server.memory()?;
    let created = jobs::create(
        &server,
        "job",
        count,
        CREATE_CONCURRENCY,
        NEVER,
        &Executor::ShellTrue,
    )
    .await;
    let after_create = server.memory()?;
    section.info(
        "first start, empty data dir: spawn → leading (/v1/isleader 200)",
        duration(empty_ready),
    );
    section.info("RSS of the empty server at ready", kib_as_mb(empty.rss_kib));
    section.info(
        format!(
            "create {} jobs ({CREATE_CONCURRENCY} in flight)",
            thousands(count as u64)
        ),
        format!(
            "{} ({})",
            duration(created.elapsed),
            rate(created.per_second())
        ),
    );
    section.info(
        "  create latency p50 / p99",
        format!(
            "{} / {}",
            millis(created.quantile_ms(0.5)),
            millis(created.quantile_ms(0.99))
        ),
    );
    section.target(
        "  create errors",
        thousands(created.errors as u64),
        "0",
        created.errors == 0,
    );
    for example in &created.error_examples {
        section.note(format!("create error: {example}"));
    }
    section.info(
        "RSS after creating (same process) / peak",
        format!(
            "{} / {}",
            kib_as_mb(after_create.rss_kib),
            kib_as_mb(after_create.hwm_kib)
        ),
    );
    let first_stop = server.stop().await?;
    section.info("SIGTERM → exit", duration(first_stop));
    section.info(
        "data file rkron.redb after creating",
        bytes_as_mb(server.data_file_bytes()),
    );

    let mut ready_ms = Vec::new();
    let mut rss_ready = Vec::new();
    let mut rss_page = Vec::new();
    let mut rss_settled = Vec::new();
    let mut hwm_settled = Vec::new();
    let mut first_page_ms = Vec::new();
    let mut page_medians = Vec::new();
    let mut page_max: f64 = 0.0;
    let mut stop_ms = Vec::new();
    let mut totals_ok = true;
    for restart in 0..RESTARTS {
        let ready = server.start().await?;
        let ready_at = Instant::now();
        let at_ready = server.memory()?;
        let (first_ms, total, listed, _) = get_page(&server, PAGE_PATH).await?;
        let after_page = server.memory()?;
        totals_ok &= total == count && listed == 25.min(count);
        let mut latencies = Vec::with_capacity(PAGES);
        for _ in 0..PAGES {
            let (ms, total, _, _) = get_page(&server, PAGE_PATH).await?;
            totals_ok &= total == count;
            latencies.push(ms);
        }
        page_max = latencies.iter().copied().fold(page_max, f64::max);
        tokio::time::sleep(SETTLE.saturating_sub(ready_at.elapsed())).await;
        let settled = server.memory()?;
        println!(
            "[startup] restart {}: ready in {}, RSS {} at ready, {} after a page, {} (peak {}) {} s after ready; page median {}",
            restart + 1,
            duration(ready),
            kib_as_mb(at_ready.rss_kib),
            kib_as_mb(after_page.rss_kib),
            kib_as_mb(settled.rss_kib),
            kib_as_mb(settled.hwm_kib),
            SETTLE.as_secs(),
            millis(median(&latencies)),
        );
        rss_settled.push(mb(settled.rss_kib));
        hwm_settled.push(mb(settled.hwm_kib));
        ready_ms.push(ready.as_secs_f64() * 1000.0);
        rss_ready.push(mb(at_ready.rss_kib));
        rss_page.push(mb(after_page.rss_kib));
        first_page_ms.push(first_ms);
        page_medians.push(median(&latencies));
        if restart + 1 == RESTARTS {
            let (full_ms, total, listed, bytes) = get_page(&server, "/v1/jobs").await?;
            let after_full = server.memory()?;
            totals_ok &= total == count && listed == count;
            section.info(
                "full GET /v1/jobs (last restart): time / body",
                format!("{} / {}", millis(full_ms), bytes_as_mb(bytes as u64)),
            );
            section.info(
                "  RSS after the full listing / peak",
                format!(
                    "{} / {}",
                    kib_as_mb(after_full.rss_kib),
                    kib_as_mb(after_full.hwm_kib)
                ),
            );
        }
        stop_ms.push(server.stop().await?.as_secs_f64() * 1000.0);
    }

    let ready_median = median(&ready_ms);
    section.info(
        format!("restart: spawn → leading, every job indexed (median of {RESTARTS})"),
        millis(ready_median),
    );
    section.info(
        "  each restart",
        ready_ms
            .iter()
            .map(|&ms| millis(ms))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let ready_rss = median(&rss_ready);
    section.target(
        format!("RSS right after ready (median of {RESTARTS})"),
        format!("{ready_rss:.1} MB"),
        format!("< {RSS_TARGET_MB:.0} MB at 100,000 jobs"),
        ready_rss < RSS_TARGET_MB,
    );
    section.info(
        "  RSS per stored job: (ready − empty) ÷ jobs",
        format!(
            "{:.0} bytes",
            (ready_rss - mb(empty.rss_kib)) * 1e6 / count as f64
        ),
    );
    let page_rss = median(&rss_page);
    section.target(
        format!("RSS after the first page (median of {RESTARTS})"),
        format!("{page_rss:.1} MB"),
        format!("< {RSS_TARGET_MB:.0} MB at 100,000 jobs"),
        page_rss < RSS_TARGET_MB,
    );
    let settled_rss = median(&rss_settled);
    section.target(
        format!(
            "RSS {} s after ready, settled (median of {RESTARTS})",
            SETTLE.as_secs()
        ),
        format!("{settled_rss:.1} MB"),
        format!("< {RSS_TARGET_MB:.0} MB at 100,000 jobs"),
        settled_rss < RSS_TARGET_MB,
    );
    section.info(
        format!(
            "  peak RSS (VmHWM) in the first {} s (median of {RESTARTS})",
            SETTLE.as_secs()
        ),
        format!("{:.1} MB", median(&hwm_settled)),
    );
    section.info(
        format!("first {PAGE_PATH} after a restart (median of {RESTARTS})"),
        millis(median(&first_page_ms)),
    );
    section.info(
        format!("{PAGE_PATH} latency (median of {PAGES}, median over restarts)"),
        millis(median(&page_medians)),
    );
    section.info(
        format!("  slowest of the {} page requests", PAGES * RESTARTS),
        millis(page_max),
    );
    section.target(
        "X-Total-Count and page sizes as expected",
        if totals_ok { "yes" } else { "no" },
        "yes",
        totals_ok,
    );
    section.info(
        format!("SIGTERM → exit (median of {RESTARTS})"),
        millis(median(&stop_ms)),
    );
    section.info(
        "data file rkron.redb after the restarts",
        bytes_as_mb(server.data_file_bytes()),
    );
    let warnings = server.log_lines();
    if warnings > 0 {
        section.note(format!(
            "the server logged {warnings} warning/error lines; last ones:\n{}",
            server.log_tail(5)
        ));
    }
    if count != JOBS {
        section.note("quick run: the memory target applies to 100,000 jobs");
    }
    section.print();
    Ok(section)
}
