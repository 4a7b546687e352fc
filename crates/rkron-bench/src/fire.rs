//! Scenarios `fire-http`, `fire-shell` and `fork`: N jobs all due on the same second (`@at T`),
//! their lag from `scheduled_at` to `started_at` and `finished_at` as the execution records show
//! it, and, beside the shell executor, how fast this process can spawn `true` itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rkron_api_types::{ExecutionOut, ZERO_TIME};
use tokio::process::Command;

use crate::jobs::{self, Executor};
use crate::load::{self, LoadResult};
use crate::report::{Section, duration, kib_as_mb, millis, quantile_sorted, rate, thousands};
use crate::server::{self, BenchServer};
use crate::{BenchResult, Context};

/// Which executor the jobs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `http`, `GET` of the bench's own endpoint.
    Http,
    /// `shell`, `command: true`.
    Shell,
}

/// Job counts of a full run.
const SIZES: [usize; 2] = [1_000, 10_000];
/// Job counts of a quick run.
const QUICK_SIZES: [usize; 2] = [200, 1_000];
/// Job creations in flight.
const CREATE_CONCURRENCY: usize = 64;
/// Execution listings in flight.
const READ_CONCURRENCY: usize = 32;
/// Spawns in flight in the fork baseline.
const FORK_CONCURRENCY: usize = 256;
/// How often completion is polled.
const POLL: Duration = Duration::from_millis(500);
/// Job creations per second assumed for the first attempt.
const FIRST_RATE_GUESS: f64 = 1_000.0;
/// Time added to the creation estimate before `T`.
const FIRST_MARGIN: Duration = Duration::from_secs(2);
/// Every job must be created at least this long before `T`.
const MIN_LEAD: TimeDelta = TimeDelta::milliseconds(500);
/// Attempts at creating every job before `T`.
const ATTEMPTS: usize = 3;
/// Waiting for completion stops when nothing finishes for this long.
const STALL: Duration = Duration::from_secs(60);
/// p99 start lag target of the http executor with 1,000 jobs, in ms.
const HTTP_P99_TARGET_MS: f64 = 20.0;
/// With 10,000 jobs, every run must have started within this many ms of `T`.
const ALL_STARTED_TARGET_MS: f64 = 1_000.0;
/// "Close to the fork baseline": rkron's shell runs/s at least this share of it.
const CLOSE_TO_BASELINE: f64 = 0.8;
/// Failed executions whose output is shown.
const FAILURE_EXAMPLES: usize = 3;

