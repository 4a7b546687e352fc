//! Agent configuration: reads the config file, the environment and the flags, and resolves them into one validated [`AgentConfig`].
//!
//! # Sources and precedence
//!
//! Lowest precedence first: built-in defaults < config file < environment < flags given on the
//! command line. A key is taken whole from the highest source that sets it (lists and the `tags`
//! map are replaced, not merged). Keys are Dkron's kebab-case names (see [`KEYS`]); keys in files
//! are case-insensitive, as with Dkron's viper.
//!
//! # Config file
//!
//! `--config FILE` (or, when absent, `RKRON_CONFIG`) names the file; a relative path is taken
//! from the working directory, and a missing named file is an error. Otherwise the first
//! existing file of [`SearchPaths::default_for`] is used: `rkron.{yml,yaml,json,toml}` in
//! `/etc/rkron`, `$HOME/.rkron` and `./config`, then Dkron's `dkron.{yml,yaml,json,toml}` in
//! `/etc/dkron`, `$HOME/.dkron` and `./config`. No file at all is fine: the defaults apply and
//! [`AgentConfig::config_file`] is `None`. The format follows the extension.
//!
//! # Environment
//!
//! `RKRON_<KEY>` with the key upper-cased and `-` → `_` (`RKRON_NODE_NAME`). Dkron's
//! `DKRON_<KEY>` is accepted as a fallback; when both are set, `RKRON_` wins. List values are
//! comma-separated, `tags` is `k=v,k2=v2`. An empty variable counts as unset, as with viper.
//!
//! The two prefixes are treated differently on purpose:
//! - an `RKRON_*` variable that is not a configuration key stops start-up with
//!   [`ConfigError::UnknownKey`], because the prefix belongs to rkron and a typo
//!   (`RKRON_NODENAME`) must not be silently ignored. Two exceptions: `RKRON_CONFIG` (the config
//!   file) and `RKRON_TEST_*` (reserved for the test harness, e.g. `RKRON_TEST_ETCD`);
//! - an unknown `DKRON_*` variable is only reported in [`AgentConfig::warnings`], because hosts
//!   that ran Dkron may carry `DKRON_*` variables for other tooling.
//!
//! # Validation
//!
//! Every value is converted by a parser that knows its key, so an unknown key or a bad value
//! stops start-up with a [`ConfigError`] naming the source, the key and the reason, e.g.
//! `config file /x/rkron.yml: key "rpc-port": invalid value "abc": expected a port number 1-65535`.
//! Values of secret keys (`encrypt`, `mail-password`, `backend-password`) are never echoed.

mod source;
#[cfg(test)]
mod tests;
mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use rkron_core::duration::parse_go_duration;

use crate::cli::AgentArgs;
use source::{Entry, Layer, Raw};
use value::{AddressRules, HostPort};

pub(crate) use value::parse_go_bool;

/// Every configuration key rkron knows, in Dkron's spelling.
///
/// Besides these, `webhook-header` (Dkron 1.x) is accepted as an alias of `webhook-headers`.
pub const KEYS: &[&str] = &[
    "server",
    "node-name",
    "bind-addr",
    "advertise-addr",
    "http-addr",
    "rpc-port",
    "advertise-rpc-port",
    "data-dir",
    "tag",
    "tags",
    "log-level",
    "ui",
    "profile",
    "region",
    "datacenter",
    "join",
    "retry-join",
    "retry-max",
    "retry-interval",
    "encrypt",
    "bootstrap-expect",
    "bootstrap",
    "devmode",
    "reconcileinterval",
    "raft-multiplier",
    "serf-reconnect-timeout",
    "backend",
    "backend-machine",
    "backend-username",
    "backend-password",
    "backend-tls",
    "keyspace",
    "mail-host",
    "mail-port",
    "mail-username",
    "mail-password",
    "mail-from",
    "mail-payload",
    "mail-subject-prefix",
    "pre-webhook-endpoint",
    "pre-webhook-payload",
    "pre-webhook-headers",
    "webhook-endpoint",
    "webhook-url",
    "webhook-payload",
    "webhook-headers",
    "cronitor-endpoint",
    "statsd-addr",
    "dog-statsd-addr",
    "dog-statsd-tags",
    "enable-prometheus",
    "otel-endpoint",
    "disable-usage-stats",
    "execution-retention",
    "shutdown-grace-period",
    "lease-ttl",
    "http-max-body",
    "restore-max-body",
];

/// Keys that can be set only in a file or the environment, as in Dkron.
pub const KEYS_WITHOUT_FLAG: &[&str] = &["tags", "bootstrap", "devmode", "reconcileinterval"];

/// `RKRON_` variables starting with `RKRON_TEST_` belong to the test harness and are ignored.
pub const RESERVED_ENV_PREFIX: &str = "RKRON_TEST_";
const RESERVED_ENV_SUFFIX_PREFIX: &str = "TEST_";

/// Keys whose values are never shown in errors.
const SECRET_KEYS: &[&str] = &["encrypt", "mail-password", "backend-password"];

