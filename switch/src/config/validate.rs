//! The rules a config must follow, from the raw file to the model.
//!
//! The checker walks the whole file and records every violation at the
//! place of the offending key or value, then returns them all. It goes on
//! past a bad value (a bad subnet, a dangling name) by leaving out only the
//! checks that depend on it, so one mistake is one message, not a cascade.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use pmd::wire::MacAddr;

use super::error::{ConfigErrors, Diag};
use super::ipam::Ipam;
use super::raw::{
    RawCluster, RawEndpoint, RawFile, RawNat, RawNetwork, RawPort, RawPortMapping,
    RawRemoteEndpoint, RawSwitch, S,
};
use super::{
    Attach, ClusterCfg, Config, EndpointCfg, LogLevel, NatCfg, NetworkCfg, NetworkMode, PollCfg,
    PortCfg, PortKind, PortMappingCfg, Protocol, RemoteEndpointCfg, SwitchCfg, SUPPORTED_MODES,
};

/// Linux's IFNAMSIZ (16) less the terminating NUL.
const IFNAME_MAX: usize = 15;
/// Linux's NAME_MAX: an `ip netns` name is a file name under /run/netns.
const NETNS_NAME_MAX: usize = 255;
/// 24 bits (RFC 7348 section 5).
const VNI_MAX: u32 = 0x00ff_ffff;
/// The smallest MTU an IPv4 host must accept (RFC 791).
const MTU_MIN: u32 = 68;
/// SNAT never takes a port below this: those are the host's services'.
const NAT_PORT_MIN: u16 = 1024;

pub(crate) fn validate(raw: RawFile, file: &str, text: &str) -> Result<Config, ConfigErrors> {
    let mut d = Diag::new(file, text);
    let switch = check_switch(&mut d, raw.switch.as_ref().map(|s| s.get_ref()));
    let ports = check_ports(&mut d, &raw.port);
    let networks = check_networks(&mut d, &raw.network, &raw.port, &ports);
    let mut addrs = Addresses::new(&networks);
    let remote_endpoints = check_remote_endpoints(&mut d, &raw.remote_endpoint, &networks);
    let endpoints = check_endpoints(
        &mut d,
        &raw.endpoint,
        &raw.remote_endpoint,
        &remote_endpoints,
        &networks,
        &ports,
        &mut addrs,
    );
    let port_mappings = check_port_mappings(&mut d, &raw.port_mapping, &endpoints, &networks);
    let cluster = raw
        .cluster
        .as_ref()
        .map(|c| check_cluster(&mut d, c.get_ref()));
    let nat = raw
        .nat
        .as_ref()
        .map_or_else(NatCfg::default, |n| check_nat(&mut d, n.get_ref()));

    if !d.is_empty() {
        return Err(d.finish());
    }
    Ok(Config {
        switch,
        ports: ports.into_iter().map(|p| p.cfg).collect(),
        networks: networks
            .into_iter()
            .map(|n| n.cfg.expect("a network without errors has a subnet"))
            .collect(),
        endpoints: endpoints
            .into_iter()
            .map(|e| e.cfg.expect("an endpoint without errors is resolved"))
            .collect(),
        port_mappings,
        remote_endpoints: remote_endpoints
            .into_iter()
            .map(|r| r.expect("a remote endpoint without errors is resolved"))
            .collect(),
        cluster,
        nat,
    })
}

// ---- values ----------------------------------------------------------------

