//! Raw configuration sources: the config file, the environment and the flags, each read into a layer of known keys.
//!
//! Nothing here knows what a value means; [`super::load_with`] merges the layers by precedence and
//! converts each key with a typed parser.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{ConfigError, KEYS, Origin, SearchPaths};
use crate::cli::AgentArgs;

/// Extensions tried, in order, for each searched config file name.
pub(super) const CONFIG_EXTENSIONS: [&str; 4] = ["yml", "yaml", "json", "toml"];

/// Old names accepted for a key: `(alias, key)`.
const ALIASES: &[(&str, &str)] = &[("webhook-header", "webhook-headers")];

/// Dkron 1.x config-only keys that rkron does not support; named in the unknown-key error.
const DKRON_V1_ONLY_KEYS: &[&str] = &[
    "snapshot-path",
    "reconnect-interval",
    "reconnect-timeout",
    "tombstone-timeout",
    "disable-name-resolution",
    "keyring-file",
    "rejoin-after-leave",
];

/// Environment variable prefix of rkron.
pub(super) const RKRON_PREFIX: &str = "RKRON_";
/// Environment variable prefix of Dkron, accepted as a fallback.
pub(super) const DKRON_PREFIX: &str = "DKRON_";

/// A configuration value as read, before it is given a type.
///
/// Scalars keep their text (`6868`, `true`, `30s`), so one parser per key handles a YAML number,
/// a JSON string and an environment variable alike.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Raw {
    Scalar(String),
    List(Vec<Raw>),
    Map(Vec<(String, Raw)>),
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Scalar(text) => f.write_str(text),
            Raw::List(items) => {
                f.write_str("[")?;
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Raw::Map(entries) => {
                f.write_str("{")?;
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{key}: {value}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// One key's value in one source.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub(super) raw: Raw,
    pub(super) origin: Origin,
    /// The key or variable as written, to report a key given twice under two names.
    pub(super) written_as: String,
}

/// The keys one source sets, by canonical key name.
pub(super) type Layer = BTreeMap<&'static str, Entry>;

/// Returns the canonical key for `name` (a key or one of its aliases).
pub(super) fn canonical_key(name: &str) -> Option<&'static str> {
    if let Some(key) = KEYS.iter().find(|key| **key == name) {
        return Some(key);
    }
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|(_, key)| *key)
}

/// Builds the error for an unknown key, with a hint when a close key exists.
fn unknown_key(origin: Origin, key: &str) -> ConfigError {
    let hint = if DKRON_V1_ONLY_KEYS.contains(&key) {
        Some(format!(
            "\"{key}\" is a Dkron 1.x key that rkron does not support"
        ))
    } else {
        closest_key(key).map(|suggestion| match &origin {
            Origin::Env(var) => {
                let prefix = if var.starts_with(DKRON_PREFIX) {
                    DKRON_PREFIX
                } else {
                    RKRON_PREFIX
                };
                format!("did you mean {prefix}{}?", env_suffix(suggestion))
            }
            _ => format!("did you mean \"{suggestion}\"?"),
        })
    };
    ConfigError::UnknownKey {
        origin,
        key: key.to_string(),
        hint,
    }
}

/// Returns the environment variable suffix of a key: `node-name` → `NODE_NAME`.
pub(super) fn env_suffix(key: &str) -> String {
    key.to_ascii_uppercase().replace('-', "_")
}

/// Returns the known key nearest to `key`, if it is close enough to be a likely typo.
fn closest_key(key: &str) -> Option<&'static str> {
    let normalized = key.to_ascii_lowercase().replace('_', "-");
    if let Some(exact) = canonical_key(&normalized) {
        return Some(exact);
    }
    let squashed = normalized.replace('-', "");
    if let Some(found) = KEYS.iter().find(|known| known.replace('-', "") == squashed) {
        return Some(found);
    }
    let limit = if normalized.len() <= 4 { 1 } else { 2 };
    KEYS.iter()
        .map(|known| (edit_distance(&normalized, known), *known))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance between two short ASCII-ish strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b_chars: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b_chars.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1; b_chars.len() + 1];
        for (j, b_char) in b_chars.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b_chars.len()]
}

