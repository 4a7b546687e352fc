//! Next fire times: `GET /v1/jobs/{job}/next` for a stored job and `POST /v1/schedule/preview`
//! for a schedule being edited (the dashboard's editor), both computed with rkron-core's
//! schedule code, exactly as the scheduler computes `next`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use rkron_api_types::{NextOut, SchedulePreviewIn};
use rkron_core::{Job, ValidationError};
use rkron_node::NodeError;

use crate::convert::{fmt_time, parse_time};
use crate::{ApiError, AppState};

/// Fire times answered when the request does not say.
const DEFAULT_COUNT: usize = 5;
/// Most fire times answered.
const MAX_COUNT: usize = 100;

/// Returns up to `count` fire times of `job` after `now`, soonest first, honouring `starts_at`
/// and `expires_at` like [`Job::compute_next`].
pub(crate) fn next_fires(job: &Job, now: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
    let mut fires = Vec::with_capacity(count);
    let mut after = now;
    while fires.len() < count {
        let Some(next) = job.compute_next(after) else {
            break;
        };
        debug_assert!(next > after, "compute_next moves forward");
        fires.push(next);
        after = next;
    }
    fires
}

/// The zone a job's schedule is evaluated in: a `TZ=` prefix, else the job's zone, else UTC.
fn zone_name(job: &Job) -> String {
    let prefixed = job
        .parsed_schedule()
        .and_then(Result::ok)
        .and_then(|s| s.timezone());
    match prefixed {
        Some(zone) => zone.name().to_owned(),
        None if job.timezone.is_empty() => "UTC".to_owned(),
        None => job.timezone.clone(),
    }
}

fn answer(job: &Job, now: DateTime<Utc>, count: usize) -> NextOut {
    NextOut {
        timezone: zone_name(job),
        next: next_fires(job, now, count.clamp(1, MAX_COUNT))
            .into_iter()
            .map(fmt_time)
            .collect(),
    }
}

/// `GET /v1/jobs/{job}/next?n=5`: the job's next fire times (at most 100).
pub(crate) async fn job_next(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<NextOut>, ApiError> {
    let count = match pairs.iter().find(|(k, _)| k == "n") {
        Some((_, value)) => crate::handlers::parse_index("n", value)?,
        None => DEFAULT_COUNT,
    };
    let job = s.node.get_job(&name).await?;
    Ok(Json(answer(&job, s.node.now(), count)))
}

/// `POST /v1/schedule/preview` with `{"schedule","timezone","name"}`: the next fire times, or
/// 400 with the message a job submission would get (`Job validation failed: can't parse job
/// schedule: …` or `… unknown time zone …`).
pub(crate) async fn preview(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<NextOut>, ApiError> {
    let body = crate::handlers::body_or_413(body)?;
    let input: SchedulePreviewIn = serde_json::from_slice(&body).map_err(ApiError::unparsable)?;
    let job = Job {
        starts_at: parse_time("starts_at", input.starts_at.as_deref())
            .map_err(ApiError::unparsable)?,
        expires_at: parse_time("expires_at", input.expires_at.as_deref())
            .map_err(ApiError::unparsable)?,
        name: input.name,
        schedule: input.schedule,
        timezone: input.timezone,
        ..Job::default()
    };
    // The same checks, in the same order and with the same text, as a job submission.
    rkron_core::Schedule::parse(&job.schedule, &job.name, "")
        .map_err(|e| NodeError::Invalid(ValidationError::Schedule(e.to_string()).to_string()))?;
    rkron_core::schedule::parse_timezone(&job.timezone)
        .map_err(|e| NodeError::Invalid(ValidationError::Timezone(e).to_string()))?;
    Ok(Json(answer(
        &job,
        s.node.now(),
        input.n.unwrap_or(DEFAULT_COUNT),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn job(schedule: &str, timezone: &str) -> Job {
        Job {
            name: "j".into(),
            schedule: schedule.into(),
            timezone: timezone.into(),
            ..Job::default()
        }
    }

    #[test]
    fn next_fires_follow_the_schedule_in_the_jobs_zone() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let fires = next_fires(&job("0 30 9 * * *", "Europe/Berlin"), now, 3);
        let expected: Vec<_> = [2, 3, 4]
            .into_iter()
            .map(|d| Utc.with_ymd_and_hms(2026, 1, d, 8, 30, 0).unwrap())
            .collect();
        assert_eq!(fires, expected);
        assert_eq!(
            zone_name(&job("0 30 9 * * *", "Europe/Berlin")),
            "Europe/Berlin"
        );
        assert_eq!(
            zone_name(&job("TZ=Asia/Tokyo 0 * * * * *", "")),
            "Asia/Tokyo"
        );
        assert_eq!(zone_name(&job("@every 1m", "")), "UTC");
    }

    #[test]
    fn next_fires_stop_at_expiry_and_for_one_shots() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut daily = job("@daily", "");
        daily.expires_at = Some(Utc.with_ymd_and_hms(2026, 1, 3, 12, 0, 0).unwrap());
        assert_eq!(next_fires(&daily, now, 5).len(), 2);
        assert_eq!(
            next_fires(&job("@at 2026-02-01T00:00:00Z", ""), now, 5).len(),
            1
        );
        assert!(next_fires(&job("@manually", ""), now, 5).is_empty());
    }

    #[test]
    fn next_fires_start_at_starts_at() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut hourly = job("@hourly", "");
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        hourly.starts_at = Some(start);
        assert_eq!(next_fires(&hourly, now, 2)[0], start);
    }
}
