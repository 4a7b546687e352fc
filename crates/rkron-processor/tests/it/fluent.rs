//! The `fluent` processor against a real TCP listener decoding the forward protocol.

use std::collections::BTreeMap;
use std::time::Duration;

use rkron_processor::{
    FLUENT_REPLACEMENT, FLUENT_SEND_TIMEOUT, FluentProcessor, Processor, ProcessorSettings,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{config, execution, started_at};

/// A forward-protocol message-mode event: `[tag, time, record]`.
type Event = (String, i64, BTreeMap<String, String>);

/// Binds a listener that decodes the first event sent to it; answers its port and the event.
async fn fluent_receiver() -> (u16, JoinHandle<Event>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiving = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        rmp_serde::from_slice::<Event>(&raw).unwrap()
    });
    (port, receiving)
}

async fn received(receiving: JoinHandle<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), receiving)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn fluent_sends_forward_event_from_config() {
    let (port, receiving) = fluent_receiver().await;
    let processor = FluentProcessor::new(ProcessorSettings::default());

    let processed = processor
        .process(
            execution("job said hi", true),
            &config(&[
                ("host", "127.0.0.1"),
                ("port", &port.to_string()),
                ("tag", "cron.jobs"),
                ("reporting_node", "leader-1"),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(processed.output, FLUENT_REPLACEMENT);
    assert_eq!(processed.output, "Output sent to Fluent");

    let (tag, time, record) = received(receiving).await;
    assert_eq!(tag, "cron.jobs");
    assert_eq!(
        time,
        started_at().timestamp() + 1,
        "the finish instant in Unix seconds"
    );
    assert_eq!(
        record,
        BTreeMap::from([
            ("host".to_owned(), "node-a".to_owned()),
            ("job_name".to_owned(), "job1".to_owned()),
            ("message".to_owned(), "job said hi".to_owned()),
        ])
    );
}

#[tokio::test]
async fn fluent_uses_settings_when_config_names_no_destination() {
    let (port, receiving) = fluent_receiver().await;
    let processor = FluentProcessor::new(ProcessorSettings {
        node_name: "leader-1".to_owned(),
        fluent_host: Some("127.0.0.1".to_owned()),
        fluent_port: Some(port),
        fluent_tag: Some("from-settings".to_owned()),
    });

    let processed = processor
        .process(execution("test", true), &config(&[("forward", "true")]))
        .await
        .unwrap();
    assert_eq!(processed.output, "test");

    let (tag, _, record) = received(receiving).await;
    assert_eq!(tag, "from-settings");
    assert_eq!(record["message"], "test");
}

#[tokio::test]
async fn fluent_unreachable_is_logged_not_an_error() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);

    let began = tokio::time::Instant::now();
    let processed = FluentProcessor::new(ProcessorSettings::default())
        .process(
            execution("lost", true),
            &config(&[("host", "127.0.0.1"), ("port", &port.to_string())]),
        )
        .await
        .unwrap();
    assert_eq!(processed.output, "Output sent to Fluent");
    assert!(began.elapsed() <= FLUENT_SEND_TIMEOUT + Duration::from_secs(1));
}

#[tokio::test]
async fn fluent_gives_up_on_a_silent_peer_after_the_timeout() {
    // A listener that never accepts, with its accept queue full: the kernel drops further
    // connection attempts, so the processor's connect hangs until its own timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let address = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..8 {
        let connect = tokio::net::TcpStream::connect(address);
        match tokio::time::timeout(Duration::from_millis(200), connect).await {
            Ok(stream) => queued.push(stream.unwrap()),
            Err(_hung) => break,
        }
    }

    let began = tokio::time::Instant::now();
    let processed = FluentProcessor::new(ProcessorSettings::default())
        .process(
            execution("lost", true),
            &config(&[
                ("host", "127.0.0.1"),
                ("port", &address.port().to_string()),
                ("forward", "true"),
            ]),
        )
        .await
        .unwrap();
    let waited = began.elapsed();
    assert_eq!(processed.output, "lost");
    assert!(
        waited >= FLUENT_SEND_TIMEOUT,
        "the connect hung: {waited:?}"
    );
    assert!(
        waited <= FLUENT_SEND_TIMEOUT + Duration::from_secs(1),
        "{waited:?}"
    );
    drop(queued);
}
