//! Where the DynamoDB table is and how to sign in: the store's settings and their checks.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{Credentials, Region};
use rkron_store::StoreError;

/// The default table (Dkron's `keyspace` setting).
pub const DEFAULT_TABLE: &str = "rkron";

/// The default deadline of one call to DynamoDB.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Environment variable of the access key id.
const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// Environment variable of the secret access key.
const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Environment variable of a temporary session's token.
const SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// Environment variables of the region, in order of precedence.
const REGION_VARIABLES: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];

/// Settings of a [`crate::DynamoStore`].
#[derive(Clone)]
pub struct DynamoConfig {
    /// The endpoint (Dkron's `backend-machine`): `http://host:port` of a local server such as
    /// moto or DynamoDB Local (`host:port` means `http://host:port`); `None` talks to AWS at
    /// the region's endpoint.
    pub endpoint: Option<String>,
    /// The AWS region. Empty: `AWS_REGION` or `AWS_DEFAULT_REGION` of [`Self::environment`].
    pub region: String,
    /// The table (Dkron's `keyspace`, default [`DEFAULT_TABLE`]): 3 to 255 characters of
    /// `A-Z a-z 0-9 _ - .`. Stores with different tables share nothing.
    pub table: String,
    /// The access key id; `None` takes `AWS_ACCESS_KEY_ID` of [`Self::environment`].
    pub access_key: Option<String>,
    /// The secret access key; `None` takes `AWS_SECRET_ACCESS_KEY` of [`Self::environment`].
    pub secret_key: Option<String>,
    /// The token of temporary credentials; `None` takes `AWS_SESSION_TOKEN` of
    /// [`Self::environment`] when the keys come from there too.
    pub session_token: Option<String>,
    /// The process environment, passed in by the caller (the store never reads the process
    /// environment itself): the source of `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION` and `AWS_DEFAULT_REGION`.
    pub environment: BTreeMap<String, String>,
    /// Creates the table (on-demand capacity, `PAY_PER_REQUEST`) when it does not exist;
    /// otherwise a missing table fails [`crate::DynamoStore::connect`].
    pub create_table: bool,
    /// Deadline of each call to DynamoDB (retries included): an unreachable or throttling
    /// service answers [`StoreError::Unavailable`] after at most this long.
    pub timeout: Duration,
}

impl Default for DynamoConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: String::new(),
            table: DEFAULT_TABLE.to_owned(),
            access_key: None,
            secret_key: None,
            session_token: None,
            environment: BTreeMap::new(),
            create_table: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for DynamoConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "<hidden>");
        // Only the names: the environment holds secrets.
        let environment: Vec<&str> = self.environment.keys().map(String::as_str).collect();
        formatter
            .debug_struct("DynamoConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("table", &self.table)
            .field("access_key", &self.access_key)
            .field("secret_key", &hidden(&self.secret_key))
            .field("session_token", &hidden(&self.session_token))
            .field("environment", &environment)
            .field("create_table", &self.create_table)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn invalid(reason: impl fmt::Display) -> StoreError {
    StoreError::Backend(format!("invalid DynamoDB store settings: {reason}"))
}

/// The settings, checked and with the environment applied.
pub(crate) struct Resolved {
    pub(crate) endpoint: Option<String>,
    pub(crate) region: String,
    pub(crate) table: String,
    pub(crate) timeout: Duration,
    pub(crate) sdk: aws_sdk_dynamodb::Config,
}

impl DynamoConfig {
    /// Checks the settings and builds the SDK's configuration.
    pub(crate) fn resolve(&self) -> Result<Resolved, StoreError> {
        let table = checked_table(&self.table)?;
        let endpoint = self.endpoint.as_deref().map(endpoint_url).transpose()?;
        let region = self.region()?;
        if self.timeout.is_zero() {
            return Err(invalid("the timeout is zero"));
        }
        let credentials = self.credentials()?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.timeout)
            .operation_attempt_timeout(self.timeout)
            .operation_timeout(self.timeout)
            .build();
        // A few quick retries of throttling and transient failures, all within `timeout`.
        let retries = RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_millis(500));
        let mut builder = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .region(Region::new(region.clone()))
            .credentials_provider(credentials)
            .timeout_config(timeouts)
            .retry_config(retries);
        if let Some(endpoint) = &endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(Resolved {
            endpoint,
            region,
            table,
            timeout: self.timeout,
            sdk: builder.build(),
        })
    }

    fn variable(&self, name: &str) -> Option<&str> {
        self.environment
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    fn region(&self) -> Result<String, StoreError> {
        let configured = self.region.trim();
        if !configured.is_empty() {
            return Ok(configured.to_owned());
        }
        REGION_VARIABLES
            .iter()
            .find_map(|name| self.variable(name))
            .map(str::to_owned)
            .ok_or_else(|| invalid("no region: set it, or AWS_REGION in the environment"))
    }

    fn credentials(&self) -> Result<Credentials, StoreError> {
        let (access, secret, token) = match (&self.access_key, &self.secret_key) {
            (Some(access), Some(secret)) => {
                (access.clone(), secret.clone(), self.session_token.clone())
            }
            (Some(_), None) => return Err(invalid("an access key without a secret key")),
            (None, Some(_)) => return Err(invalid("a secret key without an access key")),
            (None, None) => {
                match (
                    self.variable(ACCESS_KEY_ID),
                    self.variable(SECRET_ACCESS_KEY),
                ) {
                    (Some(access), Some(secret)) => (
                        access.to_owned(),
                        secret.to_owned(),
                        self.session_token
                            .clone()
                            .or_else(|| self.variable(SESSION_TOKEN).map(str::to_owned)),
                    ),
                    (Some(_), None) => {
                        return Err(invalid(format!(
                            "{ACCESS_KEY_ID} is set but {SECRET_ACCESS_KEY} is not"
                        )));
                    }
                    (None, Some(_)) => {
                        return Err(invalid(format!(
                            "{SECRET_ACCESS_KEY} is set but {ACCESS_KEY_ID} is not"
                        )));
                    }
                    (None, None) => {
                        return Err(invalid(format!(
                            "no credentials: set access_key and secret_key, or {ACCESS_KEY_ID} \
                             and {SECRET_ACCESS_KEY} in the environment"
                        )));
                    }
                }
            }
        };
        Ok(Credentials::new(access, secret, token, None, "rkron"))
    }
}

