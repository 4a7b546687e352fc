//! Membership configuration and the `lan` / `wan` / `local` timing profiles.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Dkron's default `retry-interval`.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// How long a failed or left member stays listed after gossip forgot it (Serf's 24 h reap).
pub(crate) const REAP_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Everything a node needs to take part in gossip.
#[derive(Clone)]
pub struct MembershipConfig {
    /// The node's name, unique in the cluster (`node-name`).
    pub node_name: String,
    /// The address the gossip socket binds to (`bind-addr`), used when no socket is passed in.
    pub bind_addr: SocketAddr,
    /// The address other members use to reach this node (`advertise-addr`); defaults to the
    /// bound address, which must then not be unspecified (`0.0.0.0`).
    pub advertise_addr: Option<SocketAddr>,
    /// `join` and `retry-join` addresses, `host:port`; host names are resolved again every minute.
    pub seeds: Vec<String>,
    /// The node's tags, reserved and user tags already merged.
    pub tags: BTreeMap<String, String>,
    /// The gossip encryption key (`encrypt`, base64-decoded): 16, 24 or 32 bytes.
    pub encrypt_key: Option<Vec<u8>>,
    /// Gossip and failure-detection timings (`profile`).
    pub profile: Profile,
    /// Wait between join attempts in [`crate::Membership::wait_for_join`] (`retry-interval`).
    pub retry_interval: Duration,
    /// Join attempts before [`crate::Membership::wait_for_join`] gives up; 0 retries forever
    /// (`retry-max`).
    pub retry_max: u32,
}

impl MembershipConfig {
    /// A configuration with Dkron's defaults: no seeds, no tags, no key, `lan` profile.
    pub fn new(node_name: impl Into<String>, bind_addr: SocketAddr) -> Self {
        Self {
            node_name: node_name.into(),
            bind_addr,
            advertise_addr: None,
            seeds: Vec::new(),
            tags: BTreeMap::new(),
            encrypt_key: None,
            profile: Profile::Lan,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            retry_max: 0,
        }
    }
}

impl fmt::Debug for MembershipConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MembershipConfig")
            .field("node_name", &self.node_name)
            .field("bind_addr", &self.bind_addr)
            .field("advertise_addr", &self.advertise_addr)
            .field("seeds", &self.seeds)
            .field("tags", &self.tags)
            .field(
                "encrypt_key",
                &self.encrypt_key.as_ref().map(|_| "<redacted>"),
            )
            .field("profile", &self.profile)
            .field("retry_interval", &self.retry_interval)
            .field("retry_max", &self.retry_max)
            .finish()
    }
}

/// Gossip timing profile, named like memberlist's (`profile`: `lan`, `wan`, `local`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// One data centre: gossip every 200 ms, failures detected in about 2 s.
    #[default]
    Lan,
    /// Across data centres: gossip every 500 ms, failures detected in about 6 s.
    Wan,
    /// One machine (tests, development): gossip every 100 ms, failures detected in about 1 s.
    Local,
}

/// The concrete timings of a [`Profile`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    /// Interval between gossip rounds; each round also bumps this node's heartbeat.
    pub gossip_interval: Duration,
    /// Phi accrual threshold: a member is failed after `phi_threshold` mean heartbeat intervals
    /// without a heartbeat.
    pub phi_threshold: f64,
    /// Heartbeat intervals longer than this are not sampled.
    pub max_heartbeat_interval: Duration,
    /// How long gossip keeps the state of a dead member before forgetting it.
    pub dead_node_grace_period: Duration,
    /// How long each step of a graceful leave (`leaving`, then `left`) is gossiped before the
    /// next one.
    pub leave_propagation: Duration,
}

impl Profile {
    /// The timings of this profile.
    pub fn timings(self) -> Timings {
        let (gossip_ms, phi_threshold, max_interval_s) = match self {
            Profile::Lan => (200, 10.0, 5),
            Profile::Wan => (500, 12.0, 10),
            Profile::Local => (100, 10.0, 2),
        };
        let gossip_interval = Duration::from_millis(gossip_ms);
        Timings {
            gossip_interval,
            phi_threshold,
            max_heartbeat_interval: Duration::from_secs(max_interval_s),
            dead_node_grace_period: Duration::from_secs(60 * 60),
            leave_propagation: gossip_interval * 5,
        }
    }

    /// The profile's configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Lan => "lan",
            Profile::Wan => "wan",
            Profile::Local => "local",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown `profile` value; the message is Dkron's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile: {0}")]
pub struct UnknownProfile(pub String);

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "lan" => Ok(Profile::Lan),
            "wan" => Ok(Profile::Wan),
            "local" => Ok(Profile::Local),
            other => Err(UnknownProfile(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_by_dkron_name() {
        for profile in [Profile::Lan, Profile::Wan, Profile::Local] {
            assert_eq!(profile.as_str().parse::<Profile>(), Ok(profile));
        }
        assert_eq!(
            "metro".parse::<Profile>().unwrap_err().to_string(),
            "unknown profile: metro"
        );
    }

    #[test]
    fn failure_detection_is_a_few_seconds_on_lan_and_local() {
        for profile in [Profile::Lan, Profile::Local] {
            let timings = profile.timings();
            let detection = timings.gossip_interval.as_secs_f64() * timings.phi_threshold;
            assert!(detection <= 3.0, "{profile}: {detection}");
        }
    }

    #[test]
    fn debug_redacts_the_key() {
        let mut config = MembershipConfig::new("a", "127.0.0.1:8946".parse().unwrap());
        config.encrypt_key = Some(vec![171; 16]);
        assert!(!format!("{config:?}").contains("171"));
    }
}
