use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use rkron_cluster::{MemberStatus, Membership, MembershipError};
use tokio::time::Instant;

use crate::{
    TIMEOUT, bind, config, holds_for, names, sees_alive, start_cluster, status_of, wait_until,
};

#[tokio::test]
async fn three_seeded_nodes_converge_with_their_tags() {
    let started = Instant::now();
    let nodes = start_cluster(3, None).await;
    let expected = names(&nodes);
    wait_until(TIMEOUT, "every node sees 3 alive members", || {
        nodes.iter().all(|node| sees_alive(node, &expected))
    })
    .await;
    eprintln!("3 nodes converged in {:?}", started.elapsed());
    let member = &nodes[0].members()[1];
    assert_eq!(member.name, "node-1");
    assert_eq!(
        SocketAddr::new(member.addr, member.port),
        nodes[1].advertise_addr()
    );
}

#[tokio::test]
async fn a_node_lists_itself_alive_before_joining() {
    let socket = bind();
    let node = Membership::start(config("alone", &socket, &[]), Some(socket))
        .await
        .unwrap();
    assert!(sees_alive(&node, &["alone".to_string()]));
}

#[tokio::test]
async fn set_tags_propagates() {
    let nodes = start_cluster(3, None).await;
    let expected = names(&nodes);
    wait_until(TIMEOUT, "the cluster converges", || {
        nodes.iter().all(|node| sees_alive(node, &expected))
    })
    .await;
    let new_tags = BTreeMap::from([
        ("role".to_string(), "dkron".to_string()),
        ("pool".to_string(), "blue".to_string()),
    ]);
    nodes[2].set_tags(new_tags.clone()).await;
    wait_until(TIMEOUT, "every node sees node-2's new tags", || {
        nodes.iter().all(|node| {
            node.members()
                .iter()
                .any(|member| member.name == "node-2" && member.tags == new_tags)
        })
    })
    .await;
}

#[tokio::test]
async fn graceful_leave_is_seen_as_leaving_then_left() {
    let mut nodes = start_cluster(3, None).await;
    let expected = names(&nodes);
    wait_until(TIMEOUT, "the cluster converges", || {
        nodes.iter().all(|node| sees_alive(node, &expected))
    })
    .await;
    let mut watch = nodes[0].watch();
    let seen = tokio::spawn(async move {
        let mut seen = Vec::new();
        while watch.changed().await.is_ok() {
            let status = watch
                .borrow_and_update()
                .iter()
                .find(|member| member.name == "node-2")
                .map(|member| member.status);
            if let Some(status) = status
                && seen.last() != Some(&status)
            {
                seen.push(status);
                if status == MemberStatus::Left {
                    break;
                }
            }
        }
        seen
    });
    let leaver = nodes.pop().unwrap();
    let started = Instant::now();
    leaver.leave().await;
    wait_until(TIMEOUT, "the others see node-2 left", || {
        nodes
            .iter()
            .all(|node| status_of(node, "node-2") == Some(MemberStatus::Left))
    })
    .await;
    eprintln!("leave seen as left in {:?}", started.elapsed());
    let mut seen = tokio::time::timeout(TIMEOUT, seen).await.unwrap().unwrap();
    seen.retain(|status| *status != MemberStatus::Alive);
    assert_eq!(seen, [MemberStatus::Leaving, MemberStatus::Left]);
    holds_for(Duration::from_secs(2), "node-2 stays left", || {
        nodes
            .iter()
            .all(|node| status_of(node, "node-2") == Some(MemberStatus::Left))
    })
    .await;
}

#[tokio::test]
async fn dropped_node_is_failed_and_alive_again_after_rejoining() {
    let mut nodes = start_cluster(3, None).await;
    let expected = names(&nodes);
    wait_until(TIMEOUT, "the cluster converges", || {
        nodes.iter().all(|node| sees_alive(node, &expected))
    })
    .await;
    let dropped = nodes.pop().unwrap();
    let addr = dropped.local_addr();
    let started = Instant::now();
    drop(dropped);
    wait_until(TIMEOUT, "the others see node-2 failed", || {
        nodes
            .iter()
            .all(|node| status_of(node, "node-2") == Some(MemberStatus::Failed))
    })
    .await;
    eprintln!("dropped node seen as failed in {:?}", started.elapsed());

    // The aborted gossip task releases the port shortly after the drop.
    let mut socket = None;
    wait_until(TIMEOUT, "node-2's port is free again", || {
        socket = std::net::UdpSocket::bind(addr).ok();
        socket.is_some()
    })
    .await;
    let socket = socket.unwrap();
    let seeds = [nodes[0].local_addr()];
    let rejoined = Membership::start(config("node-2", &socket, &seeds), Some(socket))
        .await
        .unwrap();
    nodes.push(rejoined);
    wait_until(TIMEOUT, "node-2 is alive again everywhere", || {
        nodes.iter().all(|node| sees_alive(node, &expected))
    })
    .await;
}

async fn converge(count: usize) {
    let started = Instant::now();
    let nodes = start_cluster(count, None).await;
    let expected = names(&nodes);
    wait_until(Duration::from_secs(60), "all nodes converge", || {
        nodes.iter().all(|node| sees_alive(node, &expected))
    })
    .await;
    eprintln!("{count} nodes converged in {:?}", started.elapsed());
}

// A multi-threaded runtime, as in the binary: on one starved thread (a CI box busy with other
// tests and six busy loops), the 30 nodes' gossip fell so far behind that their failure
// detectors kept marking a fifth of the pairs failed and the cluster never converged in 60 s;
// on two workers it converged in about 2.3 s under the same load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_converge() {
    converge(10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_nodes_converge() {
    converge(30).await;
}

#[tokio::test]
async fn wait_for_join_returns_once_a_seed_answers() {
    let first_socket = bind();
    let first_addr = first_socket.local_addr().unwrap();
    let _first = Membership::start(config("first", &first_socket, &[]), Some(first_socket))
        .await
        .unwrap();
    let socket = bind();
    let mut second_config = config("second", &socket, &[first_addr]);
    second_config.retry_interval = Duration::from_millis(500);
    second_config.retry_max = 20;
    let second = Membership::start(second_config, Some(socket))
        .await
        .unwrap();
    second.wait_for_join().await.unwrap();
    assert_eq!(status_of(&second, "first"), Some(MemberStatus::Alive));
}

#[tokio::test]
async fn wait_for_join_gives_up_after_retry_max() {
    // A bound socket nobody reads: gossip sent there is never answered.
    let silent = bind();
    let socket = bind();
    let mut config = config("lonely", &socket, &[silent.local_addr().unwrap()]);
    config.retry_interval = Duration::from_millis(200);
    config.retry_max = 2;
    let node = Membership::start(config, Some(socket)).await.unwrap();
    let error = node.wait_for_join().await.unwrap_err();
    assert!(
        matches!(error, MembershipError::JoinExhausted { attempts: 2 }),
        "{error}"
    );
}

#[tokio::test]
async fn wait_for_join_without_other_seeds_returns_at_once() {
    let socket = bind();
    let own = socket.local_addr().unwrap();
    let node = Membership::start(config("solo", &socket, &[own]), Some(socket))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(1), node.wait_for_join())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_unspecified_address_cannot_be_advertised() {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let error = Membership::start(config("anywhere", &socket, &[]), Some(socket))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("advertise-addr"), "{error}");
}
