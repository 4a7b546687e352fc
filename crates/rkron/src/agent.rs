//! `rkron agent`: composes a node from its configuration and runs it until the shutdown future
//! resolves (or a leave request, or a failed join).
//!
//! Every node: gossip membership on `bind-addr`, the RPC service on `rpc-port` and a local agent
//! that runs jobs. A server (`--server`) adds the store, the node runtime (scheduler, dispatch,
//! recording) and the HTTP API; its runs reach other members over RPC.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rkron_api::{ApiOptions, router};
use rkron_cluster::{Membership, MembershipConfig, ReservedTags};
use rkron_core::SystemClock;
use rkron_executor::ExecutorRegistry;
use rkron_node::{ClusterParts, LocalAgent, Member, MemberStatus, Node, NodeConfig, Plugins};
use rkron_notify::{Notifier, NotifySettings};
use rkron_processor::{ProcessorRegistry, ProcessorSettings};
use rkron_rpc::{AgentServer, ClusterRunner, GrpcRunner, ServerAddresses};
use rkron_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, Backend};

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot open the store: {0}")]
    Store(String),
    #[error("cannot listen for HTTP on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("node failed to start: {0}")]
    Node(#[from] rkron_node::NodeError),
    #[error("HTTP server failed: {0}")]
    Serve(String),
    #[error("cannot listen for RPC on {addr}: {reason}")]
    RpcListen { addr: String, reason: String },
    #[error("{0}")]
    Cluster(String),
}

/// `backend-password`, revealed for the store client.
fn backend_password(config: &AgentConfig) -> Option<String> {
    config
        .backend_password
        .as_ref()
        .map(|p| p.expose().to_owned())
}

/// `backend-machine`, or the store's default addresses when it is not set.
fn machines_or(config: &AgentConfig, defaults: &[String]) -> Vec<String> {
    if config.backend_machine.is_empty() {
        defaults.to_vec()
    } else {
        config.backend_machine.clone()
    }
}

/// Opens the store chosen by `backend`. This is the only place that names a backend.
async fn store_from_config(config: &AgentConfig) -> Result<Arc<dyn Store>, AgentError> {
    match config.backend {
        Backend::Embedded => {
            let store = rkron_store_embedded::EmbeddedStore::open(&config.data_dir)
                .map_err(|e| AgentError::Store(e.to_string()))?;
            Ok(Arc::new(store))
        }
        Backend::Etcd => {
            let defaults = rkron_store_etcd::EtcdConfig::default();
            let endpoints = machines_or(config, &defaults.endpoints);
            let etcd = rkron_store_etcd::EtcdConfig {
                endpoints,
                keyspace: config.keyspace.clone(),
                username: config.backend_username.clone(),
                password: backend_password(config),
                tls: config.backend_tls,
                ..defaults
            };
            let store = rkron_store_etcd::EtcdStore::connect(etcd)
                .await
                .map_err(|e| AgentError::Store(format!("etcd: {e}")))?;
            Ok(Arc::new(store))
        }
        Backend::Redis => {
            let defaults = rkron_store_redis::RedisConfig::default();
            let redis = rkron_store_redis::RedisConfig {
                addresses: machines_or(config, &defaults.addresses),
                keyspace: config.keyspace.clone(),
                username: config.backend_username.clone(),
                password: backend_password(config),
                tls: config.backend_tls,
                ..defaults
            };
            let store = rkron_store_redis::RedisStore::connect(redis)
                .await
                .map_err(|e| AgentError::Store(format!("redis: {e}")))?;
            Ok(Arc::new(store))
        }
        Backend::Zookeeper => {
            let defaults = rkron_store_zk::ZkConfig::default();
            let zk = rkron_store_zk::ZkConfig {
                servers: machines_or(config, &defaults.servers),
                keyspace: config.keyspace.clone(),
                username: config.backend_username.clone(),
                password: backend_password(config),
                ..defaults
            };
            let store = rkron_store_zk::ZkStore::connect(zk)
                .await
                .map_err(|e| AgentError::Store(format!("zookeeper: {e}")))?;
            Ok(Arc::new(store))
        }
        Backend::DynamoDb => {
            let defaults = rkron_store_dynamodb::DynamoConfig::default();
            let environment: std::collections::BTreeMap<String, String> =
                std::env::vars().collect();
            let endpoint = config.backend_machine.first().cloned();
            let region_set = ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .iter()
                .any(|key| environment.contains_key(*key));
            let dynamo = rkron_store_dynamodb::DynamoConfig {
                // A local endpoint (moto, DynamoDB Local) needs some region to sign with.
                region: if region_set || endpoint.is_none() {
                    String::new()
                } else {
                    "us-east-1".to_owned()
                },
                endpoint,
                table: config.keyspace.clone(),
                // backend-username / backend-password are the access key id and secret;
                // without them the AWS_* variables of the environment apply.
                access_key: config.backend_username.clone(),
                secret_key: backend_password(config),
                environment,
                create_table: true,
                ..defaults
            };
            let store = rkron_store_dynamodb::DynamoStore::connect(dynamo)
                .await
                .map_err(|e| AgentError::Store(format!("dynamodb: {e}")))?;
            Ok(Arc::new(store))
        }
        Backend::Consul => {
            let defaults = rkron_store_consul::ConsulConfig::default();
            let consul = rkron_store_consul::ConsulConfig {
                address: config
                    .backend_machine
                    .first()
                    .cloned()
                    .unwrap_or_else(|| defaults.address.clone()),
                keyspace: config.keyspace.clone(),
                // Consul's ACL token goes in backend-password.
                token: backend_password(config),
                tls: config.backend_tls,
                ..defaults
            };
            let store = rkron_store_consul::ConsulStore::connect(consul)
                .await
                .map_err(|e| AgentError::Store(format!("consul: {e}")))?;
            Ok(Arc::new(store))
        }
    }
}

