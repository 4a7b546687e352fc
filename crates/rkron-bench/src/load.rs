//! A closed-loop load driver: a fixed number of workers send requests back to back until a
//! total is reached, recording each latency in a histogram.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;

/// Highest latency the histograms hold, in microseconds (10 minutes).
const MAX_MICROS: u64 = 600_000_000;
/// How many error messages are kept as examples.
const ERROR_EXAMPLES: usize = 3;

/// What a load run measured.
#[derive(Debug)]
pub(crate) struct LoadResult {
    /// Requests sent.
    pub(crate) total: usize,
    /// Wall time from the first request to the last answer.
    pub(crate) elapsed: Duration,
    /// Latencies in microseconds.
    pub(crate) micros: Histogram<u64>,
    /// Requests that failed.
    pub(crate) errors: usize,
    /// The first few error messages.
    pub(crate) error_examples: Vec<String>,
}

impl LoadResult {
    /// Requests per second over the whole run.
    pub(crate) fn per_second(&self) -> f64 {
        self.total as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile of latency in milliseconds.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        self.micros.value_at_quantile(q) as f64 / 1000.0
    }

    /// The highest latency in milliseconds.
    pub(crate) fn max_ms(&self) -> f64 {
        self.micros.max() as f64 / 1000.0
    }
}

/// A histogram of microseconds up to [`MAX_MICROS`] with 3 significant digits.
pub(crate) fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static bounds are valid")
}

/// Sends `request(i)` for every `i` in `0..total`, `concurrency` at a time.
pub(crate) async fn drive<F, Fut>(total: usize, concurrency: usize, request: F) -> LoadResult
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.clamp(1, total.max(1)) {
        let request = request.clone();
        let next = next.clone();
        workers.spawn(async move {
            let mut micros = micros_histogram();
            let mut errors = 0;
            let mut examples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let sent = Instant::now();
                let outcome = request(i).await;
                let took = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                micros.saturating_record(took.max(1));
                if let Err(error) = outcome {
                    errors += 1;
                    if examples.len() < ERROR_EXAMPLES {
                        examples.push(error);
                    }
                }
            }
            (micros, errors, examples)
        });
    }
    let mut result = LoadResult {
        total,
        elapsed: Duration::ZERO,
        micros: micros_histogram(),
        errors: 0,
        error_examples: Vec::new(),
    };
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok((micros, errors, examples)) => {
                result
                    .micros
                    .add(&micros)
                    .expect("histograms share their bounds");
                result.errors += errors;
                for example in examples {
                    if result.error_examples.len() < ERROR_EXAMPLES {
                        result.error_examples.push(example);
                    }
                }
            }
            Err(panic) => {
                result.errors += 1;
                result
                    .error_examples
                    .push(format!("worker failed: {panic}"));
            }
        }
    }
    result.elapsed = started.elapsed();
    result
}

/// Sends one request and reads the whole answer; answers the body length. A status not in
/// `expect` is an error.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    expect: &[u16],
) -> Result<usize, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    if expect.contains(&status) {
        Ok(body.len())
    } else {
        Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ))
    }
}
