//! The config file: TOML, the keys of DESIGN.md's contract.
//!
//! [`parse`] and [`load`] turn a file into a [`Config`]: plain, validated
//! and resolved values (IPAM has given every endpoint an address and a MAC,
//! defaults are filled in), or every error found, each with file, line and
//! column. `podswitch check` prints those errors; `run` and reload compile
//! the `Config` into the data path's snapshot. Whether an `iface` or a
//! `netns` exists is not checked here: that is `run`'s job.
//!
//! - `raw`: the file as serde reads it, with spans.
//! - `validate`: the rules, from raw to this model.
//! - `ipam`: next-free-address allocation in a subnet.
//! - `error`: errors and byte offset to line:column.
//! - `hns`: HNS JSON (`include = [...]`, `podswitch hns import`).

mod error;
mod hns;
pub(crate) mod ipam;
mod raw;
mod validate;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

pub use error::{line_col, ConfigError, ConfigErrors};
pub use ipam::Ipam;
use ipnet::Ipv4Net;
pub use pmd::wire::MacAddr;

/// Reads and checks the config file at `path`. An unreadable file is one
/// error naming it; otherwise as [`parse`], with the path as the file name.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &file),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file,
            line: 0,
            col: 0,
            message: format!("cannot read config file: {e}"),
        }])),
    }
}

/// Checks config `text`; `file` is the name errors carry. A TOML syntax
/// error, an unknown key or a value of the wrong type is the one error the
/// TOML parser reports; past that, every rule is checked and every
/// violation reported.
///
/// `include = ["net.json", ...]` names HNS JSON files, relative to
/// `file`'s directory: their networks and endpoints join the file's, and
/// errors in them name their own file, line and column.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let mut raw: raw::RawFile =
        toml::from_str(text).map_err(|e| ConfigErrors(vec![error::from_toml(file, text, &e)]))?;
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut sources: Vec<error::Source> = Vec::new();
    let mut unreadable = Vec::new();
    for inc in raw.include.iter().flat_map(|i| i.get_ref()) {
        let path = dir.join(inc.get_ref());
        let base = sources
            .last()
            .map_or(text.len() + 1, error::Source::next_base);
        match std::fs::read_to_string(&path) {
            Ok(t) => sources.push(error::Source {
                file: path.display().to_string(),
                text: t,
                base,
            }),
            Err(e) => unreadable.push((inc.span(), format!("cannot read {}: {e}", path.display()))),
        }
    }
    let mut d = error::Diag::with_includes(file, text, &sources);
    for (span, message) in unreadable {
        d.at(span, message);
    }
    let mut objs = hns::HnsObjects::default();
    for src in &sources {
        hns::read(&mut d, src, &raw.port, &mut objs);
    }
    raw.network.extend(objs.networks);
    raw.endpoint.extend(objs.endpoints);
    raw.port_mapping.extend(objs.port_mappings);
    raw.remote_endpoint.extend(objs.remote_endpoints);
    validate::validate(raw, d)
}

/// `podswitch hns import`: the TOML tables HNS JSON `files` map onto, or
/// every error in them. With `config` (its text and file name), adapter
/// names resolve to its `[[port]]`s by name or iface, as an include does;
/// without, they are written as the ports' names.
pub fn import_hns(files: &[PathBuf], config: Option<(&str, &str)>) -> Result<String, ConfigErrors> {
    let ports = match config {
        Some((text, file)) => {
            toml::from_str::<raw::RawFile>(text)
                .map_err(|e| ConfigErrors(vec![error::from_toml(file, text, &e)]))?
                .port
        }
        None => Vec::new(),
    };
    let mut sources: Vec<error::Source> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: f.display().to_string(),
                line: 0,
                col: 0,
                message: format!("cannot read HNS JSON file: {e}"),
            }])
        })?;
        let base = sources.last().map_or(0, error::Source::next_base);
        sources.push(error::Source {
            file: f.display().to_string(),
            text,
            base,
        });
    }
    let mut d = error::Diag::with_includes("", "", &sources);
    let mut objs = hns::HnsObjects::default();
    for src in &sources {
        hns::read(&mut d, src, &ports, &mut objs);
    }
    if !d.is_empty() {
        return Err(d.finish());
    }
    Ok(hns::to_toml(&objs))
}