/// The tiny HTTP endpoint the http jobs call: `GET /` answers 200 `ok` and counts hits.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) url: String,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Target {
    pub(crate) async fn start() -> BenchResult<Self> {
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::Relaxed);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/", listener.local_addr()?);
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("rkron-bench: the http target stopped: {error}");
            }
        });
        Ok(Self { url, hits, task })
    }

    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How the fork baseline spawns `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spawn {
    /// Standard streams to `/dev/null`, wait for the exit.
    Plain,
    /// As the shell executor does: own process group, stdout and stderr piped and read to the
    /// end, `ENV_JOB_NAME` set.
    LikeExecutor,
}

/// A fork baseline: its load figures and the CPU its children used.
#[derive(Debug)]
struct Forks {
    load: LoadResult,
    /// How much `cutime + cstime` of this process grew, in seconds.
    children_cpu: f64,
}

/// The CPU seconds of this process's waited-for children so far (0 when unreadable).
fn own_children_cpu() -> f64 {
    server::cpu_of("/proc/self/stat").map_or(0.0, |cpu| cpu.children)
}

/// Spawns `true` `count` times, `concurrency` at a time.
async fn fork_baseline(count: usize, concurrency: usize, spawn: Spawn) -> Forks {
    let before = own_children_cpu();
    let load = spawn_true(count, concurrency, spawn).await;
    Forks {
        load,
        children_cpu: own_children_cpu() - before,
    }
}

async fn spawn_true(count: usize, concurrency: usize, spawn: Spawn) -> LoadResult {
    load::drive(count, concurrency, move |_| async move {
        let mut command = Command::new("true");
        command.stdin(std::process::Stdio::null());
        let status = match spawn {
            Spawn::Plain => {
                command
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .await
            }
            Spawn::LikeExecutor => command
                .process_group(0)
                .env("ENV_JOB_NAME", "fork-baseline")
                .output()
                .await
                .map(|output| output.status),
        };
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("true exited with {status}")),
            Err(error) => Err(format!("spawning true failed: {error}")),
        }
    })
    .await
}

/// Both baselines, run back to back.
#[derive(Debug)]
struct Baselines {
    plain: Forks,
    like_executor: Forks,
}

async fn baselines(count: usize) -> Baselines {
    Baselines {
        plain: fork_baseline(count, FORK_CONCURRENCY, Spawn::Plain).await,
        like_executor: fork_baseline(count, FORK_CONCURRENCY, Spawn::LikeExecutor).await,
    }
}

fn add_baseline_rows(section: &mut Section, when: &str, baselines: &Baselines) {
    for (label, result) in [
        ("true, stdio null", &baselines.plain),
        ("as the executor spawns", &baselines.like_executor),
    ] {
        let metric = if when.is_empty() {
            format!("fork baseline: {label}")
        } else {
            format!("fork baseline {when}: {label}")
        };
        section.info(metric, forks_text(result));
    }
}

/// `2,345 /s (4.26 s), 110 µs child CPU per run`.
fn forks_text(forks: &Forks) -> String {
    let load = &forks.load;
    let mut value = format!(
        "{} ({}), {:.0} µs child CPU per run",
        rate(load.per_second()),
        duration(load.elapsed),
        forks.children_cpu / load.total as f64 * 1e6
    );
    if load.errors > 0 {
        value.push_str(&format!(", {} failed", load.errors));
    }
    value
}

/// The runs/s of both baselines (before and after the fire), averaged.
fn baseline_rate(results: &[&Forks]) -> f64 {
    results.iter().map(|r| r.load.per_second()).sum::<f64>() / results.len() as f64
}

/// Scenario `fork` alone.
pub(crate) async fn fork_only(context: &Context) -> Vec<BenchResult<Section>> {
    let sizes = if context.quick { QUICK_SIZES } else { SIZES };
    let mut sections = Vec::new();
    for count in sizes {
        println!("\n[fork] spawning true {} times", thousands(count as u64));
        let mut section = Section::new(format!(
            "fork baseline, {} spawns ({FORK_CONCURRENCY} in flight)",
            thousands(count as u64)
        ));
        let measured = baselines(count).await;
        add_baseline_rows(&mut section, "", &measured);
        section.print();
        sections.push(Ok(section));
    }
    sections
}

/// Runs the fire-lag scenario for every size with executor `kind`.
pub(crate) async fn run(context: &Context, kind: Kind) -> Vec<BenchResult<Section>> {
    let target = match kind {
        Kind::Http => match Target::start().await {
            Ok(target) => Some(target),
            Err(error) => {
                return vec![Err(format!("cannot start the http target: {error}").into())];
            }
        },
        Kind::Shell => None,
    };
    let sizes = if context.quick { QUICK_SIZES } else { SIZES };
    let mut sections = Vec::new();
    for count in sizes {
        let result = one(context, kind, count, target.as_ref()).await;
        if let Err(error) = &result {
            println!("\n[fire] {} jobs failed: {error}", thousands(count as u64));
        }
        sections.push(result);
    }
    sections
}

/// The first whole second at or after `t`.
pub(crate) fn whole_second_at_or_after(t: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0);
    DateTime::from_timestamp(seconds, 0).expect("a current time is representable")
}

/// Parses an RFC 3339 time; Dkron's zero time means "none".
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if text == ZERO_TIME {
        return None;
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

/// A fresh server holding `count` jobs due at `due`, created at least [`MIN_LEAD`] before it.
struct Prepared {
    server: BenchServer,
    due: DateTime<Utc>,
    created: LoadResult,
    lead: TimeDelta,
    attempts: usize,
}

async fn prepare(context: &Context, count: usize, executor: &Executor) -> BenchResult<Prepared> {
    let mut rate_guess = FIRST_RATE_GUESS;
    let mut margin = FIRST_MARGIN;
    for attempt in 1..=ATTEMPTS {
        let mut server = BenchServer::new(&context.rkron)?;
        server.start().await?;
        let lead = Duration::from_secs_f64(count as f64 / rate_guess) + margin;
        let due = whole_second_at_or_after(Utc::now() + TimeDelta::from_std(lead)?);
        let schedule = format!("@at {}", due.to_rfc3339_opts(SecondsFormat::Secs, true));
        let created = jobs::create(
            &server,
            "fire",
            count,
            CREATE_CONCURRENCY,
            &schedule,
            executor,
        )
        .await;
        if created.errors > 0 {
            return Err(format!(
                "{} of {count} job creations failed, e.g. {:?}",
                created.errors, created.error_examples
            )
            .into());
        }
        let left = due - Utc::now();
        if left >= MIN_LEAD {
            return Ok(Prepared {
                server,
                due,
                created,
                lead: left,
                attempts: attempt,
            });
        }
        println!(
            "[fire] attempt {attempt}: creating took {}, only {} ms before T; retrying with a larger margin",
            duration(created.elapsed),
            left.num_milliseconds()
        );
        rate_guess = created.per_second() / 2.0;
        margin *= 2;
        // Dropping the server kills it: its jobs may be due any moment.
        drop(server);
    }
    Err(
        format!("could not create {count} jobs before their due time in {ATTEMPTS} attempts")
            .into(),
    )
}

/// What polling for completion saw.
#[derive(Debug)]
pub(crate) struct Completion {
    /// Jobs still without a finished execution when waiting stopped.
    pub(crate) pending: usize,
    /// From `T` until the poll that saw every job finished.
    pub(crate) all_recorded: Option<Duration>,
}

/// Polls the number of jobs that never finished an execution (status untriggered) every
/// [`POLL`] until it is zero or stops moving for [`STALL`].
pub(crate) async fn wait_for_completion(
    server: &BenchServer,
    count: usize,
) -> BenchResult<Completion> {
    let since_due = Instant::now();
    let mut last_pending = count;
    let mut last_progress = Instant::now();
    loop {
        tokio::time::sleep(POLL).await;
        let (_, pending) = server
            .client()
            .list_jobs(&[("status", "untriggered"), ("_start", "0"), ("_end", "0")])
            .await?;
        if pending == 0 {
            return Ok(Completion {
                pending,
                all_recorded: Some(since_due.elapsed()),
            });
        }
        if pending != last_pending {
            last_pending = pending;
            last_progress = Instant::now();
        }
        if last_progress.elapsed() > STALL {
            return Ok(Completion {
                pending,
                all_recorded: None,
            });
        }
    }
}

/// Reads `GET /v1/jobs/{job}/executions` of jobs `prefix-000001` … `prefix-<count>`.
pub(crate) async fn read_executions(
    server: &BenchServer,
    prefix: &str,
    count: usize,
) -> (Vec<Option<Vec<ExecutionOut>>>, LoadResult) {
    read_executions_at(server.http(), &server.base(), prefix, count).await
}

/// As [`read_executions`], from the server whose API is at `base` (`http://127.0.0.1:<port>`).
pub(crate) async fn read_executions_at(
    http: &reqwest::Client,
    base: &str,
    prefix: &str,
    count: usize,
) -> (Vec<Option<Vec<ExecutionOut>>>, LoadResult) {
    let slots: Arc<Mutex<Vec<Option<Vec<ExecutionOut>>>>> = Arc::new(Mutex::new(vec![None; count]));
    let http = http.clone();
    let base = base.to_owned();
    let prefix = prefix.to_owned();
    let filled = slots.clone();
    let result = load::drive(count, READ_CONCURRENCY, move |i| {
        let url = format!("{base}/v1/jobs/{}/executions", jobs::name(&prefix, i + 1));
        let request = http.get(url);
        let filled = filled.clone();
        async move {
            let response = request
                .send()
                .await
                .map_err(|e| format!("transport: {e}"))?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
            }
            let list: Vec<ExecutionOut> =
                serde_json::from_slice(&body).map_err(|e| format!("bad JSON: {e}"))?;
            if let Ok(mut slots) = filled.lock() {
                slots[i] = Some(list);
            }
            Ok(())
        }
    })
    .await;
    let lists = slots.lock().map(|s| s.clone()).unwrap_or_default();
    (lists, result)
}

