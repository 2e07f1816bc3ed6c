//! The answers to `ctl show`, `stats`, `fdb`, `conntrack` and `neighbors`:
//! plain serde values read from a running switch and the config in force.
//! The data plane exposes its tables and counters; these functions only
//! collect them, and `crate::render` only formats them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::config::{Attach, Config};
use crate::daemon::Switch;
use crate::stats::NetSnapshot;
use crate::topology::UplinkId;

/// `ctl show`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Show {
    /// Every network.
    pub networks: Vec<NetworkRow>,
    /// Every endpoint.
    pub endpoints: Vec<EndpointRow>,
    /// Every port the switch polls.
    pub ports: Vec<PortRow>,
    /// Port mappings.
    pub mappings: Vec<MappingRow>,
    /// Overlay peers and remote endpoints in force.
    pub overlay: OverlayView,
}

/// A network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRow {
    /// Name.
    pub name: String,
    /// `nat`, `overlay`, ...
    pub mode: String,
    /// Subnet, `a.b.c.d/n`.
    pub subnet: String,
    /// The gateway the switch owns.
    pub gateway: Option<Ipv4Addr>,
    /// The uplink port.
    pub uplink: Option<String>,
    /// Overlay VNI.
    pub vni: Option<u32>,
    /// The PMD threads that run it (more than one: spread).
    #[serde(default)]
    pub threads: Vec<usize>,
}

/// An endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRow {
    /// Name.
    pub name: String,
    /// Its network.
    pub network: String,
    /// Its namespace (endpoints on a TAP the switch made).
    pub netns: Option<String>,
    /// The switch port it sits behind.
    pub port: String,
    /// Address.
    pub ip: Ipv4Addr,
    /// MAC.
    pub mac: String,
}

/// A port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortRow {
    /// Name (endpoint or `[[port]]` name).
    pub name: String,
    /// `tap`, `afxdp` or `packet`.
    pub kind: String,
    /// The interface (for an endpoint's TAP: `eth0` in its namespace).
    pub iface: String,
    /// The switch's own address there (uplinks).
    pub ip: Option<String>,
    /// The network it switches in, or `uplink`.
    pub network: Option<String>,
}

/// A port mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingRow {
    /// The endpoint's network.
    pub network: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The uplink address it is published on.
    pub host_ip: Option<Ipv4Addr>,
    /// Port there.
    pub host_port: u16,
    /// The endpoint.
    pub endpoint: String,
    /// Port in the endpoint.
    pub port: u16,
}

/// Overlay peers and remote endpoints in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverlayView {
    /// Peer VTEPs by network.
    pub peers: Vec<PeerRow>,
    /// Remote endpoints (static and from the cluster store).
    pub remote_endpoints: Vec<RemoteRow>,
}

/// A peer VTEP of an overlay network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRow {
    /// The uplink carrying the network.
    pub uplink: String,
    /// The network.
    pub network: String,
    /// Its VNI.
    pub vni: u32,
    /// The peer's VTEP address.
    pub vtep: Ipv4Addr,
}

/// An endpoint on another host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteRow {
    /// The network.
    pub network: String,
    /// Address.
    pub ip: Ipv4Addr,
    /// MAC.
    pub mac: String,
    /// The VTEP of its host.
    pub vtep: Ipv4Addr,
}

/// `ctl stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Per port.
    pub ports: Vec<PortStats>,
    /// Per network.
    pub networks: Vec<NetStats>,
    /// Per uplink with NAT networks.
    pub nat: Vec<NatStats>,
    /// Per PMD thread.
    pub threads: Vec<ThreadStats>,
    /// The flow offload, when it runs.
    #[serde(default)]
    pub offload: Option<crate::stats::OffloadSnapshot>,
}

/// Counters of one port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortStats {
    /// Port name.
    pub port: String,
    /// Its network, if it switches in one.
    pub network: Option<String>,
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Drops by reason (only reasons that happened).
    pub drops: BTreeMap<String, u64>,
    /// Of `rx_packets`, the frames the kernel carried (flow offload).
    #[serde(default)]
    pub offloaded_packets: u64,
    /// Their bytes.
    #[serde(default)]
    pub offloaded_bytes: u64,
}

/// Counters of one network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetStats {
    /// Network name.
    pub network: String,
    /// Its counters.
    #[serde(flatten)]
    pub counters: NetSnapshot,
}

/// The NAT of one uplink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NatStats {
    /// The uplink.
    pub uplink: String,
    /// The networks sharing it.
    pub networks: Vec<String>,
    /// Frames translated on the way out.
    pub translated_out: u64,
    /// Frames translated on the way in.
    pub translated_in: u64,
    /// Hairpinned frames.
    pub hairpin: u64,
    /// ICMP errors translated.
    pub icmp_errors: u64,
    /// Fragments followed.
    pub fragments: u64,
    /// Connections in the table now.
    pub connections: u64,
    /// The table's bound (`[nat] max_entries`).
    pub max_connections: u64,
    /// Drops by reason (only reasons that happened).
    pub drops: BTreeMap<String, u64>,
}