fn ipv4(d: &mut Diag, v: &S<String>, key: &str) -> Option<Ipv4Addr> {
    match v.get_ref().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            d.at(
                v.span(),
                format!(
                    "{key} {:?} is not an IPv4 address (like 10.0.0.1)",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

fn ipv4_net(d: &mut Diag, v: &S<String>, key: &str, example: &str) -> Option<Ipv4Net> {
    match v.get_ref().parse() {
        Ok(n) => Some(n),
        Err(_) => {
            d.at(
                v.span(),
                format!(
                    "{key} {:?} is not an IPv4 address with a prefix length (like {example})",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

fn unicast_mac(d: &mut Diag, v: &S<String>) -> Option<MacAddr> {
    match v.get_ref().parse::<MacAddr>() {
        Ok(m) if m.is_multicast() => {
            d.at(
                v.span(),
                format!("mac {m} is a multicast address; an interface needs a unicast MAC"),
            );
            None
        }
        Ok(m) if m == MacAddr::ZERO => {
            d.at(v.span(), "mac 00:00:00:00:00:00 is not a usable address");
            None
        }
        Ok(m) => Some(m),
        Err(e) => {
            d.at(v.span(), format!("mac {:?}: {e}", v.get_ref()));
            None
        }
    }
}

/// A number that must be at least `min`.
fn at_least(d: &mut Diag, v: Option<&S<u32>>, key: &str, min: u32, default: u32) -> u32 {
    match v {
        Some(v) if *v.get_ref() < min => {
            d.at(v.span(), format!("{key} must be at least {min}"));
            default
        }
        Some(v) => *v.get_ref(),
        None => default,
    }
}

/// Where `ip` stands in `subnet`: `None` for a host address, else why not.
fn not_a_host(ip: Ipv4Addr, subnet: Ipv4Net) -> Option<String> {
    if !subnet.contains(&ip) {
        Some(format!("is outside subnet {subnet}"))
    } else if subnet.prefix_len() < 31 && ip == subnet.network() {
        Some(format!("is the network address of {subnet}"))
    } else if subnet.prefix_len() < 31 && ip == subnet.broadcast() {
        Some(format!("is the broadcast address of {subnet}"))
    } else {
        None
    }
}

/// Why `s` is not a Linux interface name (dev_valid_name in the kernel).
fn iface_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        Some("is empty".into())
    } else if s.len() > IFNAME_MAX {
        Some(format!(
            "is {} bytes long; Linux interface names have at most {IFNAME_MAX}",
            s.len()
        ))
    } else if s == "." || s == ".." {
        Some("is not a valid interface name".into())
    } else if s.contains(['/', ':', '\0']) || s.chars().any(char::is_whitespace) {
        Some("contains '/', ':', NUL or whitespace, which Linux interface names cannot".into())
    } else {
        None
    }
}

/// Why `s` is neither an absolute path nor an `ip netns` name (iproute2's
/// is_valid_netns_name, plus the file name length limit).
fn netns_problem(s: &str) -> Option<String> {
    if s.contains('\0') {
        Some("contains NUL".into())
    } else if s.starts_with('/') {
        None
    } else if s.is_empty() {
        Some("is empty".into())
    } else if s == "." || s == ".." || s.contains('/') {
        Some(
            "is not an `ip netns` name (no '/', not . or ..) nor an absolute path \
             (like /proc/PID/ns/net)"
                .into(),
        )
    } else if s.len() > NETNS_NAME_MAX {
        Some(format!(
            "is longer than {NETNS_NAME_MAX} bytes, the limit of an `ip netns` name"
        ))
    } else {
        None
    }
}

/// Records each name once; a second use of a name is an error at it.
/// Returns name -> index of its first definition.
fn unique_names<'r>(
    d: &mut Diag,
    names: impl Iterator<Item = &'r S<String>>,
    what: &str,
) -> HashMap<&'r str, usize> {
    let mut seen: HashMap<&str, (usize, Range<usize>)> = HashMap::new();
    for (i, n) in names.enumerate() {
        if n.get_ref().is_empty() {
            d.at(n.span(), format!("{what} name is empty"));
            continue;
        }
        if let Some((_, first)) = seen.get(n.get_ref().as_str()) {
            let line = d.line(first);
            d.at(
                n.span(),
                format!(
                    "duplicate {what} name {:?} (first defined at line {line})",
                    n.get_ref()
                ),
            );
        } else {
            seen.insert(n.get_ref(), (i, n.span()));
        }
    }
    seen.into_iter().map(|(k, (i, _))| (k, i)).collect()
}

fn known_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<_> = names.collect();
    if v.is_empty() {
        "none is defined".into()
    } else {
        format!("defined: {}", v.join(", "))
    }
}

// ---- [switch] --------------------------------------------------------------

fn check_switch(d: &mut Diag, raw: Option<&RawSwitch>) -> SwitchCfg {
    let mut cfg = SwitchCfg::default();
    let Some(raw) = raw else { return cfg };
    if let Some(cores) = &raw.cores {
        let mut seen: HashMap<usize, Range<usize>> = HashMap::new();
        for c in cores {
            if let Some(first) = seen.get(c.get_ref()) {
                let line = d.line(first);
                d.at(
                    c.span(),
                    format!(
                        "core {} is listed twice (first at line {line})",
                        c.get_ref()
                    ),
                );
            } else {
                seen.insert(*c.get_ref(), c.span());
                cfg.cores.push(*c.get_ref());
            }
        }
    }
    if let Some(c) = &raw.control {
        if c.get_ref().is_empty() {
            d.at(c.span(), "control is empty; give the control socket's path");
        } else {
            cfg.control = PathBuf::from(c.get_ref());
        }
    }
    if let Some(m) = &raw.metrics {
        match m.get_ref().parse::<SocketAddr>() {
            Ok(a) => cfg.metrics = Some(a),
            Err(_) => d.at(
                m.span(),
                format!(
                    "metrics {:?} is not ADDRESS:PORT (like 127.0.0.1:9464)",
                    m.get_ref()
                ),
            ),
        }
    }
    if let Some(p) = &raw.poll {
        match p.get_ref().as_str() {
            "adaptive" => cfg.poll = PollCfg::Adaptive,
            "busy" => cfg.poll = PollCfg::Busy,
            other => d.at(
                p.span(),
                format!("unknown poll {other:?}; expected \"adaptive\" or \"busy\""),
            ),
        }
    }
    cfg.mac_aging_secs = at_least(
        d,
        raw.mac_aging.as_ref(),
        "mac_aging",
        1,
        cfg.mac_aging_secs,
    );
    cfg.fdb_size = at_least(d, raw.fdb_size.as_ref(), "fdb_size", 1, cfg.fdb_size);
    if let Some(l) = &raw.log {
        match LogLevel::parse(l.get_ref()) {
            Some(level) => cfg.log = Some(level),
            None => d.at(
                l.span(),
                format!(
                    "unknown log level {:?}; expected one of {}",
                    l.get_ref(),
                    LogLevel::NAMES.join(", ")
                ),
            ),
        }
    }
    cfg
}

// ---- [[port]] --------------------------------------------------------------

struct Port {
    cfg: PortCfg,
}

fn check_ports(d: &mut Diag, raw: &[S<RawPort>]) -> Vec<Port> {
    unique_names(d, raw.iter().map(|p| &p.get_ref().name), "port");
    let mut ifaces: HashMap<&str, Range<usize>> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for p in raw.iter().map(S::get_ref) {
        let iface = p.iface.get_ref();
        if let Some(why) = iface_problem(iface) {
            d.at(p.iface.span(), format!("iface {iface:?} {why}"));
        } else if let Some(first) = ifaces.get(iface.as_str()) {
            let line = d.line(first);
            d.at(
                p.iface.span(),
                format!("iface {iface:?} is already the iface of another port (line {line})"),
            );
        } else {
            ifaces.insert(iface, p.iface.span());
        }
        let kind = match p.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
            None | Some((_, "packet")) => PortKind::Packet,
            Some((_, "afxdp")) => PortKind::AfXdp,
            Some((_, "tap")) => PortKind::Tap,
            Some((k, other)) => {
                d.at(
                    k.span(),
                    format!(
                        "unknown port kind {other:?}; expected \"packet\", \"afxdp\" or \"tap\""
                    ),
                );
                PortKind::Packet
            }
        };
        let ip =
            p.ip.as_ref()
                .and_then(|v| ipv4_net(d, v, "ip", "10.99.0.2/24").map(|n| (v, n)));
        if let Some((v, n)) = ip {
            if let Some(why) = not_a_host(n.addr(), n.trunc()) {
                d.at(
                    v.span(),
                    format!("ip {} {why}; a port's ip is a host address", n.addr()),
                );
            }
        }
        let ip = ip.map(|(_, n)| n);
        let gateway = p.gateway.as_ref().and_then(|g| {
            let a = ipv4(d, g, "gateway")?;
            match ip {
                None if p.ip.is_none() => d.at(
                    g.span(),
                    "gateway needs ip: the port's own address and subnet, which the gateway is in",
                ),
                None => {}
                Some(n) if a == n.addr() => {
                    d.at(g.span(), format!("gateway {a} is the port's own ip"))
                }
                Some(n) => {
                    if let Some(why) = not_a_host(a, n.trunc()) {
                        d.at(g.span(), format!("gateway {a} {why} (the port's ip {n})"));
                    }
                }
            }
            Some(a)
        });
        let mac = p.mac.as_ref().and_then(|m| unicast_mac(d, m));
        let mut neighbors = Vec::new();
        for nb in p.neighbors.iter().flatten().map(S::get_ref) {
            let (Some(a), Some(m)) = (ipv4(d, &nb.ip, "ip"), unicast_mac(d, &nb.mac)) else {
                continue;
            };
            match ip {
                Some(n) if !n.trunc().contains(&a) => d.at(
                    nb.ip.span(),
                    format!("neighbor {a} is not on the port's subnet {}", n.trunc()),
                ),
                None => d.at(nb.ip.span(), "neighbors need the port's ip (its subnet)"),
                _ => neighbors.push((a, m)),
            }
        }
        out.push(Port {
            cfg: PortCfg {
                name: p.name.get_ref().clone(),
                iface: iface.clone(),
                kind,
                ip,
                gateway,
                mac,
                neighbors,
            },
        });
    }
    out
}

fn find_port<'a>(ports: &'a [Port], name: &str) -> Option<&'a Port> {
    ports.iter().find(|p| p.cfg.name == name)
}

