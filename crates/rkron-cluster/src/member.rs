//! What a node knows about a member: name, gossip address, tags and status.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// A member's status, as Serf names and numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberStatus {
    /// Gossiping and heartbeating.
    Alive,
    /// Announced a graceful leave and is still heartbeating.
    Leaving,
    /// Left gracefully.
    Left,
    /// Stopped heartbeating without leaving.
    Failed,
}

impl MemberStatus {
    /// Serf's number for the status (`MemberStatus` in serf: alive 1, leaving 2, left 3,
    /// failed 4), which Dkron's `/v1/members` shows.
    pub fn serf_code(self) -> u8 {
        match self {
            MemberStatus::Alive => 1,
            MemberStatus::Leaving => 2,
            MemberStatus::Left => 3,
            MemberStatus::Failed => 4,
        }
    }

    /// Serf's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Alive => "alive",
            MemberStatus::Leaving => "leaving",
            MemberStatus::Left => "left",
            MemberStatus::Failed => "failed",
        }
    }

    /// Whether the member still takes part in gossip (alive or leaving).
    pub fn is_live(self) -> bool {
        matches!(self, MemberStatus::Alive | MemberStatus::Leaving)
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of the cluster, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The node name.
    pub name: String,
    /// The advertised gossip address.
    pub addr: IpAddr,
    /// The advertised gossip port.
    pub port: u16,
    /// The member's tags.
    pub tags: BTreeMap<String, String>,
    /// The member's status.
    pub status: MemberStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_follow_serf() {
        let codes: Vec<_> = [
            MemberStatus::Alive,
            MemberStatus::Leaving,
            MemberStatus::Left,
            MemberStatus::Failed,
        ]
        .iter()
        .map(|status| (status.serf_code(), status.as_str()))
        .collect();
        assert_eq!(
            codes,
            [(1, "alive"), (2, "leaving"), (3, "left"), (4, "failed")]
        );
    }
}
