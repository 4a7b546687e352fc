//! Tests of configuration loading: precedence, file search, environment rules and validation messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::cli::{AgentArgs, Cli, Command};
use clap::Parser as _;

/// A sandbox with its own system dir, home and working directory, so no test reads `/etc`.
struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let root = tempfile::tempdir().unwrap();
        for dir in ["etc", "home", "cwd"] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        Sandbox { root }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn cwd(&self) -> PathBuf {
        self.path("cwd")
    }

    /// Writes `text` to `relative` (under the sandbox root) and returns the full path.
    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn search(&self) -> SearchPaths {
        SearchPaths::with_system_dir(&self.path("etc"), Some(&self.path("home")), &self.cwd())
    }

    fn load(&self, args: &AgentArgs, env: &[(&str, &str)]) -> Result<AgentConfig, ConfigError> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        load_with(args, &env, &self.search(), &self.cwd())
    }

    fn load_ok(&self, args: &AgentArgs, env: &[(&str, &str)]) -> AgentConfig {
        self.load(args, env)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    fn load_err(&self, args: &AgentArgs, env: &[(&str, &str)]) -> String {
        match self.load(args, env) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(error) => error.to_string(),
        }
    }
}

fn flags(argv: &[&str]) -> AgentArgs {
    let cli = Cli::try_parse_from(["rkron", "agent"].iter().chain(argv.iter()).copied())
        .unwrap_or_else(|error| panic!("{error}"));
    match cli.command {
        Command::Agent(args) => *args,
        other => panic!("expected agent, got {other:?}"),
    }
}

fn none() -> AgentArgs {
    AgentArgs::default()
}

fn config_arg(path: &Path) -> AgentArgs {
    AgentArgs {
        config: Some(path.to_path_buf()),
        ..AgentArgs::default()
    }
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

// ---- defaults ----

#[test]
fn defaults_apply_without_any_source() {
    let sandbox = Sandbox::new();
    let config = sandbox.load_ok(&none(), &[]);
    let mut expected = AgentConfig::with_defaults(os_hostname().unwrap());
    expected.data_dir = sandbox.cwd().join("rkron.data");
    assert_eq!(config, expected);
    assert_eq!(config.config_file, None);
    assert_eq!(config.bind_addr, "0.0.0.0:8946");
    assert_eq!(config.http_addr, ":8080");
    assert_eq!(config.rpc_port, 6868);
    assert_eq!(config.advertise_rpc_port, 6868);
    assert_eq!(config.log_level, "info");
    assert!(config.ui);
    assert!(!config.server);
    assert_eq!(config.backend, Backend::Embedded);
    assert_eq!(config.keyspace, "rkron");
    assert_eq!(config.region, "global");
    assert_eq!(config.datacenter, "dc1");
    assert_eq!(config.profile, Profile::Lan);
    assert_eq!(config.retry_interval, Duration::from_secs(30));
    assert_eq!(config.reconcile_interval, Duration::from_secs(60));
    assert_eq!(config.serf_reconnect_timeout, Duration::from_secs(86_400));
    assert_eq!(config.raft_multiplier, 1);
    assert_eq!(config.mail_subject_prefix, "[Dkron]");
    assert_eq!(config.execution_retention, 100);
    assert_eq!(config.shutdown_grace_period, Duration::from_secs(30));
    assert_eq!(config.http_max_body, 1_048_576);
    assert_eq!(config.restore_max_body, 64 * 1024 * 1024);
    assert!(config.warnings.is_empty());
}

#[test]
fn http_socket_addr_turns_port_only_into_all_interfaces() {
    let mut config = AgentConfig::with_defaults("n1");
    assert_eq!(
        config.http_socket_addr().unwrap(),
        "0.0.0.0:8080".parse().unwrap()
    );
    config.http_addr = "127.0.0.1:9090".to_string();
    assert_eq!(
        config.http_socket_addr().unwrap(),
        "127.0.0.1:9090".parse().unwrap()
    );
    config.http_addr = "[::1]:9090".to_string();
    assert_eq!(
        config.http_socket_addr().unwrap(),
        "[::1]:9090".parse().unwrap()
    );
    config.http_addr = "localhost:9090".to_string();
    assert_eq!(config.http_socket_addr().unwrap().port(), 9090);
}

// ---- precedence ----

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "cwd/config/rkron.yml",
        "node-name: from-file\nlog-level: warn\nregion: file-region\nrpc-port: 7001\n",
    );
    let env = [
        ("RKRON_NODE_NAME", "from-env"),
        ("RKRON_LOG_LEVEL", "error"),
        ("RKRON_RPC_PORT", "7002"),
    ];
    let config = sandbox.load_ok(
        &flags(&["--node-name", "from-flag", "--rpc-port", "7003"]),
        &env,
    );
    assert_eq!(config.node_name, "from-flag", "flag wins");
    assert_eq!(config.rpc_port, 7003, "flag wins");
    assert_eq!(config.log_level, "error", "env beats file");
    assert_eq!(config.region, "file-region", "file beats default");
    assert_eq!(config.datacenter, "dc1", "default");
    assert_eq!(
        config.config_file,
        Some(sandbox.cwd().join("config/rkron.yml"))
    );

    let config = sandbox.load_ok(&none(), &env);
    assert_eq!(config.node_name, "from-env");
    assert_eq!(config.rpc_port, 7002);

    let config = sandbox.load_ok(&none(), &[]);
    assert_eq!(config.node_name, "from-file");
    assert_eq!(config.rpc_port, 7001);
    assert_eq!(config.log_level, "warn");
}