// ---- [[network]] -----------------------------------------------------------

struct Network<'r> {
    raw: &'r S<RawNetwork>,
    name: &'r str,
    /// The mode as far as it could be read (nat when unknown).
    mode: NetworkMode,
    /// `None` when the subnet is bad: checks against it are left out.
    cfg: Option<NetworkCfg>,
}

impl Network<'_> {
    fn subnet(&self) -> Option<Ipv4Net> {
        self.cfg.as_ref().map(|c| c.subnet)
    }
}

fn mode_of(d: &mut Diag, v: Option<&S<String>>) -> NetworkMode {
    let Some(v) = v else {
        return NetworkMode::Nat;
    };
    let Some(mode) = NetworkMode::from_name(v.get_ref()) else {
        d.at(
            v.span(),
            format!(
                "unknown network mode {:?}; expected one of nat, bridge, transparent, \
                 l2bridge, l2tunnel, overlay",
                v.get_ref()
            ),
        );
        return NetworkMode::Nat;
    };
    if !mode.is_supported() {
        let supported: Vec<_> = SUPPORTED_MODES.iter().map(|m| m.as_str()).collect();
        d.at(
            v.span(),
            format!(
                "network mode {:?} is not yet supported (see the {} issue); supported: {}",
                v.get_ref(),
                mode.as_str(),
                supported.join(", ")
            ),
        );
    }
    mode
}