/// Checks a table name against DynamoDB's rules.
fn checked_table(table: &str) -> Result<String, StoreError> {
    let valid_chars = table
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if (3..=255).contains(&table.len()) && valid_chars {
        Ok(table.to_owned())
    } else {
        Err(invalid(format!(
            "table {table:?} must be 3 to 255 characters of A-Z a-z 0-9 _ - ."
        )))
    }
}

/// Turns the configured endpoint into a URL (`host:port` becomes `http://host:port`).
fn endpoint_url(endpoint: &str) -> Result<String, StoreError> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Ok(trimmed.to_owned());
    }
    if trimmed.is_empty() || trimmed.contains("://") || trimmed.contains('/') {
        return Err(invalid(format!(
            "endpoint {endpoint:?} is not host:port, http://host:port or https://host:port"
        )));
    }
    Ok(format!("http://{trimmed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> DynamoConfig {
        DynamoConfig {
            endpoint: Some("127.0.0.1:5000".to_owned()),
            region: "us-east-1".to_owned(),
            access_key: Some("AKIDEXAMPLE".to_owned()),
            secret_key: Some("wJalrXUtnFEMI".to_owned()),
            ..DynamoConfig::default()
        }
    }

    #[test]
    fn endpoints_become_urls() {
        assert_eq!(
            endpoint_url("127.0.0.1:5000").unwrap(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(endpoint_url(" https://h:1/ ").unwrap(), "https://h:1");
        for bad in ["", "unix://x", "h:1/path"] {
            assert!(endpoint_url(bad).is_err(), "{bad}");
        }
        let resolved = local().resolve().unwrap();
        assert_eq!(resolved.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(resolved.table, "rkron");
    }

    #[test]
    fn table_names_follow_dynamodb_rules() {
        for good in ["rkron", "a.b-c_d", &"t".repeat(255)] {
            assert!(checked_table(good).is_ok(), "{good}");
        }
        for bad in ["", "ab", "a/b", "tàble", &"t".repeat(256)] {
            assert!(checked_table(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_and_region_come_from_the_environment_map() {
        let environment: BTreeMap<String, String> = [
            ("AWS_ACCESS_KEY_ID", "from-env"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_SESSION_TOKEN", "env-token"),
            ("AWS_DEFAULT_REGION", "eu-west-3"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let config = DynamoConfig {
            environment,
            ..DynamoConfig::default()
        };
        let resolved = config.resolve().unwrap();
        assert_eq!(resolved.region, "eu-west-3");
        let credentials = config.credentials().unwrap();
        assert_eq!(credentials.access_key_id(), "from-env");
        assert_eq!(credentials.secret_access_key(), "env-secret");
        assert_eq!(credentials.session_token(), Some("env-token"));

        let explicit = DynamoConfig {
            region: "us-west-2".to_owned(),
            access_key: Some("mine".to_owned()),
            secret_key: Some("my-secret".to_owned()),
            ..config.clone()
        };
        assert_eq!(explicit.resolve().unwrap().region, "us-west-2");
        let credentials = explicit.credentials().unwrap();
        assert_eq!(credentials.access_key_id(), "mine");
        assert_eq!(credentials.session_token(), None);
    }

    #[test]
    fn missing_settings_are_refused() {
        let no_region = DynamoConfig {
            region: String::new(),
            ..local()
        };
        assert!(no_region.resolve().is_err());
        let half = DynamoConfig {
            secret_key: None,
            ..local()
        };
        assert!(half.resolve().is_err());
        let none = DynamoConfig {
            access_key: None,
            secret_key: None,
            ..local()
        };
        assert!(none.resolve().is_err());
        let zero = DynamoConfig {
            timeout: Duration::ZERO,
            ..local()
        };
        assert!(zero.resolve().is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let mut config = local();
        config.session_token = Some("tok3n".to_owned());
        config
            .environment
            .insert("AWS_SECRET_ACCESS_KEY".to_owned(), "env-s3cret".to_owned());
        let printed = format!("{config:?}");
        for secret in ["wJalrXUtnFEMI", "tok3n", "env-s3cret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(
            printed.contains("<hidden>") && printed.contains("AWS_SECRET_ACCESS_KEY"),
            "{printed}"
        );
    }
}