/// Default gossip port, used when `bind-addr` or `advertise-addr` has none.
pub const DEFAULT_GOSSIP_PORT: u16 = 8946;
/// Default `bind-addr`.
pub const DEFAULT_BIND_ADDR: &str = "0.0.0.0:8946";
/// Default `http-addr` (all interfaces).
pub const DEFAULT_HTTP_ADDR: &str = ":8080";
/// Default `rpc-port`.
pub const DEFAULT_RPC_PORT: u16 = 6868;
/// Default `data-dir`, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "rkron.data";
/// Default `keyspace`.
pub const DEFAULT_KEYSPACE: &str = "rkron";
/// Default `execution-retention`.
pub const DEFAULT_EXECUTION_RETENTION: usize = 100;
/// Default `shutdown-grace-period`.
pub const DEFAULT_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// Default `http-max-body`: 1 MiB.
pub const DEFAULT_HTTP_MAX_BODY: usize = 1 << 20;
/// Default `restore-max-body`: 64 MiB.
pub const DEFAULT_RESTORE_MAX_BODY: usize = 64 << 20;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag, by key (`rpc-port` for `--rpc-port`).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(key) => write!(f, "flag --{key}"),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The named config file does not exist.
    #[error("config file {}: not found", .path.display())]
    FileNotFound {
        /// The file.
        path: PathBuf,
    },
    /// The config file exists but cannot be read.
    #[error("config file {}: cannot read: {reason}", .path.display())]
    FileUnreadable {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The config file's extension is not one of `.yml`, `.yaml`, `.json`, `.toml`.
    #[error("config file {}: unsupported format; use a .yml, .yaml, .json or .toml file", .path.display())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// The config file does not parse.
    #[error("config file {}: syntax error: {detail}", .path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line and column where it gives them.
        detail: String,
    },
    /// The config file parses but is not a map of keys.
    #[error("config file {}: expected a map of configuration keys at the top level", .path.display())]
    NotAMap {
        /// The file.
        path: PathBuf,
    },
    /// A key (or `RKRON_*` variable) that rkron does not know.
    #[error("{origin}: unknown configuration key \"{key}\"{}", .hint.as_ref().map(|hint| format!("; {hint}")).unwrap_or_default())]
    UnknownKey {
        /// Where the key was found.
        origin: Origin,
        /// The key, lower-cased (for variables: the suffix, lower-cased, `_` → `-`).
        key: String,
        /// A likely intended key, or why the key is not supported.
        hint: Option<String>,
    },
    /// One source sets a key twice, e.g. under its name and its alias.
    #[error("{origin}: key \"{key}\" is given twice (as {first} and {second}); set it once")]
    DuplicateKey {
        /// The source.
        origin: Origin,
        /// The canonical key.
        key: String,
        /// The first spelling seen.
        first: String,
        /// The second spelling seen.
        second: String,
    },
    /// A value that does not fit its key.
    #[error("{}", render_invalid_value(.origin, .key, .value.as_deref(), .reason))]
    InvalidValue {
        /// Where the value came from.
        origin: Origin,
        /// The key.
        key: String,
        /// The value as given; `None` for secret keys.
        value: Option<String>,
        /// What was expected.
        reason: String,
    },
    /// A tag that is not `key=value` with a non-empty key (Dkron's message).
    #[error("{origin}: invalid tag: '{tag}'")]
    InvalidTag {
        /// Where the tag came from.
        origin: Origin,
        /// The tag as given.
        tag: String,
    },
    /// `node-name` is not set and the OS hostname cannot be used.
    #[error("cannot use the OS hostname as node-name ({reason}); set node-name")]
    Hostname {
        /// Why.
        reason: String,
    },
    /// A valid address that does not resolve to a socket address.
    #[error("key \"{key}\": cannot resolve \"{value}\": {reason}")]
    Unresolvable {
        /// The key.
        key: String,
        /// The address.
        value: String,
        /// The resolver's error.
        reason: String,
    },
}

fn render_invalid_value(origin: &Origin, key: &str, value: Option<&str>, reason: &str) -> String {
    let value = match value {
        Some(value) => format!("invalid value \"{value}\""),
        None => "invalid value (not shown)".to_string(),
    };
    match origin {
        Origin::Flag(_) => format!("{origin}: {value}: {reason}"),
        _ => format!("{origin}: key \"{key}\": {value}: {reason}"),
    }
}

/// The store backend (`backend` key).
///
/// The parser accepts every backend; whether this build and this node can use it is decided by
/// the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The embedded single-server store (`embedded`, or Dkron's `boltdb`).
    Embedded,
    /// etcd v3 (`etcd`, or Dkron's `etcdv3`).
    Etcd,
    /// Redis (`redis`).
    Redis,
    /// ZooKeeper (`zk`).
    Zookeeper,
    /// Amazon DynamoDB (`dynamodb`).
    DynamoDb,
    /// Consul (`consul`).
    Consul,
}

impl Backend {
    /// The names `backend` accepts, aliases included.
    pub const NAMES: &[&str] = &[
        "embedded", "boltdb", "etcd", "etcdv3", "redis", "zk", "dynamodb", "consul",
    ];

    /// Returns the canonical name of the backend.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Etcd => "etcd",
            Backend::Redis => "redis",
            Backend::Zookeeper => "zk",
            Backend::DynamoDb => "dynamodb",
            Backend::Consul => "consul",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(text: &str) -> Result<Backend, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "embedded" | "boltdb" => Ok(Backend::Embedded),
            "etcd" | "etcdv3" => Ok(Backend::Etcd),
            "redis" => Ok(Backend::Redis),
            "zk" => Ok(Backend::Zookeeper),
            "dynamodb" => Ok(Backend::DynamoDb),
            "consul" => Ok(Backend::Consul),
            _ => Err(format!("expected one of {}", Backend::NAMES.join(", "))),
        }
    }
}

