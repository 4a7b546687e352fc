//! The `fluent` processor: sends the output to Fluentd or Fluent Bit over the forward protocol.
//!
//! Each execution is one message-mode event, `[tag, time, {"host", "job_name", "message"}]`,
//! encoded as MessagePack and written to a fresh TCP connection. `time` is the execution's
//! finish instant in Unix seconds; `host` is the node that ran the execution (as in Dkron).

use std::collections::BTreeMap;
use std::time::Duration;

use rkron_core::Execution;
use rkron_core::job::StringMap;
use tokio::io::AsyncWriteExt;

use crate::{
    Processor, ProcessorError, ProcessorSettings, config_value, event_time,
    replace_unless_forwarding,
};

/// The stored output when `fluent` does not forward (Dkron's text).
pub const FLUENT_REPLACEMENT: &str = "Output sent to Fluent";

/// The Fluent host when neither the config nor the settings name one.
pub const DEFAULT_FLUENT_HOST: &str = "127.0.0.1";

/// The Fluent port when neither the config nor the settings name one (the forward protocol's).
pub const DEFAULT_FLUENT_PORT: u16 = 24224;

/// The Fluent tag when neither the config nor the settings name one.
pub const DEFAULT_FLUENT_TAG: &str = "dkron";

/// How long connecting and sending may take before the event is dropped.
pub const FLUENT_SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// The configuration key naming the Fluent host.
const HOST_KEY: &str = "host";

/// The configuration key naming the Fluent port.
const PORT_KEY: &str = "port";

/// The configuration key naming the Fluent tag.
const TAG_KEY: &str = "tag";

/// Sends each execution's output to Fluent.
///
/// The destination comes from the config keys `host`, `port` and `tag`, else from the node's
/// settings (Dkron's `FLUENTBIT_HOST`, `FLUENTBIT_PORT` and `FLUENTBIT_TAG`), else
/// `127.0.0.1:24224` with tag `dkron`.
///
/// Dkron posts in the background and never reports a failure. rkron sends before answering, but
/// gives up after [`FLUENT_SEND_TIMEOUT`]; a failure to send is logged, not returned, so the
/// execution is stored as if the event had gone (only a malformed `port` is an error).
/// Unless the config forwards, the stored output becomes `Output sent to Fluent`.
#[derive(Debug, Clone, Default)]
pub struct FluentProcessor {
    settings: ProcessorSettings,
}

impl FluentProcessor {
    /// Returns a processor whose defaults come from `settings`.
    pub fn new(settings: ProcessorSettings) -> Self {
        Self { settings }
    }

    /// Returns the `host:port` and tag to send to, as `config` and the settings say.
    fn destination(&self, config: &StringMap) -> Result<(String, String), ProcessorError> {
        let host = config_value(config, HOST_KEY)
            .or(self
                .settings
                .fluent_host
                .as_deref()
                .filter(|h| !h.is_empty()))
            .unwrap_or(DEFAULT_FLUENT_HOST);
        let port = match config_value(config, PORT_KEY) {
            Some(text) => text
                .parse::<u16>()
                .map_err(|error| ProcessorError::InvalidConfig {
                    key: PORT_KEY,
                    reason: format!("{text} is not a port: {error}"),
                })?,
            None => self.settings.fluent_port.unwrap_or(DEFAULT_FLUENT_PORT),
        };
        let tag = config_value(config, TAG_KEY)
            .or(self
                .settings
                .fluent_tag
                .as_deref()
                .filter(|t| !t.is_empty()))
            .unwrap_or(DEFAULT_FLUENT_TAG);
        // An IPv6 literal needs brackets to be joined with its port.
        let address = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok((address, tag.to_owned()))
    }
}

/// Returns the forward-protocol message-mode event for `execution`, encoded as MessagePack.
fn encode_event(tag: &str, execution: &Execution) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    let record = BTreeMap::from([
        ("host", execution.node_name.as_str()),
        ("job_name", execution.job_name.as_str()),
        ("message", execution.output.as_str()),
    ]);
    rmp_serde::to_vec(&(tag, event_time(execution).timestamp(), record))
}

/// Connects to `address` and writes `event`.
async fn send(address: &str, event: &[u8]) -> std::io::Result<()> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(event).await?;
    stream.shutdown().await
}

#[async_trait::async_trait]
impl Processor for FluentProcessor {
    async fn process(
        &self,
        execution: Execution,
        config: &StringMap,
    ) -> Result<Execution, ProcessorError> {
        let (address, tag) = self.destination(config)?;
        match encode_event(&tag, &execution) {
            Ok(event) => {
                match tokio::time::timeout(FLUENT_SEND_TIMEOUT, send(&address, &event)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%address, job = %execution.job_name, %error, "failed to send output to fluent");
                    }
                    Err(_elapsed) => {
                        tracing::warn!(%address, job = %execution.job_name, "timed out sending output to fluent");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(job = %execution.job_name, %error, "failed to encode fluent event");
            }
        }
        Ok(replace_unless_forwarding(
            execution,
            config,
            FLUENT_REPLACEMENT,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> StringMap {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn destination_defaults_to_local_forward_port() {
        let processor = FluentProcessor::default();
        let (address, tag) = processor.destination(&StringMap::new()).unwrap();
        assert_eq!(address, "127.0.0.1:24224");
        assert_eq!(tag, "dkron");
    }

    #[test]
    fn destination_prefers_config_over_settings() {
        let processor = FluentProcessor::new(ProcessorSettings {
            node_name: "n".to_owned(),
            fluent_host: Some("fluent.internal".to_owned()),
            fluent_port: Some(5170),
            fluent_tag: Some("from-env".to_owned()),
        });
        let (address, tag) = processor.destination(&StringMap::new()).unwrap();
        assert_eq!(
            (address.as_str(), tag.as_str()),
            ("fluent.internal:5170", "from-env")
        );

        let own = config(&[("host", "::1"), ("port", "24225"), ("tag", "jobs")]);
        let (address, tag) = processor.destination(&own).unwrap();
        assert_eq!((address.as_str(), tag.as_str()), ("[::1]:24225", "jobs"));
    }

    #[test]
    fn destination_rejects_a_malformed_port() {
        let error = FluentProcessor::default()
            .destination(&config(&[("port", "http")]))
            .unwrap_err();
        assert!(matches!(
            error,
            ProcessorError::InvalidConfig { key: "port", .. }
        ));
    }
}
