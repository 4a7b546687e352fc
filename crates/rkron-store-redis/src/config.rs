//! How to reach the Redis server, and which keyspace to use in it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use rkron_store::StoreError;

/// The default keyspace (Dkron's `keyspace` setting).
pub const DEFAULT_KEYSPACE: &str = "rkron";

/// The default Redis port.
pub const DEFAULT_PORT: u16 = 6379;

/// The default deadline of one store operation, of connecting and of one Redis reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of a [`crate::RedisStore`].
#[derive(Clone)]
pub struct RedisConfig {
    /// The server (Dkron's `backend-machine`): exactly one `host:port` (port 6379 when left out;
    /// IPv6 as `[::1]:6379`) or one `redis://` / `rediss://` URL. Several addresses would be
    /// several independent servers, whose leases would not exclude each other, so they are
    /// refused.
    pub addresses: Vec<String>,
    /// Prefix of every key (as the hash tag `{<keyspace>}`); stores with different keyspaces
    /// share nothing. Must not be empty nor contain `{` or `}`.
    pub keyspace: String,
    /// ACL user name (Redis 6+); `None` authenticates as the default user.
    pub username: Option<String>,
    /// Password (`AUTH`); `None` sends none.
    pub password: Option<String>,
    /// Connects with TLS (rustls), trusting the system's root certificates or [`Self::tls_ca_file`].
    pub tls: bool,
    /// PEM file of the certificate authority to trust instead of the system's roots (needs
    /// [`Self::tls`]).
    pub tls_ca_file: Option<PathBuf>,
    /// Database number (`SELECT`); `None` keeps the URL's or 0.
    pub database: Option<i64>,
    /// Deadline of one store operation (including reconnecting), of connecting and of one reply:
    /// a dead server answers [`StoreError::Unavailable`] after at most this long.
    pub timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            addresses: vec![format!("127.0.0.1:{DEFAULT_PORT}")],
            keyspace: DEFAULT_KEYSPACE.to_owned(),
            username: None,
            password: None,
            tls: false,
            tls_ca_file: None,
            database: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addresses: Vec<String> = self.addresses.iter().map(|a| redact(a)).collect();
        formatter
            .debug_struct("RedisConfig")
            .field("addresses", &addresses)
            .field("keyspace", &self.keyspace)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("database", &self.database)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn invalid(reason: impl Into<String>) -> StoreError {
    StoreError::Backend(format!("invalid Redis store settings: {}", reason.into()))
}

/// Hides the credentials of a URL (`redis://user:secret@host` → `redis://<credentials>@host`).
pub(crate) fn redact(address: &str) -> String {
    match (address.find("://"), address.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}<credentials>{}", &address[..scheme + 3], &address[at..])
        }
        _ => address.to_owned(),
    }
}

/// Splits `host:port`, `host` or `[v6]:port`.
fn split_host_port(address: &str) -> Result<(String, u16), StoreError> {
    let bad = || invalid(format!("address {address} is not host:port"));
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match address.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => (address, None),
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        Some(port) => port.parse().map_err(|_| bad())?,
        None => DEFAULT_PORT,
    };
    Ok((host.to_owned(), port))
}

impl RedisConfig {
    /// Checks the keyspace: it becomes a hash tag, so braces would break it.
    pub(crate) fn checked_keyspace(&self) -> Result<&str, StoreError> {
        let keyspace = self.keyspace.as_str();
        if keyspace.is_empty() || keyspace.contains(['{', '}']) {
            return Err(invalid(format!(
                "keyspace {keyspace:?} must be non-empty and contain no braces"
            )));
        }
        Ok(keyspace)
    }

    /// The one address, or why there is not exactly one.
    pub(crate) fn address(&self) -> Result<&str, StoreError> {
        match self.addresses.as_slice() {
            [address] => Ok(address.trim()),
            [] => Err(invalid("no address given")),
            _ => Err(invalid(format!(
                "{} addresses given; the Redis store uses exactly one server",
                self.addresses.len()
            ))),
        }
    }

