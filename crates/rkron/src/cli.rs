//! Command-line surface of the `rkron` binary: the clap definitions and the output of `version` and `keygen`.
//!
//! Flags keep Dkron's names (`dkron agent --node-name …` becomes `rkron agent --node-name …`).
//! Every `agent` flag is an `Option`, so [`crate::config::load`] can tell a flag given on the
//! command line (highest precedence) from one left out (file, environment or default applies).
//! Values are only parsed into their Rust type here; what they mean and whether they are valid
//! is decided in [`crate::config`], which names the flag in its errors.

use base64::Engine as _;
use clap::{Args, Parser, Subcommand};

use crate::config::parse_go_bool;

/// The codename printed by `rkron version`.
pub const CODENAME: &str = "Sundial";

/// The serf-compatible agent protocol version printed by `rkron version` (Dkron's value).
pub const AGENT_PROTOCOL: u8 = 5;

/// The oldest agent protocol version understood (Dkron's value).
pub const AGENT_PROTOCOL_MIN: u8 = 2;

/// The `rkron` command line.
#[derive(Debug, Parser)]
#[command(
    name = "rkron",
    version,
    about = "Distributed, fault-tolerant job scheduler compatible with Dkron"
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `rkron`.
///
/// Room is left for `leave`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start an rkron agent (a server with --server)
    Agent(Box<AgentArgs>),
    /// Show version information
    Version,
    /// Generate a new gossip encryption key
    Keygen,
    /// Run a job now; with --wait, wait for it and print its executions
    Run {
        /// The job to run
        job: String,
        /// Wait until the run finishes and print its executions
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Kill a running execution (its whole process group) and record it as failed
    Kill {
        /// The job of the execution
        job: String,
        /// The execution id (`<started nanos>-<node>`, from the executions list or /v1/busy)
        execution: String,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Write every job as JSON (the output of GET /v1/jobs) to a file or standard output
    Backup {
        /// The file to write; standard output when absent
        #[arg(long, short)]
        file: Option<std::path::PathBuf>,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Ask a node to leave the cluster gracefully and stop
    Leave {
        /// The node's RPC address
        #[arg(long, default_value = "127.0.0.1:6868")]
        rpc_addr: String,
    },
    /// Restore jobs from a backup file (parents before children)
    Restore {
        /// The backup file (a JSON array of jobs)
        file: std::path::PathBuf,
        #[command(flatten)]
        server: ServerAddress,
    },
}

/// Which server a client command talks to.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ServerAddress {
    /// The server's HTTP address
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub address: String,
}

/// Flags of `rkron agent`; each one is also a configuration key of the same name.
///
/// Boolean flags take an optional value: `--server` is `--server=true`, and `--ui=false`
/// turns the UI off. List flags can be repeated and, except for the header lists, also take
/// comma-separated values (`--join a,b --join c`), as Dkron's string-slice flags do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct AgentArgs {
    /// Configuration file (.yml, .yaml, .json or .toml)
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    /// Run this agent as a server
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub server: Option<bool>,

    /// Name of this node; must be unique in the cluster [default: the OS hostname]
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// Address to bind gossip to; port 8946 if omitted [default: 0.0.0.0:8946]
    #[arg(long, value_name = "ADDR")]
    pub bind_addr: Option<String>,

    /// Address advertised to other nodes; port 8946 if omitted [default: derived from bind-addr]
    #[arg(long, value_name = "ADDR")]
    pub advertise_addr: Option<String>,

    /// Address of the HTTP API and UI (servers only) [default: :8080]
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,

    /// RPC port [default: 6868]
    #[arg(long, value_name = "PORT")]
    pub rpc_port: Option<u16>,

    /// RPC port advertised to other nodes; 0 means rpc-port [default: 0]
    #[arg(long, value_name = "PORT")]
    pub advertise_rpc_port: Option<u16>,

    /// Directory for this node's data [default: rkron.data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,

    /// Node tag key=value; repeatable; replaces the file and environment tags
    #[arg(long, value_name = "KEY=VALUE", value_delimiter = ',')]
    pub tag: Option<Vec<String>>,

    /// Log level: debug, info, warn, error, fatal or panic [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Serve the web UI (servers only) [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub ui: Option<bool>,

    /// Gossip timing profile: lan, wan or local [default: lan]
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,

    /// Region of this node; jobs run only in the leader's region [default: global]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Datacenter of this node [default: dc1]
    #[arg(long, value_name = "DC")]
    pub datacenter: Option<String>,

    /// Address to join at start; repeatable
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    pub join: Option<Vec<String>>,

    /// Address to join at start, retried until it succeeds; repeatable
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    pub retry_join: Option<Vec<String>>,

    /// Maximum retry-join attempts; 0 retries forever [default: 0]
    #[arg(long, value_name = "N")]
    pub retry_max: Option<u32>,

    /// Time between retry-join attempts (Go duration) [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub retry_interval: Option<String>,

    /// Base64 gossip encryption key of 16, 24 or 32 bytes (see `rkron keygen`)
    #[arg(long, value_name = "KEY")]
    pub encrypt: Option<String>,

    /// Number of servers to wait for before bootstrapping the cluster [default: 0]
    #[arg(long, value_name = "N")]
    pub bootstrap_expect: Option<u32>,

    /// Multiplier of the consensus timeouts, 1 to 10 [default: 1]
    #[arg(long, value_name = "N")]
    pub raft_multiplier: Option<u32>,

    /// Time after which a failed node is removed from the member list (Go duration) [default: 24h]
    #[arg(long, value_name = "DURATION")]
    pub serf_reconnect_timeout: Option<String>,

    /// Store backend: embedded (alias boltdb), etcd (alias etcdv3), redis, zk, dynamodb or consul [default: embedded]
    #[arg(long, value_name = "BACKEND")]
    pub backend: Option<String>,

    /// Store backend address; repeatable
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    pub backend_machine: Option<Vec<String>>,

    /// Store backend user name
    #[arg(long, value_name = "USER")]
    pub backend_username: Option<String>,

    /// Store backend password
    #[arg(long, value_name = "PASSWORD")]
    pub backend_password: Option<String>,

    /// Connect to the store backend over TLS
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub backend_tls: Option<bool>,

    /// Key prefix in the store backend [default: rkron]
    #[arg(long, value_name = "PREFIX")]
    pub keyspace: Option<String>,

    /// SMTP host for email notifications
    #[arg(long, value_name = "HOST")]
    pub mail_host: Option<String>,

    /// SMTP port for email notifications
    #[arg(long, value_name = "PORT")]
    pub mail_port: Option<u16>,

    /// SMTP user name
    #[arg(long, value_name = "USER")]
    pub mail_username: Option<String>,

    /// SMTP password
    #[arg(long, value_name = "PASSWORD")]
    pub mail_password: Option<String>,

    /// From address of notification emails
    #[arg(long, value_name = "ADDRESS")]
    pub mail_from: Option<String>,

    /// Template of the notification email body
    #[arg(long, value_name = "TEMPLATE")]
    pub mail_payload: Option<String>,

    #[arg(
        long,
        value_name = "PREFIX",
        help = "Subject prefix of notification emails [default: [Dkron]]"
    )]
    pub mail_subject_prefix: Option<String>,

    /// URL called when an execution starts
    #[arg(long, value_name = "URL")]
    pub pre_webhook_endpoint: Option<String>,

    /// Template of the pre-webhook body
    #[arg(long, value_name = "TEMPLATE")]
    pub pre_webhook_payload: Option<String>,

    /// Pre-webhook header "Name: value"; repeatable
    #[arg(long, value_name = "HEADER")]
    pub pre_webhook_headers: Option<Vec<String>>,

    /// URL called when an execution is done
    #[arg(long, value_name = "URL")]
    pub webhook_endpoint: Option<String>,

    /// Deprecated and ignored, as in Dkron 3.2 and later; use --webhook-endpoint
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,

    /// Template of the webhook body
    #[arg(long, value_name = "TEMPLATE")]
    pub webhook_payload: Option<String>,

    /// Webhook header "Name: value"; repeatable
    #[arg(long, value_name = "HEADER", alias = "webhook-header")]
    pub webhook_headers: Option<Vec<String>>,

    /// Cronitor ping endpoint
    #[arg(long, value_name = "URL")]
    pub cronitor_endpoint: Option<String>,

    /// StatsD address host:port
    #[arg(long, value_name = "ADDR")]
    pub statsd_addr: Option<String>,

    /// DogStatsD address host:port
    #[arg(long, value_name = "ADDR")]
    pub dog_statsd_addr: Option<String>,

    /// DogStatsD tag key:value; repeatable
    #[arg(long, value_name = "TAG", value_delimiter = ',')]
    pub dog_statsd_tags: Option<Vec<String>>,

    /// Serve Prometheus metrics at /metrics
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub enable_prometheus: Option<bool>,

    /// OpenTelemetry OTLP endpoint for traces
    #[arg(long, value_name = "URL")]
    pub otel_endpoint: Option<String>,

    /// Disable anonymous usage statistics (rkron sends none)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub disable_usage_stats: Option<bool>,

    /// Executions kept per job; older ones are deleted [default: 100]
    #[arg(long, value_name = "N")]
    pub execution_retention: Option<usize>,

    /// Time running executions get to finish at shutdown (Go duration) [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub shutdown_grace_period: Option<String>,

    /// Leadership lease time to live: a leader that cannot renew stops dispatching within
    /// three quarters of it; another server takes over once it expired [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub lease_ttl: Option<String>,

    /// Largest accepted HTTP request body, e.g. a job (bytes, or with a unit: KiB, MiB) [default: 1048576]
    #[arg(long, value_name = "SIZE")]
    pub http_max_body: Option<String>,

    /// Largest accepted restore upload (bytes, or with a unit: KiB, MiB) [default: 64MiB]
    #[arg(long, value_name = "SIZE")]
    pub restore_max_body: Option<String>,
}