/// The gossip timing profile (`profile` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Local network timings (default).
    Lan,
    /// Wide-area timings.
    Wan,
    /// Loopback timings.
    Local,
}

impl Profile {
    /// Returns the profile's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Lan => "lan",
            Profile::Wan => "wan",
            Profile::Local => "local",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(text: &str) -> Result<Profile, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "lan" => Ok(Profile::Lan),
            "wan" => Ok(Profile::Wan),
            "local" => Ok(Profile::Local),
            _ => Err("expected one of lan, wan, local".to_string()),
        }
    }
}

/// A password; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Returns the secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A decoded gossip encryption key of 16, 24 or 32 bytes (`encrypt` key); `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct GossipKey(Vec<u8>);

impl GossipKey {
    /// Decodes a standard-base64 key of 16, 24 or 32 bytes, as `rkron keygen` prints.
    pub fn from_base64(text: &str) -> Result<GossipKey, String> {
        let expected = "expected the base64 encoding of a 16, 24 or 32 byte key (see rkron keygen)";
        match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            Ok(bytes) if matches!(bytes.len(), 16 | 24 | 32) => Ok(GossipKey(bytes)),
            _ => Err(expected.to_string()),
        }
    }

    /// Returns the key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GossipKey({} bytes)", self.0.len())
    }
}

/// The resolved, validated configuration of an agent.
///
/// Optional strings that Dkron defaults to `""` are `None` when unset or empty.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Things worth logging once tracing is up: ignored keys and variables.
    pub warnings: Vec<String>,

    /// `node-name`: unique node name (default: the OS hostname).
    pub node_name: String,
    /// `server`: run as a server.
    pub server: bool,
    /// `bind-addr` as `host:port` (`[v6]:port`); default `0.0.0.0:8946`.
    pub bind_addr: String,
    /// `advertise-addr` as `host:port`; `None` means derived from `bind_addr`.
    pub advertise_addr: Option<String>,
    /// `http-addr` as `host:port` or `:port` (all interfaces); default `:8080`.
    pub http_addr: String,
    /// `rpc-port`; default 6868.
    pub rpc_port: u16,
    /// `advertise-rpc-port`; `0` in the sources means `rpc_port`.
    pub advertise_rpc_port: u16,
    /// `data-dir`, joined to the working directory when relative; default `rkron.data`.
    pub data_dir: PathBuf,
    /// `tags` (or `tag`, which replaces `tags` when given).
    pub tags: BTreeMap<String, String>,
    /// `log-level`, lower-case: `trace`, `debug`, `info`, `warn`, `error`, `fatal` or `panic`.
    pub log_level: String,
    /// `ui`: serve the web UI; default true.
    pub ui: bool,
    /// `profile`: gossip timings; default lan.
    pub profile: Profile,
    /// `region`; default `global`.
    pub region: String,
    /// `datacenter`; default `dc1`.
    pub datacenter: String,
    /// `join`: addresses joined once at start.
    pub join: Vec<String>,
    /// `retry-join`: addresses joined with retries (Dkron ignores `join` when set).
    pub retry_join: Vec<String>,
    /// `retry-max`: retry-join attempts, 0 = forever.
    pub retry_max: u32,
    /// `retry-interval`; default 30s.
    pub retry_interval: Duration,
    /// `encrypt`: the gossip key.
    pub encrypt: Option<GossipKey>,
    /// `bootstrap-expect`: servers to wait for before bootstrapping; 0 = off.
    pub bootstrap_expect: u32,
    /// `bootstrap`: bootstrap as a single server.
    pub bootstrap: bool,
    /// `devmode`.
    pub devmode: bool,
    /// `reconcileinterval`; default 60s.
    pub reconcile_interval: Duration,
    /// `raft-multiplier`, 1 to 10; default 1.
    pub raft_multiplier: u32,
    /// `serf-reconnect-timeout`; default 24h.
    pub serf_reconnect_timeout: Duration,
    /// `backend`; default embedded.
    pub backend: Backend,
    /// `backend-machine`: backend addresses.
    pub backend_machine: Vec<String>,
    /// `backend-username`.
    pub backend_username: Option<String>,
    /// `backend-password`.
    pub backend_password: Option<Secret>,
    /// `backend-tls`.
    pub backend_tls: bool,
    /// `keyspace`: key prefix in the backend; default `rkron`.
    pub keyspace: String,
    /// `mail-host`.
    pub mail_host: Option<String>,
    /// `mail-port`; 0 = unset.
    pub mail_port: u16,
    /// `mail-username`.
    pub mail_username: Option<String>,
    /// `mail-password`.
    pub mail_password: Option<Secret>,
    /// `mail-from`.
    pub mail_from: Option<String>,
    /// `mail-payload`: body template.
    pub mail_payload: Option<String>,
    /// `mail-subject-prefix`; default `[Dkron]`.
    pub mail_subject_prefix: String,
    /// `pre-webhook-endpoint`.
    pub pre_webhook_endpoint: Option<String>,
    /// `pre-webhook-payload`.
    pub pre_webhook_payload: Option<String>,
    /// `pre-webhook-headers`: `Name: value` each.
    pub pre_webhook_headers: Vec<String>,
    /// `webhook-endpoint`.
    pub webhook_endpoint: Option<String>,
    /// `webhook-url`: accepted and ignored, as in Dkron 3.2+ (a warning says so).
    pub webhook_url: Option<String>,
    /// `webhook-payload`.
    pub webhook_payload: Option<String>,
    /// `webhook-headers` (or v1 `webhook-header`): `Name: value` each.
    pub webhook_headers: Vec<String>,
    /// `cronitor-endpoint`.
    pub cronitor_endpoint: Option<String>,
    /// `statsd-addr` as `host:port`.
    pub statsd_addr: Option<String>,
    /// `dog-statsd-addr` as `host:port`.
    pub dog_statsd_addr: Option<String>,
    /// `dog-statsd-tags`: `key:value` each.
    pub dog_statsd_tags: Vec<String>,
    /// `enable-prometheus`.
    pub enable_prometheus: bool,
    /// `otel-endpoint`.
    pub otel_endpoint: Option<String>,
    /// `disable-usage-stats` (rkron reports no usage either way).
    pub disable_usage_stats: bool,
    /// `execution-retention`: executions kept per job, at least 1; default 100.
    pub execution_retention: usize,
    /// `shutdown-grace-period`: time executions get to finish at shutdown; default 30s.
    pub shutdown_grace_period: Duration,
    /// `lease-ttl`: the leadership lease's time to live; default 10s, at least 2s.
    pub lease_ttl: Duration,
    /// `http-max-body`: largest HTTP request body in bytes, at least 1; default 1 MiB.
    pub http_max_body: usize,
    /// `restore-max-body`: largest restore upload in bytes, at least 1; default 64 MiB.
    pub restore_max_body: usize,
    /// The fluent processor's default destination, from Dkron's `FLUENTBIT_HOST`,
    /// `FLUENTBIT_PORT` and `FLUENTBIT_TAG` environment variables (not configuration keys).
    pub fluent_host: Option<String>,
    pub fluent_port: Option<u16>,
    pub fluent_tag: Option<String>,
}

