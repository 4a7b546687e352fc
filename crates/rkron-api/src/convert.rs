//! Conversions between the wire shapes of rkron-api-types and the domain types of rkron-core.

use chrono::{DateTime, NaiveDateTime, Utc};
use rkron_api_types::{ExecutionOut, JobIn, JobOut, MemberOut, ZERO_TIME};
use rkron_core::{Concurrency, Execution, Job, JobStatus};
use rkron_node::Member;

/// Formats an instant like Go's RFC3339Nano: UTC, `Z`, fractional seconds without trailing zeros.
pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S");
    match t.timestamp_subsec_nanos() {
        0 => format!("{base}Z"),
        nanos => format!("{base}.{}Z", format!("{nanos:09}").trim_end_matches('0')),
    }
}

fn fmt_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(fmt_time)
}

/// Parses a submitted time: RFC 3339 (any offset) or the HTML form `YYYY-MM-DDTHH:MM` (UTC).
pub(crate) fn parse_time(
    field: &str,
    value: Option<&str>,
) -> Result<Option<DateTime<Utc>>, String> {
    let Some(text) = value else { return Ok(None) };
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M") {
        return Ok(Some(t.and_utc()));
    }
    Err(format!(
        "{field}: parsing time {text:?}: expected RFC 3339 (2006-01-02T15:04:05Z07:00) or 2006-01-02T15:04"
    ))
}

/// Turns a submitted job into the domain job, keeping the raw concurrency text for validation.
pub(crate) fn job_from_wire(input: JobIn) -> Result<(Job, String), String> {
    let job = Job {
        last_success: parse_time("last_success", input.last_success.as_deref())?,
        last_error: parse_time("last_error", input.last_error.as_deref())?,
        starts_at: parse_time("starts_at", input.starts_at.as_deref())?,
        expires_at: parse_time("expires_at", input.expires_at.as_deref())?,
        name: input.name,
        displayname: input.displayname,
        timezone: input.timezone,
        schedule: input.schedule,
        owner: input.owner,
        owner_email: input.owner_email,
        success_count: input.success_count,
        error_count: input.error_count,
        disabled: input.disabled,
        tags: input.tags,
        metadata: input.metadata,
        retries: input.retries,
        dependent_jobs: input.dependent_jobs,
        parent_job: input.parent_job,
        processors: input.processors.unwrap_or_default(),
        concurrency: Concurrency::parse(&input.concurrency).unwrap_or_default(),
        executor: input.executor,
        executor_config: input.executor_config,
        status: JobStatus::parse(&input.status).unwrap_or_default(),
        next: None,
        ephemeral: input.ephemeral,
        retry_interval: input.retry_interval,
        starting_deadline: input.starting_deadline,
        notify_on: input.notify_on,
        notify_email: input.notify_email,
        notify_webhook: input.notify_webhook,
    };
    Ok((job, input.concurrency))
}

/// Shows a job in Dkron's shape.
pub(crate) fn job_to_wire(job: Job) -> JobOut {
    JobOut {
        id: job.name.clone(),
        name: job.name,
        displayname: job.displayname,
        timezone: job.timezone,
        schedule: job.schedule,
        owner: job.owner,
        owner_email: job.owner_email,
        success_count: job.success_count,
        error_count: job.error_count,
        last_success: fmt_opt(job.last_success),
        last_error: fmt_opt(job.last_error),
        disabled: job.disabled,
        tags: job.tags,
        metadata: job.metadata,
        retries: job.retries,
        dependent_jobs: job.dependent_jobs,
        parent_job: job.parent_job,
        processors: job.processors,
        concurrency: job.concurrency.as_str().to_owned(),
        executor: job.executor,
        executor_config: job.executor_config,
        status: job.status.as_str().to_owned(),
        next: job.next.map_or_else(|| ZERO_TIME.to_owned(), fmt_time),
        ephemeral: job.ephemeral,
        starts_at: fmt_opt(job.starts_at),
        expires_at: fmt_opt(job.expires_at),
        retry_interval: job.retry_interval,
        starting_deadline: job.starting_deadline,
        notify_on: job.notify_on,
        notify_email: job.notify_email,
        notify_webhook: job.notify_webhook,
    }
}

