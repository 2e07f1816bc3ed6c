//! The config file as serde reads it: every key of DESIGN.md's contract,
//! with the span of every value so the checker can name its place.
//!
//! Values that need their own parsing (addresses, CIDRs, MACs, the
//! `mode`/`kind`/`protocol`/`poll` words) stay strings here, so the checker
//! reports every bad one rather than serde's first. Numbers are typed: a
//! negative or too large one is serde's error, with its span.

use serde::Deserialize;
use toml::Spanned;

/// A value and its byte range in the file.
pub type S<T> = Spanned<T>;

/// The whole file. Tables and arrays of tables keep their own span (it
/// starts at the `[header]`), the place for an error about a key that is
/// missing from them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// HNS JSON files whose networks and endpoints join this file's.
    pub include: Option<S<Vec<S<String>>>>,
    pub switch: Option<S<RawSwitch>>,
    #[serde(default)]
    pub port: Vec<S<RawPort>>,
    #[serde(default)]
    pub network: Vec<S<RawNetwork>>,
    #[serde(default)]
    pub endpoint: Vec<S<RawEndpoint>>,
    #[serde(default)]
    pub port_mapping: Vec<S<RawPortMapping>>,
    #[serde(default)]
    pub remote_endpoint: Vec<S<RawRemoteEndpoint>>,
    pub cluster: Option<S<RawCluster>>,
    pub nat: Option<S<RawNat>>,
}

/// `[switch]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwitch {
    pub cores: Option<Vec<S<usize>>>,
    pub control: Option<S<String>>,
    pub metrics: Option<S<String>>,
    pub docker_plugin: Option<S<String>>,
    pub state: Option<S<String>>,
    pub poll: Option<S<String>>,
    pub mac_aging: Option<S<u32>>,
    pub fdb_size: Option<S<u32>>,
    pub log: Option<S<String>>,
    pub offload: Option<S<bool>>,
}

/// `[[port]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPort {
    pub name: S<String>,
    pub iface: S<String>,
    pub kind: Option<S<String>>,
    pub ip: Option<S<String>>,
    pub gateway: Option<S<String>>,
    pub mac: Option<S<String>>,
    pub neighbors: Option<Vec<S<RawNeighbor>>>,
}

/// `neighbors = [{ ip = "...", mac = "..." }]` on a `[[port]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNeighbor {
    pub ip: S<String>,
    pub mac: S<String>,
}

/// `[[network]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub name: S<String>,
    pub mode: Option<S<String>>,
    pub subnet: S<String>,
    pub gateway: Option<S<String>>,
    pub uplink: Option<S<String>>,
    pub vni: Option<S<u32>>,
    pub mtu: Option<S<u32>>,
    pub vxlan_port: Option<S<u16>>,
    pub gateway_mac: Option<S<String>>,
    pub reserved: Option<Vec<S<String>>>,
    pub mac_pool: Option<S<String>>,
    pub dns: Option<Vec<S<String>>>,
    pub endpoint_link: Option<S<String>>,
}

/// `[[endpoint]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub name: S<String>,
    pub network: S<String>,
    pub netns: Option<S<String>>,
    pub port: Option<S<String>>,
    pub ip: Option<S<String>>,
    pub mac: Option<S<String>>,
    pub allow_spoofing: Option<S<bool>>,
    pub acl: Option<Vec<S<RawAclRule>>>,
    pub nat_exceptions: Option<Vec<S<String>>>,
    pub routes: Option<Vec<S<RawRoute>>>,
}

/// `acl = [{ action = "block", direction = "in", ... }]` on an
/// `[[endpoint]]`. Addresses and ports are HNS's comma-separated strings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAclRule {
    pub action: S<String>,
    pub direction: S<String>,
    pub protocols: Option<S<String>>,
    pub local_addresses: Option<S<String>>,
    pub remote_addresses: Option<S<String>>,
    pub local_ports: Option<S<String>>,
    pub remote_ports: Option<S<String>>,
    pub priority: Option<S<u16>>,
}

/// `routes = [{ destination = "CIDR", next_hop = "IP" }]` on an
/// `[[endpoint]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub destination: S<String>,
    pub next_hop: Option<S<String>>,
}

/// `[[port_mapping]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPortMapping {
    pub network: Option<S<String>>,
    pub protocol: S<String>,
    pub host_port: S<u16>,
    pub endpoint: S<String>,
    pub port: S<u16>,
}

/// `[[remote_endpoint]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteEndpoint {
    pub network: S<String>,
    pub ip: S<String>,
    pub mac: Option<S<String>>,
    pub vtep: S<String>,
}

/// `[cluster]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub etcd: S<Vec<S<String>>>,
    pub prefix: Option<S<String>>,
    pub lease: Option<S<u32>>,
}

/// `[nat]`. Timeouts are in seconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNat {
    pub port_range: Option<S<String>>,
    pub max_entries: Option<S<u32>>,
    pub tcp_established_timeout: Option<S<u32>>,
    pub tcp_syn_sent_timeout: Option<S<u32>>,
    pub tcp_fin_wait_timeout: Option<S<u32>>,
    pub tcp_time_wait_timeout: Option<S<u32>>,
    pub tcp_close_timeout: Option<S<u32>>,
    pub udp_timeout: Option<S<u32>>,
    pub udp_stream_timeout: Option<S<u32>>,
    pub icmp_timeout: Option<S<u32>>,
}