/// Adds `entry` under `key`, refusing a key given twice in one source (e.g. under its alias).
fn insert(layer: &mut Layer, key: &'static str, entry: Entry) -> Result<(), ConfigError> {
    if let Some(existing) = layer.get(key) {
        return Err(ConfigError::DuplicateKey {
            origin: entry.origin,
            key: key.to_string(),
            first: existing.written_as.clone(),
            second: entry.written_as,
        });
    }
    layer.insert(key, entry);
    Ok(())
}

/// Config file formats, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Yaml,
    Json,
    Toml,
}

impl Format {
    fn from_path(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "yml" | "yaml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }
}

/// Returns the first config file that exists in the search locations.
pub(super) fn find_config_file(search: &SearchPaths) -> Option<PathBuf> {
    search
        .candidates()
        .into_iter()
        .find(|candidate| std::fs::metadata(candidate).is_ok_and(|meta| meta.is_file()))
}

/// Reads and parses a config file into a layer of known keys.
pub(super) fn read_file(path: &Path) -> Result<Layer, ConfigError> {
    let Some(format) = Format::from_path(path) else {
        return Err(ConfigError::UnsupportedFormat {
            path: path.to_path_buf(),
        });
    };
    let text = std::fs::read_to_string(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            ConfigError::FileNotFound {
                path: path.to_path_buf(),
            }
        } else {
            ConfigError::FileUnreadable {
                path: path.to_path_buf(),
                reason: error.to_string(),
            }
        }
    })?;
    let syntax = |detail: String| ConfigError::Syntax {
        path: path.to_path_buf(),
        detail,
    };
    // An empty file is an empty configuration; a key with no value (`key:`) is left unset.
    let entries: Vec<(String, Option<Raw>)> = if text.trim().is_empty() {
        Vec::new()
    } else {
        let root = match format {
            Format::Yaml => {
                let value: serde_yaml::Value =
                    serde_yaml::from_str(&text).map_err(|error| syntax(error.to_string()))?;
                match value {
                    serde_yaml::Value::Mapping(mapping) => Some(
                        mapping
                            .into_iter()
                            .map(|(key, value)| (yaml_key(key), from_yaml(value)))
                            .collect(),
                    ),
                    serde_yaml::Value::Null => Some(Vec::new()),
                    _ => None,
                }
            }
            Format::Json => {
                let value: serde_json::Value =
                    serde_json::from_str(&text).map_err(|error| syntax(error.to_string()))?;
                match value {
                    serde_json::Value::Object(object) => Some(
                        object
                            .into_iter()
                            .map(|(key, value)| (key, from_json(value)))
                            .collect(),
                    ),
                    _ => None,
                }
            }
            Format::Toml => {
                let table: toml::Table =
                    toml::from_str(&text).map_err(|error| syntax(toml_error(&text, &error)))?;
                Some(
                    table
                        .into_iter()
                        .map(|(key, value)| (key, Some(from_toml(value))))
                        .collect(),
                )
            }
        };
        root.ok_or_else(|| ConfigError::NotAMap {
            path: path.to_path_buf(),
        })?
    };
    let origin = Origin::File(path.to_path_buf());
    let mut layer = Layer::new();
    for (written, raw) in entries {
        // Keys are case-insensitive, as with Dkron's viper.
        let name = written.to_ascii_lowercase();
        let Some(key) = canonical_key(&name) else {
            return Err(unknown_key(origin, &name));
        };
        let Some(raw) = raw else {
            continue;
        };
        insert(
            &mut layer,
            key,
            Entry {
                raw,
                origin: origin.clone(),
                written_as: format!("\"{written}\""),
            },
        )?;
    }
    Ok(layer)
}

/// Formats a TOML error as `line L, column C: message`.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before
                .rfind('\n')
                .map_or(before.len(), |nl| before.len() - nl - 1)
                + 1;
            format!("{message} at line {line} column {column}")
        }
        None => message.to_string(),
    }
}

/// Returns the text of a YAML mapping key (keys are usually strings, but `1: x` is valid YAML).
fn yaml_key(key: serde_yaml::Value) -> String {
    from_yaml(key)
        .map(|raw| raw.to_string())
        .unwrap_or_default()
}