#[test]
fn bool_and_list_keys_follow_precedence() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "cwd/config/rkron.yml",
        "server: true\nui: true\njoin: [a, b]\nretry-join: [r1]\n",
    );
    let config = sandbox.load_ok(
        &flags(&["--ui=false", "--join", "c"]),
        &[("RKRON_SERVER", "false"), ("RKRON_RETRY_JOIN", "e1, e2")],
    );
    assert!(!config.server, "env false beats file true");
    assert!(!config.ui, "--ui=false beats file");
    assert_eq!(config.join, vec!["c"], "flag list replaces file list");
    assert_eq!(
        config.retry_join,
        vec!["e1", "e2"],
        "env list is comma-split"
    );
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("join is ignored"))
    );
}

#[test]
fn unset_flags_do_not_override_lower_sources() {
    let sandbox = Sandbox::new();
    sandbox.write("cwd/config/rkron.yml", "server: true\nui: false\n");
    let config = sandbox.load_ok(&flags(&["--node-name", "n1"]), &[]);
    assert!(config.server);
    assert!(!config.ui);
}

#[test]
fn rkron_env_beats_dkron_env() {
    let sandbox = Sandbox::new();
    let config = sandbox.load_ok(
        &none(),
        &[
            ("DKRON_NODE_NAME", "dkron-name"),
            ("RKRON_NODE_NAME", "rkron-name"),
            ("DKRON_DATACENTER", "dkron-dc"),
        ],
    );
    assert_eq!(config.node_name, "rkron-name");
    assert_eq!(config.datacenter, "dkron-dc");
}

#[test]
fn dkron_env_alone_works() {
    let sandbox = Sandbox::new();
    let config = sandbox.load_ok(
        &none(),
        &[
            ("DKRON_NODE_NAME", "n1"),
            ("DKRON_SERVER", "true"),
            ("DKRON_BOOTSTRAP_EXPECT", "3"),
            ("DKRON_HTTP_ADDR", "127.0.0.1:8081"),
            ("DKRON_RETRY_JOIN", "10.0.0.1,10.0.0.2"),
            ("DKRON_TAGS", "role=web,rack=r1"),
            ("DKRON_RECONCILEINTERVAL", "2m"),
        ],
    );
    assert_eq!(config.node_name, "n1");
    assert!(config.server);
    assert_eq!(config.bootstrap_expect, 3);
    assert_eq!(config.http_addr, "127.0.0.1:8081");
    assert_eq!(config.retry_join, vec!["10.0.0.1", "10.0.0.2"]);
    assert_eq!(config.tags, tags(&[("role", "web"), ("rack", "r1")]));
    assert_eq!(config.reconcile_interval, Duration::from_secs(120));
}

#[test]
fn empty_env_values_count_as_unset() {
    let sandbox = Sandbox::new();
    sandbox.write("cwd/config/rkron.yml", "node-name: from-file\n");
    let config = sandbox.load_ok(&none(), &[("RKRON_NODE_NAME", "")]);
    assert_eq!(config.node_name, "from-file");
}

#[test]
fn unknown_rkron_env_is_an_error() {
    let sandbox = Sandbox::new();
    let message = sandbox.load_err(&none(), &[("RKRON_NODENAME", "x")]);
    assert_eq!(
        message,
        "environment variable RKRON_NODENAME: unknown configuration key \"nodename\"; \
         did you mean RKRON_NODE_NAME?"
    );
    let message = sandbox.load_err(&none(), &[("RKRON_LOG", "debug")]);
    assert!(
        message.starts_with("environment variable RKRON_LOG: unknown configuration key \"log\""),
        "{message}"
    );
}

