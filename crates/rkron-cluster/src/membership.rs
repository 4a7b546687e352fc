//! `Membership`: a running chitchat node with Serf-like member statuses.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use chitchat::{
    Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ProtocolVersion,
    spawn_chitchat,
};
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{MembershipConfig, Timings};
use crate::member::Member;
use crate::transport::{Cipher, RelaySocket, RelayTransport};
use crate::view::{MemberTracker, STATUS_KEY, STATUS_LEAVING, STATUS_LEFT, TAG_PREFIX};

/// chitchat's cluster id: nodes of other chitchat clusters are refused.
const CLUSTER_ID: &str = "rkron";
/// Dkron's default gossip port, used for seeds given without a port.
pub const DEFAULT_GOSSIP_PORT: u16 = 8946;
/// Heartbeat samples kept per member by the failure detector.
const SAMPLING_WINDOW: usize = 1_000;
/// How long a deleted tag is remembered so every member sees the deletion.
const TAG_DELETION_GRACE: Duration = Duration::from_secs(60 * 60);

/// Why membership could not start or join.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The `encrypt` key has the wrong length.
    #[error("encrypt key must be 16, 24 or 32 bytes long, got {0} bytes")]
    InvalidKey(usize),
    /// The gossip socket could not be bound or set up.
    #[error("cannot bind the gossip socket on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The configuration cannot work (for example nothing to advertise).
    #[error("invalid membership configuration: {0}")]
    Config(String),
    /// The gossip server did not start.
    #[error("gossip failed to start: {0}")]
    Start(String),
    /// Gossip stopped while waiting.
    #[error("gossip has stopped")]
    Stopped,
    /// `retry-max` join attempts found no other member.
    #[error("max join retry exhausted after {attempts} attempts")]
    JoinExhausted {
        /// Attempts made.
        attempts: u32,
    },
}

/// This node's membership in the cluster: gossip, tags, member list and graceful leave.
///
/// Dropping it without [`Membership::leave`] stops gossip at once; the other members then see
/// this node as failed.
pub struct Membership {
    handle: std::sync::Mutex<Option<ChitchatHandle>>,
    chitchat: Arc<Mutex<Chitchat>>,
    members: watch::Receiver<Vec<Member>>,
    refresh: Arc<Notify>,
    view_task: JoinHandle<()>,
    name: String,
    local_addr: SocketAddr,
    advertise_addr: SocketAddr,
    seeds: Vec<String>,
    retry_interval: Duration,
    retry_max: u32,
    timings: Timings,
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("name", &self.name)
            .field("local_addr", &self.local_addr)
            .field("advertise_addr", &self.advertise_addr)
            .finish_non_exhaustive()
    }
}

/// Adds Dkron's default port to a seed given as a bare host or IPv4 address.
fn seed_with_port(seed: &str) -> String {
    if seed.parse::<SocketAddr>().is_ok() || seed.contains(':') {
        seed.to_string()
    } else {
        format!("{seed}:{DEFAULT_GOSSIP_PORT}")
    }
}