/// Converts a YAML value; `None` for null.
fn from_yaml(value: serde_yaml::Value) -> Option<Raw> {
    use serde_yaml::Value;
    match value {
        Value::Null => None,
        Value::Bool(flag) => Some(Raw::Scalar(flag.to_string())),
        Value::Number(number) => Some(Raw::Scalar(number.to_string())),
        Value::String(text) => Some(Raw::Scalar(text)),
        Value::Sequence(items) => {
            Some(Raw::List(items.into_iter().filter_map(from_yaml).collect()))
        }
        Value::Mapping(mapping) => Some(Raw::Map(
            mapping
                .into_iter()
                .filter_map(|(key, value)| from_yaml(value).map(|value| (yaml_key(key), value)))
                .collect(),
        )),
        Value::Tagged(tagged) => from_yaml(tagged.value),
    }
}

/// Converts a JSON value; `None` for null.
fn from_json(value: serde_json::Value) -> Option<Raw> {
    use serde_json::Value;
    match value {
        Value::Null => None,
        Value::Bool(flag) => Some(Raw::Scalar(flag.to_string())),
        Value::Number(number) => Some(Raw::Scalar(number.to_string())),
        Value::String(text) => Some(Raw::Scalar(text)),
        Value::Array(items) => Some(Raw::List(items.into_iter().filter_map(from_json).collect())),
        Value::Object(object) => Some(Raw::Map(
            object
                .into_iter()
                .filter_map(|(key, value)| from_json(value).map(|value| (key, value)))
                .collect(),
        )),
    }
}

/// Converts a TOML value (TOML has no null).
fn from_toml(value: toml::Value) -> Raw {
    use toml::Value;
    match value {
        Value::String(text) => Raw::Scalar(text),
        Value::Integer(number) => Raw::Scalar(number.to_string()),
        Value::Float(number) => Raw::Scalar(number.to_string()),
        Value::Boolean(flag) => Raw::Scalar(flag.to_string()),
        Value::Datetime(datetime) => Raw::Scalar(datetime.to_string()),
        Value::Array(items) => Raw::List(items.into_iter().map(from_toml).collect()),
        Value::Table(table) => Raw::Map(
            table
                .into_iter()
                .map(|(key, value)| (key, from_toml(value)))
                .collect(),
        ),
    }
}

/// What the environment contributes.
#[derive(Debug, Default)]
pub(super) struct EnvLayers {
    /// Keys from `DKRON_*` variables.
    pub(super) dkron: Layer,
    /// Keys from `RKRON_*` variables; they win over `DKRON_*`.
    pub(super) rkron: Layer,
    /// `RKRON_CONFIG`, the config file when `--config` is not given.
    pub(super) config_file: Option<String>,
    /// Unknown `DKRON_*` variables, ignored.
    pub(super) ignored: Vec<String>,
}

/// Reads the `RKRON_*` and `DKRON_*` variables of `env` (see [`super`] for the rules).
pub(super) fn read_env(env: &BTreeMap<String, String>) -> Result<EnvLayers, ConfigError> {
    let mut layers = EnvLayers::default();
    for (var, value) in env {
        let (prefix, suffix) = if let Some(suffix) = var.strip_prefix(RKRON_PREFIX) {
            (RKRON_PREFIX, suffix)
        } else if let Some(suffix) = var.strip_prefix(DKRON_PREFIX) {
            (DKRON_PREFIX, suffix)
        } else {
            continue;
        };
        let is_rkron = prefix == RKRON_PREFIX;
        if is_rkron && suffix.starts_with(super::RESERVED_ENV_SUFFIX_PREFIX) {
            continue;
        }
        if is_rkron && suffix == "CONFIG" {
            if !value.is_empty() {
                layers.config_file = Some(value.clone());
            }
            continue;
        }
        let name = suffix.to_ascii_lowercase().replace('_', "-");
        let Some(key) = canonical_key(&name) else {
            if is_rkron {
                return Err(unknown_key(Origin::Env(var.clone()), &name));
            }
            layers.ignored.push(var.clone());
            continue;
        };
        // An empty variable counts as unset, as with viper.
        if value.is_empty() {
            continue;
        }
        let layer = if is_rkron {
            &mut layers.rkron
        } else {
            &mut layers.dkron
        };
        insert(
            layer,
            key,
            Entry {
                raw: Raw::Scalar(value.clone()),
                origin: Origin::Env(var.clone()),
                written_as: var.clone(),
            },
        )?;
    }
    Ok(layers)
}

