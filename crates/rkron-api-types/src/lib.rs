//! rkron-api-types owns the Dkron-compatible `/v1` JSON shapes (serde only), shared by rkron-api and rkron-client.
//!
//! Times travel as RFC 3339 strings; the API crate formats and parses them. Key order follows
//! Dkron's output exactly, and every key is always present, as in Dkron.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A string-to-string map.
pub type StringMap = BTreeMap<String, String>;

/// The zero time Dkron shows for "never" (`next` of child and manual jobs, `finished_at` while running).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A job as Dkron's API shows it (`GET /v1/jobs/{job}`), in Dkron's key order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOut {
    pub id: String,
    pub name: String,
    pub displayname: String,
    pub timezone: String,
    pub schedule: String,
    pub owner: String,
    pub owner_email: String,
    pub success_count: u64,
    pub error_count: u64,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub disabled: bool,
    pub tags: Option<StringMap>,
    pub metadata: Option<StringMap>,
    pub retries: u32,
    pub dependent_jobs: Option<Vec<String>>,
    pub parent_job: String,
    pub processors: BTreeMap<String, StringMap>,
    pub concurrency: String,
    pub executor: String,
    pub executor_config: Option<StringMap>,
    pub status: String,
    pub next: String,
    pub ephemeral: bool,
    pub starts_at: Option<String>,
    pub expires_at: Option<String>,
    /// rkron: delay before the first retry, doubled for each later one (Go duration).
    #[serde(default)]
    pub retry_interval: String,
    /// rkron: how late a missed fire may still run (Go duration; empty = 1h).
    #[serde(default)]
    pub starting_deadline: String,
    /// rkron: when to notify: comma list of always, success, failure, recovery.
    #[serde(default)]
    pub notify_on: String,
    /// rkron: extra e-mail recipients (comma list).
    #[serde(default)]
    pub notify_email: String,
    /// rkron: an extra webhook endpoint.
    #[serde(default)]
    pub notify_webhook: String,
}

/// A job as clients submit it. Every key is optional; unknown keys are ignored (Dkron does too).
/// Server-maintained keys (`id`, `status`, `next`, …) are accepted and handled by the merge rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobIn {
    pub name: String,
    pub displayname: String,
    pub timezone: String,
    pub schedule: String,
    pub owner: String,
    pub owner_email: String,
    pub success_count: u64,
    pub error_count: u64,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub disabled: bool,
    pub tags: Option<StringMap>,
    pub metadata: Option<StringMap>,
    pub retries: u32,
    pub dependent_jobs: Option<Vec<String>>,
    pub parent_job: String,
    pub processors: Option<BTreeMap<String, StringMap>>,
    pub concurrency: String,
    pub executor: String,
    pub executor_config: Option<StringMap>,
    pub status: String,
    pub ephemeral: bool,
    pub starts_at: Option<String>,
    pub expires_at: Option<String>,
    /// rkron: delay before the first retry, doubled for each later one (Go duration).
    pub retry_interval: String,
    /// rkron: how late a missed fire may still run (Go duration; empty = 1h).
    pub starting_deadline: String,
    /// rkron: when to notify: comma list of always, success, failure, recovery.
    pub notify_on: String,
    /// rkron: extra e-mail recipients (comma list).
    pub notify_email: String,
    /// rkron: an extra webhook endpoint.
    pub notify_webhook: String,
}

/// An execution as Dkron's API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionOut {
    pub id: String,
    pub job_name: String,
    pub started_at: String,
    pub finished_at: String,
    pub success: bool,
    pub output: String,
    pub node_name: String,
    pub group: i64,
    pub attempt: u32,
    /// Present only in `GET /v1/jobs/{job}/executions`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_truncated: Option<bool>,
    /// rkron: the scheduled instant this execution serves; `null` for manual runs.
    #[serde(default)]
    pub scheduled_at: Option<String>,
}

/// A cluster member in Serf's shape, as `GET /v1/members` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberOut {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Addr")]
    pub addr: String,
    #[serde(rename = "Port")]
    pub port: u16,
    #[serde(rename = "Tags")]
    pub tags: StringMap,
    /// 0 none, 1 alive, 2 leaving, 3 left, 4 failed.
    #[serde(rename = "Status")]
    pub status: u8,
    #[serde(rename = "ProtocolMin")]
    pub protocol_min: u8,
    #[serde(rename = "ProtocolMax")]
    pub protocol_max: u8,
    #[serde(rename = "ProtocolCur")]
    pub protocol_cur: u8,
    #[serde(rename = "DelegateMin")]
    pub delegate_min: u8,
    #[serde(rename = "DelegateMax")]
    pub delegate_max: u8,
    #[serde(rename = "DelegateCur")]
    pub delegate_cur: u8,
    /// Only in `/v1/members`: a fresh UUID per response, as Dkron does.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// Only in `/v1/members`: `none`, `alive`, `leaving`, `left` or `failed`.
    #[serde(
        rename = "statusText",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub status_text: Option<String>,
}

/// `GET /v1`: the agent's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusOut {
    pub agent: AgentInfo,
    pub serf: StringMap,
    pub tags: StringMap,
}

/// Name and version of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub name: String,
    pub version: String,
}

/// `GET /v1/jobs/{job}/missed` (rkron): fires that were due but not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedOut {
    /// How many fires were missed in all.
    pub total: u64,
    /// The most recent missed instants, oldest first (at most 100).
    pub recent: Vec<String>,
}

/// `GET|POST /v1/pause`, `POST /v1/unpause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseOut {
    pub paused: bool,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthOut {
    pub status: String,
}

/// Every error answer: `{"error": "<Dkron's message text>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorOut {
    pub error: String,
}

/// `GET /v1/jobs/{job}/next` and `POST /v1/schedule/preview` (rkron): the next fire times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextOut {
    /// The zone the schedule is evaluated in (an IANA name; `UTC` when none is set).
    pub timezone: String,
    /// The next fire instants, in UTC RFC 3339, soonest first; empty when the job never fires on
    /// its own (`@manually`, a past `@at`, a child job without a schedule, past `expires_at`).
    pub next: Vec<String>,
}

/// `POST /v1/schedule/preview` (rkron): a schedule to check, as the job editor holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulePreviewIn {
    /// The schedule spec, as in a job.
    pub schedule: String,
    /// The job's IANA zone; empty means UTC.
    pub timezone: String,
    /// The job's name: `~` and the phase of `@every` depend on it.
    pub name: String,
    /// The job's `starts_at` (RFC 3339 or `YYYY-MM-DDTHH:MM`, UTC): no fire before it.
    pub starts_at: Option<String>,
    /// The job's `expires_at`: no fire after it.
    pub expires_at: Option<String>,
    /// How many fire times to answer (default 5, at most 100).
    pub n: Option<usize>,
}

/// `GET /v1/summary` (rkron): what the dashboard's overview counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryOut {
    /// Stored jobs by status.
    pub jobs: JobCountsOut,
    /// Executions running now (as `/v1/busy` lists them).
    pub running: usize,
}

/// Stored jobs counted by status (`untriggered` is Dkron's `""`) and by `disabled`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCountsOut {
    /// Every stored job.
    pub total: usize,
    /// Status `success`.
    pub success: usize,
    /// Status `failed`.
    pub failed: usize,
    /// Status `partially_failed`.
    pub partially_failed: usize,
    /// Status `""` (never ran).
    pub untriggered: usize,
    /// `disabled: true`, whatever the status.
    pub disabled: usize,
}