    /// The connection settings of the client.
    pub(crate) fn connection_info(&self) -> Result<ConnectionInfo, StoreError> {
        let address = self.address()?;
        if self.tls_ca_file.is_some() && !self.tls && !address.starts_with("rediss://") {
            return Err(invalid("tls_ca_file is set but TLS is not"));
        }
        let info = if address.contains("://") {
            address
                .into_connection_info()
                .map_err(|error| invalid(format!("address {}: {error}", redact(address))))?
        } else {
            let (host, port) = split_host_port(address)?;
            ConnectionAddr::Tcp(host, port)
                .into_connection_info()
                .map_err(|error| invalid(format!("address {address}: {error}")))?
        };
        let info = match info.addr().clone() {
            ConnectionAddr::Tcp(host, port) if self.tls => info.set_addr(ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }),
            ConnectionAddr::Unix(_) if self.tls => {
                return Err(invalid("TLS over a Unix socket"));
            }
            _ => info,
        };
        let mut redis = info.redis_settings().clone();
        if let Some(username) = &self.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &self.password {
            redis = redis.set_password(password);
        }
        if let Some(database) = self.database {
            redis = redis.set_db(database);
        }
        Ok(info.set_redis_settings(redis))
    }
}

/// Describes where the store connects to, without credentials.
pub(crate) fn describe(info: &ConnectionInfo) -> String {
    let database = info.redis_settings().db();
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}/{database}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}/{database}"),
        ConnectionAddr::Unix(path) => format!("unix:{}/{database}", path.display()),
        other => format!("{other}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(address: &str) -> RedisConfig {
        RedisConfig {
            addresses: vec![address.to_owned()],
            ..RedisConfig::default()
        }
    }

    #[test]
    fn addresses_parse() {
        for (address, expected) in [
            ("localhost:7000", "redis://localhost:7000/0"),
            ("localhost", "redis://localhost:6379/0"),
            ("[::1]:7000", "redis://::1:7000/0"),
            ("[::1]", "redis://::1:6379/0"),
            ("::1", "redis://::1:6379/0"),
            ("redis://h:7001/2", "redis://h:7001/2"),
            ("rediss://h:7002", "rediss://h:7002/0"),
        ] {
            let info = config(address).connection_info().unwrap();
            assert_eq!(describe(&info), expected, "{address}");
        }
        for bad in ["", ":7000", "host:port", "[::1", "[::1]x", "host:99999"] {
            assert!(config(bad).connection_info().is_err(), "{bad}");
        }
        let mut two = config("a:1");
        two.addresses.push("b:2".to_owned());
        assert!(two.connection_info().is_err());
    }

    #[test]
    fn settings_override_the_url_and_tls_upgrades() {
        let mut settings = config("redis://u:p@h:1/3");
        settings.database = Some(4);
        settings.password = Some("other".to_owned());
        settings.tls = true;
        let info = settings.connection_info().unwrap();
        assert_eq!(describe(&info), "rediss://h:1/4");
        assert_eq!(info.redis_settings().password(), Some("other"));
        assert_eq!(info.redis_settings().username(), Some("u"));
        settings.tls = false;
        settings.tls_ca_file = Some("/ca.pem".into());
        assert!(settings.connection_info().is_err());
    }

    #[test]
    fn debug_hides_passwords() {
        let mut settings = config("redis://user:secret@h:1");
        settings.password = Some("hunter2".to_owned());
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(
            shown.contains("<hidden>") && shown.contains("<credentials>@h:1"),
            "{shown}"
        );
    }

    #[test]
    fn keyspaces_with_braces_are_refused() {
        for bad in ["", "a{b", "a}b"] {
            let settings = RedisConfig {
                keyspace: bad.to_owned(),
                ..RedisConfig::default()
            };
            assert!(settings.checked_keyspace().is_err(), "{bad}");
        }
        assert!(RedisConfig::default().checked_keyspace().is_ok());
    }
}