/// Returns the layer of flags given on the command line.
pub(super) fn flag_layer(args: &AgentArgs) -> Layer {
    let mut layer = Layer::new();
    let mut put = |key: &'static str, raw: Option<Raw>| {
        if let Some(raw) = raw {
            layer.insert(
                key,
                Entry {
                    raw,
                    origin: Origin::Flag(key.to_string()),
                    written_as: format!("--{key}"),
                },
            );
        }
    };
    fn text<T: ToString>(value: Option<&T>) -> Option<Raw> {
        value.map(|value| Raw::Scalar(value.to_string()))
    }
    fn list(values: Option<&Vec<String>>) -> Option<Raw> {
        values.map(|values| Raw::List(values.iter().cloned().map(Raw::Scalar).collect()))
    }
    put("server", text(args.server.as_ref()));
    put("node-name", text(args.node_name.as_ref()));
    put("bind-addr", text(args.bind_addr.as_ref()));
    put("advertise-addr", text(args.advertise_addr.as_ref()));
    put("http-addr", text(args.http_addr.as_ref()));
    put("rpc-port", text(args.rpc_port.as_ref()));
    put("advertise-rpc-port", text(args.advertise_rpc_port.as_ref()));
    put("data-dir", text(args.data_dir.as_ref()));
    put("tag", list(args.tag.as_ref()));
    put("log-level", text(args.log_level.as_ref()));
    put("ui", text(args.ui.as_ref()));
    put("profile", text(args.profile.as_ref()));
    put("region", text(args.region.as_ref()));
    put("datacenter", text(args.datacenter.as_ref()));
    put("join", list(args.join.as_ref()));
    put("retry-join", list(args.retry_join.as_ref()));
    put("retry-max", text(args.retry_max.as_ref()));
    put("retry-interval", text(args.retry_interval.as_ref()));
    put("encrypt", text(args.encrypt.as_ref()));
    put("bootstrap-expect", text(args.bootstrap_expect.as_ref()));
    put("raft-multiplier", text(args.raft_multiplier.as_ref()));
    put(
        "serf-reconnect-timeout",
        text(args.serf_reconnect_timeout.as_ref()),
    );
    put("backend", text(args.backend.as_ref()));
    put("backend-machine", list(args.backend_machine.as_ref()));
    put("backend-username", text(args.backend_username.as_ref()));
    put("backend-password", text(args.backend_password.as_ref()));
    put("backend-tls", text(args.backend_tls.as_ref()));
    put("keyspace", text(args.keyspace.as_ref()));
    put("mail-host", text(args.mail_host.as_ref()));
    put("mail-port", text(args.mail_port.as_ref()));
    put("mail-username", text(args.mail_username.as_ref()));
    put("mail-password", text(args.mail_password.as_ref()));
    put("mail-from", text(args.mail_from.as_ref()));
    put("mail-payload", text(args.mail_payload.as_ref()));
    put(
        "mail-subject-prefix",
        text(args.mail_subject_prefix.as_ref()),
    );
    put(
        "pre-webhook-endpoint",
        text(args.pre_webhook_endpoint.as_ref()),
    );
    put(
        "pre-webhook-payload",
        text(args.pre_webhook_payload.as_ref()),
    );
    put(
        "pre-webhook-headers",
        list(args.pre_webhook_headers.as_ref()),
    );
    put("webhook-endpoint", text(args.webhook_endpoint.as_ref()));
    put("webhook-url", text(args.webhook_url.as_ref()));
    put("webhook-payload", text(args.webhook_payload.as_ref()));
    put("webhook-headers", list(args.webhook_headers.as_ref()));
    put("cronitor-endpoint", text(args.cronitor_endpoint.as_ref()));
    put("statsd-addr", text(args.statsd_addr.as_ref()));
    put("dog-statsd-addr", text(args.dog_statsd_addr.as_ref()));
    put("dog-statsd-tags", list(args.dog_statsd_tags.as_ref()));
    put("enable-prometheus", text(args.enable_prometheus.as_ref()));
    put("otel-endpoint", text(args.otel_endpoint.as_ref()));
    put(
        "disable-usage-stats",
        text(args.disable_usage_stats.as_ref()),
    );
    put(
        "execution-retention",
        text(args.execution_retention.as_ref()),
    );
    put(
        "shutdown-grace-period",
        text(args.shutdown_grace_period.as_ref()),
    );
    put("lease-ttl", text(args.lease_ttl.as_ref()));
    put("http-max-body", text(args.http_max_body.as_ref()));
    put("restore-max-body", text(args.restore_max_body.as_ref()));
    layer
}
