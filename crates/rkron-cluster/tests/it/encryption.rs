use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rkron_cluster::{Membership, MembershipError};

use crate::{TIMEOUT, bind, config, holds_for, names, sees_alive, start_cluster, wait_until};

const KEY: [u8; 16] = *b"0123456789abcdef";

async fn start_outsider(name: &str, key: Option<Vec<u8>>, seeds: &[SocketAddr]) -> Membership {
    let socket = bind();
    let mut config = config(name, &socket, seeds);
    config.encrypt_key = key;
    Membership::start(config, Some(socket)).await.unwrap()
}

#[tokio::test]
async fn nodes_with_the_same_key_converge_and_others_stay_out() {
    for key in [&KEY[..], &[7; 24][..], &[9; 32][..]] {
        let nodes = start_cluster(3, Some(key)).await;
        let expected = names(&nodes);
        let seeds: Vec<SocketAddr> = nodes.iter().map(Membership::local_addr).collect();
        let wrong_key = start_outsider("wrong-key", Some(vec![1; key.len()]), &seeds).await;
        let no_key = start_outsider("no-key", None, &seeds).await;
        wait_until(TIMEOUT, "the keyed nodes converge", || {
            nodes.iter().all(|node| sees_alive(node, &expected))
        })
        .await;
        holds_for(Duration::from_secs(2), "outsiders stay apart", || {
            nodes.iter().all(|node| sees_alive(node, &expected))
                && sees_alive(&wrong_key, &["wrong-key".to_string()])
                && sees_alive(&no_key, &["no-key".to_string()])
        })
        .await;
    }
}

#[tokio::test]
async fn keyed_nodes_do_not_join_a_cluster_without_a_key() {
    let nodes = start_cluster(2, None).await;
    let expected = names(&nodes);
    let seeds: Vec<SocketAddr> = nodes.iter().map(Membership::local_addr).collect();
    let keyed = start_outsider("keyed", Some(KEY.to_vec()), &seeds).await;
    wait_until(TIMEOUT, "the plain nodes converge", || {
        nodes.iter().all(|node| sees_alive(node, &expected))
    })
    .await;
    holds_for(Duration::from_secs(2), "the keyed node stays apart", || {
        nodes.iter().all(|node| sees_alive(node, &expected))
            && sees_alive(&keyed, &["keyed".to_string()])
    })
    .await;
}

#[tokio::test]
async fn keys_of_other_lengths_are_refused() {
    let socket = bind();
    let mut config = config("bad-key", &socket, &[]);
    config.encrypt_key = Some(vec![0; 10]);
    let error = Membership::start(config, Some(socket)).await.unwrap_err();
    assert!(matches!(error, MembershipError::InvalidKey(10)), "{error}");
    assert_eq!(
        error.to_string(),
        "encrypt key must be 16, 24 or 32 bytes long, got 10 bytes"
    );
}

/// Log lines written by the tracing subscriber of the current thread.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// A current-thread runtime polls every gossip task on this thread, so the thread's default
// subscriber sees their logs.
#[tokio::test(flavor = "current_thread")]
async fn rejected_gossip_is_logged_with_the_reason() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let keyed_socket = bind();
    let plain_socket = bind();
    let keyed_addr = keyed_socket.local_addr().unwrap();
    let plain_addr = plain_socket.local_addr().unwrap();
    let mut keyed_config = config("keyed", &keyed_socket, &[plain_addr]);
    keyed_config.encrypt_key = Some(KEY.to_vec());
    let _keyed = Membership::start(keyed_config, Some(keyed_socket))
        .await
        .unwrap();
    let _plain = Membership::start(
        config("plain", &plain_socket, &[keyed_addr]),
        Some(plain_socket),
    )
    .await
    .unwrap();
    let keyed_says = format!("gossip from {plain_addr} rejected: wrong or missing encryption key");
    let plain_says = format!(
        "gossip from {keyed_addr} rejected: it is encrypted or malformed and this node has no encryption key"
    );
    wait_until(TIMEOUT, "both rejections are logged", || {
        let text = logs.text();
        text.contains(&keyed_says) && text.contains(&plain_says)
    })
    .await;
}
