//! The tables the data path reads, compiled from the config into one
//! immutable snapshot shared by every PMD thread (DESIGN.md, data path 4).

use std::net::Ipv4Addr;

use hashbrown::HashMap;
use ipnet::Ipv4Net;
use pmd::wire::MacAddr;
use pmd::PortId;

use crate::gateway::Gateway;
use crate::spoof::Guard;

/// Index of a network in the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetId(pub u16);

/// One virtual switch.
#[derive(Debug, Clone)]
pub struct Network {
    /// The config name.
    pub name: String,
    /// The subnet.
    pub subnet: Ipv4Net,
    /// The gateway the switch owns, if any.
    pub gateway: Option<Gateway>,
    /// Ports that take part in this network's switching (flood domain).
    pub members: Vec<PortId>,
    /// The uplink that NAT (or later the overlay) leaves through.
    pub uplink: Option<UplinkId>,
    /// Endpoints by IPv4 address: their MAC and port, for traffic the
    /// switch routes to them (NAT replies, port mappings, hairpin).
    pub endpoints: HashMap<Ipv4Addr, (MacAddr, PortId)>,
    /// Overlay networks: the VXLAN network identifier and UDP port.
    pub vxlan: Option<(u32, u16)>,
    /// The L2 modes: endpoints on the uplink's own segment.
    pub l2: Option<L2Mode>,
    /// Removed at run time: nameless, empty, kept so that `NetId`s stay.
    pub removed: bool,
    /// A port of this network has an ACL: frames are checked against it
    /// (one test per frame when no port has one).
    pub acl: bool,
}

/// How an L2 network meets its uplink's segment (DESIGN.md's mode table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L2Mode {
    /// Bridged with the endpoints' own MACs (HNS transparent, macvlan
    /// bridge): the uplink is one more port of the network's switch.
    Transparent,
    /// HNS l2bridge: the host's MAC on the wire (`crate::hostmac`),
    /// same-host traffic switched here.
    Bridge,
    /// HNS l2tunnel: as `Bridge`, but every frame goes out of the uplink,
    /// same-host traffic too; the physical switch hairpins it back.
    Tunnel,
}

/// Index of an uplink in the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UplinkId(pub u16);

/// A port the switch owns an address on: the way out of NAT networks.
#[derive(Debug, Clone)]
pub struct Uplink {
    /// The `[[port]]` name.
    pub name: String,
    /// Its port.
    pub port: PortId,
    /// podswitch's address there (NAT external IP, VTEP).
    pub ip: Ipv4Addr,
    /// The on-link subnet of that address.
    pub subnet: Ipv4Net,
    /// Next hop for destinations outside `subnet`.
    pub gateway: Option<Ipv4Addr>,
    /// The interface's MAC, which carries `ip`.
    pub mac: MacAddr,
    /// Next hops configured statically (never ARPed, never expire).
    pub static_neighbors: Vec<(Ipv4Addr, MacAddr)>,
    /// The interface MTU (the overlay's inner MTU is 50 less).
    pub mtu: u32,
    /// Overlay tables of the VTEP on this uplink (networks by VNI, peers,
    /// remote endpoints); `None` when no overlay network uses it.
    pub vteps: Option<std::sync::Arc<overlay::VtepTables>>,
    /// Overlay networks on this uplink, by VNI.
    pub overlay_nets: Vec<(u32, NetId)>,
    /// The port sends UDP GSO (an AF_PACKET port): a TCP segment's VXLAN
    /// frames leave as one train (`encap_train`) instead of one by one.
    pub udp_gso: bool,
    /// The L2 network bridged onto this uplink's segment, if any; `ip` is
    /// unspecified when the port has none (the switch owns no address
    /// there, only its endpoints do).
    pub l2: Option<NetId>,
}

impl Uplink {
    /// The next hop for `dst`: itself when on-link, else the gateway.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.subnet.contains(&dst) {
            Some(dst)
        } else {
            self.gateway
        }
    }
}

/// What a port is to the switch.
#[derive(Debug, Clone)]
pub struct PortInfo {
    /// Display name: the endpoint or `[[port]]` name.
    pub name: String,
    /// The network the port switches in; `None` for a port that belongs to
    /// no network (frames from it are dropped, unless it is an uplink).
    pub network: Option<NetId>,
    /// Set when the port is an uplink.
    pub uplink: Option<UplinkId>,
    /// Anti-spoofing: who the port's endpoints are; `None` for a port
    /// that may send anything (owned by `spoof`).
    pub spoof: Option<Guard>,
    /// The endpoint's HNS policies the data path enforces, if it has any.
    pub policy: Option<std::sync::Arc<PortPolicy>>,
    /// How the kernel's flow offload reaches the port's device, when the
    /// offload program runs on it (`flows`).
    pub offload: Option<OffloadTarget>,
}