fn check_networks<'r>(
    d: &mut Diag,
    raw: &'r [S<RawNetwork>],
    raw_ports: &[S<RawPort>],
    ports: &[Port],
) -> Vec<Network<'r>> {
    unique_names(d, raw.iter().map(|n| &n.get_ref().name), "network");
    let mut out: Vec<Network<'r>> = Vec::with_capacity(raw.len());
    for rn in raw {
        let n = rn.get_ref();
        let mode = mode_of(d, n.mode.as_ref());
        let overlay = mode == NetworkMode::Overlay;

        let subnet = ipv4_net(d, &n.subnet, "subnet", "172.30.0.0/24").and_then(|s| {
            if s != s.trunc() {
                d.at(
                    n.subnet.span(),
                    format!("subnet {s} has host bits set; did you mean {}?", s.trunc()),
                );
                None
            } else if s.prefix_len() > 30 {
                d.at(
                    n.subnet.span(),
                    format!("subnet {s} is too small: a network needs at least a /30"),
                );
                None
            } else {
                Some(s)
            }
        });
        if let Some(s) = subnet {
            for other in &out {
                let Some(o) = other.subnet() else { continue };
                if s.contains(&o) || o.contains(&s) {
                    let line = d.line(&other.raw.get_ref().subnet.span());
                    d.at(
                        n.subnet.span(),
                        format!(
                            "subnet {s} overlaps subnet {o} of network {:?} (line {line})",
                            other.name
                        ),
                    );
                }
            }
        }

        let mut gateway = n.gateway.as_ref().and_then(|g| {
            let a = ipv4(d, g, "gateway")?;
            if let Some(why) = subnet.and_then(|s| not_a_host(a, s)) {
                d.at(g.span(), format!("gateway {a} {why}"));
            }
            Some(a)
        });
        if gateway.is_none() && n.gateway.is_none() && mode == NetworkMode::Nat {
            // As Docker does: the first host address.
            gateway = subnet.and_then(|s| s.hosts().next());
        }

        let uplink = n.uplink.as_ref().and_then(|u| {
            let Some(port) = find_port(ports, u.get_ref()) else {
                d.at(
                    u.span(),
                    format!(
                        "uplink {:?} is not a [[port]]; {}",
                        u.get_ref(),
                        known_list(
                            raw_ports
                                .iter()
                                .map(|p| p.get_ref().name.get_ref().as_str())
                        )
                    ),
                );
                return None;
            };
            if port.cfg.ip.is_none() && raw_ports_ip_given(raw_ports, u.get_ref()) {
                // The port's ip is bad: already reported there.
            } else if port.cfg.ip.is_none() && overlay {
                d.at(
                    u.span(),
                    format!(
                        "uplink {:?} has no ip; an overlay uses it as the local VTEP address",
                        u.get_ref()
                    ),
                );
            } else if port.cfg.ip.is_none() && mode == NetworkMode::Nat {
                d.at(
                    u.span(),
                    format!(
                        "uplink {:?} has no ip; a nat network masquerades to it",
                        u.get_ref()
                    ),
                );
            }
            Some(u.get_ref().clone())
        });
        if overlay && n.uplink.is_none() {
            d.at(
                rn.span(),
                "an overlay network needs uplink = a [[port]] with an ip (the local VTEP address)",
            );
        }

        let vni = match (&n.vni, overlay) {
            (Some(v), false) => {
                d.at(
                    v.span(),
                    format!(
                        "vni is only for overlay networks; this one is {}",
                        mode.as_str()
                    ),
                );
                None
            }
            (Some(v), true) if !(1..=VNI_MAX).contains(v.get_ref()) => {
                d.at(
                    v.span(),
                    format!(
                        "vni {} is out of range 1..={VNI_MAX} (24 bits)",
                        v.get_ref()
                    ),
                );
                None
            }
            (Some(v), true) => Some(*v.get_ref()),
            (None, true) => {
                d.at(
                    rn.span(),
                    format!("an overlay network needs vni (1..={VNI_MAX})"),
                );
                None
            }
            (None, false) => None,
        };
        let vxlan_port = match &n.vxlan_port {
            Some(v) if !overlay => {
                d.at(
                    v.span(),
                    format!(
                        "vxlan_port is only for overlay networks; this one is {}",
                        mode.as_str()
                    ),
                );
                4789
            }
            Some(v) if *v.get_ref() == 0 => {
                d.at(v.span(), "vxlan_port must be 1..=65535");
                4789
            }
            Some(v) => *v.get_ref(),
            None => 4789,
        };
        let mtu = n.mtu.as_ref().and_then(|m| {
            if (MTU_MIN..=65535).contains(m.get_ref()) {
                Some(*m.get_ref())
            } else {
                d.at(
                    m.span(),
                    format!("mtu {} is out of range {MTU_MIN}..=65535", m.get_ref()),
                );
                None
            }
        });

        out.push(Network {
            raw: rn,
            name: n.name.get_ref(),
            mode,
            cfg: subnet.map(|subnet| NetworkCfg {
                name: n.name.get_ref().clone(),
                mode,
                subnet,
                gateway,
                uplink,
                vni,
                mtu,
                vxlan_port,
                gateway_mac: n.gateway_mac.as_ref().and_then(|m| unicast_mac(d, m)),
            }),
        });
    }
    out
}

