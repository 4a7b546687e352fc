//! Route handlers: parse the request, call the node handle, shape the answer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::multipart::Multipart;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rkron_api_types::{AgentInfo, ExecutionOut, HealthOut, JobIn, JobOut, PauseOut, StatusOut};
use rkron_core::JobStatus;
use rkron_node::{JobQuery, NodeError, SortField};

use crate::convert::{
    execution_to_wire, job_from_wire, job_out_to_in, job_to_wire, member_to_wire,
};
use crate::{ApiError, AppState};

type Pairs = Query<Vec<(String, String)>>;

fn total_count(n: usize) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("X-Total-Count", HeaderValue::from(n));
    headers
}

fn location(uri: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(uri) {
        headers.insert(header::LOCATION, v);
    }
    headers
}

pub(crate) fn body_or_413(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body too large: {}", e.body_text()),
            )
        }
        other => ApiError::new(other.status(), other.body_text()),
    })
}

pub(crate) fn parse_index(name: &str, value: &str) -> Result<usize, ApiError> {
    value.trim().parse::<usize>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid {name} {value:?}: expected a non-negative integer"),
        )
    })
}

pub(crate) async fn health() -> Json<HealthOut> {
    Json(HealthOut {
        status: "healthy".into(),
    })
}

pub(crate) async fn status(State(s): State<AppState>) -> Json<StatusOut> {
    let members = s.node.members();
    let count = |st: rkron_node::MemberStatus| {
        members
            .iter()
            .filter(|m| m.status == st)
            .count()
            .to_string()
    };
    let serf = [
        ("members", members.len().to_string()),
        ("failed", count(rkron_node::MemberStatus::Failed)),
        ("left", count(rkron_node::MemberStatus::Left)),
        ("encrypted", "false".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Json(StatusOut {
        agent: AgentInfo {
            name: s.node.node_name().to_owned(),
            version: s.node.version().to_owned(),
        },
        serf,
        tags: s.node.tags().clone(),
    })
}

pub(crate) async fn members(State(s): State<AppState>) -> Response {
    let members: Vec<_> = s
        .node
        .members()
        .into_iter()
        .map(|m| member_to_wire(m, true))
        .collect();
    (total_count(members.len()), Json(members)).into_response()
}

/// `POST /v1/leave`: the node leaves the cluster gracefully and stops; answers the members it
/// knew, as Dkron answers its peers.
pub(crate) async fn leave(State(s): State<AppState>) -> Result<Response, ApiError> {
    let Some(leave) = &s.leave else {
        return Err(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "this node cannot leave: it is not in a cluster",
        ));
    };
    let members: Vec<_> = s
        .node
        .members()
        .into_iter()
        .map(|m| member_to_wire(m, true))
        .collect();
    tracing::info!("leave requested over HTTP");
    leave();
    Ok(Json(members).into_response())
}

pub(crate) async fn leader(State(s): State<AppState>) -> Result<Response, ApiError> {
    match s.node.leader().await {
        Some(m) => Ok(Json(member_to_wire(m, false)).into_response()),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no leader: the cluster has not elected one",
        )),
    }
}

pub(crate) async fn is_leader(State(s): State<AppState>) -> Response {
    if s.node.is_leader() {
        (StatusCode::OK, Json("I am a leader")).into_response()
    } else {
        (StatusCode::NOT_FOUND, Json("I am a follower")).into_response()
    }
}

fn job_query(pairs: Vec<(String, String)>) -> Result<JobQuery, ApiError> {
    let mut q = JobQuery::default();
    for (key, value) in pairs {
        if let Some(meta) = key
            .strip_prefix("metadata[")
            .and_then(|k| k.strip_suffix(']'))
        {
            q.metadata.insert(meta.to_owned(), value);
            continue;
        }
        match key.as_str() {
            "q" if !value.is_empty() => q.q = Some(value),
            // Like Dkron's exact-match filters, a value no job can have matches nothing.
            "status" if !value.is_empty() => match JobStatus::parse(&value) {
                Some(status) => q.status = Some(status),
                None => q.match_nothing = true,
            },
            "disabled" if !value.is_empty() => match value.as_str() {
                "true" => q.disabled = Some(true),
                "false" => q.disabled = Some(false),
                _ => q.match_nothing = true,
            },
            "_sort" => {
                q.sort = SortField::parse(&value).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("invalid _sort {value:?}: unknown field"),
                    )
                })?;
            }
            "_order" => q.descending = value == "DESC",
            "_start" => q.start = parse_index("_start", &value)?,
            "_end" => q.end = Some(parse_index("_end", &value)?),
            _ => {}
        }
    }
    Ok(q)
}

pub(crate) async fn list_jobs(
    State(s): State<AppState>,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let query = job_query(pairs)?;
    let (jobs, total) = s.node.list_jobs(&query).await?;
    let jobs: Vec<JobOut> = jobs.into_iter().map(job_to_wire).collect();
    Ok((total_count(total), Json(jobs)).into_response())
}

