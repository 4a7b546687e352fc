//! Gossip membership over real UDP sockets on 127.0.0.1 (pre-bound port-0 sockets, `local`
//! profile).

#![allow(clippy::unwrap_used)]

mod encryption;
mod membership;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rkron_cluster::{Member, MemberStatus, Membership, MembershipConfig, Profile};
use tokio::time::Instant;

/// Generous bound for anything that should take well under a few seconds, on a loaded CI box.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(15);

/// Polls `predicate` every 20 ms until it holds; panics naming `what` after `timeout`.
pub(crate) async fn wait_until(timeout: Duration, what: &str, mut predicate: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if predicate() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks `predicate` every 20 ms for `period`; panics naming `what` the first time it fails.
pub(crate) async fn holds_for(period: Duration, what: &str, mut predicate: impl FnMut() -> bool) {
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        assert!(predicate(), "{what} stopped holding");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

pub(crate) fn tags(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("role".to_string(), "dkron".to_string()),
        ("node".to_string(), name.to_string()),
    ])
}

pub(crate) fn config(name: &str, socket: &UdpSocket, seeds: &[SocketAddr]) -> MembershipConfig {
    let mut config = MembershipConfig::new(name, socket.local_addr().unwrap());
    config.seeds = seeds.iter().map(ToString::to_string).collect();
    config.tags = tags(name);
    config.profile = Profile::Local;
    config
}

/// Starts `count` nodes `node-{i}`, each seeded with every other node's address.
pub(crate) async fn start_cluster(count: usize, key: Option<&[u8]>) -> Vec<Membership> {
    let sockets: Vec<UdpSocket> = (0..count).map(|_| bind()).collect();
    let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let seeds: Vec<SocketAddr> = addrs.iter().copied().filter(|a| *a != addrs[i]).collect();
        let mut config = config(&format!("node-{i}"), &socket, &seeds);
        config.encrypt_key = key.map(<[u8]>::to_vec);
        nodes.push(Membership::start(config, Some(socket)).await.unwrap());
    }
    nodes
}

pub(crate) fn status_of(node: &Membership, name: &str) -> Option<MemberStatus> {
    node.members()
        .into_iter()
        .find(|member| member.name == name)
        .map(|member| member.status)
}

/// Whether `node` lists exactly `names`, all alive, each with its test tags.
pub(crate) fn sees_alive(node: &Membership, names: &[String]) -> bool {
    let members: Vec<Member> = node.members();
    members.len() == names.len()
        && members.iter().zip(names).all(|(member, name)| {
            member.name == *name
                && member.status == MemberStatus::Alive
                && member.tags == tags(name)
        })
}

pub(crate) fn names(nodes: &[Membership]) -> Vec<String> {
    let mut names: Vec<String> = nodes.iter().map(|node| node.name().to_string()).collect();
    names.sort();
    names
}