fn notify_settings(config: &AgentConfig) -> NotifySettings {
    NotifySettings {
        node_name: config.node_name.clone(),
        mail_host: config.mail_host.clone().unwrap_or_default(),
        mail_port: config.mail_port,
        mail_username: config.mail_username.clone().unwrap_or_default(),
        mail_password: config
            .mail_password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default(),
        mail_from: config.mail_from.clone().unwrap_or_default(),
        mail_subject_prefix: config.mail_subject_prefix.clone(),
        mail_payload: config.mail_payload.clone().unwrap_or_default(),
        webhook_endpoint: config.webhook_endpoint.clone().unwrap_or_default(),
        webhook_payload: config.webhook_payload.clone().unwrap_or_default(),
        webhook_headers: config.webhook_headers.clone(),
        pre_webhook_endpoint: config.pre_webhook_endpoint.clone().unwrap_or_default(),
        pre_webhook_payload: config.pre_webhook_payload.clone().unwrap_or_default(),
        pre_webhook_headers: config.pre_webhook_headers.clone(),
    }
}

fn node_config(config: &AgentConfig, addrs: &Addresses) -> NodeConfig {
    NodeConfig {
        node_name: config.node_name.clone(),
        server: config.server,
        region: config.region.clone(),
        datacenter: config.datacenter.clone(),
        tags: config.tags.clone(),
        advertise_ip: addrs.advertise_ip.to_string(),
        advertise_port: addrs.gossip_advertise.port(),
        rpc_port: addrs.rpc_advertise.port(),
        execution_retention: config.execution_retention,
        shutdown_grace_period: config.shutdown_grace_period,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        report_margin: std::time::Duration::from_secs(30),
        lease_ttl: config.lease_ttl,
        // Servers sharing a store: a lost job-change notice is picked up within a minute.
        resync_period: (!matches!(config.backend, Backend::Embedded))
            .then_some(std::time::Duration::from_secs(60)),
        // The embedded store's writer commits whatever is queued in one transaction, so a
        // burst is best handed to it whole; a shared store is protected from queueing a burst
        // ahead of the lease's renewals.
        record_concurrency: (!matches!(config.backend, Backend::Embedded))
            .then_some(rkron_node::SHARED_STORE_RECORD_CONCURRENCY),
        // A leader that saw such a run's stream break records it within a second or two.
        unreported_grace: std::time::Duration::from_secs(15),
        // Gossip lists a joined cluster's members within a few rounds (100-500 ms each).
        view_settle: if config.join.is_empty() && config.retry_join.is_empty() {
            std::time::Duration::ZERO
        } else {
            VIEW_SETTLE
        },
    }
}