fn raw_ports_ip_given(raw_ports: &[S<RawPort>], name: &str) -> bool {
    raw_ports
        .iter()
        .any(|p| p.get_ref().name.get_ref() == name && p.get_ref().ip.is_some())
}

fn find_network<'a, 'r>(networks: &'a [Network<'r>], name: &str) -> Option<&'a Network<'r>> {
    networks.iter().find(|n| n.name == name)
}

fn dangling_network(d: &mut Diag, v: &S<String>, networks: &[Network]) {
    d.at(
        v.span(),
        format!(
            "network {:?} is not a [[network]]; {}",
            v.get_ref(),
            known_list(networks.iter().map(|n| n.name))
        ),
    );
}

// ---- addresses in a network ------------------------------------------------

/// Who holds which address and MAC in each network, and its allocator.
struct Addresses {
    ipam: HashMap<String, Ipam>,
    /// (network, ip) -> (holder, line).
    ips: HashMap<(String, Ipv4Addr), (String, usize)>,
    /// (network, mac) -> (holder, line).
    macs: HashMap<(String, MacAddr), (String, usize)>,
}

impl Addresses {
    fn new(networks: &[Network]) -> Addresses {
        let mut a = Addresses {
            ipam: HashMap::new(),
            ips: HashMap::new(),
            macs: HashMap::new(),
        };
        for cfg in networks.iter().filter_map(|n| n.cfg.as_ref()) {
            let mut ipam = Ipam::new(cfg.subnet);
            if let Some(g) = cfg.gateway {
                ipam.reserve(g);
            }
            // A duplicate network name keeps its first definition.
            a.ipam.entry(cfg.name.clone()).or_insert(ipam);
        }
        a
    }

    /// Claims `ip` in `network` for `holder`; if someone has it, returns
    /// who and where.
    fn claim_ip(
        &mut self,
        network: &str,
        ip: Ipv4Addr,
        holder: String,
        line: usize,
    ) -> Result<(), (String, usize)> {
        let key = (network.to_string(), ip);
        if let Some(h) = self.ips.get(&key) {
            return Err(h.clone());
        }
        self.ips.insert(key, (holder, line));
        if let Some(ipam) = self.ipam.get_mut(network) {
            ipam.reserve(ip);
        }
        Ok(())
    }

    fn claim_mac(
        &mut self,
        network: &str,
        mac: MacAddr,
        holder: String,
        line: usize,
    ) -> Result<(), (String, usize)> {
        let key = (network.to_string(), mac);
        if let Some(h) = self.macs.get(&key) {
            return Err(h.clone());
        }
        self.macs.insert(key, (holder, line));
        Ok(())
    }
}

/// Checks an address given for an endpoint or remote endpoint against its
/// network: a host address of the subnet, not the gateway.
fn check_member_ip(d: &mut Diag, v: &S<String>, net: Option<&Network>) -> Option<Ipv4Addr> {
    let ip = ipv4(d, v, "ip")?;
    let cfg = net.and_then(|n| n.cfg.as_ref())?;
    if let Some(why) = not_a_host(ip, cfg.subnet) {
        d.at(v.span(), format!("ip {ip} {why} of network {:?}", cfg.name));
        return None;
    }
    if cfg.gateway == Some(ip) {
        d.at(
            v.span(),
            format!("ip {ip} is the gateway of network {:?}", cfg.name),
        );
        return None;
    }
    Some(ip)
}

// ---- [[remote_endpoint]] ---------------------------------------------------

fn check_remote_endpoints(
    d: &mut Diag,
    raw: &[S<RawRemoteEndpoint>],
    networks: &[Network],
) -> Vec<Option<RemoteEndpointCfg>> {
    let mut out = Vec::with_capacity(raw.len());
    for r in raw.iter().map(S::get_ref) {
        let net = find_network(networks, r.network.get_ref());
        match net {
            None => dangling_network(d, &r.network, networks),
            Some(n) if n.mode != NetworkMode::Overlay => d.at(
                r.network.span(),
                format!(
                    "remote endpoints belong to overlay networks; {:?} is {}",
                    n.name,
                    n.mode.as_str()
                ),
            ),
            Some(_) => {}
        }
        let ip = check_member_ip(d, &r.ip, net);
        let mac = match &r.mac {
            Some(m) => unicast_mac(d, m),
            None => ip.map(MacAddr::from_ipv4),
        };
        let vtep = ipv4(d, &r.vtep, "vtep");
        out.push(match (net, ip, mac, vtep) {
            (Some(_), Some(ip), Some(mac), Some(vtep)) => Some(RemoteEndpointCfg {
                network: r.network.get_ref().clone(),
                ip,
                mac,
                vtep,
            }),
            _ => None,
        });
    }
    out
}