/// A checked config: every reference resolves, every address is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub switch: SwitchCfg,
    pub ports: Vec<PortCfg>,
    pub networks: Vec<NetworkCfg>,
    pub endpoints: Vec<EndpointCfg>,
    /// Endpoints in Docker's modes none, host and container:NAME: nothing
    /// to switch, so apart from `endpoints`.
    pub endpoint_modes: Vec<EndpointModeCfg>,
    pub port_mappings: Vec<PortMappingCfg>,
    pub remote_endpoints: Vec<RemoteEndpointCfg>,
    pub cluster: Option<ClusterCfg>,
    pub nat: NatCfg,
}

impl Config {
    /// The network called `name`.
    pub fn network(&self, name: &str) -> Option<&NetworkCfg> {
        self.networks.iter().find(|n| n.name == name)
    }

    /// The `[[port]]` called `name`.
    pub fn port(&self, name: &str) -> Option<&PortCfg> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// The endpoint called `name`.
    pub fn endpoint(&self, name: &str) -> Option<&EndpointCfg> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// The endpoints of network `network`, in file order.
    pub fn endpoints_of<'a>(&'a self, network: &'a str) -> impl Iterator<Item = &'a EndpointCfg> {
        self.endpoints.iter().filter(move |e| e.network == network)
    }

    /// The remote endpoints of network `network`, in file order.
    pub fn remote_endpoints_of<'a>(
        &'a self,
        network: &'a str,
    ) -> impl Iterator<Item = &'a RemoteEndpointCfg> {
        self.remote_endpoints
            .iter()
            .filter(move |e| e.network == network)
    }

    /// The port mappings of network `network`, in file order.
    pub fn port_mappings_of<'a>(
        &'a self,
        network: &'a str,
    ) -> impl Iterator<Item = &'a PortMappingCfg> {
        self.port_mappings
            .iter()
            .filter(move |m| m.network == network)
    }

    /// The uplink port of network `network`, if it has one.
    pub fn uplink_of(&self, network: &str) -> Option<&PortCfg> {
        let uplink = self.network(network)?.uplink.as_deref()?;
        self.port(uplink)
    }
}

/// `[switch]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchCfg {
    /// Cores for PMD threads; empty means "the last core", which the daemon
    /// resolves on the machine it runs on.
    pub cores: Vec<usize>,
    /// The control socket (default `/run/podswitch.sock`).
    pub control: PathBuf,
    /// The Prometheus endpoint, if any.
    pub metrics: Option<SocketAddr>,
    /// The Docker network plugin's socket (key `docker_plugin`), if
    /// served; Docker names the driver after its file name.
    pub docker_plugin: Option<PathBuf>,
    /// Where the endpoints, mappings and networks added at run time are
    /// kept, so a restart attaches them again (key `state`; default: the
    /// control socket's path with the extension `.state`).
    pub state: PathBuf,
    /// How PMD threads poll (key `poll`).
    pub poll: PollCfg,
    /// Seconds a learned MAC lives without traffic (key `mac_aging`).
    pub mac_aging_secs: u32,
    /// Entries per network's forwarding database (key `fdb_size`).
    pub fdb_size: u32,
    /// Log level (key `log`) when `RUST_LOG` is not set; `None` means
    /// warn.
    pub log: Option<LogLevel>,
    /// Hand established TCP flows between veth endpoints and their uplink
    /// to the kernel (key `offload`, default true; `flows`).
    pub offload: bool,
}