/// How one PMD thread spends its time (as OVS's pmd-perf-show).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadStats {
    /// Thread index (`pmdN`).
    pub thread: usize,
    /// Seconds since it started.
    pub wall_secs: f64,
    /// Loop iterations.
    pub iterations: u64,
    /// Iterations that received frames.
    pub busy_iterations: u64,
    /// Frames received.
    pub frames: u64,
    /// Time in busy iterations over wall time, 0 to 1.
    pub busy_share: f64,
    /// Seconds in busy iterations.
    pub busy_secs: f64,
    /// Times it slept.
    pub sleeps: u64,
    /// Seconds asleep.
    pub sleep_secs: f64,
}

/// One learned MAC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdbEntry {
    /// Network.
    pub network: String,
    /// MAC.
    pub mac: String,
    /// Port it was learned on.
    pub port: String,
    /// Seconds since last seen.
    pub age_secs: f64,
}

/// Two ends of one direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEnds {
    /// Source address.
    pub src: Ipv4Addr,
    /// Source port (ICMP: echo id).
    pub sport: u16,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Destination port (ICMP: echo id).
    pub dport: u16,
}

impl From<nat::Endpoints> for FlowEnds {
    fn from(e: nat::Endpoints) -> FlowEnds {
        FlowEnds {
            src: e.src,
            sport: e.sport,
            dst: e.dst,
            dport: e.dport,
        }
    }
}

/// One NAT connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConntrackRow {
    /// The uplink whose NAT holds it.
    pub uplink: String,
    /// The internal network.
    pub network: String,
    /// `tcp`, `udp`, `icmp`.
    pub proto: String,
    /// TCP state, or `replied`/`unreplied` (UDP), `-` (ICMP).
    pub state: String,
    /// The first packet's direction, as it arrived.
    pub orig: FlowEnds,
    /// The answers' direction, as they arrive.
    pub reply: FlowEnds,
    /// Seconds until it expires without traffic.
    pub expires_in_s: u32,
    /// Holds an SNAT port.
    pub snat: bool,
    /// Came in through a port mapping.
    pub dnat: bool,
    /// A hairpin.
    pub hairpin: bool,
}

/// One next hop an uplink resolved (or is resolving).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighborRow {
    /// The uplink.
    pub uplink: String,
    /// The next hop.
    pub ip: Ipv4Addr,
    /// Its MAC, once resolved.
    pub mac: Option<String>,
    /// `reachable`, `stale`, `static` or `incomplete`.
    pub state: String,
    /// Seconds since confirmed (or asked); none for a static one.
    pub age_secs: Option<f64>,
}

/// Default `ctl conntrack` limit.
pub const CONNTRACK_LIMIT: usize = 1000;

/// `ctl show`.
pub fn show(switch: &Switch, cfg: &Config) -> Show {
    let dp = switch.dataplane();
    let topo = dp.topology();
    let networks = cfg
        .networks
        .iter()
        .map(|n| NetworkRow {
            name: n.name.clone(),
            mode: n.mode.as_str().to_string(),
            subnet: n.subnet.to_string(),
            gateway: n.gateway,
            uplink: n.uplink.clone(),
            vni: n.vni,
            threads: switch.threads_of(&n.name),
        })
        .collect();
    let endpoints = cfg
        .endpoints
        .iter()
        .map(|e| EndpointRow {
            name: e.name.clone(),
            network: e.network.clone(),
            netns: match &e.attach {
                Attach::Netns(ns) => Some(ns.clone()),
                Attach::Port(_) | Attach::HostTap(_) => None,
            },
            port: match &e.attach {
                Attach::Netns(_) | Attach::HostTap(_) => e.name.clone(),
                Attach::Port(p) => p.clone(),
            },
            ip: e.ip,
            mac: e.mac.to_string(),
        })
        .collect();
    // A detached endpoint's port keeps its id, nameless, until reused.
    let ports = topo
        .ports
        .iter()
        .filter(|p| !p.name.is_empty())
        .map(|p| {
            let (kind, iface, ip) = match (cfg.port(&p.name), cfg.endpoint(&p.name)) {
                (Some(pc), _) => (
                    pc.kind.as_str(),
                    pc.iface.clone(),
                    pc.ip.map(|i| i.to_string()),
                ),
                (None, Some(e)) => match &e.attach {
                    Attach::Netns(ns) => ("tap", format!("eth0 in {ns}"), None),
                    Attach::HostTap(t) => ("tap", format!("{t} (moved by its runtime)"), None),
                    Attach::Port(_) => ("-", "-".into(), None),
                },
                (None, None) => ("-", "-".into(), None),
            };
            PortRow {
                name: p.name.clone(),
                kind: kind.to_string(),
                iface,
                ip,
                network: match (p.network, p.uplink) {
                    (Some(n), _) => Some(topo.network(n).name.clone()),
                    (None, Some(_)) => Some("uplink".into()),
                    (None, None) => None,
                },
            }
        })
        .collect();
    let mappings = cfg
        .port_mappings
        .iter()
        .map(|m| MappingRow {
            network: m.network.clone(),
            protocol: m.protocol.as_str().to_string(),
            host_ip: cfg
                .network(&m.network)
                .and_then(|n| n.uplink.as_deref())
                .and_then(|u| cfg.port(u))
                .and_then(|p| p.ip)
                .map(|ip| ip.addr()),
            host_port: m.host_port,
            endpoint: m.endpoint.clone(),
            port: m.port,
        })
        .collect();
    Show {
        networks,
        endpoints,
        ports,
        mappings,
        overlay: dp.overlay_view(),
    }
}

