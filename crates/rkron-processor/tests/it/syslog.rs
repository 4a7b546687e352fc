//! The `syslog` processor against real UDP, TCP and Unix datagram receivers.

use std::time::Duration;

use rkron_processor::{Processor, ProcessorError, SYSLOG_REPLACEMENT, SyslogProcessor};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket, UnixDatagram};

use crate::{config, execution};

const RECEIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One syslog message split into its parts.
#[derive(Debug)]
struct Received {
    priority: u8,
    header: String,
    tag: String,
    pid: u32,
    message: String,
}

/// Decodes `<PRI>HEADER TAG[PID]: MESSAGE`.
fn decode(raw: &str) -> Received {
    let rest = raw.strip_prefix('<').expect("message starts with <PRI>");
    let (priority, rest) = rest.split_once('>').unwrap();
    let (before_message, message) = rest.split_once(": ").unwrap();
    let (header, tag_pid) = before_message.rsplit_once(' ').unwrap();
    let (tag, pid) = tag_pid.strip_suffix(']').unwrap().split_once('[').unwrap();
    Received {
        priority: priority.parse().unwrap(),
        header: header.to_owned(),
        tag: tag.to_owned(),
        pid: pid.parse().unwrap(),
        message: message.to_owned(),
    }
}

#[tokio::test]
async fn syslog_over_udp_sends_cron_info_with_dkron_tag() {
    let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = format!("udp://{}", receiver.local_addr().unwrap());

    let processed = SyslogProcessor::new()
        .process(
            execution("backup done\n2 files", true),
            &config(&[("address", &address), ("reporting_node", "leader-1")]),
        )
        .await
        .unwrap();
    assert_eq!(processed.output, SYSLOG_REPLACEMENT);
    assert_eq!(processed.output, "Output in syslog");

    let mut buf = vec![0; 70_000];
    let (len, _) = tokio::time::timeout(RECEIVE_TIMEOUT, receiver.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let received = decode(std::str::from_utf8(&buf[..len]).unwrap());
    assert_eq!(received.priority, 78, "facility cron (9) * 8 + info (6)");
    assert_eq!(received.tag, "dkron");
    assert_eq!(received.pid, std::process::id());
    assert_eq!(received.header, "2024-12-19T09:29:11Z leader-1");
    assert_eq!(received.message, "backup done\n2 files");
}

#[tokio::test]
async fn syslog_with_forward_keeps_output() {
    let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = format!("udp://{}", receiver.local_addr().unwrap());

    let processed = SyslogProcessor::new()
        .process(
            execution("test", true),
            &config(&[("address", &address), ("forward", "true")]),
        )
        .await
        .unwrap();
    assert_eq!(processed.output, "test");

    let mut buf = vec![0; 1024];
    let (len, _) = tokio::time::timeout(RECEIVE_TIMEOUT, receiver.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let received = decode(std::str::from_utf8(&buf[..len]).unwrap());
    assert_eq!(received.message, "test");
    // Without an injected reporting_node the host is the node that ran the execution.
    assert!(received.header.ends_with(" node-a"), "{received:?}");
}

#[tokio::test]
async fn syslog_over_tcp_uses_octet_counting() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("tcp://{}", listener.local_addr().unwrap());
    let receiving = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        raw
    });

    let output = "line one\nline two with ünïcode\n";
    let processed = SyslogProcessor::new()
        .process(
            execution(output, false),
            &config(&[("address", &address), ("reporting_node", "leader-1")]),
        )
        .await
        .unwrap();
    assert_eq!(processed.output, "Output in syslog");

    let raw = tokio::time::timeout(RECEIVE_TIMEOUT, receiving)
        .await
        .unwrap()
        .unwrap();
    let (length, frame) = raw.split_once(' ').unwrap();
    assert_eq!(
        length.parse::<usize>().unwrap(),
        frame.len(),
        "one octet-counted frame"
    );
    let received = decode(frame);
    assert_eq!(received.priority, 78);
    assert_eq!(received.tag, "dkron");
    assert_eq!(received.message, output);
}

#[tokio::test]
async fn syslog_over_unix_datagram_omits_host() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let receiver = UnixDatagram::bind(&path).unwrap();
    let address = format!("unix://{}", path.to_str().unwrap());

    SyslogProcessor::new()
        .process(
            execution("local", true),
            &config(&[("address", &address), ("reporting_node", "leader-1")]),
        )
        .await
        .unwrap();

    let mut buf = vec![0; 1024];
    let len = tokio::time::timeout(RECEIVE_TIMEOUT, receiver.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let received = decode(std::str::from_utf8(&buf[..len]).unwrap());
    assert_eq!(received.priority, 78);
    assert_eq!(received.header, "Dec 19 09:29:11");
    assert_eq!(received.tag, "dkron");
    assert_eq!(received.message, "local");
}

#[tokio::test]
async fn syslog_send_failure_is_an_error() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("tcp://{}", closed.local_addr().unwrap());
    drop(closed);

    let error = SyslogProcessor::new()
        .process(execution("out", true), &config(&[("address", &address)]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProcessorError::SendFailed { .. }),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = format!("unix://{}", dir.path().join("none.sock").to_str().unwrap());
    let error = SyslogProcessor::new()
        .process(execution("out", true), &config(&[("address", &missing)]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProcessorError::SendFailed { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn syslog_rejects_an_unknown_address_scheme() {
    let error = SyslogProcessor::new()
        .process(
            execution("out", true),
            &config(&[("address", "http://127.0.0.1:514")]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProcessorError::InvalidConfig { key: "address", .. }),
        "{error}"
    );
}