impl Membership {
    /// Binds (or takes `socket`, already bound), starts gossiping with the seeds and returns at
    /// once; joining happens in the background. Call [`Membership::wait_for_join`] to wait for it.
    pub async fn start(
        config: MembershipConfig,
        socket: Option<std::net::UdpSocket>,
    ) -> Result<Membership, MembershipError> {
        if config.node_name.is_empty() {
            return Err(MembershipError::Config("node name is empty".to_string()));
        }
        let cipher = config
            .encrypt_key
            .as_deref()
            .map(Cipher::new)
            .transpose()
            .map_err(|bad| MembershipError::InvalidKey(bad.0))?;
        let bind_error = |source| MembershipError::Bind {
            addr: config.bind_addr,
            source,
        };
        let socket = match socket {
            Some(socket) => socket,
            None => std::net::UdpSocket::bind(config.bind_addr).map_err(bind_error)?,
        };
        let relay = RelaySocket::new(socket, cipher).await.map_err(bind_error)?;
        let local_addr = relay.local_addr();
        let advertise_addr = config.advertise_addr.unwrap_or(local_addr);
        if advertise_addr.ip().is_unspecified() || advertise_addr.port() == 0 {
            return Err(MembershipError::Config(format!(
                "cannot advertise {advertise_addr}: set advertise-addr to an address other members can reach"
            )));
        }
        let timings = config.profile.timings();
        let seeds: Vec<String> = config.seeds.iter().map(|s| seed_with_port(s)).collect();
        let chitchat_id =
            ChitchatId::new(config.node_name.clone(), OsRng.next_u64(), advertise_addr);
        let chitchat_config = ChitchatConfig {
            chitchat_id,
            cluster_id: CLUSTER_ID.to_string(),
            gossip_interval: timings.gossip_interval,
            listen_addr: local_addr,
            seed_nodes: seeds.clone(),
            failure_detector_config: FailureDetectorConfig::new(
                timings.phi_threshold,
                SAMPLING_WINDOW,
                timings.max_heartbeat_interval,
                timings.gossip_interval,
                timings.dead_node_grace_period,
            ),
            marked_for_deletion_grace_period: TAG_DELETION_GRACE,
            catchup_callback: None,
            extra_liveness_predicate: None,
            // Every rkron node decodes V1 (compressed digests).
            protocol_version: ProtocolVersion::V1,
        };
        let initial_key_values = config
            .tags
            .iter()
            .map(|(key, value)| (format!("{TAG_PREFIX}{key}"), value.clone()))
            .collect();
        let transport = RelayTransport::new(relay);
        let handle = spawn_chitchat(chitchat_config, initial_key_values, &transport)
            .await
            .map_err(|error| MembershipError::Start(format!("{error:#}")))?;
        let chitchat = handle.chitchat();

        let mut tracker = MemberTracker::default();
        let (initial, live_nodes) = {
            let guard = chitchat.lock().await;
            (tracker.members(&guard), guard.live_nodes_watcher())
        };
        let (members_tx, members) = watch::channel(initial);
        let refresh = Arc::new(Notify::new());
        let view_task = tokio::spawn(run_view(
            chitchat.clone(),
            tracker,
            members_tx,
            live_nodes,
            refresh.clone(),
            timings.gossip_interval,
        ));
        info!(
            node = %config.node_name,
            %local_addr,
            %advertise_addr,
            encrypted = config.encrypt_key.is_some(),
            profile = %config.profile,
            "gossip started"
        );
        Ok(Membership {
            handle: std::sync::Mutex::new(Some(handle)),
            chitchat,
            members,
            refresh,
            view_task,
            name: config.node_name,
            local_addr,
            advertise_addr,
            seeds,
            retry_interval: config.retry_interval,
            retry_max: config.retry_max,
            timings,
        })
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address the gossip socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address other members reach this node on.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.advertise_addr
    }

    /// Every known member, this node included, sorted by name.
    pub fn members(&self) -> Vec<Member> {
        self.members.borrow().clone()
    }

    /// A receiver that sees the member list each time it changes.
    pub fn watch(&self) -> watch::Receiver<Vec<Member>> {
        self.members.clone()
    }

    /// Replaces this node's tags; the change reaches the others with the next gossip rounds.
    pub async fn set_tags(&self, tags: BTreeMap<String, String>) {
        {
            let mut chitchat = self.chitchat.lock().await;
            let node_state = chitchat.self_node_state();
            let stale: Vec<String> = node_state
                .key_values()
                .filter_map(|(key, _)| key.strip_prefix(TAG_PREFIX))
                .filter(|tag| !tags.contains_key(*tag))
                .map(|tag| format!("{TAG_PREFIX}{tag}"))
                .collect();
            for key in stale {
                node_state.delete(&key);
            }
            for (tag, value) in tags {
                node_state.set(format!("{TAG_PREFIX}{tag}"), value);
            }
        }
        self.refresh.notify_one();
    }