impl AgentConfig {
    /// Returns the built-in defaults, with the given node name.
    pub fn with_defaults(node_name: impl Into<String>) -> AgentConfig {
        AgentConfig {
            config_file: None,
            warnings: Vec::new(),
            node_name: node_name.into(),
            server: false,
            bind_addr: DEFAULT_BIND_ADDR.to_string(),
            advertise_addr: None,
            http_addr: DEFAULT_HTTP_ADDR.to_string(),
            rpc_port: DEFAULT_RPC_PORT,
            advertise_rpc_port: DEFAULT_RPC_PORT,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            tags: BTreeMap::new(),
            log_level: "info".to_string(),
            ui: true,
            profile: Profile::Lan,
            region: "global".to_string(),
            datacenter: "dc1".to_string(),
            join: Vec::new(),
            retry_join: Vec::new(),
            retry_max: 0,
            retry_interval: Duration::from_secs(30),
            encrypt: None,
            bootstrap_expect: 0,
            bootstrap: false,
            devmode: false,
            reconcile_interval: Duration::from_secs(60),
            raft_multiplier: 1,
            serf_reconnect_timeout: Duration::from_secs(24 * 60 * 60),
            backend: Backend::Embedded,
            backend_machine: Vec::new(),
            backend_username: None,
            backend_password: None,
            backend_tls: false,
            keyspace: DEFAULT_KEYSPACE.to_string(),
            mail_host: None,
            mail_port: 0,
            mail_username: None,
            mail_password: None,
            mail_from: None,
            mail_payload: None,
            mail_subject_prefix: "[Dkron]".to_string(),
            pre_webhook_endpoint: None,
            pre_webhook_payload: None,
            pre_webhook_headers: Vec::new(),
            webhook_endpoint: None,
            webhook_url: None,
            webhook_payload: None,
            webhook_headers: Vec::new(),
            cronitor_endpoint: None,
            statsd_addr: None,
            dog_statsd_addr: None,
            dog_statsd_tags: Vec::new(),
            enable_prometheus: false,
            otel_endpoint: None,
            disable_usage_stats: false,
            execution_retention: DEFAULT_EXECUTION_RETENTION,
            shutdown_grace_period: DEFAULT_SHUTDOWN_GRACE_PERIOD,
            lease_ttl: Duration::from_secs(10),
            http_max_body: DEFAULT_HTTP_MAX_BODY,
            restore_max_body: DEFAULT_RESTORE_MAX_BODY,
            fluent_host: None,
            fluent_port: None,
            fluent_tag: None,
        }
    }

    /// Returns the socket address to serve HTTP on: `:8080` becomes `0.0.0.0:8080`; a host
    /// name is resolved (first address).
    pub fn http_socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        let unresolvable = |reason: String| ConfigError::Unresolvable {
            key: "http-addr".to_string(),
            value: self.http_addr.clone(),
            reason,
        };
        if let Some(port) = self.http_addr.strip_prefix(':') {
            let port: u16 = port
                .parse()
                .map_err(|_| unresolvable("invalid port".to_string()))?;
            return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
        }
        if let Ok(addr) = self.http_addr.parse::<SocketAddr>() {
            return Ok(addr);
        }
        self.http_addr
            .to_socket_addrs()
            .map_err(|error| unresolvable(error.to_string()))?
            .next()
            .ok_or_else(|| unresolvable("no addresses".to_string()))
    }
}