async fn upsert(
    s: &AppState,
    body: Result<Bytes, BytesRejection>,
    run_on_create: bool,
    uri: &str,
) -> Result<Response, ApiError> {
    let body = body_or_413(body)?;
    let input: JobIn = serde_json::from_slice(&body).map_err(ApiError::unparsable)?;
    let (job, concurrency) = job_from_wire(input).map_err(ApiError::unparsable)?;
    job.validate_with_concurrency(&concurrency)
        .map_err(|e| NodeError::Invalid(e.to_string()))?;
    let stored = s.node.upsert_job(job).await?;
    if run_on_create {
        s.node.run_job(&stored.name).await?;
    }
    let loc = format!(
        "{}/{}",
        uri.split('?').next().unwrap_or(uri).trim_end_matches('/'),
        stored.name
    );
    Ok((
        StatusCode::CREATED,
        location(&loc),
        Json(job_to_wire(stored)),
    )
        .into_response())
}

fn has_flag(pairs: &[(String, String)], name: &str) -> bool {
    pairs.iter().any(|(k, _)| k == name)
}

pub(crate) async fn upsert_job(
    State(s): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Query(pairs): Pairs,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    upsert(&s, body, has_flag(&pairs, "runoncreate"), &uri.to_string()).await
}

/// `PUT /v1/jobs/{job}`: like Dkron, the body's `name` decides; the path is ignored.
pub(crate) async fn upsert_job_put(
    State(s): State<AppState>,
    Query(pairs): Pairs,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    upsert(&s, body, has_flag(&pairs, "runoncreate"), "/v1/jobs").await
}

pub(crate) async fn get_job(
    State(s): State<AppState>,
    Path(job): Path<String>,
) -> Result<Json<JobOut>, ApiError> {
    Ok(Json(job_to_wire(s.node.get_job(&job).await?)))
}

pub(crate) async fn delete_job(
    State(s): State<AppState>,
    Path(job): Path<String>,
) -> Result<Json<JobOut>, ApiError> {
    Ok(Json(job_to_wire(s.node.delete_job(&job).await?)))
}

/// `POST /v1/jobs/{job}` and `/run`: answers the job at once (200, Dkron's wire status); with
/// `?wait=true` it answers the run's executions once every node has finished.
pub(crate) async fn run_job(
    State(s): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(job): Path<String>,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let wait = pairs
        .iter()
        .any(|(k, v)| k == "wait" && (v.is_empty() || v == "true" || v == "1"));
    if wait {
        let executions: Vec<ExecutionOut> = s
            .node
            .run_job_and_wait(&job)
            .await?
            .into_iter()
            .map(|e| execution_to_wire(e, None, false))
            .collect();
        return Ok((StatusCode::OK, location(&uri.to_string()), Json(executions)).into_response());
    }
    let job = s.node.run_job(&job).await?;
    Ok((
        StatusCode::OK,
        location(&uri.to_string()),
        Json(job_to_wire(job)),
    )
        .into_response())
}

/// `POST /v1/jobs/{job}/executions/{execution}/kill`: kills a running execution.
pub(crate) async fn kill_execution(
    State(s): State<AppState>,
    Path((job, execution)): Path<(String, String)>,
) -> Result<Json<ExecutionOut>, ApiError> {
    let killed = s.node.kill_execution(&job, &execution).await?;
    Ok(Json(execution_to_wire(killed, None, false)))
}

pub(crate) async fn toggle_job(
    State(s): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let job = s.node.toggle_job(&job).await?;
    Ok((
        StatusCode::OK,
        location(&uri.to_string()),
        Json(job_to_wire(job)),
    )
        .into_response())
}

pub(crate) async fn list_executions(
    State(s): State<AppState>,
    Path(job): Path<String>,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let mut sort = "started_at".to_owned();
    let mut descending = true;
    let mut limit = None;
    let (mut start, mut end) = (0usize, None);
    for (key, value) in &pairs {
        match key.as_str() {
            "_sort" => {
                sort = if value == "id" {
                    "started_at".to_owned()
                } else {
                    value.clone()
                }
            }
            "_order" => descending = value == "DESC",
            // Dkron: a non-integer limit means unlimited.
            "output_size_limit" => limit = value.trim().parse::<usize>().ok(),
            "_start" => start = parse_index("_start", value)?,
            "_end" => end = Some(parse_index("_end", value)?),
            _ => {}
        }
    }
    let mut executions = s.node.executions(&job, true).await?;
    match sort.as_str() {
        "started_at" => {}
        "finished_at" => executions.sort_by_key(|e| (e.finished_at, e.started_at)),
        "attempt" => executions.sort_by_key(|e| (e.attempt, e.started_at)),
        // Dkron answers an empty list for an unknown sort field.
        _ => executions.clear(),
    }
    if descending {
        executions.reverse();
    }
    let total = executions.len();
    let end = end.unwrap_or(total).min(total);
    let start = start.min(end);
    let page: Vec<ExecutionOut> = executions
        .drain(start..end)
        .map(|e| execution_to_wire(e, limit, true))
        .collect();
    Ok((total_count(total), Json(page)).into_response())
}