// ---- [[endpoint]] ----------------------------------------------------------

struct Endpoint<'r> {
    raw: &'r RawEndpoint,
    cfg: Option<EndpointCfg>,
}

fn check_endpoints<'r>(
    d: &mut Diag,
    raw: &'r [S<RawEndpoint>],
    raw_remotes: &[S<RawRemoteEndpoint>],
    remotes: &[Option<RemoteEndpointCfg>],
    networks: &[Network],
    ports: &[Port],
    addrs: &mut Addresses,
) -> Vec<Endpoint<'r>> {
    unique_names(d, raw.iter().map(|e| &e.get_ref().name), "endpoint");

    // Which network uses which port as its uplink.
    let uplinks: HashMap<&str, &str> = networks
        .iter()
        .filter_map(|n| Some((n.cfg.as_ref()?.uplink.as_deref()?, n.name)))
        .collect();
    let mut port_users: HashMap<&str, (&str, usize)> = HashMap::new();

    // First pass: everything but IPAM, and claim the addresses the file
    // gives, so an endpoint without `ip` never takes one a later endpoint
    // or a remote endpoint names.
    let mut given_ips = Vec::with_capacity(raw.len());
    let mut attaches = Vec::with_capacity(raw.len());
    for re in raw {
        let e = re.get_ref();
        let name = e.name.get_ref();
        let net = find_network(networks, e.network.get_ref());
        if net.is_none() {
            dangling_network(d, &e.network, networks);
        }

        let attach = match (&e.netns, &e.port) {
            (Some(_), Some(p)) => {
                d.at(p.span(), "an endpoint has either netns or port, not both");
                None
            }
            (None, None) => {
                d.at(
                    re.span(),
                    format!(
                        "endpoint {name:?} needs netns (a namespace) or port (a [[port]] it \
                         sits behind)"
                    ),
                );
                None
            }
            (Some(ns), None) => match netns_problem(ns.get_ref()) {
                Some(why) => {
                    d.at(ns.span(), format!("netns {:?} {why}", ns.get_ref()));
                    None
                }
                None => Some(Attach::Netns(ns.get_ref().clone())),
            },
            (None, Some(p)) => {
                let pname = p.get_ref().as_str();
                if find_port(ports, pname).is_none() {
                    d.at(
                        p.span(),
                        format!(
                            "port {pname:?} is not a [[port]]; {}",
                            known_list(ports.iter().map(|p| p.cfg.name.as_str()))
                        ),
                    );
                    None
                } else if let Some(network) = uplinks.get(pname) {
                    d.at(
                        p.span(),
                        format!(
                            "port {pname:?} is the uplink of network {network:?}; an \
                             endpoint cannot sit behind an uplink"
                        ),
                    );
                    None
                } else if let Some((other, line)) = port_users.get(pname) {
                    d.at(
                        p.span(),
                        format!("port {pname:?} already carries endpoint {other:?} (line {line})"),
                    );
                    None
                } else {
                    port_users.insert(pname, (name, d.line(&p.span())));
                    Some(Attach::Port(pname.to_string()))
                }
            }
        };
        attaches.push(attach);

        let ip = e.ip.as_ref().and_then(|v| {
            let ip = check_member_ip(d, v, net)?;
            let net = net?;
            let line = d.line(&v.span());
            match addrs.claim_ip(net.name, ip, format!("endpoint {name:?}"), line) {
                Ok(()) => Some(ip),
                Err((holder, at)) => {
                    d.at(
                        v.span(),
                        format!(
                            "ip {ip} is already {holder}'s in network {:?} (line {at})",
                            net.name
                        ),
                    );
                    None
                }
            }
        });
        given_ips.push(ip);
    }
    for (rr, r) in raw_remotes.iter().zip(remotes) {
        let Some(r) = r else { continue };
        let v = &rr.get_ref().ip;
        let line = d.line(&v.span());
        if let Err((holder, at)) =
            addrs.claim_ip(&r.network, r.ip, "a remote endpoint".into(), line)
        {
            d.at(
                v.span(),
                format!(
                    "ip {} is already {holder}'s in network {:?} (line {at})",
                    r.ip, r.network
                ),
            );
        }
    }

    // Second pass: IPAM in file order, then MACs.
    let mut out = Vec::with_capacity(raw.len());
    for ((re, attach), given) in raw.iter().zip(attaches).zip(given_ips) {
        let e = re.get_ref();
        let name = e.name.get_ref();
        let net = find_network(networks, e.network.get_ref()).and_then(|n| n.cfg.as_ref());
        let ip = match (given, &e.ip, net) {
            (Some(ip), _, _) => Some(ip),
            (None, None, Some(cfg)) => match addrs.ipam.get_mut(&cfg.name).and_then(Ipam::allocate)
            {
                Some(ip) => Some(ip),
                None => {
                    d.at(
                        re.span(),
                        format!(
                            "network {:?} ({}) has no free address left for endpoint \
                             {name:?}; give it an ip or widen the subnet",
                            cfg.name, cfg.subnet
                        ),
                    );
                    None
                }
            },
            _ => None,
        };
        let mac = match (&e.mac, ip) {
            (Some(m), _) => unicast_mac(d, m),
            (None, ip) => ip.map(MacAddr::from_ipv4),
        };
        if let (Some(cfg), Some(m)) = (net, mac) {
            let span = e.mac.as_ref().map_or_else(|| re.span(), |m| m.span());
            let line = d.line(&span);
            if let Err((holder, at)) =
                addrs.claim_mac(&cfg.name, m, format!("endpoint {name:?}"), line)
            {
                d.at(
                    span,
                    format!(
                        "mac {m} is already {holder}'s in network {:?} (line {at})",
                        cfg.name
                    ),
                );
            }
        }
        out.push(Endpoint {
            raw: e,
            cfg: match (net, attach, ip, mac) {
                (Some(cfg), Some(attach), Some(ip), Some(mac)) => Some(EndpointCfg {
                    name: name.clone(),
                    network: cfg.name.clone(),
                    attach,
                    ip,
                    mac,
                    ip_given: e.ip.is_some(),
                }),
                _ => None,
            },
        });
    }
    // Remote endpoints' MACs last: a clash is reported at the remote
    // endpoint, whose MAC was copied from another host's config.
    for (rr, r) in raw_remotes.iter().zip(remotes) {
        let Some(r) = r else { continue };
        let span = rr
            .get_ref()
            .mac
            .as_ref()
            .map_or_else(|| rr.span(), |m| m.span());
        let line = d.line(&span);
        if let Err((holder, at)) =
            addrs.claim_mac(&r.network, r.mac, "a remote endpoint".into(), line)
        {
            d.at(
                span,
                format!(
                    "mac {} is already {holder}'s in network {:?} (line {at})",
                    r.mac, r.network
                ),
            );
        }
    }
    out
}