/// Only the drop reasons that happened, by name.
fn nonzero(pairs: impl Iterator<Item = (&'static str, u64)>) -> BTreeMap<String, u64> {
    pairs
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), n))
        .collect()
}

/// `ctl stats`.
pub fn stats(switch: &Switch, cfg: &Config) -> Stats {
    let dp = switch.dataplane();
    let topo = dp.topology();
    let ports = dp
        .port_stats()
        .iter()
        .zip(&topo.ports)
        .filter(|(_, p)| !p.name.is_empty())
        .map(|(s, p)| PortStats {
            port: p.name.clone(),
            network: p.network.map(|n| topo.network(n).name.clone()),
            rx_packets: s.rx_packets,
            rx_bytes: s.rx_bytes,
            tx_packets: s.tx_packets,
            tx_bytes: s.tx_bytes,
            drops: nonzero(
                pmd::DropReason::ALL
                    .iter()
                    .map(|r| (r.name(), s.drops_of(*r))),
            ),
            offloaded_packets: s.offloaded_packets,
            offloaded_bytes: s.offloaded_bytes,
        })
        .collect();
    let networks = dp
        .net_stats()
        .iter()
        .zip(&topo.networks)
        .filter(|(_, n)| !n.removed)
        .map(|(s, n)| NetStats {
            network: n.name.clone(),
            counters: *s,
        })
        .collect();
    let nat = dp
        .nat_stats()
        .iter()
        .enumerate()
        .filter_map(|(u, c)| {
            let c = c.as_ref()?;
            Some(NatStats {
                uplink: topo.uplinks[u].name.clone(),
                networks: dp
                    .nat_networks(UplinkId(u as u16))
                    .iter()
                    .map(|n| topo.network(*n).name.clone())
                    .collect(),
                translated_out: c.translated_out.get(),
                translated_in: c.translated_in.get(),
                hairpin: c.hairpin.get(),
                icmp_errors: c.icmp_errors.get(),
                fragments: c.fragments.get(),
                connections: c.occupancy(),
                max_connections: u64::from(cfg.nat.max_entries),
                drops: nonzero(nat::NatDrop::ALL.iter().map(|r| (r.name(), c.drops_of(*r)))),
            })
        })
        .collect();
    let threads = dp
        .perf()
        .iter()
        .enumerate()
        .map(|(t, p)| ThreadStats {
            thread: t,
            wall_secs: p.wall_ns as f64 / 1e9,
            iterations: p.iterations,
            busy_iterations: p.busy_iterations,
            frames: p.frames,
            busy_share: p.busy_share(),
            busy_secs: p.busy_ns as f64 / 1e9,
            sleeps: p.sleeps,
            sleep_secs: p.sleep_ns as f64 / 1e9,
        })
        .collect();
    Stats {
        ports,
        networks,
        nat,
        threads,
        offload: dp.offload_stats(),
    }
}

/// `ctl fdb [NETWORK]`; an unknown network is an error.
pub fn fdb(switch: &Switch, network: Option<&str>) -> Result<Vec<FdbEntry>, String> {
    let dp = switch.dataplane();
    let topo = dp.topology();
    if let Some(n) = network {
        known_network(switch, n)?;
    }
    Ok(dp
        .fdb()
        .into_iter()
        .filter(|r| network.is_none_or(|n| r.network == n))
        .map(|r| FdbEntry {
            network: r.network,
            mac: r.mac.to_string(),
            port: topo
                .ports
                .get(r.port.0 as usize)
                .map_or_else(|| "?".into(), |p| p.name.clone()),
            age_secs: r.age_secs,
        })
        .collect())
}

fn known_network(switch: &Switch, name: &str) -> Result<(), String> {
    match switch.dataplane().topology().network_id(name) {
        Some(_) => Ok(()),
        None => Err(format!("no network named {name}")),
    }
}

/// `ctl conntrack [--network N] [--limit K]`.
pub fn conntrack(
    switch: &Switch,
    network: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<ConntrackRow>, String> {
    if let Some(n) = network {
        known_network(switch, n)?;
    }
    Ok(switch
        .dataplane()
        .conntrack(network, limit.unwrap_or(CONNTRACK_LIMIT)))
}

/// `ctl neighbors`.
pub fn neighbors(switch: &Switch) -> Vec<NeighborRow> {
    switch.dataplane().neighbors()
}