/// One place searched for a config file: `<dir>/<stem>.{yml,yaml,json,toml}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchLocation {
    /// The directory.
    pub dir: PathBuf,
    /// The file name without extension: `rkron` or `dkron`.
    pub stem: String,
}

/// The ordered places searched for a config file when none is named.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchPaths {
    /// Searched in order; within one location the extensions are tried in the order
    /// `yml`, `yaml`, `json`, `toml`.
    pub locations: Vec<SearchLocation>,
}

impl SearchPaths {
    /// Returns the standard search order, with `/etc` as the system directory.
    pub fn default_for(home: Option<&Path>, cwd: &Path) -> SearchPaths {
        SearchPaths::with_system_dir(Path::new("/etc"), home, cwd)
    }

    /// Returns the standard search order with `system_dir` in place of `/etc` (for tests):
    /// `rkron.*` in `<system>/rkron`, `$HOME/.rkron`, `./config`, then `dkron.*` in
    /// `<system>/dkron`, `$HOME/.dkron`, `./config`.
    pub fn with_system_dir(system_dir: &Path, home: Option<&Path>, cwd: &Path) -> SearchPaths {
        let mut locations = Vec::new();
        for stem in ["rkron", "dkron"] {
            let mut push = |dir: PathBuf| {
                locations.push(SearchLocation {
                    dir,
                    stem: stem.to_string(),
                });
            };
            push(system_dir.join(stem));
            if let Some(home) = home {
                push(home.join(format!(".{stem}")));
            }
            push(cwd.join("config"));
        }
        SearchPaths { locations }
    }

    /// Returns every candidate file, in search order.
    pub fn candidates(&self) -> Vec<PathBuf> {
        self.locations
            .iter()
            .flat_map(|location| {
                source::CONFIG_EXTENSIONS
                    .iter()
                    .map(|extension| location.dir.join(format!("{}.{extension}", location.stem)))
            })
            .collect()
    }
}

/// Returns the OS hostname, the default `node-name`.
pub fn os_hostname() -> Result<String, ConfigError> {
    let name = nix::unistd::gethostname().map_err(|error| ConfigError::Hostname {
        reason: error.to_string(),
    })?;
    let name = name.into_string().map_err(|_| ConfigError::Hostname {
        reason: "the hostname is not valid UTF-8".to_string(),
    })?;
    if name.trim().is_empty() {
        return Err(ConfigError::Hostname {
            reason: "the hostname is empty".to_string(),
        });
    }
    Ok(name.trim().to_string())
}

/// Loads the agent configuration from the flags `args`, the environment `env` and the config
/// file found through [`SearchPaths::default_for`]`(home, cwd)`.
///
/// See the [module documentation](self) for precedence and rules.
pub fn load(
    args: &AgentArgs,
    env: &BTreeMap<String, String>,
    home: Option<&Path>,
    cwd: &Path,
) -> Result<AgentConfig, ConfigError> {
    load_with(args, env, &SearchPaths::default_for(home, cwd), cwd)
}

/// Like [`load`], with explicit search locations.
pub fn load_with(
    args: &AgentArgs,
    env: &BTreeMap<String, String>,
    search: &SearchPaths,
    cwd: &Path,
) -> Result<AgentConfig, ConfigError> {
    let env_layers = source::read_env(env)?;
    let named_file = args
        .config
        .clone()
        .or_else(|| env_layers.config_file.as_ref().map(PathBuf::from));
    let config_file = match named_file {
        Some(path) => Some(cwd.join(path)),
        None => source::find_config_file(search),
    };
    let file_layer = match &config_file {
        Some(path) => source::read_file(path)?,
        None => Layer::new(),
    };
    let mut values = Values::default();
    for layer in [
        file_layer,
        env_layers.dkron,
        env_layers.rkron,
        source::flag_layer(args),
    ] {
        values.map.extend(layer);
    }
    let mut warnings: Vec<String> = env_layers
        .ignored
        .iter()
        .map(|var| format!("ignoring environment variable {var}: not a configuration key"))
        .collect();
    let mut config = resolve(&values, cwd, &mut warnings)?;
    config.config_file = config_file;
    config.fluent_host = env.get("FLUENTBIT_HOST").filter(|v| !v.is_empty()).cloned();
    config.fluent_tag = env.get("FLUENTBIT_TAG").filter(|v| !v.is_empty()).cloned();
    if let Some(port) = env.get("FLUENTBIT_PORT").filter(|v| !v.is_empty()) {
        config.fluent_port = Some(port.parse().map_err(|_| ConfigError::InvalidValue {
            key: "FLUENTBIT_PORT".into(),
            origin: Origin::Env("FLUENTBIT_PORT".into()),
            value: Some(port.clone()),
            reason: "expected a port number 1-65535".into(),
        })?);
    }
    config.warnings = warnings;
    Ok(config)
}