// ---- [[port_mapping]] ------------------------------------------------------

fn check_port_mappings(
    d: &mut Diag,
    raw: &[S<RawPortMapping>],
    endpoints: &[Endpoint],
    networks: &[Network],
) -> Vec<PortMappingCfg> {
    let mut out = Vec::with_capacity(raw.len());
    // The networks of an uplink share its mapping table: (uplink,
    // protocol, host port) -> (the endpoint mapped there, its line).
    let mut host_ports: HashMap<(Option<&str>, Protocol, u16), (&str, usize)> = HashMap::new();
    let mut uplink_reported: Vec<&str> = Vec::new();
    for rm in raw {
        let m = rm.get_ref();
        let protocol = match m.protocol.get_ref().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            other => {
                d.at(
                    m.protocol.span(),
                    format!("unknown protocol {other:?}; expected \"tcp\" or \"udp\""),
                );
                None
            }
        };
        for (key, v) in [("host_port", &m.host_port), ("port", &m.port)] {
            if *v.get_ref() == 0 {
                d.at(v.span(), format!("{key} must be 1..=65535"));
            }
        }
        let ep = endpoints
            .iter()
            .find(|e| e.raw.name.get_ref() == m.endpoint.get_ref());
        let ep_network = ep.map(|e| e.raw.network.get_ref().as_str());
        if ep.is_none() {
            d.at(
                m.endpoint.span(),
                format!(
                    "endpoint {:?} is not an [[endpoint]]; {}",
                    m.endpoint.get_ref(),
                    known_list(endpoints.iter().map(|e| e.raw.name.get_ref().as_str()))
                ),
            );
        }
        if let Some(n) = &m.network {
            match ep_network {
                _ if find_network(networks, n.get_ref()).is_none() => {
                    dangling_network(d, n, networks)
                }
                Some(en) if en != n.get_ref() => d.at(
                    n.span(),
                    format!(
                        "endpoint {:?} is on network {en:?}, not {:?}; leave network out or \
                         make it the endpoint's",
                        m.endpoint.get_ref(),
                        n.get_ref()
                    ),
                ),
                _ => {}
            }
        }
        let net = ep_network.and_then(|en| find_network(networks, en));
        if let Some(net) = net {
            if net.mode != NetworkMode::Nat {
                d.at(
                    rm.span(),
                    format!(
                        "port mappings are for nat networks; {:?} is {}",
                        net.name,
                        net.mode.as_str()
                    ),
                );
            } else if net.raw.get_ref().uplink.is_none() && !uplink_reported.contains(&net.name) {
                uplink_reported.push(net.name);
                d.at(
                    rm.span(),
                    format!(
                        "a port mapping needs network {:?} to have an uplink with an ip \
                         (the address host_port is mapped on)",
                        net.name
                    ),
                );
            }
        }
        if let Some(p) = protocol {
            let uplink = net.and_then(|n| n.raw.get_ref().uplink.as_ref());
            let uplink = uplink.map(|u| u.get_ref().as_str());
            let hp = *m.host_port.get_ref();
            if let Some((first, line)) = host_ports.get(&(uplink, p, hp)) {
                let on = uplink.map_or(String::new(), |u| format!(" on uplink {u:?}"));
                d.at(
                    m.host_port.span(),
                    format!(
                        "{} host_port {hp} is already mapped{on} to endpoint {first:?} (line {line})",
                        p.as_str()
                    ),
                );
            } else {
                let line = d.line(&m.host_port.span());
                host_ports.insert((uplink, p, hp), (m.endpoint.get_ref(), line));
            }
        }
        if let (Some(protocol), Some(en)) = (protocol, ep_network) {
            out.push(PortMappingCfg {
                network: en.to_string(),
                protocol,
                host_port: *m.host_port.get_ref(),
                endpoint: m.endpoint.get_ref().clone(),
                port: *m.port.get_ref(),
            });
        }
    }
    out
}