#[test]
fn unknown_dkron_env_is_only_a_warning() {
    let sandbox = Sandbox::new();
    let config = sandbox.load_ok(
        &none(),
        &[("DKRON_API_TOKEN", "x"), ("DKRON_NODE_NAME", "n1")],
    );
    assert_eq!(config.node_name, "n1");
    assert_eq!(
        config.warnings,
        vec!["ignoring environment variable DKRON_API_TOKEN: not a configuration key"]
    );
}

#[test]
fn reserved_and_unrelated_env_vars_are_ignored() {
    let sandbox = Sandbox::new();
    let config = sandbox.load_ok(
        &none(),
        &[
            ("RKRON_TEST_ETCD", "http://127.0.0.1:2379"),
            ("HOME", "/root"),
            ("PATH", "/usr/bin"),
            ("rkron_node_name", "lower-case prefix is not ours"),
        ],
    );
    assert!(config.warnings.is_empty());
}

#[test]
fn alias_given_twice_in_one_source_is_an_error() {
    let sandbox = Sandbox::new();
    let message = sandbox.load_err(
        &none(),
        &[
            ("RKRON_WEBHOOK_HEADER", "A: 1"),
            ("RKRON_WEBHOOK_HEADERS", "B: 2"),
        ],
    );
    assert!(
        message.contains("key \"webhook-headers\" is given twice"),
        "{message}"
    );
    let config = sandbox.load_ok(&none(), &[("DKRON_WEBHOOK_HEADER", "A: 1")]);
    assert_eq!(config.webhook_headers, vec!["A: 1"]);
}

// ---- file search ----

#[test]
fn dkron_yml_is_found_when_there_is_no_rkron_file() {
    let sandbox = Sandbox::new();
    let path = sandbox.write("etc/dkron/dkron.yml", "node-name: from-dkron\n");
    let config = sandbox.load_ok(&none(), &[]);
    assert_eq!(config.node_name, "from-dkron");
    assert_eq!(config.config_file, Some(path));
}

#[test]
fn rkron_file_is_preferred_over_dkron_file() {
    let sandbox = Sandbox::new();
    sandbox.write("etc/dkron/dkron.yml", "node-name: from-dkron\n");
    let path = sandbox.write("cwd/config/rkron.toml", "node-name = \"from-rkron\"\n");
    let config = sandbox.load_ok(&none(), &[]);
    assert_eq!(config.node_name, "from-rkron");
    assert_eq!(config.config_file, Some(path));
}

#[test]
fn search_order_is_system_then_home_then_cwd() {
    let sandbox = Sandbox::new();
    sandbox.write("cwd/config/rkron.yml", "node-name: cwd\n");
    sandbox.write("home/.rkron/rkron.json", "{\"node-name\": \"home\"}");
    assert_eq!(sandbox.load_ok(&none(), &[]).node_name, "home");
    sandbox.write("etc/rkron/rkron.yaml", "node-name: system\n");
    assert_eq!(sandbox.load_ok(&none(), &[]).node_name, "system");
    sandbox.write("etc/rkron/rkron.yml", "node-name: system-yml\n");
    assert_eq!(sandbox.load_ok(&none(), &[]).node_name, "system-yml");
}