impl Default for SwitchCfg {
    fn default() -> Self {
        SwitchCfg {
            cores: Vec::new(),
            control: PathBuf::from("/run/podswitch.sock"),
            metrics: None,
            docker_plugin: None,
            state: PathBuf::from("/run/podswitch.state"),
            poll: PollCfg::Adaptive,
            mac_aging_secs: 300,
            fdb_size: 65536,
            log: None,
            offload: true,
        }
    }
}

/// `log = "off" | "error" | "warn" | "info" | "debug" | "trace"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Errors only.
    Error,
    /// Errors and warnings (the default).
    Warn,
    /// Also what the switch did (ports opened, stale programs removed).
    Info,
    /// Also details for debugging.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// Every level, as written in the file.
    pub const NAMES: [&'static str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

    /// The level a word names.
    pub fn parse(word: &str) -> Option<LogLevel> {
        Some(match word {
            "off" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }

    /// The value as written in the file (also an `EnvFilter` directive).
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// `poll = "adaptive" | "busy"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PollCfg {
    /// Back off (sleep, wake on interrupt) when queues stay empty.
    #[default]
    Adaptive,
    /// Spin on the queues: lowest latency, a core at 100 %.
    Busy,
}

impl PollCfg {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            PollCfg::Adaptive => "adaptive",
            PollCfg::Busy => "busy",
        }
    }
}

/// `[[port]]`: a host interface the switch owns frames on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortCfg {
    pub name: String,
    /// The existing kernel interface.
    pub iface: String,
    pub kind: PortKind,
    /// podswitch's own address on this port (NAT external IP, VTEP IP),
    /// with the prefix length of the attached subnet.
    pub ip: Option<Ipv4Net>,
    /// Next hop for destinations outside `ip`'s subnet.
    pub gateway: Option<Ipv4Addr>,
    /// A MAC to use instead of the interface's own.
    pub mac: Option<MacAddr>,
    /// Static next hops (ip, mac) for neighbours that never answer ARP
    /// (a benchmark sink); others are resolved by ARP.
    pub neighbors: Vec<(Ipv4Addr, MacAddr)>,
}

/// `kind = "packet" | "afxdp" | "tap"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortKind {
    /// AF_PACKET with virtio-net headers: whole TCP segments both ways
    /// and the peer keeps its TSO (no XDP on the interface).
    #[default]
    Packet,
    /// AF_XDP with podswitch's XDP filter: packet rates, MTU-sized frames.
    AfXdp,
    /// A TAP the switch creates.
    Tap,
}

impl PortKind {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Packet => "packet",
            PortKind::AfXdp => "afxdp",
            PortKind::Tap => "tap",
        }
    }
}

/// `[[network]]`: one virtual switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkCfg {
    pub name: String,
    pub mode: NetworkMode,
    pub subnet: Ipv4Net,
    /// The address the switch owns in the subnet. A nat network always has
    /// one: when the file leaves it out, the first host address (as Docker
    /// does). Optional for the other modes; in the L2 modes it is the
    /// physical network's router, which the switch never answers for.
    pub gateway: Option<Ipv4Addr>,
    /// The name of a `[[port]]`.
    pub uplink: Option<String>,
    /// Overlay only: the VXLAN network identifier.
    pub vni: Option<u32>,
    /// Overrides the endpoints' MTU.
    pub mtu: Option<u32>,
    /// Overlay only: the VXLAN UDP port (default 4789, RFC 7348).
    pub vxlan_port: u16,
    /// The MAC the gateway answers with (default: `02:50:` + the gateway
    /// IP), e.g. a NIC's own MAC that clients already send to.
    pub gateway_mac: Option<MacAddr>,
    /// Addresses IPAM never hands out (key `reserved`, ranges inclusive),
    /// like Docker's `--aux-address`.
    pub reserved: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// MACs for endpoints that leave `mac` out (key `mac_pool =
    /// "FIRST-LAST"`, HNS `MacPools`), inclusive.
    pub mac_pool: Option<(MacAddr, MacAddr)>,
    /// Name servers of the endpoints (key `dns`, HNS `DNSServerList`):
    /// `run` writes them to `/etc/netns/NETNS/resolv.conf` of each endpoint
    /// attached by an `ip netns` name, the file `ip netns exec` binds over
    /// `/etc/resolv.conf`.
    pub dns: Vec<Ipv4Addr>,
    /// What the switch makes a netns endpoint's interface of (key
    /// `endpoint_link`).
    pub endpoint_link: EndpointLink,
}