/// The merged values: for each key, the entry of the highest-precedence source.
#[derive(Debug, Default)]
struct Values {
    map: BTreeMap<&'static str, Entry>,
}

fn invalid(entry: &Entry, key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        origin: entry.origin.clone(),
        key: key.to_string(),
        value: (!SECRET_KEYS.contains(&key)).then(|| value.to_string()),
        reason: reason.into(),
    }
}

impl Values {
    fn entry(&self, key: &str) -> Option<&Entry> {
        debug_assert!(KEYS.contains(&key), "unknown key {key}");
        self.map.get(key)
    }

    /// Returns the text of a single-valued key, untrimmed.
    fn text(&self, key: &str) -> Result<Option<(&str, &Entry)>, ConfigError> {
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        match &entry.raw {
            Raw::Scalar(text) => Ok(Some((text, entry))),
            other => Err(invalid(
                entry,
                key,
                &other.to_string(),
                "expected a single value",
            )),
        }
    }

    /// Parses a single-valued key; an empty value counts as unset.
    fn parse<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((text, entry)) = self.text(key)? else {
            return Ok(None);
        };
        if text.trim().is_empty() {
            return Ok(None);
        }
        parse(text.trim())
            .map(Some)
            .map_err(|reason| invalid(entry, key, text, reason))
    }

    /// Returns a free-text key as given (templates keep their whitespace); empty is unset.
    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self
            .text(key)?
            .map(|(text, _)| text.to_string())
            .filter(|text| !text.is_empty()))
    }

    /// Returns a name-like key: trimmed, non-empty, no whitespace inside.
    fn name(&self, key: &str) -> Result<Option<String>, ConfigError> {
        self.token(key, "expected a name without spaces")
    }

    /// Returns a trimmed key that must not contain whitespace (names, host names, URLs).
    fn token(&self, key: &str, expected: &str) -> Result<Option<String>, ConfigError> {
        self.parse(key, |text| {
            if text.chars().any(char::is_whitespace) {
                Err(expected.to_string())
            } else {
                Ok(text.to_string())
            }
        })
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.parse(key, parse_go_bool)
    }

    fn uint(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
        expected: &str,
    ) -> Result<Option<u64>, ConfigError> {
        self.parse(key, |text| value::parse_uint(text, range, expected))
    }

    fn port(&self, key: &str, min: u16, expected: &str) -> Result<Option<u16>, ConfigError> {
        self.parse(key, |text| {
            value::parse_uint(text, u64::from(min)..=u64::from(u16::MAX), expected)
                .map(|port| u16::try_from(port).expect("range is within u16"))
        })
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        self.parse(key, |text| {
            parse_go_duration(text)
                .map_err(|_| "expected a Go duration such as 30s, 5m or 1h30m".to_string())
        })
    }

    fn byte_size(&self, key: &str) -> Result<Option<usize>, ConfigError> {
        self.parse(key, |text| {
            value::parse_byte_size(text)
                .filter(|size| *size >= 1)
                .and_then(|size| usize::try_from(size).ok())
                .ok_or_else(|| {
                    "expected a size in bytes of at least 1, optionally with a unit \
                     (KB, MB, GB, KiB, MiB, GiB)"
                        .to_string()
                })
        })
    }

    fn address(
        &self,
        key: &str,
        rules: AddressRules,
        expected: &str,
    ) -> Result<Option<HostPort>, ConfigError> {
        self.parse(key, |text| value::parse_host_port(text, rules, expected))
    }

    /// Returns a list key: a list of single values, or one comma-separated value.
    fn list(&self, key: &str) -> Result<Option<(Vec<String>, &Entry)>, ConfigError> {
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        let items = match &entry.raw {
            Raw::Scalar(text) => text
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect(),
            Raw::List(items) => {
                let mut texts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Raw::Scalar(text) if !text.trim().is_empty() => {
                            texts.push(text.trim().to_string());
                        }
                        Raw::Scalar(_) => {}
                        other => {
                            return Err(invalid(
                                entry,
                                key,
                                &other.to_string(),
                                "expected a list of single values",
                            ));
                        }
                    }
                }
                texts
            }
            other @ Raw::Map(_) => {
                return Err(invalid(
                    entry,
                    key,
                    &other.to_string(),
                    "expected a list or a comma-separated value",
                ));
            }
        };
        Ok(Some((items, entry)))
    }

    /// Returns a list of `Name: value` headers.
    fn headers(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let Some((headers, entry)) = self.list(key)? else {
            return Ok(Vec::new());
        };
        for header in &headers {
            value::check_header(header).map_err(|reason| invalid(entry, key, header, reason))?;
        }
        Ok(headers)
    }

    /// Returns the node tags: `tag` (a list of `k=v`) when given and non-empty, else `tags`.
    fn tags(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        if let Some((tag_list, entry)) = self.list("tag")?
            && !tag_list.is_empty()
        {
            return tag_list
                .iter()
                .map(|tag| {
                    value::parse_tag(tag).ok_or_else(|| ConfigError::InvalidTag {
                        origin: entry.origin.clone(),
                        tag: tag.clone(),
                    })
                })
                .collect();
        }
        let Some(entry) = self.entry("tags") else {
            return Ok(BTreeMap::new());
        };
        let bad_tag = |tag: &str| ConfigError::InvalidTag {
            origin: entry.origin.clone(),
            tag: tag.to_string(),
        };
        let pair = |key: &str, raw: &Raw| -> Result<(String, String), ConfigError> {
            let key = key.trim();
            match raw {
                Raw::Scalar(value) if !key.is_empty() => {
                    Ok((key.to_string(), value.trim().to_string()))
                }
                _ => Err(bad_tag(&format!("{key}={raw}"))),
            }
        };
        let mut tags = BTreeMap::new();
        match &entry.raw {
            // `dc: east`
            Raw::Map(entries) => {
                for (key, raw) in entries {
                    let (key, value) = pair(key, raw)?;
                    tags.insert(key, value);
                }
            }
            // `- dc: east` (single-key maps), or `- dc=east`
            Raw::List(items) => {
                for item in items {
                    match item {
                        Raw::Map(entries) if entries.len() == 1 => {
                            let (key, value) = pair(&entries[0].0, &entries[0].1)?;
                            tags.insert(key, value);
                        }
                        Raw::Scalar(text) => {
                            let (key, value) =
                                value::parse_tag(text).ok_or_else(|| bad_tag(text))?;
                            tags.insert(key, value);
                        }
                        other => return Err(bad_tag(&other.to_string())),
                    }
                }
            }
            // `dc=east,rack=1` (environment)
            Raw::Scalar(text) => {
                for tag in text.split(',').filter(|tag| !tag.trim().is_empty()) {
                    let (key, value) = value::parse_tag(tag).ok_or_else(|| bad_tag(tag.trim()))?;
                    tags.insert(key, value);
                }
            }
        }
        Ok(tags)
    }
}