/// Figures computed from the execution records.
#[derive(Debug, Default)]
struct Lags {
    start_ms: Vec<f64>,
    finish_ms: Vec<f64>,
    last_finished: Option<DateTime<Utc>>,
    missing: usize,
    duplicated: usize,
    other_instant: usize,
    unfinished: usize,
    unreadable: usize,
    failed: usize,
    failures: Vec<String>,
}

fn analyse(lists: &[Option<Vec<ExecutionOut>>], due: DateTime<Utc>) -> Lags {
    let mut lags = Lags::default();
    for list in lists {
        let Some(list) = list else {
            lags.unreadable += 1;
            continue;
        };
        let mut for_due = 0;
        for execution in list {
            let scheduled = execution.scheduled_at.as_deref().and_then(parse_time);
            let Some(scheduled) = scheduled.filter(|s| *s == due) else {
                lags.other_instant += 1;
                continue;
            };
            for_due += 1;
            if let Some(started) = parse_time(&execution.started_at) {
                lags.start_ms.push(ms_between(scheduled, started));
            }
            match parse_time(&execution.finished_at) {
                Some(finished) => {
                    lags.finish_ms.push(ms_between(scheduled, finished));
                    lags.last_finished = lags.last_finished.max(Some(finished));
                }
                None => lags.unfinished += 1,
            }
            if !execution.success {
                lags.failed += 1;
                if lags.failures.len() < FAILURE_EXAMPLES {
                    let output: String = execution.output.chars().take(300).collect();
                    lags.failures.push(format!(
                        "{} attempt {}: {output:?}",
                        execution.job_name, execution.attempt
                    ));
                }
            }
        }
        match for_due {
            0 => lags.missing += 1,
            1 => {}
            _ => lags.duplicated += 1,
        }
    }
    lags.start_ms.sort_by(f64::total_cmp);
    lags.finish_ms.sort_by(f64::total_cmp);
    lags
}