/// `endpoint_link = "tap" | "veth"`: a netns endpoint's interface is a TAP
/// that podswitch holds open, or a veth whose host end podswitch reads
/// with an AF_PACKET socket (a port the kernel flow offload can redirect
/// to, segments intact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointLink {
    #[default]
    Tap,
    Veth,
}

impl EndpointLink {
    /// Reads an `endpoint_link` value.
    pub fn from_name(s: &str) -> Option<EndpointLink> {
        match s {
            "tap" => Some(EndpointLink::Tap),
            "veth" => Some(EndpointLink::Veth),
            _ => None,
        }
    }

    /// The name the config uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointLink::Tap => "tap",
            EndpointLink::Veth => "veth",
        }
    }
}

impl NetworkCfg {
    /// The endpoints' MTU: `mtu` when set, else the uplink's MTU, minus the
    /// 50 bytes of VXLAN over IPv4 on an overlay (RFC 7348 section 4).
    pub fn endpoint_mtu(&self, uplink_mtu: u32) -> u32 {
        match (self.mtu, self.mode) {
            (Some(m), _) => m,
            (None, NetworkMode::Overlay) => uplink_mtu.saturating_sub(50),
            (None, _) => uplink_mtu,
        }
    }
}

/// `mode = "nat" | "bridge" | "transparent" | "l2bridge" | "l2tunnel" | "overlay"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// HNS NAT, Docker bridge (`bridge` is an alias).
    Nat,
    Transparent,
    L2Bridge,
    L2Tunnel,
    Overlay,
}

impl NetworkMode {
    /// Every mode, in the order the docs list them.
    pub const ALL: [NetworkMode; 5] = [
        NetworkMode::Nat,
        NetworkMode::Transparent,
        NetworkMode::L2Bridge,
        NetworkMode::L2Tunnel,
        NetworkMode::Overlay,
    ];

    /// Reads a `mode` value; `bridge` is Docker's name for `nat`.
    pub fn from_name(s: &str) -> Option<NetworkMode> {
        match s {
            "nat" | "bridge" => Some(NetworkMode::Nat),
            "transparent" => Some(NetworkMode::Transparent),
            "l2bridge" => Some(NetworkMode::L2Bridge),
            "l2tunnel" => Some(NetworkMode::L2Tunnel),
            "overlay" => Some(NetworkMode::Overlay),
            _ => None,
        }
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Nat => "nat",
            NetworkMode::Transparent => "transparent",
            NetworkMode::L2Bridge => "l2bridge",
            NetworkMode::L2Tunnel => "l2tunnel",
            NetworkMode::Overlay => "overlay",
        }
    }

    /// The modes that put endpoints on the uplink's own segment (no
    /// gateway of the switch's, no NAT): transparent, l2bridge, l2tunnel.
    pub fn is_l2(self) -> bool {
        matches!(
            self,
            NetworkMode::Transparent | NetworkMode::L2Bridge | NetworkMode::L2Tunnel
        )
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[endpoint]]`: a container's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointCfg {
    pub name: String,
    pub network: String,
    pub attach: Attach,
    /// Given in the file, or the next free address of the subnet.
    pub ip: Ipv4Addr,
    /// Given in the file, or the next free MAC of the network's
    /// `mac_pool`, or `MacAddr::from_ipv4(ip)`.
    pub mac: MacAddr,
    /// Whether `ip` came from the file (false: IPAM chose it).
    pub ip_given: bool,
    /// Whether `mac` came from the file (false: IPAM chose it).
    pub mac_given: bool,
    /// Whether the endpoint may send with another source MAC or IP than
    /// its own (a container that routes); anti-spoofing drops such frames
    /// otherwise.
    pub allow_spoofing: bool,
    /// Per-endpoint policies (HNS endpoint policies): ACL rules, NAT
    /// exceptions, routes.
    pub policy: EndpointPolicy,
}

impl EndpointCfg {
    /// Who anti-spoofing lets this endpoint speak as; `None` with
    /// `allow_spoofing`. The MAC is known for a TAP the switch makes, and
    /// behind a `[[port]]` only when the file gives it.
    pub fn guard(&self) -> Option<crate::spoof::Guard> {
        let mac_known = self.mac_given || !matches!(self.attach, Attach::Port(_));
        (!self.allow_spoofing).then_some(crate::spoof::Guard {
            mac: mac_known.then_some(self.mac),
            ip: self.ip,
        })
    }
}

/// `[[endpoint]]` with `network = "none" | "host" | "container:NAME"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointModeCfg {
    pub name: String,
    pub mode: EndpointMode,
}

