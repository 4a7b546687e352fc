//! The `syslog` processor: sends the output to syslog at facility CRON, severity INFO, tag `dkron`.
//!
//! Lines follow the BSD (RFC 3164) layout that Go's `log/syslog` writes, which every syslog
//! daemon reads:
//!
//! - to the local socket, `<78>Jan  2 15:04:05 dkron[<pid>]: <output>` (no host name, as the C
//!   library's `syslog()` writes it; the daemon adds the host and usually its own time);
//! - over the network, `<78>2006-01-02T15:04:05Z <host> dkron[<pid>]: <output>`, with an RFC 3339
//!   time, which carries its zone, and `reporting_node` as the host.
//!
//! The time is the execution's finish instant, in UTC. The output is sent as one message even
//! when it has several lines:
//!
//! - `udp://host:port` and `unix:///path` (a datagram socket, like `/dev/log`) send one datagram,
//!   cut to [`SYSLOG_MAX_DATAGRAM_BYTES`];
//! - `tcp://host:port` uses octet-counting framing (RFC 6587 §3.4.1): `<length> <message>`.
//!   Newline framing would split multi-line job output into one message per line, and
//!   rsyslog, syslog-ng and Fluent Bit all accept octet counting on TCP.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use chrono::SecondsFormat;
use rkron_core::Execution;
use rkron_core::job::StringMap;
use tokio::io::AsyncWriteExt;

use crate::{
    Processor, ProcessorError, REPORTING_NODE_KEY, config_value, event_time,
    replace_unless_forwarding,
};

/// The stored output when `syslog` does not forward (Dkron's text).
pub const SYSLOG_REPLACEMENT: &str = "Output in syslog";

/// The configuration key naming where `syslog` sends: `udp://host:port`, `tcp://host:port` or
/// `unix:///path`.
pub const SYSLOG_ADDRESS_KEY: &str = "address";

/// Where `syslog` sends when the config has no `address`: the local syslog socket.
pub const DEFAULT_SYSLOG_ADDRESS: &str = "unix:///dev/log";

/// The syslog tag (APP-NAME) of every message.
pub const SYSLOG_TAG: &str = "dkron";

/// How long connecting and sending may take before the processor gives up.
pub const SYSLOG_SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest datagram sent: the most a UDP datagram over IPv4 can carry.
pub const SYSLOG_MAX_DATAGRAM_BYTES: usize = 65_507;

/// The syslog facility `cron`.
const FACILITY_CRON: u8 = 9;

/// The syslog severity `info`.
const SEVERITY_INFO: u8 = 6;

/// Sends each execution's output to syslog; a failure to send is an error.
///
/// Unless the config forwards, the stored output becomes `Output in syslog`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyslogProcessor;

impl SyslogProcessor {
    /// Returns the processor.
    pub fn new() -> Self {
        Self
    }
}

/// Where syslog messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SyslogAddress {
    Udp(String),
    Tcp(String),
    Unix(PathBuf),
}

impl SyslogAddress {
    /// Parses `udp://host:port`, `tcp://host:port` or `unix:///path`.
    fn parse(value: &str) -> Result<Self, ProcessorError> {
        let invalid = || ProcessorError::InvalidConfig {
            key: SYSLOG_ADDRESS_KEY,
            reason: format!("{value} is not udp://host:port, tcp://host:port or unix:///path"),
        };
        let address = if let Some(host_port) = value.strip_prefix("udp://") {
            Self::Udp(host_port.trim_end_matches('/').to_owned())
        } else if let Some(host_port) = value.strip_prefix("tcp://") {
            Self::Tcp(host_port.trim_end_matches('/').to_owned())
        } else if let Some(path) = value.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(invalid());
            }
            Self::Unix(PathBuf::from(path))
        } else {
            return Err(invalid());
        };
        match &address {
            Self::Udp(host_port) | Self::Tcp(host_port) if !host_port.contains(':') => {
                Err(invalid())
            }
            _ => Ok(address),
        }
    }

    /// Returns whether messages go over the network (and so carry a host name).
    fn is_network(&self) -> bool {
        !matches!(self, Self::Unix(_))
    }
}

/// Returns the syslog message for `execution`, in the layout for `address`.
fn format_message(execution: &Execution, host: &str, network: bool) -> String {
    let priority = FACILITY_CRON * 8 + SEVERITY_INFO;
    let time = event_time(execution);
    let pid = std::process::id();
    let output = &execution.output;
    if network {
        let timestamp = time.to_rfc3339_opts(SecondsFormat::Secs, true);
        format!("<{priority}>{timestamp} {host} {SYSLOG_TAG}[{pid}]: {output}")
    } else {
        let timestamp = time.format("%b %e %H:%M:%S");
        format!("<{priority}>{timestamp} {SYSLOG_TAG}[{pid}]: {output}")
    }
}