pub(crate) fn quantiles(sorted: &[f64]) -> String {
    format!(
        "{} / {} / {} / {}",
        millis(sorted.first().copied().unwrap_or(f64::NAN)),
        millis(quantile_sorted(sorted, 0.5)),
        millis(quantile_sorted(sorted, 0.99)),
        millis(sorted.last().copied().unwrap_or(f64::NAN))
    )
}

async fn one(
    context: &Context,
    kind: Kind,
    count: usize,
    target: Option<&Target>,
) -> BenchResult<Section> {
    let label = match kind {
        Kind::Http => "http",
        Kind::Shell => "shell",
    };
    let executor = match (kind, target) {
        (Kind::Http, Some(target)) => Executor::HttpGet(target.url.clone()),
        (Kind::Http, None) => return Err("the http scenario needs its target".into()),
        (Kind::Shell, _) => Executor::ShellTrue,
    };
    let mut section = Section::new(format!("fire {label}, {} jobs", thousands(count as u64)));
    println!(
        "\n[fire] {} {label} jobs due on the same second",
        thousands(count as u64)
    );

    let (before, unbounded) = match kind {
        Kind::Shell => {
            println!("[fire] fork baseline before the fire");
            let before = baselines(count).await;
            let unbounded = fork_baseline(count, count, Spawn::Plain).await;
            (Some(before), Some(unbounded))
        }
        Kind::Http => (None, None),
    };

    let Prepared {
        mut server,
        due,
        created,
        lead,
        attempts,
    } = prepare(context, count, &executor).await?;
    let first = server.client().get_job(&jobs::name("fire", 1)).await?;
    let next_ok = parse_time(&first.next) == Some(due);
    let hits_before = target.map_or(0, Target::hits);
    let cpu_before = server.cpu_seconds()?;
    let children_before = server.children_cpu_seconds()?;
    println!(
        "[fire] created in {}; T = {}; waiting for T and for every execution",
        duration(created.elapsed),
        due.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    tokio::time::sleep((due - Utc::now()).to_std().unwrap_or_default()).await;
    let completion = wait_for_completion(&server, count).await?;
    let cpu_fire = server.cpu_seconds()? - cpu_before;
    let children_cpu = server.children_cpu_seconds()? - children_before;
    let memory = server.memory()?;
    let hits = target.map_or(0, Target::hits) - hits_before;
    let (lists, read) = read_executions(&server, "fire", count).await;
    let lags = analyse(&lists, due);

    let after = match kind {
        Kind::Shell => {
            println!("[fire] fork baseline after the fire");
            Some(baselines(count).await)
        }
        Kind::Http => None,
    };

    section.info(
        format!(
            "create {} jobs ({CREATE_CONCURRENCY} in flight)",
            thousands(count as u64)
        ),
        format!(
            "{} ({}), done {} before T{}",
            duration(created.elapsed),
            rate(created.per_second()),
            millis(lead.num_milliseconds() as f64),
            if attempts > 1 {
                format!(", attempt {attempts}")
            } else {
                String::new()
            }
        ),
    );
    section.target(
        "job next = T (schedule @at T)",
        if next_ok { "yes" } else { first.next.as_str() },
        "yes",
        next_ok,
    );
    section.info(
        "start lag min / p50 / p99 / max (started_at − scheduled_at)",
        quantiles(&lags.start_ms),
    );
    if let (Some(first), Some(last)) = (lags.start_ms.first(), lags.start_ms.last()) {
        section.info(
            "  start spread per run: (max − min) ÷ N",
            format!("{:.0} µs", (last - first) * 1000.0 / count as f64),
        );
    }
    let p99 = quantile_sorted(&lags.start_ms, 0.99);
    let all_started = lags.start_ms.last().copied().unwrap_or(f64::INFINITY);
    let everything_started = lags.start_ms.len() == count;
    match (kind, count) {
        (Kind::Http, 1_000) => section.target(
            "start lag p99",
            millis(p99),
            format!("< {HTTP_P99_TARGET_MS:.0} ms"),
            p99 < HTTP_P99_TARGET_MS && everything_started,
        ),
        _ => section.info("start lag p99", millis(p99)),
    }
    if count == 10_000 {
        section.target(
            "time until all were started (max start lag)",
            millis(all_started),
            format!("≤ {}", millis(ALL_STARTED_TARGET_MS)),
            all_started <= ALL_STARTED_TARGET_MS && everything_started,
        );
    } else {
        section.info(
            "time until all were started (max start lag)",
            millis(all_started),
        );
    }
    section.info(
        "finish lag min / p50 / p99 / max (finished_at − scheduled_at)",
        quantiles(&lags.finish_ms),
    );
    let span = lags
        .last_finished
        .map(|last| ms_between(due, last) / 1000.0);
    let recorded_rate = span.map_or(0.0, |s| count as f64 / s.max(1e-3));
    section.info(
        "executions recorded per second: N / (last finished_at − T)",
        rate(recorded_rate),
    );
    section.info(
        "all recorded in the store (seen by polling every 500 ms, from T)",
        completion
            .all_recorded
            .map_or_else(|| "never (stalled)".to_owned(), duration),
    );
    section.target(
        "jobs without a finished execution",
        thousands(completion.pending as u64),
        "0",
        completion.pending == 0,
    );
    section.target(
        "failed executions",
        thousands(lags.failed as u64),
        "0",
        lags.failed == 0,
    );
    for failure in &lags.failures {
        section.note(format!("failed: {failure}"));
    }
    let lost = lags.missing + lags.unreadable + lags.unfinished;
    section.target(
        "missing, unfinished or unreadable executions",
        thousands(lost as u64),
        "0",
        lost == 0,
    );
    section.target(
        "jobs with more than one execution for T",
        thousands(lags.duplicated as u64),
        "0",
        lags.duplicated == 0 && lags.other_instant == 0,
    );
    if lags.other_instant > 0 {
        section.note(format!(
            "{} executions served another instant than T",
            lags.other_instant
        ));
    }
    if read.errors > 0 {
        section.note(format!(
            "{} execution listings failed, e.g. {:?}",
            read.errors, read.error_examples
        ));
    }
    if kind == Kind::Http {
        section.target(
            "requests the http target received",
            thousands(hits),
            format!("= {}", thousands(count as u64)),
            hits == count as u64,
        );
    }
    if let (Some(before), Some(after)) = (&before, &after) {
        add_baseline_rows(&mut section, "before", before);
        add_baseline_rows(&mut section, "after", after);
        let plain = baseline_rate(&[&before.plain, &after.plain]);
        let like = baseline_rate(&[&before.like_executor, &after.like_executor]);
        let ratio = recorded_rate / plain;
        section.target(
            "rkron shell runs/s ÷ fork baseline (true, stdio null; mean of before and after)",
            format!("{ratio:.2}"),
            format!("≥ {CLOSE_TO_BASELINE:.1} (close to the baseline)"),
            ratio >= CLOSE_TO_BASELINE,
        );
        section.info(
            "rkron shell runs/s ÷ baseline spawned as the executor does",
            format!("{:.2}", recorded_rate / like),
        );
    }
    if let Some(unbounded) = &unbounded {
        section.info(
            "fork baseline with all N in flight at once (true, stdio null)",
            forks_text(unbounded),
        );
        let unbounded_rate = baseline_rate(&[unbounded]);
        section.info(
            "rkron shell runs/s ÷ baseline with all N in flight at once",
            format!("{:.2}", recorded_rate / unbounded_rate),
        );
        for example in &unbounded.load.error_examples {
            section.note(format!("unbounded fork baseline: {example}"));
        }
    }
    section.info(
        "server CPU from T until all recorded",
        format!("{cpu_fire:.2} s"),
    );
    if kind == Kind::Shell {
        section.info(
            "CPU of the server's child processes, per run",
            format!("{:.0} µs", children_cpu / count as f64 * 1e6),
        );
    }
    section.info("server RSS after the fire", kib_as_mb(memory.rss_kib));
    section.note(
        "started_at is set by the agent when it accepts the run, before the process is spawned or the request sent",
    );
    let warnings = server.log_lines();
    if warnings > 0 {
        section.note(format!(
            "the server logged {warnings} warning/error lines; last ones:\n{}",
            server.log_tail(5)
        ));
    }
    server.stop().await?;
    section.print();
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_instants_are_whole_seconds() {
        let t = DateTime::parse_from_rfc3339("2030-01-01T00:00:01.2Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            whole_second_at_or_after(t).to_rfc3339_opts(SecondsFormat::Secs, true),
            "2030-01-01T00:00:02Z"
        );
        let whole = DateTime::parse_from_rfc3339("2030-01-01T00:00:01Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(whole_second_at_or_after(whole), whole);
    }

    #[test]
    fn zero_time_is_none() {
        assert_eq!(parse_time(ZERO_TIME), None);
        assert!(parse_time("2030-01-01T00:00:01.123456789Z").is_some());
    }
}