/// Docker's endpoint modes: how an endpoint that the switch does not
/// switch has its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointMode {
    /// `none`: its own namespace (`netns`) with loopback only, up.
    None(String),
    /// `host`: podswitch's own namespace.
    Host,
    /// `container:NAME`: the namespace, and interface, of endpoint NAME.
    Container(String),
}

impl EndpointMode {
    /// Reads a `network` value that names a mode rather than a network.
    pub fn word(network: &str) -> Option<&str> {
        match network {
            "none" | "host" => Some(network),
            _ => network.strip_prefix("container:"),
        }
    }
}

/// Where an endpoint's processes run, whatever its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointNetns {
    /// A namespace: an `ip netns` name or an absolute path.
    Netns(String),
    /// podswitch's own namespace.
    Host,
}

impl Config {
    /// The namespace endpoint `name` lives in: its own (`netns`), or for
    /// container:NAME the one NAME lives in (followed down the chain;
    /// the checker refuses cycles), or podswitch's (`host`). `None` for an
    /// unknown endpoint or one behind a `[[port]]` or a runtime's TAP.
    pub fn netns_of(&self, name: &str) -> Option<EndpointNetns> {
        let mut name = name;
        for _ in 0..=self.endpoint_modes.len() {
            if let Some(e) = self.endpoint(name) {
                return match &e.attach {
                    Attach::Netns(ns) => Some(EndpointNetns::Netns(ns.clone())),
                    Attach::Port(_) | Attach::HostTap(_) => None,
                };
            }
            match &self.endpoint_modes.iter().find(|m| m.name == name)?.mode {
                EndpointMode::None(ns) => return Some(EndpointNetns::Netns(ns.clone())),
                EndpointMode::Host => return Some(EndpointNetns::Host),
                EndpointMode::Container(other) => name = other,
            }
        }
        None
    }
}

/// What HNS calls endpoint policies, other than port mappings (those are
/// `[[port_mapping]]`s). Empty by default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointPolicy {
    /// Key `acl`: firewall rules enforced by the switch (HNS `ACL`).
    pub acl: Vec<AclRule>,
    /// Key `nat_exceptions` (HNS `OutBoundNAT` `ExceptionList`):
    /// destinations this endpoint reaches through the uplink without
    /// masquerading; they see its own address.
    pub nat_exceptions: Vec<Ipv4Net>,
    /// Key `routes` (HNS `ROUTE` / `SDNRoute`): routes the endpoint's
    /// namespace gets besides its default route.
    pub routes: Vec<RouteCfg>,
}