// ---- [cluster] -------------------------------------------------------------

fn check_cluster(d: &mut Diag, c: &RawCluster) -> ClusterCfg {
    if c.etcd.get_ref().is_empty() {
        d.at(
            c.etcd.span(),
            "etcd needs at least one endpoint URL (like \"http://127.0.0.1:2379\")",
        );
    }
    for u in c.etcd.get_ref() {
        let s = u.get_ref();
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"));
        if rest.unwrap_or_default().is_empty() {
            d.at(
                u.span(),
                format!("etcd endpoint {s:?} is not an http:// or https:// URL"),
            );
        }
    }
    let prefix = match &c.prefix {
        Some(p) if !p.get_ref().starts_with('/') => {
            d.at(
                p.span(),
                format!("prefix {:?} must start with '/'", p.get_ref()),
            );
            String::new()
        }
        Some(p) => p.get_ref().clone(),
        None => "/podswitch".to_string(),
    };
    ClusterCfg {
        etcd: c
            .etcd
            .get_ref()
            .iter()
            .map(|u| u.get_ref().clone())
            .collect(),
        prefix,
        lease_secs: at_least(d, c.lease.as_ref(), "lease", 1, 10),
    }
}

// ---- [nat] -----------------------------------------------------------------

fn check_nat(d: &mut Diag, n: &RawNat) -> NatCfg {
    let def = NatCfg::default();
    let port_range = n.port_range.as_ref().map_or(def.port_range, |v| {
        let parsed = v.get_ref().split_once('-').and_then(|(lo, hi)| {
            Some((
                lo.trim().parse::<u16>().ok()?,
                hi.trim().parse::<u16>().ok()?,
            ))
        });
        match parsed {
            None => {
                d.at(
                    v.span(),
                    format!(
                        "port_range {:?} is not LOW-HIGH (like \"32768-60999\")",
                        v.get_ref()
                    ),
                );
                def.port_range
            }
            Some((lo, hi)) if lo > hi => {
                d.at(
                    v.span(),
                    format!("port_range {lo}-{hi} is empty: LOW must not exceed HIGH"),
                );
                def.port_range
            }
            Some((lo, hi)) if lo < NAT_PORT_MIN => {
                d.at(
                    v.span(),
                    format!("port_range {lo}-{hi} must lie within {NAT_PORT_MIN}-65535"),
                );
                def.port_range
            }
            Some(r) => r,
        }
    });
    let t = |d: &mut Diag, v: &Option<S<u32>>, key: &str, default: u32| {
        at_least(d, v.as_ref(), key, 1, default)
    };
    NatCfg {
        port_range,
        max_entries: t(d, &n.max_entries, "max_entries", def.max_entries),
        tcp_established: t(
            d,
            &n.tcp_established_timeout,
            "tcp_established_timeout",
            def.tcp_established,
        ),
        tcp_syn_sent: t(
            d,
            &n.tcp_syn_sent_timeout,
            "tcp_syn_sent_timeout",
            def.tcp_syn_sent,
        ),
        tcp_fin_wait: t(
            d,
            &n.tcp_fin_wait_timeout,
            "tcp_fin_wait_timeout",
            def.tcp_fin_wait,
        ),
        tcp_time_wait: t(
            d,
            &n.tcp_time_wait_timeout,
            "tcp_time_wait_timeout",
            def.tcp_time_wait,
        ),
        tcp_close: t(d, &n.tcp_close_timeout, "tcp_close_timeout", def.tcp_close),
        udp: t(d, &n.udp_timeout, "udp_timeout", def.udp),
        udp_stream: t(
            d,
            &n.udp_stream_timeout,
            "udp_stream_timeout",
            def.udp_stream,
        ),
        icmp: t(d, &n.icmp_timeout, "icmp_timeout", def.icmp),
    }
}