#[test]
fn default_search_paths_cover_rkron_and_dkron_locations() {
    let search = SearchPaths::default_for(Some(Path::new("/home/u")), Path::new("/w"));
    let candidates = search.candidates();
    let expected_prefix: Vec<PathBuf> = [
        "/etc/rkron/rkron.yml",
        "/etc/rkron/rkron.yaml",
        "/etc/rkron/rkron.json",
        "/etc/rkron/rkron.toml",
        "/home/u/.rkron/rkron.yml",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(&candidates[..5], &expected_prefix[..]);
    assert!(candidates.contains(&PathBuf::from("/w/config/rkron.toml")));
    assert!(candidates.contains(&PathBuf::from("/etc/dkron/dkron.yml")));
    assert!(candidates.contains(&PathBuf::from("/home/u/.dkron/dkron.json")));
    assert_eq!(
        candidates.last(),
        Some(&PathBuf::from("/w/config/dkron.toml"))
    );
    let position = |p: &str| candidates.iter().position(|c| c == Path::new(p)).unwrap();
    assert!(position("/w/config/rkron.toml") < position("/etc/dkron/dkron.yml"));
    assert_eq!(candidates.len(), 24);
    let without_home = SearchPaths::default_for(None, Path::new("/w"));
    assert_eq!(without_home.candidates().len(), 16);
}

// ---- explicit config files ----

#[test]
fn explicit_toml_json_and_yaml_files_load() {
    let sandbox = Sandbox::new();
    let toml_path = sandbox.write(
        "x/a.toml",
        "server = true\nnode-name = \"t\"\nrpc-port = 7000\njoin = [\"a\", \"b\"]\n[tags]\nrole = \"web\"\n",
    );
    let config = sandbox.load_ok(&config_arg(&toml_path), &[]);
    assert!(config.server);
    assert_eq!(config.node_name, "t");
    assert_eq!(config.rpc_port, 7000);
    assert_eq!(config.join, vec!["a", "b"]);
    assert_eq!(config.tags, tags(&[("role", "web")]));
    assert_eq!(config.config_file, Some(toml_path));

    let json_path = sandbox.write(
        "x/b.json",
        r#"{"server": true, "node-name": "j", "rpc-port": "7001", "tags": {"a": "1"}}"#,
    );
    let config = sandbox.load_ok(&config_arg(&json_path), &[]);
    assert_eq!(config.node_name, "j");
    assert_eq!(config.rpc_port, 7001);
    assert_eq!(config.tags, tags(&[("a", "1")]));

    let yaml_path = sandbox.write("x/c.yaml", "node-name: y\nretry-max: 3\n");
    let config = sandbox.load_ok(&config_arg(&yaml_path), &[]);
    assert_eq!(config.node_name, "y");
    assert_eq!(config.retry_max, 3);
}

#[test]
fn explicit_file_beats_the_search_and_relative_paths_use_cwd() {
    let sandbox = Sandbox::new();
    sandbox.write("etc/rkron/rkron.yml", "node-name: searched\n");
    let path = sandbox.write("cwd/mine.yml", "node-name: explicit\n");
    let config = sandbox.load_ok(&flags(&["--config", "mine.yml"]), &[]);
    assert_eq!(config.node_name, "explicit");
    assert_eq!(config.config_file, Some(path.clone()));
    let config = sandbox.load_ok(&none(), &[("RKRON_CONFIG", "mine.yml")]);
    assert_eq!(config.node_name, "explicit");
    assert_eq!(config.config_file, Some(path));
}

#[test]
fn missing_explicit_file_is_an_error() {
    let sandbox = Sandbox::new();
    let message = sandbox.load_err(&flags(&["--config", "/nonexistent/rkron.yml"]), &[]);
    assert_eq!(message, "config file /nonexistent/rkron.yml: not found");
}

#[test]
fn unsupported_extension_is_an_error() {
    let sandbox = Sandbox::new();
    let path = sandbox.write("x/rkron.hcl", "node_name = \"x\"\n");
    let message = sandbox.load_err(&config_arg(&path), &[]);
    assert_eq!(
        message,
        format!(
            "config file {}: unsupported format; use a .yml, .yaml, .json or .toml file",
            path.display()
        )
    );
}

#[test]
fn empty_file_and_null_values_are_fine() {
    let sandbox = Sandbox::new();
    let path = sandbox.write("x/empty.yml", "");
    assert!(sandbox.load(&config_arg(&path), &[]).is_ok());
    let path = sandbox.write("x/comments.yml", "# nothing here\n");
    assert!(sandbox.load(&config_arg(&path), &[]).is_ok());
    let path = sandbox.write("x/null.yml", "node-name: n1\nregion:\n");
    assert_eq!(sandbox.load_ok(&config_arg(&path), &[]).region, "global");
}

#[test]
fn file_keys_are_case_insensitive() {
    let sandbox = Sandbox::new();
    let path = sandbox.write("x/case.yml", "Node-Name: N1\nSERVER: true\n");
    let config = sandbox.load_ok(&config_arg(&path), &[]);
    assert_eq!(config.node_name, "N1");
    assert!(config.server);
}

// ---- tags ----

#[test]
fn tags_map_form() {
    let sandbox = Sandbox::new();
    let path = sandbox.write("x/t.yml", "tags:\n  dc: east\n  weight: 3\n");
    let config = sandbox.load_ok(&config_arg(&path), &[]);
    assert_eq!(config.tags, tags(&[("dc", "east"), ("weight", "3")]));
}

#[test]
fn tags_list_of_single_key_maps_form() {
    let sandbox = Sandbox::new();
    let path = sandbox.write("x/t.yml", "tags:\n  - dc: east\n  - role: web\n");
    let config = sandbox.load_ok(&config_arg(&path), &[]);
    assert_eq!(config.tags, tags(&[("dc", "east"), ("role", "web")]));
}

#[test]
fn tag_flags_replace_file_and_env_tags() {
    let sandbox = Sandbox::new();
    sandbox.write("cwd/config/rkron.yml", "tags:\n  dc: east\n  role: db\n");
    let config = sandbox.load_ok(
        &flags(&["--tag", "role=web", "--tag", "rack=r2"]),
        &[("RKRON_TAGS", "zone=z1")],
    );
    assert_eq!(config.tags, tags(&[("role", "web"), ("rack", "r2")]));
    let config = sandbox.load_ok(&none(), &[("RKRON_TAGS", "zone=z1")]);
    assert_eq!(
        config.tags,
        tags(&[("zone", "z1")]),
        "env tags replace file tags"
    );
    let config = sandbox.load_ok(&none(), &[]);
    assert_eq!(config.tags, tags(&[("dc", "east"), ("role", "db")]));
}

#[test]
fn invalid_tag_flag_uses_dkron_message() {
    let sandbox = Sandbox::new();
    let message = sandbox.load_err(&flags(&["--tag", "novalue"]), &[]);
    assert_eq!(message, "flag --tag: invalid tag: 'novalue'");
    let message = sandbox.load_err(&flags(&["--tag", "=v"]), &[]);
    assert_eq!(message, "flag --tag: invalid tag: '=v'");
    let message = sandbox.load_err(&none(), &[("RKRON_TAGS", "a=1,broken")]);
    assert_eq!(
        message,
        "environment variable RKRON_TAGS: invalid tag: 'broken'"
    );
}

// ---- realistic Dkron config ----

#[test]
fn shipped_dkron_example_config_loads() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "etc/dkron/dkron.yml",
        "# Dkron example configuration file\n\
         server: true\n\
         bootstrap-expect: 1\n\
         data-dir: dkron.data\n\
         log-level: debug\n\
         tags:\n  dc: east\n\
         # encrypt: a-valid-key-generated-with-dkron-keygen\n\
         # join:\n#   - 10.0.0.1\n\
         # webhook-endpoint: https://hooks.slack.com/services/XXXXXX/XXXXXXX/XXXXXXXXXXXXXXXXXXXX\n\
         # webhook-payload: \"payload={\\\"text\\\": \\\"{{.Report}}\\\", \\\"channel\\\": \\\"#foo\\\"}\"\n\
         # webhook-headers: Content-Type:application/x-www-form-urlencoded\n\
         # mail-host: email-smtp.eu-west-1.amazonaws.com\n\
         # mail-port: 25\n",
    );
    let config = sandbox.load_ok(&none(), &[]);
    assert!(config.server);
    assert_eq!(config.bootstrap_expect, 1);
    assert_eq!(config.data_dir, sandbox.cwd().join("dkron.data"));
    assert_eq!(config.log_level, "debug");
    assert_eq!(config.tags, tags(&[("dc", "east")]));
}