/// Returns the text printed by `rkron version`, one field per line, without a trailing newline.
pub fn version_text() -> String {
    format!(
        "Name: rkron\nVersion: {}\nCodename: {CODENAME}\nAgent Protocol: {AGENT_PROTOCOL} (Understands back to: {AGENT_PROTOCOL_MIN})",
        env!("CARGO_PKG_VERSION")
    )
}

/// Returns a new gossip encryption key: 16 random bytes in standard base64 (24 characters).
pub fn keygen() -> String {
    let key: [u8; 16] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn agent(args: &[&str]) -> AgentArgs {
        let cli = Cli::try_parse_from(std::iter::once("rkron").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"));
        match cli.command {
            Command::Agent(agent_args) => *agent_args,
            other => panic!("expected agent, got {other:?}"),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn agent_without_flags_sets_nothing() {
        assert_eq!(agent(&["agent"]), AgentArgs::default());
    }

    #[test]
    fn bool_flags_take_an_optional_value() {
        let args = agent(&[
            "agent",
            "--server",
            "--ui=false",
            "--enable-prometheus=true",
        ]);
        assert_eq!(args.server, Some(true));
        assert_eq!(args.ui, Some(false));
        assert_eq!(args.enable_prometheus, Some(true));
        assert_eq!(args.disable_usage_stats, None);
        assert_eq!(agent(&["agent", "--server=0"]).server, Some(false));
        assert_eq!(agent(&["agent", "--backend-tls=T"]).backend_tls, Some(true));
    }

    #[test]
    fn bool_flags_reject_non_go_booleans() {
        assert!(Cli::try_parse_from(["rkron", "agent", "--ui=yes"]).is_err());
        // like Go's pflag, a bool value must be attached with `=`
        assert!(Cli::try_parse_from(["rkron", "agent", "--server", "false"]).is_err());
    }

    #[test]
    fn list_flags_repeat_and_split_on_commas() {
        let args = agent(&[
            "agent",
            "--join",
            "a:1,b:2",
            "--join",
            "c",
            "--tag",
            "role=web",
            "--tag",
            "dc=east,rack=1",
        ]);
        assert_eq!(
            args.join,
            Some(vec!["a:1".into(), "b:2".into(), "c".into()])
        );
        assert_eq!(
            args.tag,
            Some(vec!["role=web".into(), "dc=east".into(), "rack=1".into()])
        );
        let args = agent(&["agent", "--backend-machine", "h1:2379,h2:2379"]);
        assert_eq!(
            args.backend_machine,
            Some(vec!["h1:2379".into(), "h2:2379".into()])
        );
    }

    #[test]
    fn header_flags_keep_commas_and_accept_the_v1_singular_name() {
        let args = agent(&[
            "agent",
            "--webhook-header",
            "Accept: text/html, application/json",
            "--webhook-headers",
            "X-A: 1",
        ]);
        assert_eq!(
            args.webhook_headers,
            Some(vec![
                "Accept: text/html, application/json".into(),
                "X-A: 1".into()
            ])
        );
    }

    #[test]
    fn typed_flags_parse() {
        let args = agent(&[
            "agent",
            "--config",
            "/x/rkron.yml",
            "--node-name",
            "n1",
            "--rpc-port",
            "7000",
            "--execution-retention",
            "5",
            "--shutdown-grace-period",
            "1m",
            "--http-max-body",
            "2MiB",
        ]);
        assert_eq!(
            args.config.as_deref(),
            Some(std::path::Path::new("/x/rkron.yml"))
        );
        assert_eq!(args.node_name.as_deref(), Some("n1"));
        assert_eq!(args.rpc_port, Some(7000));
        assert_eq!(args.execution_retention, Some(5));
        assert_eq!(args.shutdown_grace_period.as_deref(), Some("1m"));
        assert_eq!(args.http_max_body.as_deref(), Some("2MiB"));
        assert!(Cli::try_parse_from(["rkron", "agent", "--rpc-port", "abc"]).is_err());
        assert!(Cli::try_parse_from(["rkron", "agent", "--rpc-port", "70000"]).is_err());
        assert!(Cli::try_parse_from(["rkron", "agent", "--no-such-flag"]).is_err());
    }

    #[test]
    fn every_dkron_key_has_a_flag() {
        let command = Cli::command();
        let agent_command = command.find_subcommand("agent").expect("agent subcommand");
        let longs: Vec<&str> = agent_command
            .get_arguments()
            .filter_map(|arg| arg.get_long())
            .collect();
        let flag_keys: Vec<&str> = crate::config::KEYS
            .iter()
            .copied()
            .filter(|key| !crate::config::KEYS_WITHOUT_FLAG.contains(key))
            .collect();
        for key in &flag_keys {
            assert!(longs.contains(key), "missing flag --{key}");
        }
        for long in &longs {
            assert!(
                *long == "config" || *long == "help" || flag_keys.contains(long),
                "flag --{long} is not a configuration key"
            );
        }
    }

    #[test]
    fn version_and_keygen_subcommands_parse() {
        assert!(matches!(
            Cli::try_parse_from(["rkron", "version"]).unwrap().command,
            Command::Version
        ));
        assert!(matches!(
            Cli::try_parse_from(["rkron", "keygen"]).unwrap().command,
            Command::Keygen
        ));
    }

    #[test]
    fn version_text_has_dkron_lines() {
        let text = version_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "Name: rkron".to_string(),
                format!("Version: {}", env!("CARGO_PKG_VERSION")),
                format!("Codename: {CODENAME}"),
                "Agent Protocol: 5 (Understands back to: 2)".to_string(),
            ]
        );
    }

    #[test]
    fn keygen_makes_a_16_byte_base64_key() {
        let key = keygen();
        assert_eq!(key.len(), 24);
        assert!(key.ends_with("=="));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&key)
            .unwrap();
        assert_eq!(bytes.len(), 16);
        assert_ne!(keygen(), key, "two keys must differ");
    }
}