/// Returns the longest prefix of `message` that fits in one datagram, cut on a char boundary.
fn datagram(message: &str) -> &str {
    if message.len() <= SYSLOG_MAX_DATAGRAM_BYTES {
        return message;
    }
    let mut end = SYSLOG_MAX_DATAGRAM_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    tracing::warn!(
        bytes = message.len(),
        limit = SYSLOG_MAX_DATAGRAM_BYTES,
        "syslog message cut to fit one datagram"
    );
    &message[..end]
}

/// Sends one message to `address`.
async fn send(address: &SyslogAddress, message: &str) -> io::Result<()> {
    match address {
        SyslogAddress::Udp(host_port) => {
            let target = tokio::net::lookup_host(host_port.as_str())
                .await?
                .next()
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "host name has no address")
                })?;
            let local: SocketAddr = if target.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = tokio::net::UdpSocket::bind(local).await?;
            socket.send_to(datagram(message).as_bytes(), target).await?;
        }
        SyslogAddress::Tcp(host_port) => {
            let mut stream = tokio::net::TcpStream::connect(host_port.as_str()).await?;
            let frame = format!("{} {message}", message.len());
            stream.write_all(frame.as_bytes()).await?;
            stream.shutdown().await?;
        }
        SyslogAddress::Unix(path) => {
            let socket = tokio::net::UnixDatagram::unbound()?;
            socket.send_to(datagram(message).as_bytes(), path).await?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl Processor for SyslogProcessor {
    async fn process(
        &self,
        execution: Execution,
        config: &StringMap,
    ) -> Result<Execution, ProcessorError> {
        let address_text =
            config_value(config, SYSLOG_ADDRESS_KEY).unwrap_or(DEFAULT_SYSLOG_ADDRESS);
        let address = SyslogAddress::parse(address_text)?;
        let host = config_value(config, REPORTING_NODE_KEY).unwrap_or(&execution.node_name);
        let message = format_message(&execution, host, address.is_network());
        let send_failed = |source| ProcessorError::SendFailed {
            address: address_text.to_owned(),
            source,
        };
        tokio::time::timeout(SYSLOG_SEND_TIMEOUT, send(&address, &message))
            .await
            .map_err(|_elapsed| send_failed(io::Error::new(io::ErrorKind::TimedOut, "timed out")))?
            .map_err(send_failed)?;
        Ok(replace_unless_forwarding(
            execution,
            config,
            SYSLOG_REPLACEMENT,
        ))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn execution(output: &str) -> Execution {
        let started_at = Utc.with_ymd_and_hms(2024, 3, 5, 7, 8, 9).unwrap();
        Execution {
            job_name: "job".to_owned(),
            started_at,
            finished_at: Some(started_at + chrono::Duration::seconds(1)),
            success: true,
            output: output.to_owned(),
            node_name: "node-a".to_owned(),
            group: 1,
            attempt: 1,
            scheduled_at: None,
        }
    }

    #[test]
    fn address_parses_udp_tcp_and_unix() {
        assert_eq!(
            SyslogAddress::parse("udp://127.0.0.1:514").unwrap(),
            SyslogAddress::Udp("127.0.0.1:514".to_owned())
        );
        assert_eq!(
            SyslogAddress::parse("tcp://logs.example:601/").unwrap(),
            SyslogAddress::Tcp("logs.example:601".to_owned())
        );
        assert_eq!(
            SyslogAddress::parse("unix:///dev/log").unwrap(),
            SyslogAddress::Unix(PathBuf::from("/dev/log"))
        );
    }

    #[test]
    fn address_rejects_other_forms() {
        for value in [
            "/dev/log",
            "udp://host",
            "http://host:80",
            "unix://relative",
            "tcp://",
        ] {
            let error = SyslogAddress::parse(value).unwrap_err();
            assert!(
                matches!(error, ProcessorError::InvalidConfig { key: "address", .. }),
                "{value}: {error}"
            );
        }
    }

    #[test]
    fn network_message_carries_rfc3339_time_and_host() {
        let message = format_message(&execution("a\nb"), "leader-1", true);
        let pid = std::process::id();
        assert_eq!(
            message,
            format!("<78>2024-03-05T07:08:10Z leader-1 dkron[{pid}]: a\nb")
        );
    }

    #[test]
    fn local_message_has_bsd_stamp_and_no_host() {
        let message = format_message(&execution("out"), "leader-1", false);
        let pid = std::process::id();
        assert_eq!(message, format!("<78>Mar  5 07:08:10 dkron[{pid}]: out"));
    }

    #[test]
    fn datagram_is_cut_on_a_char_boundary() {
        let message = "é".repeat(SYSLOG_MAX_DATAGRAM_BYTES);
        let cut = datagram(&message);
        assert!(cut.len() <= SYSLOG_MAX_DATAGRAM_BYTES);
        assert!(cut.len() >= SYSLOG_MAX_DATAGRAM_BYTES - 1);
        assert_eq!(datagram("short"), "short");
    }
}