#[test]
fn full_dkron_style_config_loads() {
    let sandbox = Sandbox::new();
    let key = crate::cli::keygen();
    let path = sandbox.write(
        "x/full.yml",
        &format!(
            "server: true\n\
             node-name: node1\n\
             bind-addr: 10.0.0.5\n\
             advertise-addr: \"[fe80::1]:7946\"\n\
             http-addr: 127.0.0.1:8081\n\
             rpc-port: 6969\n\
             advertise-rpc-port: 0\n\
             profile: wan\n\
             region: eu\n\
             datacenter: fra\n\
             join: [\"10.0.0.6\", \"10.0.0.7\"]\n\
             retry-max: 5\n\
             encrypt: {key}\n\
             raft-multiplier: 3\n\
             backend: boltdb\n\
             backend-machine: \"h1:2379,h2:2379\"\n\
             backend-password: hunter2\n\
             keyspace: mykeys\n\
             mail-host: smtp.example.com\n\
             mail-port: 25\n\
             mail-password: secret\n\
             mail-subject-prefix: \"[prod] \"\n\
             webhook-endpoint: https://hooks.example.com/x\n\
             webhook-payload: \"  {{{{.Report}}}}  \"\n\
             webhook-headers:\n  - \"Content-Type: application/json\"\n  - \"Accept: a, b\"\n\
             webhook-url: https://old.example.com\n\
             statsd-addr: localhost:8125\n\
             dog-statsd-tags: [\"env:prod\", \"team:x\"]\n\
             enable-prometheus: true\n\
             disable-usage-stats: true\n\
             devmode: false\n\
             bootstrap: true\n\
             execution-retention: 20\n\
             http-max-body: 2MiB\n\
             restore-max-body: 128000000\n"
        ),
    );
    let config = sandbox.load_ok(&config_arg(&path), &[]);
    assert_eq!(config.node_name, "node1");
    assert_eq!(config.bind_addr, "10.0.0.5:8946");
    assert_eq!(config.advertise_addr.as_deref(), Some("[fe80::1]:7946"));
    assert_eq!(config.http_addr, "127.0.0.1:8081");
    assert_eq!(config.rpc_port, 6969);
    assert_eq!(config.advertise_rpc_port, 6969, "0 means rpc-port");
    assert_eq!(config.profile, Profile::Wan);
    assert_eq!(config.region, "eu");
    assert_eq!(config.datacenter, "fra");
    assert_eq!(config.join, vec!["10.0.0.6", "10.0.0.7"]);
    assert_eq!(config.retry_max, 5);
    assert_eq!(
        config.encrypt.as_ref().map(|k| k.as_bytes().len()),
        Some(16)
    );
    assert_eq!(config.raft_multiplier, 3);
    assert_eq!(config.backend, Backend::Embedded);
    assert_eq!(config.backend_machine, vec!["h1:2379", "h2:2379"]);
    assert_eq!(
        config.backend_password.as_ref().map(Secret::expose),
        Some("hunter2")
    );
    assert_eq!(config.keyspace, "mykeys");
    assert_eq!(config.mail_host.as_deref(), Some("smtp.example.com"));
    assert_eq!(config.mail_port, 25);
    assert_eq!(config.mail_subject_prefix, "[prod] ");
    assert_eq!(config.webhook_payload.as_deref(), Some("  {{.Report}}  "));
    assert_eq!(
        config.webhook_headers,
        vec!["Content-Type: application/json", "Accept: a, b"]
    );
    assert_eq!(
        config.webhook_url.as_deref(),
        Some("https://old.example.com")
    );
    assert!(config.warnings.iter().any(|w| w.contains("webhook-url")));
    assert_eq!(config.statsd_addr.as_deref(), Some("localhost:8125"));
    assert_eq!(config.dog_statsd_tags, vec!["env:prod", "team:x"]);
    assert!(config.enable_prometheus);
    assert!(config.disable_usage_stats);
    assert!(config.bootstrap);
    assert_eq!(config.execution_retention, 20);
    assert_eq!(config.http_max_body, 2 << 20);
    assert_eq!(config.restore_max_body, 128_000_000);
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2") && !debug.contains("secret") && !debug.contains(&key));
}