pub(crate) async fn delete_executions(
    State(s): State<AppState>,
    Path(job): Path<String>,
) -> Result<Json<JobOut>, ApiError> {
    Ok(Json(job_to_wire(s.node.delete_executions(&job).await?)))
}

pub(crate) async fn get_execution(
    State(s): State<AppState>,
    Path((job, execution)): Path<(String, String)>,
) -> Result<Json<ExecutionOut>, ApiError> {
    Ok(Json(execution_to_wire(
        s.node.execution(&job, &execution).await?,
        None,
        false,
    )))
}

/// `GET /v1/jobs/{job}/missed` (rkron): fires that were due but not run.
pub(crate) async fn missed_fires(
    State(s): State<AppState>,
    Path(job): Path<String>,
) -> Result<Json<rkron_api_types::MissedOut>, ApiError> {
    let missed = s.node.missed_fires(&job).await?;
    Ok(Json(rkron_api_types::MissedOut {
        total: missed.total,
        recent: missed
            .recent
            .into_iter()
            .map(crate::convert::fmt_time)
            .collect(),
    }))
}

/// `GET /v1/summary` (rkron): stored jobs counted by status, and the running executions; one
/// read for the dashboard's overview instead of one filtered listing per status.
pub(crate) async fn summary(
    State(s): State<AppState>,
) -> Result<Json<rkron_api_types::SummaryOut>, ApiError> {
    let counts = s.node.job_counts().await?;
    Ok(Json(rkron_api_types::SummaryOut {
        jobs: rkron_api_types::JobCountsOut {
            total: counts.total,
            success: counts.success,
            failed: counts.failed,
            partially_failed: counts.partially_failed,
            untriggered: counts.untriggered,
            disabled: counts.disabled,
        },
        running: s.node.busy_in_cluster().await.len(),
    }))
}

/// `GET /`: Dkron's redirect to the dashboard (303 to `/ui/`) for clients that accept HTML;
/// 404 for the others.
pub(crate) async fn root(headers: HeaderMap) -> Response {
    let wants_html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    if wants_html {
        return axum::response::Redirect::to(rkron_ui::MOUNT).into_response();
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no route for /: the dashboard is at /ui/",
    )
    .into_response()
}

/// `GET /v1/busy`: the executions running across the cluster, from the leader (asked over RPC
/// when this server does not lead).
pub(crate) async fn busy(State(s): State<AppState>) -> Response {
    let running: Vec<ExecutionOut> = s
        .node
        .busy_in_cluster()
        .await
        .into_iter()
        .map(|e| execution_to_wire(e, None, false))
        .collect();
    (total_count(running.len()), Json(running)).into_response()
}

pub(crate) async fn get_pause(State(s): State<AppState>) -> Json<PauseOut> {
    Json(PauseOut {
        paused: s.node.is_paused().await,
    })
}

pub(crate) async fn pause(State(s): State<AppState>) -> Result<Json<PauseOut>, ApiError> {
    Ok(Json(PauseOut {
        paused: s.node.set_paused(true).await?,
    }))
}

pub(crate) async fn unpause(State(s): State<AppState>) -> Result<Json<PauseOut>, ApiError> {
    Ok(Json(PauseOut {
        paused: s.node.set_paused(false).await?,
    }))
}

/// `POST /v1/restore`: multipart field `file` holding a JSON array of jobs.
pub(crate) async fn restore(
    State(s): State<AppState>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut multipart =
        multipart.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mut file = None;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let Some(field) = field else { break };
        if field.name() == Some("file") {
            file = Some(
                field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::new(e.status(), e.body_text()))?,
            );
            break;
        }
    }
    let Some(file) = file else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "http: no such file: the multipart field \"file\" is missing",
        ));
    };
    let backup: Vec<JobOut> = match serde_json::from_slice(&file) {
        Ok(list) => list,
        Err(_) => {
            // Accept submissions without server-computed fields too.
            let list: Vec<JobIn> = serde_json::from_slice(&file).map_err(ApiError::unparsable)?;
            return restore_jobs(&s, list).await;
        }
    };
    restore_jobs(&s, backup.into_iter().map(job_out_to_in).collect()).await
}

async fn restore_jobs(s: &AppState, list: Vec<JobIn>) -> Result<Response, ApiError> {
    let mut jobs = Vec::with_capacity(list.len());
    for input in list {
        let (job, concurrency) = job_from_wire(input).map_err(ApiError::unparsable)?;
        job.validate_with_concurrency(&concurrency)
            .map_err(|e| NodeError::Invalid(e.to_string()))?;
        jobs.push(job);
    }
    let results = s.node.restore(jobs).await?;
    let text = serde_json::to_string(&results).unwrap_or_default();
    Ok(Json(text).into_response())
}

pub(crate) async fn not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}