/// [`NodeConfig::view_settle`] of a server that joins a cluster.
const VIEW_SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// The addresses a node binds and advertises, resolved from `bind-addr`, `advertise-addr`,
/// `rpc-port` and `advertise-rpc-port`.
#[derive(Debug, Clone)]
struct Addresses {
    advertise_ip: std::net::IpAddr,
    gossip_advertise: SocketAddr,
    rpc_advertise: SocketAddr,
}

/// Resolves `host:port` (an IP or a host name) to one socket address.
fn resolve(key: &str, text: &str) -> Result<SocketAddr, AgentError> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .map_err(|e| AgentError::Cluster(format!("{key} {text}: {e}")))?
        .next()
        .ok_or_else(|| AgentError::Cluster(format!("{key} {text}: no address found")))
}

/// The first private IPv4 address of this machine's interfaces, which Dkron advertises when
/// `bind-addr` is the unspecified address; 127.0.0.1 when there is none.
fn private_ip() -> std::net::IpAddr {
    let found = nix::ifaddrs::getifaddrs().ok().and_then(|addrs| {
        addrs
            .filter_map(|a| a.address.and_then(|s| s.as_sockaddr_in().map(|v4| v4.ip())))
            .find(|ip| ip.is_private())
    });
    found.map_or(std::net::IpAddr::from([127, 0, 0, 1]), std::net::IpAddr::V4)
}

/// Converts gossip's member view to the node runtime's.
fn node_member(member: &rkron_cluster::Member) -> Member {
    Member {
        name: member.name.clone(),
        addr: member.addr.to_string(),
        port: member.port,
        tags: member.tags.clone(),
        status: match member.status {
            rkron_cluster::MemberStatus::Alive => MemberStatus::Alive,
            rkron_cluster::MemberStatus::Leaving => MemberStatus::Leaving,
            rkron_cluster::MemberStatus::Left => MemberStatus::Left,
            rkron_cluster::MemberStatus::Failed => MemberStatus::Failed,
        },
    }
}

/// The RPC addresses of the live servers among `members`, this node's own included: a node
/// that ran a run as an agent may have become the leader since, and then only it takes the
/// run's final report.
fn server_rpc_addrs(members: &[rkron_cluster::Member]) -> Vec<SocketAddr> {
    members
        .iter()
        .filter(|m| m.status.is_live() && rkron_cluster::is_server(&m.tags))
        .filter_map(|m| m.tags.get(rkron_cluster::TAG_RPC_ADDR)?.parse().ok())
        .collect()
}

/// The node's local agent, with its accepted-runs journal under `data-dir` (so a new leader
/// can learn, after this node restarts, which scheduled runs it took before). A journal another
/// process holds stops start-up: two processes of one node must not run side by side. One that
/// cannot be written (a read-only directory) only costs that knowledge after a restart, so the
/// node starts without it and says so.
fn open_agent(
    config: &AgentConfig,
    executors: ExecutorRegistry,
    clock: Arc<SystemClock>,
) -> Result<LocalAgent, AgentError> {
    let agent = LocalAgent::new(config.node_name.clone(), executors, clock);
    match agent.open_journal(&config.data_dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
            return Err(AgentError::Unsupported(format!(
                "data-dir {}: {error}",
                config.data_dir.display()
            )));
        }
        Err(error) => tracing::warn!(
            data_dir = %config.data_dir.display(),
            "cannot keep the accepted-runs journal: {error}; after a restart this node \
             cannot tell a new leader which runs it took before"
        ),
    }
    Ok(agent)
}