#[test]
fn durations_parse_go_syntax() {
    let sandbox = Sandbox::new();
    let config = sandbox.load_ok(
        &flags(&[
            "--shutdown-grace-period",
            "1m30s",
            "--retry-interval",
            "500ms",
        ]),
        &[("RKRON_SERF_RECONNECT_TIMEOUT", "1h")],
    );
    assert_eq!(config.shutdown_grace_period, Duration::from_secs(90));
    assert_eq!(config.retry_interval, Duration::from_millis(500));
    assert_eq!(config.serf_reconnect_timeout, Duration::from_secs(3600));
}

#[test]
fn backends_and_aliases_parse() {
    let sandbox = Sandbox::new();
    for (name, backend) in [
        ("embedded", Backend::Embedded),
        ("boltdb", Backend::Embedded),
        ("etcd", Backend::Etcd),
        ("etcdv3", Backend::Etcd),
        ("redis", Backend::Redis),
        ("zk", Backend::Zookeeper),
        ("dynamodb", Backend::DynamoDb),
        ("consul", Backend::Consul),
    ] {
        let config = sandbox.load_ok(&flags(&["--backend", name]), &[]);
        assert_eq!(config.backend, backend, "{name}");
    }
}

#[test]
fn log_levels_follow_logrus_names() {
    let sandbox = Sandbox::new();
    for (given, stored) in [("DEBUG", "debug"), ("warning", "warn"), ("trace", "trace")] {
        let config = sandbox.load_ok(&flags(&["--log-level", given]), &[]);
        assert_eq!(config.log_level, stored);
    }
}

#[test]
fn relative_and_absolute_data_dirs() {
    let sandbox = Sandbox::new();
    let config = sandbox.load_ok(&flags(&["--data-dir", "/var/lib/rkron"]), &[]);
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/rkron"));
    let config = sandbox.load_ok(&flags(&["--data-dir", "d"]), &[]);
    assert_eq!(config.data_dir, sandbox.cwd().join("d"));
}

// ---- validation errors ----

/// Writes `text` as `rkron.yml` in the searched `./config` and returns the load error.
fn file_error(text: &str) -> (String, PathBuf) {
    let sandbox = Sandbox::new();
    let path = sandbox.write("cwd/config/rkron.yml", text);
    (sandbox.load_err(&none(), &[]), path)
}

fn assert_file_error(text: &str, expected_tail: &str) {
    let (message, path) = file_error(text);
    assert_eq!(
        message,
        format!("config file {}: {expected_tail}", path.display())
    );
}

