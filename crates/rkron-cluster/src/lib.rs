//! rkron-cluster owns gossip membership and node tags; knows nothing about jobs.
//!
//! [`Membership`] runs a chitchat node (scuttlebutt gossip, phi-accrual failure detection) over
//! UDP, optionally authenticated and encrypted with AES-GCM (see `transport.rs` for the wire
//! format), and derives Serf's member view from it (see `view.rs`): each member's name, address,
//! tags and status (alive, leaving, left, failed). Tags live in the node's gossip state under
//! `tag:<name>`; a graceful leave is announced under `status`. [`ReservedTags`] builds Dkron's
//! reserved tags and [`is_server`] reads them back.

mod config;
mod member;
mod membership;
mod tags;
mod transport;
mod view;

pub use config::{DEFAULT_RETRY_INTERVAL, MembershipConfig, Profile, Timings, UnknownProfile};
pub use member::{Member, MemberStatus};
pub use membership::{DEFAULT_GOSSIP_PORT, Membership, MembershipError};
pub use tags::{
    ROLE_DKRON, ReservedTags, TAG_BOOTSTRAP, TAG_DATACENTER, TAG_DKRON_SERVER, TAG_EXPECT,
    TAG_PORT, TAG_REGION, TAG_ROLE, TAG_RPC_ADDR, TAG_SERVER, TAG_VERSION, is_server,
};
