//! Cluster members as the node sees them. On one server the membership is the node itself; the
//! cluster issue replaces the source of [`NodeHandle::members`](crate::NodeHandle::members) with gossip.

use std::collections::BTreeMap;

use rkron_core::tags::Candidate;

/// A member's gossip status, with Serf's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    None = 0,
    Alive = 1,
    Leaving = 2,
    Left = 3,
    Failed = 4,
}

impl MemberStatus {
    /// Returns Serf's status text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Alive => "alive",
            Self::Leaving => "leaving",
            Self::Left => "left",
            Self::Failed => "failed",
        }
    }
}

/// A cluster member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// Advertised IP address.
    pub addr: String,
    /// Advertised gossip port.
    pub port: u16,
    /// Reserved and user tags.
    pub tags: BTreeMap<String, String>,
    pub status: MemberStatus,
}

impl Member {
    /// Returns the member as a targeting candidate.
    pub fn candidate(&self) -> Candidate {
        Candidate {
            name: self.name.clone(),
            alive: self.status == MemberStatus::Alive,
            tags: self.tags.clone(),
        }
    }
}

/// Builds a node's tags: user tags, then the reserved tags (which win), Dkron §6.2.
/// Servers carry both `server=true` (Dkron 4) and `dkron_server=true` (Dkron 1.x).
pub fn node_tags(
    user: &BTreeMap<String, String>,
    server: bool,
    datacenter: &str,
    region: &str,
    version: &str,
    rpc_addr: &str,
    rpc_port: u16,
) -> BTreeMap<String, String> {
    let mut tags = user.clone();
    tags.insert("role".into(), "dkron".into());
    tags.insert("dc".into(), datacenter.into());
    tags.insert("region".into(), region.into());
    tags.insert("version".into(), version.into());
    tags.insert("rpc_addr".into(), rpc_addr.into());
    tags.insert("port".into(), rpc_port.to_string());
    if server {
        tags.insert("server".into(), "true".into());
        tags.insert("dkron_server".into(), "true".into());
    }
    tags
}
