//! Derives Serf-like members from chitchat's cluster state.
//!
//! - A node the failure detector holds live is `alive`, or `leaving` once its `status` key says
//!   `leaving`.
//! - A node whose `status` key says `left` is `left`; so is a node that announced `leaving` and
//!   then stopped heartbeating.
//! - Any other node that was live once and is no longer is `failed`.
//! - A node never seen live (just discovered, fewer than two heartbeats) is not listed yet.
//! - Several generations of one name (a node that restarted) collapse to the live one.
//! - A failed or left member that gossip forgets stays listed for [`REAP_AFTER`], like Serf.

use std::collections::{BTreeMap, HashMap, HashSet};

use chitchat::{Chitchat, ChitchatId, Heartbeat, NodeState};
use tokio::time::Instant;

use crate::config::REAP_AFTER;
use crate::member::{Member, MemberStatus};

/// Key of the node-state entry that carries a graceful leave.
pub(crate) const STATUS_KEY: &str = "status";
/// `STATUS_KEY` value while a node is leaving.
pub(crate) const STATUS_LEAVING: &str = "leaving";
/// `STATUS_KEY` value once a node has left.
pub(crate) const STATUS_LEFT: &str = "left";
/// Prefix of the node-state keys that hold tags.
pub(crate) const TAG_PREFIX: &str = "tag:";

/// State kept between two computations of the member list.
#[derive(Default)]
pub(crate) struct MemberTracker {
    ever_live: HashSet<ChitchatId>,
    /// Failed or left members, with when they were last seen in gossip state.
    remembered: HashMap<String, (Member, Instant)>,
}

pub(crate) fn tags_of(node_state: &NodeState) -> BTreeMap<String, String> {
    node_state
        .key_values()
        .filter_map(|(key, value)| {
            key.strip_prefix(TAG_PREFIX)
                .map(|tag| (tag.to_string(), value.to_string()))
        })
        .collect()
}

fn status_of(is_live: bool, node_state: &NodeState) -> MemberStatus {
    match (is_live, node_state.get(STATUS_KEY)) {
        (_, Some(STATUS_LEFT)) => MemberStatus::Left,
        (true, Some(STATUS_LEAVING)) => MemberStatus::Leaving,
        (true, _) => MemberStatus::Alive,
        (false, Some(STATUS_LEAVING)) => MemberStatus::Left,
        (false, _) => MemberStatus::Failed,
    }
}

impl MemberTracker {
    /// The member list, sorted by name, self included.
    pub(crate) fn members(&mut self, chitchat: &Chitchat) -> Vec<Member> {
        let now = Instant::now();
        let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
        let mut best: BTreeMap<String, (bool, Heartbeat, Member)> = BTreeMap::new();
        for (chitchat_id, node_state) in chitchat.node_states() {
            let is_live = live.contains(chitchat_id);
            if is_live {
                self.ever_live.insert(chitchat_id.clone());
            } else if !self.ever_live.contains(chitchat_id) {
                continue;
            }
            let member = Member {
                name: chitchat_id.node_id.to_string(),
                addr: chitchat_id.gossip_advertise_addr.ip(),
                port: chitchat_id.gossip_advertise_addr.port(),
                tags: tags_of(node_state),
                status: status_of(is_live, node_state),
            };
            let heartbeat = node_state.heartbeat();
            let replaces = match best.get(&member.name) {
                None => true,
                Some((best_live, best_heartbeat, _)) => {
                    (is_live, heartbeat) > (*best_live, *best_heartbeat)
                }
            };
            if replaces {
                best.insert(member.name.clone(), (is_live, heartbeat, member));
            }
        }
        self.ever_live
            .retain(|chitchat_id| chitchat.node_states().contains_key(chitchat_id));

        for (name, (_, _, member)) in &best {
            if member.status.is_live() {
                self.remembered.remove(name);
            } else {
                self.remembered.insert(name.clone(), (member.clone(), now));
            }
        }
        self.remembered
            .retain(|_, (_, last_seen)| now.duration_since(*last_seen) < REAP_AFTER);
        let mut members: BTreeMap<String, Member> = best
            .into_iter()
            .map(|(name, (_, _, member))| (name, member))
            .collect();
        for (name, (member, _)) in &self.remembered {
            members
                .entry(name.clone())
                .or_insert_with(|| member.clone());
        }
        members.into_values().collect()
    }
}