/// Turns a backup entry (a job as `GET /v1/jobs` shows it) back into a submission.
pub(crate) fn job_out_to_in(out: JobOut) -> JobIn {
    JobIn {
        name: out.name,
        displayname: out.displayname,
        timezone: out.timezone,
        schedule: out.schedule,
        owner: out.owner,
        owner_email: out.owner_email,
        success_count: out.success_count,
        error_count: out.error_count,
        last_success: out.last_success,
        last_error: out.last_error,
        disabled: out.disabled,
        tags: out.tags,
        metadata: out.metadata,
        retries: out.retries,
        dependent_jobs: out.dependent_jobs,
        parent_job: out.parent_job,
        processors: Some(out.processors),
        concurrency: out.concurrency,
        executor: out.executor,
        executor_config: out.executor_config,
        status: out.status,
        ephemeral: out.ephemeral,
        starts_at: out.starts_at,
        expires_at: out.expires_at,
        retry_interval: out.retry_interval,
        starting_deadline: out.starting_deadline,
        notify_on: out.notify_on,
        notify_email: out.notify_email,
        notify_webhook: out.notify_webhook,
    }
}

/// Shows an execution in Dkron's shape; `limit` keeps only the last bytes of the output.
pub(crate) fn execution_to_wire(e: Execution, limit: Option<usize>, listing: bool) -> ExecutionOut {
    let id = e.id();
    let (output, truncated) = match limit {
        Some(n) if e.output.len() > n => {
            let mut cut = e.output.len() - n;
            while !e.output.is_char_boundary(cut) {
                cut += 1;
            }
            (e.output[cut..].to_owned(), true)
        }
        _ => (e.output, false),
    };
    ExecutionOut {
        id,
        job_name: e.job_name,
        started_at: fmt_time(e.started_at),
        finished_at: e.finished_at.map_or_else(|| ZERO_TIME.to_owned(), fmt_time),
        success: e.success,
        output,
        node_name: e.node_name,
        group: e.group,
        attempt: e.attempt,
        output_truncated: listing.then_some(truncated),
        scheduled_at: fmt_opt(e.scheduled_at),
    }
}

/// Shows a member in Serf's shape.
pub(crate) fn member_to_wire(m: Member, listing: bool) -> MemberOut {
    MemberOut {
        name: m.name,
        addr: m.addr,
        port: m.port,
        tags: m.tags,
        status: m.status as u8,
        protocol_min: 1,
        protocol_max: 5,
        protocol_cur: 2,
        delegate_min: 2,
        delegate_max: 5,
        delegate_cur: 4,
        id: listing.then(|| uuid::Uuid::new_v4().to_string()),
        status_text: listing.then(|| m.status.as_str().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_format_like_go_rfc3339nano() {
        let t = Utc.with_ymd_and_hms(2025, 12, 19, 9, 9, 10).unwrap();
        assert_eq!(fmt_time(t), "2025-12-19T09:09:10Z");
        assert_eq!(
            fmt_time(t + chrono::TimeDelta::milliseconds(120)),
            "2025-12-19T09:09:10.12Z"
        );
        assert_eq!(
            fmt_time(t + chrono::TimeDelta::nanoseconds(5)),
            "2025-12-19T09:09:10.000000005Z"
        );
    }

    #[test]
    fn times_parse_rfc3339_and_datetime_local() {
        let utc = Utc.with_ymd_and_hms(2025, 12, 19, 9, 9, 0).unwrap();
        assert_eq!(parse_time("f", Some("2025-12-19T09:09:00Z")), Ok(Some(utc)));
        assert_eq!(
            parse_time("f", Some("2025-12-19T10:09:00+01:00")),
            Ok(Some(utc))
        );
        assert_eq!(parse_time("f", Some("2025-12-19T09:09")), Ok(Some(utc)));
        assert_eq!(parse_time("f", None), Ok(None));
        assert!(parse_time("f", Some("not-a-date")).is_err());
    }

    #[test]
    fn output_limit_keeps_the_tail() {
        let e = Execution {
            job_name: "j".into(),
            started_at: Utc.timestamp_opt(1, 0).unwrap(),
            finished_at: None,
            success: false,
            output: "abcdef".into(),
            node_name: "n".into(),
            group: 1,
            attempt: 1,
            scheduled_at: None,
        };
        let out = execution_to_wire(e, Some(2), true);
        assert_eq!(out.output, "ef");
        assert_eq!(out.output_truncated, Some(true));
        assert_eq!(out.finished_at, ZERO_TIME);
    }
}