    /// Waits until another member is live, gossiping to the seeds every `retry-interval`; gives
    /// up after `retry-max` attempts (0: never). Without seeds other than this node it returns
    /// at once.
    pub async fn wait_for_join(&self) -> Result<(), MembershipError> {
        let mut seed_addrs = Vec::new();
        let mut unresolved = false;
        for seed in &self.seeds {
            match tokio::net::lookup_host(seed.as_str()).await {
                Ok(addrs) => seed_addrs.extend(
                    addrs.filter(|addr| *addr != self.advertise_addr && *addr != self.local_addr),
                ),
                // Gossip itself keeps resolving it; it may name another member later.
                Err(error) => {
                    warn!(%seed, %error, "cannot resolve gossip seed");
                    unresolved = true;
                }
            }
        }
        if seed_addrs.is_empty() && !unresolved {
            return Ok(());
        }
        let mut members = self.members.clone();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            if let Some(handle) = self.lock_handle().as_ref() {
                for addr in &seed_addrs {
                    // Fails only once gossip has stopped, which `wait_for` below notices.
                    let _ = handle.gossip(*addr);
                }
            }
            let joined = tokio::time::timeout(
                self.retry_interval,
                members.wait_for(|members| {
                    members
                        .iter()
                        .any(|member| member.name != self.name && member.status.is_live())
                }),
            )
            .await;
            match joined {
                Ok(Ok(_)) => {
                    info!(attempts, "joined the cluster");
                    return Ok(());
                }
                Ok(Err(_)) => return Err(MembershipError::Stopped),
                Err(_) => {}
            }
            if self.retry_max != 0 && attempts >= self.retry_max {
                return Err(MembershipError::JoinExhausted { attempts });
            }
            warn!(
                attempts,
                retry_interval = ?self.retry_interval,
                seeds = ?self.seeds,
                "no member reachable yet, retrying join"
            );
        }
    }

    fn lock_handle(&self) -> std::sync::MutexGuard<'_, Option<ChitchatHandle>> {
        // Only take() and reads happen under the lock: a poisoned one is still consistent.
        self.handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Announces `leaving` without stopping: the others stop sending runs here while this node
    /// finishes what it runs; [`Membership::leave`] completes the leave.
    pub async fn announce_leaving(&self) {
        self.chitchat
            .lock()
            .await
            .self_node_state()
            .set(STATUS_KEY, STATUS_LEAVING);
        self.refresh.notify_one();
        tokio::time::sleep(self.timings.leave_propagation).await;
    }

    /// Leaves gracefully: announces `leaving`, then `left`, each for a few gossip rounds, and
    /// stops gossip. The others list this node as leaving, then left.
    pub async fn leave(&self) {
        for status in [STATUS_LEAVING, STATUS_LEFT] {
            self.chitchat
                .lock()
                .await
                .self_node_state()
                .set(STATUS_KEY, status);
            self.refresh.notify_one();
            tokio::time::sleep(self.timings.leave_propagation).await;
        }
        let handle = self.lock_handle().take();
        if let Some(handle) = handle
            && let Err(error) = handle.shutdown().await
        {
            warn!(error = %format!("{error:#}"), "gossip did not stop cleanly");
        }
        info!(node = %self.name, "left the cluster");
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.view_task.abort();
        if let Some(handle) = self.lock_handle().as_ref() {
            handle.abort();
        }
    }
}

async fn run_view(
    chitchat: Arc<Mutex<Chitchat>>,
    mut tracker: MemberTracker,
    members_tx: watch::Sender<Vec<Member>>,
    mut live_nodes: watch::Receiver<BTreeMap<ChitchatId, chitchat::NodeState>>,
    refresh: Arc<Notify>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = refresh.notified() => {}
            changed = live_nodes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let members = tracker.members(&*chitchat.lock().await);
        members_tx.send_if_modified(|current| {
            if *current == members {
                false
            } else {
                *current = members;
                true
            }
        });
    }
}