/// One ACL rule. A frame matches when every field given matches; among
/// the rules that match, the lowest `priority` decides (VFP's order); a
/// frame no rule matches is allowed, as HNS does without a default rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    pub action: AclAction,
    pub direction: AclDirection,
    /// IP protocol numbers (6 TCP, 17 UDP, 1 ICMP); empty: any.
    pub protocols: Vec<u8>,
    /// The endpoint's side; empty: any.
    pub local_addresses: Vec<Ipv4Net>,
    /// The other side; empty: any.
    pub remote_addresses: Vec<Ipv4Net>,
    /// Inclusive port ranges; empty: any (TCP and UDP only).
    pub local_ports: Vec<(u16, u16)>,
    pub remote_ports: Vec<(u16, u16)>,
    pub priority: u16,
}

/// `action = "allow" | "block"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclAction {
    Allow,
    Block,
}

/// `direction = "in" | "out"`: to the endpoint, or from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclDirection {
    In,
    Out,
}

/// `routes = [{ destination = "CIDR", next_hop = "IP" }]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCfg {
    pub destination: Ipv4Net,
    /// On the endpoint's subnet; `None`: the network's gateway.
    pub next_hop: Option<Ipv4Addr>,
}

/// Where an endpoint's frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// `netns = ...`: an `ip netns` name or an absolute path to a namespace
    /// file; the switch creates a TAP named eth0 there.
    Netns(String),
    /// `port = ...`: the name of a `[[port]]` the endpoint sits behind.
    Port(String),
    /// A TAP of this name in podswitch's own namespace, left unconfigured
    /// (MAC and MTU only) for a runtime that moves it into its container
    /// and configures it there itself (Docker's remote driver). Attached
    /// at run time only; no file says it.
    HostTap(String),
}

/// `[[port_mapping]]`: DNAT from the uplink's ip:host_port to endpoint:port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMappingCfg {
    /// The endpoint's network (resolved when the file leaves it out).
    pub network: String,
    pub protocol: Protocol,
    pub host_port: u16,
    pub endpoint: String,
    pub port: u16,
}

/// `protocol = "tcp" | "udp"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// `[[remote_endpoint]]`: an overlay endpoint that lives on another host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEndpointCfg {
    pub network: String,
    pub ip: Ipv4Addr,
    /// Given in the file, or `MacAddr::from_ipv4(ip)`.
    pub mac: MacAddr,
    /// The VTEP address of the host it lives on.
    pub vtep: Ipv4Addr,
}

/// `[cluster]`: overlay state shared through etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCfg {
    /// etcd endpoints, `http://` or `https://` URLs.
    pub etcd: Vec<String>,
    /// Key prefix (default `/podswitch`).
    pub prefix: String,
    /// Lease of this host's published keys, seconds (key `lease`, default 10).
    pub lease_secs: u32,
}

/// `[nat]`: SNAT ports, conntrack size and timeouts (seconds; the defaults
/// are Linux's nf_conntrack defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatCfg {
    /// SNAT source ports, inclusive (key `port_range = "32768-60999"`).
    pub port_range: (u16, u16),
    /// Conntrack entries (key `max_entries`).
    pub max_entries: u32,
    pub tcp_established: u32,
    pub tcp_syn_sent: u32,
    pub tcp_fin_wait: u32,
    pub tcp_time_wait: u32,
    pub tcp_close: u32,
    pub udp: u32,
    /// A UDP flow that has seen replies (nf_conntrack_udp_timeout_stream).
    pub udp_stream: u32,
    pub icmp: u32,
}

impl Default for NatCfg {
    fn default() -> Self {
        NatCfg {
            port_range: (32768, 60999),
            max_entries: 1 << 20,
            tcp_established: 432_000,
            tcp_syn_sent: 120,
            tcp_fin_wait: 120,
            tcp_time_wait: 120,
            tcp_close: 10,
            udp: 30,
            udp_stream: 120,
            icmp: 30,
        }
    }
}
