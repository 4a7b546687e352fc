//! rkron-client owns a typed client of rkron's Dkron-compatible REST API, used by the CLI, the
//! integration tests and the benchmarks.

use reqwest::StatusCode;
use rkron_api_types::{ErrorOut, ExecutionOut, JobIn, JobOut, MemberOut, PauseOut};
use serde::de::DeserializeOwned;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status; `message` is its `error` text.
    #[error("HTTP {status}: {message}")]
    Status { status: StatusCode, message: String },
    /// The request could not be sent or the answer could not be read.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Transport(_) => None,
        }
    }
}

/// A client of one rkron (or Dkron) server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// Creates a client for `base` such as `http://127.0.0.1:8080`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// The underlying HTTP client, for raw requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Builds a full URL for `path` (starting with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn read<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ClientError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response.json().await?);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorOut>(&text)
            .map(|e| e.error)
            .unwrap_or(text);
        Err(ClientError::Status { status, message })
    }

    /// `POST /v1/jobs`: creates or replaces a job.
    pub async fn upsert_job(&self, job: &JobIn) -> Result<JobOut, ClientError> {
        Self::read(
            self.http
                .post(self.url("/v1/jobs"))
                .json(job)
                .send()
                .await?,
        )
        .await
    }

    /// `GET /v1/jobs/{name}`.
    pub async fn get_job(&self, name: &str) -> Result<JobOut, ClientError> {
        Self::read(
            self.http
                .get(self.url(&format!("/v1/jobs/{name}")))
                .send()
                .await?,
        )
        .await
    }

    /// `GET /v1/jobs` with raw query pairs; answers the page and `X-Total-Count`.
    pub async fn list_jobs(
        &self,
        query: &[(&str, &str)],
    ) -> Result<(Vec<JobOut>, usize), ClientError> {
        let response = self
            .http
            .get(self.url("/v1/jobs"))
            .query(query)
            .send()
            .await?;
        let total = response
            .headers()
            .get("X-Total-Count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok((Self::read(response).await?, total))
    }

    /// `DELETE /v1/jobs/{name}`.
    pub async fn delete_job(&self, name: &str) -> Result<JobOut, ClientError> {
        Self::read(
            self.http
                .delete(self.url(&format!("/v1/jobs/{name}")))
                .send()
                .await?,
        )
        .await
    }

    /// `POST /v1/jobs/{name}`: runs a job now.
    pub async fn run_job(&self, name: &str) -> Result<JobOut, ClientError> {
        Self::read(
            self.http
                .post(self.url(&format!("/v1/jobs/{name}")))
                .send()
                .await?,
        )
        .await
    }

    /// `POST /v1/jobs/{name}/toggle`.
    pub async fn toggle_job(&self, name: &str) -> Result<JobOut, ClientError> {
        Self::read(
            self.http
                .post(self.url(&format!("/v1/jobs/{name}/toggle")))
                .send()
                .await?,
        )
        .await
    }

    /// `GET /v1/jobs/{name}/executions`.
    pub async fn executions(&self, name: &str) -> Result<Vec<ExecutionOut>, ClientError> {
        Self::read(
            self.http
                .get(self.url(&format!("/v1/jobs/{name}/executions")))
                .send()
                .await?,
        )
        .await
    }

    /// `GET /v1/members`.
    pub async fn members(&self) -> Result<Vec<MemberOut>, ClientError> {
        Self::read(self.http.get(self.url("/v1/members")).send().await?).await
    }

    /// `GET /v1/busy`.
    pub async fn busy(&self) -> Result<Vec<ExecutionOut>, ClientError> {
        Self::read(self.http.get(self.url("/v1/busy")).send().await?).await
    }

    /// `POST /v1/pause` or `/v1/unpause`.
    pub async fn set_paused(&self, paused: bool) -> Result<PauseOut, ClientError> {
        let path = if paused { "/v1/pause" } else { "/v1/unpause" };
        Self::read(self.http.post(self.url(path)).send().await?).await
    }

    /// `POST /v1/jobs/{name}?wait=true`: runs a job and waits for its executions.
    pub async fn run_job_and_wait(&self, name: &str) -> Result<Vec<ExecutionOut>, ClientError> {
        let url = self.url(&format!("/v1/jobs/{name}/run"));
        Self::read(
            self.http
                .post(url)
                .query(&[("wait", "true")])
                .send()
                .await?,
        )
        .await
    }

    /// `POST /v1/jobs/{job}/executions/{id}/kill`: kills a running execution.
    pub async fn kill_execution(&self, job: &str, id: &str) -> Result<ExecutionOut, ClientError> {
        let url = self.url(&format!("/v1/jobs/{job}/executions/{id}/kill"));
        Self::read(self.http.post(url).send().await?).await
    }

    /// `GET /v1/jobs`: every job, as the raw JSON text Dkron's backups use.
    pub async fn backup(&self) -> Result<String, ClientError> {
        let response = self.http.get(self.url("/v1/jobs")).send().await?;
        let status = response.status();
        let text = response.text().await?;
        if status.is_success() {
            return Ok(text);
        }
        let message = serde_json::from_str::<ErrorOut>(&text)
            .map(|e| e.error)
            .unwrap_or(text);
        Err(ClientError::Status { status, message })
    }

    /// `POST /v1/restore` with the backup as the multipart field `file`; answers the per-job lines.
    pub async fn restore(&self, backup: Vec<u8>) -> Result<Vec<String>, ClientError> {
        let part = reqwest::multipart::Part::bytes(backup).file_name("backup.json");
        let form = reqwest::multipart::Form::new().part("file", part);
        let response = self
            .http
            .post(self.url("/v1/restore"))
            .multipart(form)
            .send()
            .await?;
        // Dkron answers a JSON string holding a JSON array.
        let text: String = Self::read(response).await?;
        Ok(serde_json::from_str(&text).unwrap_or_else(|_| vec![text]))
    }

    /// `GET /health` succeeds.
    pub async fn healthy(&self) -> bool {
        matches!(self.http.get(self.url("/health")).send().await, Ok(r) if r.status().is_success())
    }
}