#[test]
fn unknown_file_key_is_an_error() {
    assert_file_error(
        "bind_adr: 10.0.0.1\n",
        "unknown configuration key \"bind_adr\"; did you mean \"bind-addr\"?",
    );
    assert_file_error(
        "node_name: x\n",
        "unknown configuration key \"node_name\"; did you mean \"node-name\"?",
    );
    assert_file_error(
        "rejoin-after-leave: true\n",
        "unknown configuration key \"rejoin-after-leave\"; \"rejoin-after-leave\" is a Dkron 1.x key that rkron does not support",
    );
    assert_file_error(
        "acl:\n  enabled: true\n",
        "unknown configuration key \"acl\"",
    );
}

#[test]
fn bad_port_values_are_errors() {
    assert_file_error(
        "rpc-port: abc\n",
        "key \"rpc-port\": invalid value \"abc\": expected a port number 0-65535 (0 picks a free port)",
    );
    assert_file_error(
        "rpc-port: 70000\n",
        "key \"rpc-port\": invalid value \"70000\": expected a port number 0-65535 (0 picks a free port)",
    );
    assert_file_error(
        "rpc-port: [1, 2]\n",
        "key \"rpc-port\": invalid value \"[1, 2]\": expected a single value",
    );
}

#[test]
fn bad_backend_is_an_error_listing_valid_values() {
    assert_file_error(
        "backend: mysql\n",
        "key \"backend\": invalid value \"mysql\": expected one of embedded, boltdb, etcd, etcdv3, redis, zk, dynamodb, consul",
    );
}

#[test]
fn bad_log_level_is_an_error() {
    assert_file_error(
        "log-level: loud\n",
        "key \"log-level\": invalid value \"loud\": expected one of debug, info, warn, error, fatal, panic",
    );
}

#[test]
fn zero_execution_retention_is_an_error() {
    assert_file_error(
        "execution-retention: 0\n",
        "key \"execution-retention\": invalid value \"0\": expected a whole number, 1 or more",
    );
    let sandbox = Sandbox::new();
    assert_eq!(
        sandbox.load_err(&flags(&["--execution-retention", "0"]), &[]),
        "flag --execution-retention: invalid value \"0\": expected a whole number, 1 or more"
    );
}

#[test]
fn bad_duration_is_an_error() {
    assert_file_error(
        "shutdown-grace-period: forever\n",
        "key \"shutdown-grace-period\": invalid value \"forever\": expected a Go duration such as 30s, 5m or 1h30m",
    );
    assert_file_error(
        "retry-interval: 30\n",
        "key \"retry-interval\": invalid value \"30\": expected a Go duration such as 30s, 5m or 1h30m",
    );
}

#[test]
fn bad_encrypt_key_is_an_error_without_echoing_it() {
    assert_file_error(
        "encrypt: nope\n",
        "key \"encrypt\": invalid value (not shown): expected the base64 encoding of a 16, 24 or 32 byte key (see rkron keygen)",
    );
    // valid base64, wrong length (15 bytes)
    assert_file_error(
        "encrypt: AAAAAAAAAAAAAAAAAAAA\n",
        "key \"encrypt\": invalid value (not shown): expected the base64 encoding of a 16, 24 or 32 byte key (see rkron keygen)",
    );
}

#[test]
fn bad_http_addr_is_an_error() {
    assert_file_error(
        "http-addr: not an address\n",
        "key \"http-addr\": invalid value \"not an address\": expected host:port or :port, e.g. :8080 or 127.0.0.1:8080",
    );
    assert_file_error(
        "http-addr: localhost\n",
        "key \"http-addr\": invalid value \"localhost\": expected host:port or :port, e.g. :8080 or 127.0.0.1:8080",
    );
}

#[test]
fn sockaddr_templates_are_rejected_with_a_reason() {
    assert_file_error(
        "bind-addr: \"{{ GetPrivateIP }}:8946\"\n",
        "key \"bind-addr\": invalid value \"{{ GetPrivateIP }}:8946\": go-sockaddr templates are not supported; give an IP address or host name",
    );
}