/// A port whose device runs the flow-offload program: frames arriving on
/// it may be carried by the kernel, and the kernel may deliver to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffloadTarget {
    /// The device's ifindex in podswitch's namespace.
    pub ifindex: u32,
    /// Deliver into the device's veth peer (a container's end) rather
    /// than out of the device itself (an uplink).
    pub to_peer: bool,
}

/// An endpoint's policies, compiled for the data path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortPolicy {
    /// Its ACL rules (`acl`).
    pub acl: Option<crate::acl::Acl>,
    /// Destinations reached through the uplink without NAT
    /// (`nat_exceptions`).
    pub nat_exceptions: Vec<Ipv4Net>,
}

/// Every table the pipeline reads.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Ports by `PortId`.
    pub ports: Vec<PortInfo>,
    /// Networks by `NetId`.
    pub networks: Vec<Network>,
    /// Uplinks by `UplinkId`.
    pub uplinks: Vec<Uplink>,
}

impl Topology {
    /// Adds a network and returns its id.
    pub fn add_network(&mut self, name: &str, subnet: Ipv4Net, gateway: Option<Ipv4Addr>) -> NetId {
        let id = NetId(self.networks.len() as u16);
        self.networks.push(Network {
            name: name.to_string(),
            subnet,
            gateway: gateway.map(|ip| Gateway {
                ip,
                mac: gateway_mac(ip),
            }),
            members: Vec::new(),
            uplink: None,
            endpoints: HashMap::new(),
            vxlan: None,
            l2: None,
            removed: false,
            acl: false,
        });
        id
    }

    /// Retires network `id` (removed at run time): it keeps its `NetId`,
    /// so no other network's tables move, but has no name, member,
    /// address, gateway or uplink any more.
    pub fn retire_network(&mut self, id: NetId) {
        let n = &mut self.networks[id.0 as usize];
        n.name.clear();
        n.members.clear();
        n.endpoints.clear();
        n.gateway = None;
        n.uplink = None;
        n.vxlan = None;
        n.l2 = None;
        n.removed = true;
        for u in &mut self.uplinks {
            if u.l2 == Some(id) {
                u.l2 = None;
            }
        }
    }

    /// Makes `network` an overlay network with `vni` on UDP `port`.
    pub fn set_vxlan(&mut self, network: NetId, vni: u32, port: u16) {
        self.networks[network.0 as usize].vxlan = Some((vni, port));
    }

    /// Adds an uplink port and returns its id.
    pub fn add_uplink(
        &mut self,
        name: &str,
        ip: Ipv4Addr,
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        mac: MacAddr,
    ) -> UplinkId {
        let uid = UplinkId(self.uplinks.len() as u16);
        let port = PortId(self.ports.len() as u16);
        self.ports.push(PortInfo {
            name: name.to_string(),
            network: None,
            uplink: Some(uid),
            spoof: None,
            policy: None,
            offload: None,
        });
        self.uplinks.push(Uplink {
            name: name.to_string(),
            port,
            ip,
            subnet,
            gateway,
            mac,
            static_neighbors: Vec::new(),
            mtu: 1500,
            vteps: None,
            overlay_nets: Vec::new(),
            udp_gso: false,
            l2: None,
        });
        uid
    }

    /// Bridges L2 network `network` onto uplink `up`'s segment in `mode`:
    /// the uplink port becomes a member (floods reach the wire) and takes
    /// the network's frames from the wire.
    pub fn set_l2(&mut self, network: NetId, up: UplinkId, mode: L2Mode) {
        let port = self.uplink(up).port;
        let n = &mut self.networks[network.0 as usize];
        n.l2 = Some(mode);
        n.uplink = Some(up);
        n.members.push(port);
        self.uplinks[up.0 as usize].l2 = Some(network);
    }

    /// Overrides the MAC a network's gateway answers with.
    pub fn set_gateway_mac(&mut self, network: NetId, mac: MacAddr) {
        if let Some(gw) = self.networks[network.0 as usize].gateway.as_mut() {
            gw.mac = mac;
        }
    }

    /// Attaches `network` to `uplink` (its NAT or overlay leaves there).
    pub fn set_uplink(&mut self, network: NetId, uplink: UplinkId) {
        self.networks[network.0 as usize].uplink = Some(uplink);
    }

    /// Records an endpoint's address for routed delivery.
    pub fn add_endpoint_addr(&mut self, network: NetId, ip: Ipv4Addr, mac: MacAddr, port: PortId) {
        self.networks[network.0 as usize]
            .endpoints
            .insert(ip, (mac, port));
    }

    /// An uplink by id.
    #[inline]
    pub fn uplink(&self, id: UplinkId) -> &Uplink {
        &self.uplinks[id.0 as usize]
    }

