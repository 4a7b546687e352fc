//! Dkron's reserved member tags and the server test that reads them.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// `role`: every rkron node carries `role=dkron`, as Dkron's do.
pub const TAG_ROLE: &str = "role";
/// The value of [`TAG_ROLE`].
pub const ROLE_DKRON: &str = "dkron";
/// `server=true` on servers only.
pub const TAG_SERVER: &str = "server";
/// Dkron 1.x's name for [`TAG_SERVER`], also set on servers.
pub const TAG_DKRON_SERVER: &str = "dkron_server";
/// The node's data centre.
pub const TAG_DATACENTER: &str = "dc";
/// The node's region.
pub const TAG_REGION: &str = "region";
/// The software version.
pub const TAG_VERSION: &str = "version";
/// `bootstrap=1` when the server bootstraps the cluster.
pub const TAG_BOOTSTRAP: &str = "bootstrap";
/// `expect=<n>` when a bootstrap size is set.
pub const TAG_EXPECT: &str = "expect";
/// `rpc_addr=<advertise ip>:<rpc port>`.
pub const TAG_RPC_ADDR: &str = "rpc_addr";
/// `port=<rpc port>`.
pub const TAG_PORT: &str = "port";

/// The tags Dkron's agent sets itself; they overwrite user tags of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedTags {
    /// Whether the node is a server.
    pub server: bool,
    /// `datacenter`.
    pub datacenter: String,
    /// `region`.
    pub region: String,
    /// The software version.
    pub version: String,
    /// The advertised RPC address.
    pub rpc_addr: SocketAddr,
    /// `bootstrap`.
    pub bootstrap: bool,
    /// `bootstrap-expect`; 0 for none.
    pub bootstrap_expect: u32,
}

impl ReservedTags {
    /// User tags with the reserved ones merged over them.
    pub fn merge_over(&self, user_tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut tags = user_tags.clone();
        // A user tag must not make an agent look like a server.
        tags.remove(TAG_SERVER);
        tags.remove(TAG_DKRON_SERVER);
        let mut set = |key: &str, value: String| {
            tags.insert(key.to_string(), value);
        };
        set(TAG_ROLE, ROLE_DKRON.to_string());
        set(TAG_DATACENTER, self.datacenter.clone());
        set(TAG_REGION, self.region.clone());
        set(TAG_VERSION, self.version.clone());
        set(TAG_RPC_ADDR, self.rpc_addr.to_string());
        set(TAG_PORT, self.rpc_addr.port().to_string());
        if self.server {
            set(TAG_SERVER, "true".to_string());
            set(TAG_DKRON_SERVER, "true".to_string());
        }
        if self.bootstrap {
            set(TAG_BOOTSTRAP, "1".to_string());
        }
        if self.bootstrap_expect != 0 {
            set(TAG_EXPECT, self.bootstrap_expect.to_string());
        }
        tags
    }
}

/// Dkron's rule: a member is a server iff `role=dkron`, `server=true` and `port` parses.
pub fn is_server(tags: &BTreeMap<String, String>) -> bool {
    tags.get(TAG_ROLE).map(String::as_str) == Some(ROLE_DKRON)
        && tags.get(TAG_SERVER).map(String::as_str) == Some("true")
        && tags
            .get(TAG_PORT)
            .is_some_and(|port| port.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserved(server: bool) -> ReservedTags {
        ReservedTags {
            server,
            datacenter: "dc1".to_string(),
            region: "global".to_string(),
            version: "0.1.0".to_string(),
            rpc_addr: "10.0.0.5:6868".parse().unwrap(),
            bootstrap: false,
            bootstrap_expect: 0,
        }
    }

    #[test]
    fn reserved_tags_overwrite_user_tags() {
        let user = BTreeMap::from([
            ("role".to_string(), "web".to_string()),
            ("pool".to_string(), "blue".to_string()),
            ("server".to_string(), "true".to_string()),
        ]);
        let tags = reserved(false).merge_over(&user);
        let expected: BTreeMap<String, String> = [
            ("dc", "dc1"),
            ("pool", "blue"),
            ("port", "6868"),
            ("region", "global"),
            ("role", "dkron"),
            ("rpc_addr", "10.0.0.5:6868"),
            ("version", "0.1.0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(tags, expected);
        assert!(!is_server(&tags));
    }

    #[test]
    fn servers_carry_both_server_tags() {
        let mut server = reserved(true);
        server.bootstrap = true;
        server.bootstrap_expect = 3;
        let tags = server.merge_over(&BTreeMap::new());
        assert_eq!(tags["server"], "true");
        assert_eq!(tags["dkron_server"], "true");
        assert_eq!(tags["bootstrap"], "1");
        assert_eq!(tags["expect"], "3");
        assert!(is_server(&tags));
        let mut bad_port = tags.clone();
        bad_port.insert("port".to_string(), "x".to_string());
        assert!(!is_server(&bad_port));
    }
}