#[test]
fn other_range_and_enum_errors() {
    assert_file_error(
        "raft-multiplier: 11\n",
        "key \"raft-multiplier\": invalid value \"11\": expected a whole number from 1 to 10",
    );
    assert_file_error(
        "profile: moon\n",
        "key \"profile\": invalid value \"moon\": expected one of lan, wan, local",
    );
    assert_file_error(
        "server: yes\n",
        "key \"server\": invalid value \"yes\": expected true or false",
    );
    assert_file_error(
        "http-max-body: 0\n",
        "key \"http-max-body\": invalid value \"0\": expected a size in bytes of at least 1, optionally with a unit (KB, MB, GB, KiB, MiB, GiB)",
    );
    assert_file_error(
        "webhook-headers: [\"no colon\"]\n",
        "key \"webhook-headers\": invalid value \"no colon\": expected a header \"Name: value\"",
    );
    assert_file_error(
        "mail-password: [a]\n",
        "key \"mail-password\": invalid value (not shown): expected a single value",
    );
    assert_file_error(
        "join: {a: b}\n",
        "key \"join\": invalid value \"{a: b}\": expected a list or a comma-separated value",
    );
    assert_file_error(
        "node-name: two words\n",
        "key \"node-name\": invalid value \"two words\": expected a name without spaces",
    );
    assert_file_error("tags:\n  - a: 1\n    b: 2\n", "invalid tag: '{a: 1, b: 2}'");
}

#[test]
fn env_and_flag_errors_name_their_source() {
    let sandbox = Sandbox::new();
    assert_eq!(
        sandbox.load_err(&none(), &[("RKRON_RPC_PORT", "abc")]),
        "environment variable RKRON_RPC_PORT: key \"rpc-port\": invalid value \"abc\": expected a port number 0-65535 (0 picks a free port)"
    );
    assert_eq!(
        sandbox.load_err(&none(), &[("DKRON_BACKEND", "mysql")]),
        "environment variable DKRON_BACKEND: key \"backend\": invalid value \"mysql\": expected one of embedded, boltdb, etcd, etcdv3, redis, zk, dynamodb, consul"
    );
    assert_eq!(
        sandbox.load_err(&flags(&["--raft-multiplier", "0"]), &[]),
        "flag --raft-multiplier: invalid value \"0\": expected a whole number from 1 to 10"
    );
    assert_eq!(
        sandbox.load_err(&flags(&["--encrypt", "nope"]), &[]),
        "flag --encrypt: invalid value (not shown): expected the base64 encoding of a 16, 24 or 32 byte key (see rkron keygen)"
    );
}

#[test]
fn a_bad_value_overridden_by_a_higher_source_is_not_checked() {
    // Only the value in effect is validated, as each source replaces the key whole.
    let sandbox = Sandbox::new();
    sandbox.write("cwd/config/rkron.yml", "rpc-port: abc\n");
    let config = sandbox.load_ok(&flags(&["--rpc-port", "7000"]), &[]);
    assert_eq!(config.rpc_port, 7000);
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let (message, path) = file_error("node-name: a\nserver: [true\n");
    let prefix = format!("config file {}: syntax error: ", path.display());
    assert!(message.starts_with(&prefix), "{message}");
    assert!(message.contains("line"), "{message}");

    let sandbox = Sandbox::new();
    let path = sandbox.write(
        "x/bad.json",
        "{\n  \"node-name\": \"a\",\n  server: true\n}\n",
    );
    let message = sandbox.load_err(&config_arg(&path), &[]);
    assert!(message.starts_with(&format!("config file {}: syntax error: ", path.display())));
    assert!(message.contains("line 3"), "{message}");

    let path = sandbox.write("x/bad.toml", "node-name = \"a\"\nserver = = true\n");
    let message = sandbox.load_err(&config_arg(&path), &[]);
    assert!(message.starts_with(&format!("config file {}: syntax error: ", path.display())));
    assert!(message.contains("at line 2 column"), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");
}

#[test]
fn a_file_that_is_not_a_map_is_an_error() {
    assert_file_error(
        "- a\n- b\n",
        "expected a map of configuration keys at the top level",
    );
}

#[test]
fn secrets_are_not_shown_by_debug() {
    assert_eq!(format!("{:?}", Secret::new("pw")), "Secret(***)");
    let key = GossipKey::from_base64(&crate::cli::keygen()).unwrap();
    assert_eq!(format!("{key:?}"), "GossipKey(16 bytes)");
}

#[test]
fn lease_ttl_defaults_to_10s_and_refuses_less_than_2s() {
    let sandbox = Sandbox::new();
    assert_eq!(
        sandbox.load(&flags(&[]), &[]).unwrap().lease_ttl,
        Duration::from_secs(10)
    );
    assert_eq!(
        sandbox
            .load(&flags(&["--lease-ttl", "4s"]), &[])
            .unwrap()
            .lease_ttl,
        Duration::from_secs(4)
    );
    assert_file_error(
        "lease-ttl: 1s\n",
        "key \"lease-ttl\": invalid value \"1s\": expected a Go duration of at least 2s (etcd grants no shorter lease)",
    );
}