    /// Adds a port switched in `network` and returns its id.
    pub fn add_port(&mut self, name: &str, network: Option<NetId>) -> PortId {
        let id = PortId(self.ports.len() as u16);
        self.ports.push(PortInfo {
            name: name.to_string(),
            network,
            uplink: None,
            spoof: None,
            policy: None,
            offload: None,
        });
        if let Some(n) = network {
            self.networks[n.0 as usize].members.push(id);
        }
        id
    }

    /// The network a port switches in.
    /// Adds a port as `add_port` does, reusing `id` (a port that left)
    /// when given.
    pub fn add_port_as(
        &mut self,
        id: Option<PortId>,
        name: &str,
        network: Option<NetId>,
    ) -> PortId {
        let Some(id) = id.filter(|i| (i.0 as usize) < self.ports.len()) else {
            return self.add_port(name, network);
        };
        self.ports[id.0 as usize] = PortInfo {
            name: name.to_string(),
            network,
            uplink: None,
            spoof: None,
            policy: None,
            offload: None,
        };
        if let Some(n) = network {
            self.networks[n.0 as usize].members.push(id);
        }
        id
    }

    /// Takes port `id` out of the switch (an endpoint that left): no
    /// network has it as a member and no endpoint address leads to it. Its
    /// id stays reserved in `ports`, nameless, until `add_port_as` reuses it.
    pub fn remove_port(&mut self, id: PortId) {
        for n in &mut self.networks {
            n.members.retain(|p| *p != id);
            n.endpoints.retain(|_, (_, p)| *p != id);
        }
        if let Some(info) = self.ports.get_mut(id.0 as usize) {
            *info = PortInfo {
                name: String::new(),
                network: None,
                uplink: None,
                spoof: None,
                policy: None,
                offload: None,
            };
        }
    }

    /// Gives endpoint port `port` of `network` its policies (none when
    /// `policy` is empty).
    pub fn set_port_policy(
        &mut self,
        network: NetId,
        port: PortId,
        policy: &crate::config::EndpointPolicy,
    ) {
        let compiled = PortPolicy {
            acl: crate::acl::Acl::compile(&policy.acl),
            nat_exceptions: policy.nat_exceptions.clone(),
        };
        let has_acl = compiled.acl.is_some();
        let Some(info) = self.ports.get_mut(port.0 as usize) else {
            return;
        };
        info.policy = (compiled != PortPolicy::default()).then(|| std::sync::Arc::new(compiled));
        if has_acl {
            self.networks[network.0 as usize].acl = true;
        }
    }

    /// Forgets endpoint address `ip` of `network`, and lets nobody behind
    /// its port speak for it any more.
    pub fn remove_endpoint_addr(&mut self, network: NetId, ip: Ipv4Addr) {
        let gone = self.networks[network.0 as usize].endpoints.remove(&ip);
        if let Some((_, port)) = gone {
            if let Some(info) = self.ports.get_mut(port.0 as usize) {
                if info.spoof.is_some_and(|g| g.ip == ip) {
                    info.spoof = None;
                }
            }
        }
    }

    /// Guards `port`: it may send as `guard` says, nothing else; `None`
    /// lets it send anything.
    pub fn guard_port(&mut self, port: PortId, guard: Option<Guard>) {
        if let Some(info) = self.ports.get_mut(port.0 as usize) {
            info.spoof = guard;
        }
    }

    /// Marks `port` as running the flow-offload program (or not).
    pub fn set_port_offload(&mut self, port: PortId, target: Option<OffloadTarget>) {
        if let Some(info) = self.ports.get_mut(port.0 as usize) {
            info.offload = target;
        }
    }

    /// The flow-offload reach of `port`, if it has one.
    #[inline]
    pub fn offload_of(&self, port: PortId) -> Option<OffloadTarget> {
        self.ports.get(port.0 as usize)?.offload
    }

    /// Anti-spoofing of `port`, if it is guarded.
    #[inline]
    pub fn guard_of(&self, port: PortId) -> Option<&Guard> {
        self.ports.get(port.0 as usize)?.spoof.as_ref()
    }

    #[inline]
    pub fn network_of(&self, port: PortId) -> Option<NetId> {
        self.ports.get(port.0 as usize)?.network
    }

    /// The uplink a port is, if it is one.
    #[inline]
    pub fn uplink_of(&self, port: PortId) -> Option<UplinkId> {
        self.ports.get(port.0 as usize)?.uplink
    }

    /// A network by id.
    #[inline]
    pub fn network(&self, id: NetId) -> &Network {
        &self.networks[id.0 as usize]
    }

    /// A network id by name.
    pub fn network_id(&self, name: &str) -> Option<NetId> {
        self.networks
            .iter()
            .position(|n| n.name == name && !n.removed)
            .map(|i| NetId(i as u16))
    }
}

/// The MAC the switch uses for a gateway IP: locally administered and
/// distinct from the `02:00:` MACs derived for endpoints.
pub fn gateway_mac(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x02, 0x50, o[0], o[1], o[2], o[3]])
}