const BIND_RULES: AddressRules = AddressRules {
    default_port: Some(DEFAULT_GOSSIP_PORT),
    allow_empty_host: false,
};
const BIND_EXPECTED: &str =
    "expected an IP address or host name with an optional port, e.g. 10.0.0.5 or 10.0.0.5:8946";
const LISTEN_RULES: AddressRules = AddressRules {
    default_port: None,
    allow_empty_host: true,
};
const LISTEN_EXPECTED: &str = "expected host:port or :port, e.g. :8080 or 127.0.0.1:8080";
const SINK_RULES: AddressRules = AddressRules {
    default_port: None,
    allow_empty_host: false,
};
const URL_EXPECTED: &str = "expected a URL without spaces";
const SINK_EXPECTED: &str = "expected host:port, e.g. localhost:8125";

/// Converts the merged values into an [`AgentConfig`], defaults filling the gaps.
fn resolve(
    values: &Values,
    cwd: &Path,
    warnings: &mut Vec<String>,
) -> Result<AgentConfig, ConfigError> {
    let node_name = match values.name("node-name")? {
        Some(name) => name,
        None => os_hostname()?,
    };
    let mut config = AgentConfig::with_defaults(node_name);

    if let Some(server) = values.bool("server")? {
        config.server = server;
    }
    if let Some(addr) = values.address("bind-addr", BIND_RULES, BIND_EXPECTED)? {
        config.bind_addr = addr.to_string();
    }
    config.advertise_addr = values
        .address("advertise-addr", BIND_RULES, BIND_EXPECTED)?
        .map(|addr| addr.to_string());
    if let Some(addr) = values.address("http-addr", LISTEN_RULES, LISTEN_EXPECTED)? {
        config.http_addr = addr.to_string();
    }
    if let Some(port) = values.port(
        "rpc-port",
        0,
        "expected a port number 0-65535 (0 picks a free port)",
    )? {
        config.rpc_port = port;
    }
    config.advertise_rpc_port = match values.port(
        "advertise-rpc-port",
        0,
        "expected a port number 0-65535 (0 means rpc-port)",
    )? {
        Some(port) if port != 0 => port,
        _ => config.rpc_port,
    };
    if let Some((text, entry)) = values.text("data-dir")? {
        if text.trim().is_empty() {
            return Err(invalid(entry, "data-dir", text, "expected a directory"));
        }
        config.data_dir = cwd.join(text);
    } else {
        config.data_dir = cwd.join(DEFAULT_DATA_DIR);
    }
    config.tags = values.tags()?;
    if let Some(level) = values.parse("log-level", parse_log_level)? {
        config.log_level = level;
    }
    if let Some(ui) = values.bool("ui")? {
        config.ui = ui;
    }
    if let Some(profile) = values.parse("profile", Profile::from_str)? {
        config.profile = profile;
    }
    if let Some(region) = values.name("region")? {
        config.region = region;
    }
    if let Some(datacenter) = values.name("datacenter")? {
        config.datacenter = datacenter;
    }
    config.join = values
        .list("join")?
        .map(|(list, _)| list)
        .unwrap_or_default();
    config.retry_join = values
        .list("retry-join")?
        .map(|(list, _)| list)
        .unwrap_or_default();
    if let Some(retry_max) = values.uint(
        "retry-max",
        0..=u64::from(u32::MAX),
        "expected a whole number, 0 or more (0 retries forever)",
    )? {
        config.retry_max = u32::try_from(retry_max).expect("range is within u32");
    }
    if let Some(interval) = values.duration("retry-interval")? {
        config.retry_interval = interval;
    }
    config.encrypt = values.parse("encrypt", GossipKey::from_base64)?;
    if let Some(expect) = values.uint(
        "bootstrap-expect",
        0..=u64::from(u32::MAX),
        "expected a whole number, 0 or more",
    )? {
        config.bootstrap_expect = u32::try_from(expect).expect("range is within u32");
    }
    if let Some(bootstrap) = values.bool("bootstrap")? {
        config.bootstrap = bootstrap;
    }
    if let Some(devmode) = values.bool("devmode")? {
        config.devmode = devmode;
    }
    if let Some(interval) = values.duration("reconcileinterval")? {
        config.reconcile_interval = interval;
    }
    if let Some(multiplier) = values.uint(
        "raft-multiplier",
        1..=10,
        "expected a whole number from 1 to 10",
    )? {
        config.raft_multiplier = u32::try_from(multiplier).expect("range is within u32");
    }
    if let Some(timeout) = values.duration("serf-reconnect-timeout")? {
        config.serf_reconnect_timeout = timeout;
    }
    if let Some(backend) = values.parse("backend", Backend::from_str)? {
        config.backend = backend;
    }
    config.backend_machine = values
        .list("backend-machine")?
        .map(|(list, _)| list)
        .unwrap_or_default();
    config.backend_username = values.string("backend-username")?;
    config.backend_password = values.string("backend-password")?.map(Secret);
    if let Some(tls) = values.bool("backend-tls")? {
        config.backend_tls = tls;
    }
    if let Some(keyspace) = values.name("keyspace")? {
        config.keyspace = keyspace;
    }
    config.mail_host = values.token("mail-host", "expected a host name without spaces")?;
    if let Some(port) = values.port("mail-port", 0, "expected a port number 0-65535")? {
        config.mail_port = port;
    }
    config.mail_username = values.string("mail-username")?;
    config.mail_password = values.string("mail-password")?.map(Secret);
    config.mail_from = values.string("mail-from")?;
    config.mail_payload = values.string("mail-payload")?;
    if let Some(prefix) = values.string("mail-subject-prefix")? {
        config.mail_subject_prefix = prefix;
    }
    config.pre_webhook_endpoint = values.token("pre-webhook-endpoint", URL_EXPECTED)?;
    config.pre_webhook_payload = values.string("pre-webhook-payload")?;
    config.pre_webhook_headers = values.headers("pre-webhook-headers")?;
    config.webhook_endpoint = values.token("webhook-endpoint", URL_EXPECTED)?;
    config.webhook_url = values.string("webhook-url")?;
    config.webhook_payload = values.string("webhook-payload")?;
    config.webhook_headers = values.headers("webhook-headers")?;
    config.cronitor_endpoint = values.token("cronitor-endpoint", URL_EXPECTED)?;
    config.statsd_addr = values
        .address("statsd-addr", SINK_RULES, SINK_EXPECTED)?
        .map(|addr| addr.to_string());
    config.dog_statsd_addr = values
        .address("dog-statsd-addr", SINK_RULES, SINK_EXPECTED)?
        .map(|addr| addr.to_string());
    config.dog_statsd_tags = values
        .list("dog-statsd-tags")?
        .map(|(list, _)| list)
        .unwrap_or_default();
    if let Some(enable) = values.bool("enable-prometheus")? {
        config.enable_prometheus = enable;
    }
    config.otel_endpoint = values.token("otel-endpoint", URL_EXPECTED)?;
    if let Some(disable) = values.bool("disable-usage-stats")? {
        config.disable_usage_stats = disable;
    }
    if let Some(retention) = values.uint(
        "execution-retention",
        1..=u64::from(u32::MAX),
        "expected a whole number, 1 or more",
    )? {
        config.execution_retention = usize::try_from(retention).unwrap_or(usize::MAX);
    }
    if let Some(grace) = values.duration("shutdown-grace-period")? {
        config.shutdown_grace_period = grace;
    }
    if let Some((text, entry)) = values.text("lease-ttl")? {
        match parse_go_duration(text) {
            Ok(ttl) if ttl >= Duration::from_secs(2) => config.lease_ttl = ttl,
            _ => {
                return Err(invalid(
                    entry,
                    "lease-ttl",
                    text,
                    "expected a Go duration of at least 2s (etcd grants no shorter lease)",
                ));
            }
        }
    }
    if let Some(size) = values.byte_size("http-max-body")? {
        config.http_max_body = size;
    }
    if let Some(size) = values.byte_size("restore-max-body")? {
        config.restore_max_body = size;
    }

    if config.webhook_url.is_some() {
        warnings.push(
            "ignoring webhook-url: deprecated and unused since Dkron 3.2; use webhook-endpoint"
                .to_string(),
        );
    }
    if !config.join.is_empty() && !config.retry_join.is_empty() {
        warnings.push("join is ignored because retry-join is set".to_string());
    }
    Ok(config)
}

/// Parses a log level as logrus does (case-insensitive, `warning` = `warn`), but rejects
/// unknown levels where Dkron silently falls back to `info`.
fn parse_log_level(text: &str) -> Result<String, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        level @ ("trace" | "debug" | "info" | "warn" | "error" | "fatal" | "panic") => {
            Ok(level.to_string())
        }
        "warning" => Ok("warn".to_string()),
        _ => Err("expected one of debug, info, warn, error, fatal, panic".to_string()),
    }
}