/// Runs an agent until `shutdown` resolves, then stops it in order: it announces `leaving` (no
/// new runs come), the API stops, running executions finish within the grace period (or are
/// killed), the store flushes, and the node leaves the cluster.
pub async fn run(
    config: AgentConfig,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    // The recorder goes in first, so the catch-up at start-up is counted too.
    let metrics = if config.server && config.enable_prometheus {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| {
                AgentError::Unsupported(format!("cannot start Prometheus metrics: {e}"))
            })?;
        let render: rkron_api::MetricsRender = Arc::new(move || handle.render());
        Some(render)
    } else {
        None
    };

    let clock = Arc::new(SystemClock);
    let executors = ExecutorRegistry::with_builtins();
    let agent = open_agent(&config, executors.clone(), clock.clone())?;

    // Addresses: gossip socket and RPC listener are bound first, so port 0 works for both.
    let bind = resolve("bind-addr", &config.bind_addr)?;
    let gossip_socket = std::net::UdpSocket::bind(bind).map_err(|e| {
        AgentError::Cluster(format!("cannot bind the gossip socket on {bind}: {e}"))
    })?;
    let gossip_local = gossip_socket
        .local_addr()
        .map_err(|e| AgentError::Cluster(format!("gossip socket: {e}")))?;
    let advertise = match &config.advertise_addr {
        Some(text) => resolve("advertise-addr", text)?,
        None => gossip_local,
    };
    let advertise_ip = if advertise.ip().is_unspecified() {
        private_ip()
    } else {
        advertise.ip()
    };
    let gossip_port = if advertise.port() == 0 {
        gossip_local.port()
    } else {
        advertise.port()
    };
    let rpc_bind = SocketAddr::new(bind.ip(), config.rpc_port);
    let rpc_listener = TcpListener::bind(rpc_bind)
        .await
        .map_err(|e| AgentError::RpcListen {
            addr: rpc_bind.to_string(),
            reason: e.to_string(),
        })?;
    let rpc_local = rpc_listener
        .local_addr()
        .map_err(|e| AgentError::RpcListen {
            addr: rpc_bind.to_string(),
            reason: e.to_string(),
        })?;
    let rpc_port = if config.advertise_rpc_port == 0 || config.advertise_rpc_port == config.rpc_port
    {
        rpc_local.port()
    } else {
        config.advertise_rpc_port
    };
    let addrs = Addresses {
        advertise_ip,
        gossip_advertise: SocketAddr::new(advertise_ip, gossip_port),
        rpc_advertise: SocketAddr::new(advertise_ip, rpc_port),
    };

    // Gossip.
    let reserved = ReservedTags {
        server: config.server,
        datacenter: config.datacenter.clone(),
        region: config.region.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        rpc_addr: addrs.rpc_advertise,
        bootstrap: config.bootstrap,
        bootstrap_expect: config.bootstrap_expect,
    };
    let retrying = !config.retry_join.is_empty();
    let seeds = if retrying {
        config.retry_join.clone()
    } else {
        config.join.clone()
    };
    let mut membership_config = MembershipConfig::new(config.node_name.clone(), gossip_local);
    membership_config.advertise_addr = Some(addrs.gossip_advertise);
    membership_config.seeds = seeds.clone();
    membership_config.tags = reserved.merge_over(&config.tags);
    membership_config.encrypt_key = config.encrypt.as_ref().map(|k| k.as_bytes().to_vec());
    membership_config.profile = config
        .profile
        .as_str()
        .parse()
        .map_err(|e: rkron_cluster::UnknownProfile| AgentError::Cluster(e.to_string()))?;
    membership_config.retry_interval = config.retry_interval;
    // `join` is tried once; `retry-join` as often as `retry-max` says (0: forever).
    membership_config.retry_max = if retrying { config.retry_max } else { 1 };
    let membership = Membership::start(membership_config, Some(gossip_socket))
        .await
        .map_err(|e| AgentError::Cluster(e.to_string()))?;
    let membership = Arc::new(membership);
    tracing::info!(
        node = %config.node_name,
        gossip = %gossip_local,
        advertise = %addrs.gossip_advertise,
        rpc = %rpc_local,
        "gossip listening on {gossip_local}; RPC listening on {rpc_local}"
    );

    // Stops the node: the process's shutdown signal, a leave request, a failed join, or a
    // second server on the embedded store.
    let stop = CancellationToken::new();
    let failure: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        });
    }
    if !seeds.is_empty() {
        let (membership, stop, failure) = (membership.clone(), stop.clone(), failure.clone());
        tokio::spawn(async move {
            if let Err(error) = membership.wait_for_join().await {
                tracing::error!(%error, "could not join the cluster; stopping");
                if let Ok(mut slot) = failure.lock() {
                    slot.get_or_insert(format!(
                        "could not join the cluster: {error} (check that the join addresses are reachable and that every node has the same encrypt key)"
                    ));
                }
                stop.cancel();
            }
        });
    }

    // The member list as the node runtime sees it, and the runner's RPC addresses.
    let grpc = Arc::new(GrpcRunner::new());
    let (members_tx, members_rx) = watch::channel(
        membership
            .members()
            .iter()
            .map(node_member)
            .collect::<Vec<_>>(),
    );
    {
        let mut gossip = membership.watch();
        let (grpc, stop, failure) = (grpc.clone(), stop.clone(), failure.clone());
        let me = config.node_name.clone();
        let guard_embedded = config.server && matches!(config.backend, Backend::Embedded);
        let joining = !seeds.is_empty();
        tokio::spawn(async move {
            let mut live: std::collections::HashMap<String, bool> = Default::default();
            loop {
                let members = gossip.borrow_and_update().clone();
                for member in &members {
                    match member
                        .tags
                        .get(rkron_cluster::TAG_RPC_ADDR)
                        .map(|a| a.parse())
                    {
                        Some(Ok(address)) if member.name != me => {
                            grpc.set_address(&member.name, address);
                        }
                        _ => {}
                    }
                    // A member back from a failure gets a fresh connection: the old one may
                    // still be retransmitting into the partition it came back from.
                    let now_live = member.status.is_live();
                    if live.insert(member.name.clone(), now_live) == Some(false) && now_live {
                        grpc.reset_connection(&member.name);
                    }
                }
                if guard_embedded {
                    let others: Vec<&str> = members
                        .iter()
                        .filter(|m| {
                            m.name != me && m.status.is_live() && rkron_cluster::is_server(&m.tags)
                        })
                        .map(|m| m.name.as_str())
                        .collect();
                    if !others.is_empty() {
                        let message = format!(
                            "another server ({}) is in this cluster, and the embedded store holds one server's data only: \
                             high availability with several servers needs an external store (backend: etcd, redis, zookeeper, dynamodb or consul)",
                            others.join(", ")
                        );
                        if joining {
                            tracing::error!("{message}; this server stops");
                            if let Ok(mut slot) = failure.lock() {
                                slot.get_or_insert(message);
                            }
                            stop.cancel();
                        } else {
                            tracing::error!("{message}; runs are not sent to it");
                        }
                    }
                }
                let _ = members_tx.send(members.iter().map(node_member).collect());
                if gossip.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    let server_addrs: ServerAddresses = {
        let membership = membership.clone();
        Arc::new(move || server_rpc_addrs(&membership.members()))
    };

    let rpc = AgentServer::new(agent.clone())
        .with_servers(server_addrs)
        .with_leave(stop.clone());
    let rpc_stop = CancellationToken::new();

    let served = if config.server {
        run_server(
            &config,
            &addrs,
            listener,
            metrics,
            agent,
            grpc,
            members_rx,
            rpc,
            rpc_listener,
            &rpc_stop,
            &stop,
            &membership,
        )
        .await
    } else {
        let rpc_task = {
            let rpc_stop = rpc_stop.clone();
            tokio::spawn(rpc.serve(rpc_listener, async move { rpc_stop.cancelled().await }))
        };
        tracing::info!(node = %config.node_name, "rkron agent started; runs come over RPC on {rpc_local}");
        stop.cancelled().await;
        membership.announce_leaving().await;
        agent.drain(config.shutdown_grace_period).await;
        rpc_stop.cancel();
        let _ = rpc_task.await;
        Ok(())
    };
    membership.leave().await;
    served?;
    match failure.lock().ok().and_then(|mut slot| slot.take()) {
        Some(message) => Err(AgentError::Cluster(message)),
        None => Ok(()),
    }
}

/// The server part of [`run`]: store, node runtime, HTTP API and the RPC service with result
/// reporting. Returns once the node has stopped.
#[allow(clippy::too_many_arguments)]
async fn run_server(
    config: &AgentConfig,
    addrs: &Addresses,
    listener: Option<TcpListener>,
    metrics: Option<rkron_api::MetricsRender>,
    agent: LocalAgent,
    grpc: Arc<GrpcRunner>,
    members: watch::Receiver<Vec<Member>>,
    rpc: AgentServer,
    rpc_listener: TcpListener,
    rpc_stop: &CancellationToken,
    stop: &CancellationToken,
    membership: &Membership,
) -> Result<(), AgentError> {
    let store = store_from_config(config).await?;
    let clock = Arc::new(SystemClock);
    let plugins = Plugins {
        executors: ExecutorRegistry::with_builtins(),
        processors: ProcessorRegistry::with_builtins(ProcessorSettings {
            node_name: config.node_name.clone(),
            fluent_host: config.fluent_host.clone(),
            fluent_port: config.fluent_port,
            fluent_tag: config.fluent_tag.clone(),
        }),
        notifier: Notifier::new(notify_settings(config)),
    };
    let parts = ClusterParts {
        runner: Arc::new(ClusterRunner::new(agent.clone(), grpc)),
        agent,
        members,
        notices: Some(Arc::new(rkron_rpc::GrpcNotices)),
    };
    let node =
        Node::start_in_cluster(node_config(config, addrs), store, plugins, clock, parts).await?;
    let rpc_task = {
        let rpc_stop = rpc_stop.clone();
        tokio::spawn(
            rpc.with_node(node.clone())
                .serve(rpc_listener, async move { rpc_stop.cancelled().await }),
        )
    };
    let listener = match listener {
        Some(l) => l,
        None => {
            let addr = config.http_socket_addr().map_err(|e| AgentError::Listen {
                addr: config.http_addr.clone(),
                reason: e.to_string(),
            })?;
            TcpListener::bind(addr)
                .await
                .map_err(|e| AgentError::Listen {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(node = %config.node_name, http = %local, data_dir = %config.data_dir.display(), "rkron server started; HTTP API listening on {local}");
    let leave = {
        let stop = stop.clone();
        let hook: rkron_api::LeaveHook = Arc::new(move || stop.cancel());
        Some(hook)
    };
    let options = ApiOptions {
        metrics,
        max_body: config.http_max_body,
        restore_max_body: config.restore_max_body,
        leave,
        ui: config.ui,
    };
    let app = router(node.clone(), &options);
    let stopped = stop.clone();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stopped.cancelled().await })
        .await;
    membership.announce_leaving().await;
    node.shutdown().await;
    rpc_stop.cancel();
    let _ = rpc_task.await;
    served.map_err(|e| AgentError::Serve(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rkron_cluster::{Member, MemberStatus};

    use super::server_rpc_addrs;

    fn member(name: &str, server: bool, status: MemberStatus, rpc: &str) -> Member {
        let tags: BTreeMap<String, String> = [
            ("role", "dkron"),
            ("server", if server { "true" } else { "false" }),
            ("port", "8946"),
            ("rpc_addr", rpc),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Member {
            name: name.to_owned(),
            addr: "127.0.0.1".parse().expect("an address"),
            port: 8946,
            tags,
            status,
        }
    }

    /// A final report goes to every live server, this node's own included: a node that ran a
    /// run as an agent and then became the leader is the only server that takes it (an HA test
    /// saw such a report refused by every follower, over and over, while this node led).
    #[test]
    fn final_reports_go_to_every_live_server_this_one_included() {
        let members = [
            member("me", true, MemberStatus::Alive, "127.0.0.1:7001"),
            member("s2", true, MemberStatus::Alive, "127.0.0.1:7002"),
            member("s3", true, MemberStatus::Failed, "127.0.0.1:7003"),
            member("a1", false, MemberStatus::Alive, "127.0.0.1:7004"),
        ];
        let addrs: Vec<String> = server_rpc_addrs(&members)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(addrs, ["127.0.0.1:7001", "127.0.0.1:7002"]);
    }
}
