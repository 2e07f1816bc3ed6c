//! What a VTEP knows: the overlay networks (VNI, UDP port, gateway), their
//! peer VTEPs, the remote endpoints from static config, and the inner MACs
//! learned from received traffic.
//!
//! [`VtepTables`] is compiled from the config and read-only on the data
//! path (one immutable snapshot, swapped between bursts on reload:
//! DESIGN.md, data path 4). [`LearnedMacs`] is learned state, one per PMD
//! thread, and survives a reload; its entries are checked against the
//! current tables on use.

use std::net::Ipv4Addr;

use hashbrown::HashMap;
use pmd::meta::PacketMeta;
use pmd::wire::{self, arp, ArpRepr, MacAddr};

use crate::vxlan::{Vni, VNI_MAX};

/// A gateway address the switch owns on an overlay network (every host
/// answers for it: a distributed gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayAddr {
    /// The gateway IP.
    pub ip: Ipv4Addr,
    /// The MAC it answers with.
    pub mac: MacAddr,
}

/// One overlay network as the data path sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayNetwork {
    /// Its VNI.
    pub vni: Vni,
    /// Its VXLAN UDP destination port (4789, or 8472 for flannel).
    pub udp_port: u16,
    /// Its gateway, when the network has one.
    pub gateway: Option<GatewayAddr>,
    /// Peer VTEPs, sorted, without duplicates and without the local VTEP.
    peers: Vec<Ipv4Addr>,
}

impl OverlayNetwork {
    /// True when `vtep` is a known peer of this network: the only senders
    /// whose VXLAN packets are accepted for it.
    #[inline]
    pub fn is_peer(&self, vtep: Ipv4Addr) -> bool {
        self.peers.binary_search(&vtep).is_ok()
    }

    /// Every peer VTEP: the head-end replication list for broadcast,
    /// multicast and unknown-unicast frames.
    #[inline]
    pub fn peers(&self) -> &[Ipv4Addr] {
        &self.peers
    }
}

/// A remote endpoint from `[[remote_endpoint]]` (or, later, the cluster
/// store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteEndpoint {
    /// The network's VNI.
    pub vni: Vni,
    /// The endpoint's IP.
    pub ip: Ipv4Addr,
    /// The endpoint's MAC.
    pub mac: MacAddr,
    /// The VTEP of the host it lives on.
    pub vtep: Ipv4Addr,
}

/// A config the tables refuse. `switch`'s config check should catch these
/// first, with file and line; these are the last line of defence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VtepConfigError {
    /// A VNI above 24 bits.
    #[error("VNI {0} is out of range (VXLAN VNIs are 24 bits: 0..=16777215)")]
    VniOutOfRange(Vni),
    /// Two networks with one VNI.
    #[error("VNI {0} is configured for two overlay networks")]
    DuplicateVni(Vni),
    /// A peer or endpoint for a VNI no network has.
    #[error("VNI {0} belongs to no overlay network (add the network first)")]
    UnknownVni(Vni),
    /// The local VTEP given as a remote one.
    #[error("{0} is this host's own VTEP address, not a remote VTEP")]
    LocalVtep(Ipv4Addr),
    /// Two remote endpoints of one network with one IP.
    #[error("remote endpoint IP {ip} appears twice on VNI {vni}")]
    DuplicateIp {
        /// The network.
        vni: Vni,
        /// The IP.
        ip: Ipv4Addr,
    },
    /// Two remote endpoints of one network with one MAC.
    #[error("remote endpoint MAC {mac} appears twice on VNI {vni}")]
    DuplicateMac {
        /// The network.
        vni: Vni,
        /// The MAC.
        mac: MacAddr,
    },
    /// A remote endpoint with a multicast or zero MAC.
    #[error("remote endpoint MAC {0} is not a unicast address")]
    BadMac(MacAddr),
}

/// Where an inner frame goes on the overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination<'a> {
    /// To one remote VTEP (a known remote endpoint or a learned MAC).
    Unicast(Ipv4Addr),
    /// Broadcast, multicast or unknown unicast: a copy to each of these
    /// VTEPs (head-end replication; the switch clones the frame). May be
    /// empty (a network with no peers yet).
    Flood(&'a [Ipv4Addr]),
}

/// The static overlay tables of one host.
#[derive(Debug, Clone)]
pub struct VtepTables {
    local_vtep: Ipv4Addr,
    networks: HashMap<Vni, OverlayNetwork>,
    /// Distinct UDP ports of all networks.
    ports: Vec<u16>,
    ip_to_mac: HashMap<(Vni, Ipv4Addr), MacAddr>,
    mac_to_vtep: HashMap<(Vni, MacAddr), Ipv4Addr>,
}

impl VtepTables {
    /// Empty tables for a host whose VTEP address is `local_vtep`.
    pub fn new(local_vtep: Ipv4Addr) -> VtepTables {
        VtepTables {
            local_vtep,
            networks: HashMap::new(),
            ports: Vec::new(),
            ip_to_mac: HashMap::new(),
            mac_to_vtep: HashMap::new(),
        }
    }

    /// Adds an overlay network.
    pub fn add_network(
        &mut self,
        vni: Vni,
        udp_port: u16,
        gateway: Option<GatewayAddr>,
    ) -> Result<(), VtepConfigError> {
        if vni > VNI_MAX {
            return Err(VtepConfigError::VniOutOfRange(vni));
        }
        if self.networks.contains_key(&vni) {
            return Err(VtepConfigError::DuplicateVni(vni));
        }
        self.networks.insert(
            vni,
            OverlayNetwork {
                vni,
                udp_port,
                gateway,
                peers: Vec::new(),
            },
        );
        if !self.ports.contains(&udp_port) {
            self.ports.push(udp_port);
        }
        Ok(())
    }

    /// Adds a peer VTEP to a network (accepted as a sender, and on its
    /// head-end replication list). Adding one twice is harmless.
    pub fn add_peer(&mut self, vni: Vni, vtep: Ipv4Addr) -> Result<(), VtepConfigError> {
        if vtep == self.local_vtep {
            return Err(VtepConfigError::LocalVtep(vtep));
        }
        let net = self
            .networks
            .get_mut(&vni)
            .ok_or(VtepConfigError::UnknownVni(vni))?;
        if let Err(at) = net.peers.binary_search(&vtep) {
            net.peers.insert(at, vtep);
        }
        Ok(())
    }

    /// Adds a remote endpoint; its VTEP becomes a peer of the network.
    pub fn add_remote_endpoint(&mut self, ep: RemoteEndpoint) -> Result<(), VtepConfigError> {
        if ep.mac.is_multicast() || ep.mac == MacAddr::ZERO {
            return Err(VtepConfigError::BadMac(ep.mac));
        }
        if self.ip_to_mac.contains_key(&(ep.vni, ep.ip)) {
            return Err(VtepConfigError::DuplicateIp {
                vni: ep.vni,
                ip: ep.ip,
            });
        }
        if self.mac_to_vtep.contains_key(&(ep.vni, ep.mac)) {
            return Err(VtepConfigError::DuplicateMac {
                vni: ep.vni,
                mac: ep.mac,
            });
        }
        self.add_peer(ep.vni, ep.vtep)?;
        self.ip_to_mac.insert((ep.vni, ep.ip), ep.mac);
        self.mac_to_vtep.insert((ep.vni, ep.mac), ep.vtep);
        Ok(())
    }

    /// This host's VTEP address.
    #[inline]
    pub fn local_vtep(&self) -> Ipv4Addr {
        self.local_vtep
    }

    /// The network with this VNI.
    #[inline]
    pub fn network(&self, vni: Vni) -> Option<&OverlayNetwork> {
        self.networks.get(&vni)
    }

    /// Every network, in no particular order.
    pub fn networks(&self) -> impl Iterator<Item = &OverlayNetwork> {
        self.networks.values()
    }

    /// Every remote endpoint, in no particular order.
    pub fn remote_endpoints(&self) -> impl Iterator<Item = RemoteEndpoint> + '_ {
        self.ip_to_mac.iter().filter_map(|(&(vni, ip), &mac)| {
            let vtep = self.remote_vtep(vni, mac)?;
            Some(RemoteEndpoint { vni, ip, mac, vtep })
        })
    }

    /// True when some network uses `port` as its VXLAN port (what the
    /// uplink should classify as VXLAN, together with the local VTEP as
    /// destination).
    #[inline]
    pub fn is_vxlan_port(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    /// The MAC of a remote endpoint by IP.
    #[inline]
    pub fn remote_mac(&self, vni: Vni, ip: Ipv4Addr) -> Option<MacAddr> {
        self.ip_to_mac.get(&(vni, ip)).copied()
    }

    /// The VTEP of a remote endpoint by MAC, from static config only.
    #[inline]
    pub fn remote_vtep(&self, vni: Vni, mac: MacAddr) -> Option<Ipv4Addr> {
        self.mac_to_vtep.get(&(vni, mac)).copied()
    }

    /// Where an inner frame to `dst` on network `vni` goes, for a
    /// destination that is not a local endpoint (the switch looks in its
    /// own FDB first). Static config wins over learning; a learned VTEP
    /// that is no longer a peer (after a reload) is ignored. `None` when
    /// no network has `vni`.
    #[inline]
    pub fn destination<'a>(
        &'a self,
        vni: Vni,
        dst: MacAddr,
        learned: &LearnedMacs,
        now_ns: u64,
    ) -> Option<Destination<'a>> {
        let net = self.network(vni)?;
        if dst.is_multicast() {
            return Some(Destination::Flood(net.peers()));
        }
        if let Some(vtep) = self.remote_vtep(vni, dst) {
            return Some(Destination::Unicast(vtep));
        }
        match learned.lookup(vni, dst, now_ns) {
            Some(vtep) if net.is_peer(vtep) => Some(Destination::Unicast(vtep)),
            _ => Some(Destination::Flood(net.peers())),
        }
    }

    /// ARP suppression: when `frame` (parsed into `meta`) is an ARP request
    /// on network `vni` for a known remote endpoint's IP, rewrites it in
    /// place into the reply that endpoint would send, addressed back to the
    /// requester (the switch sends it back out of the port it came in on)
    /// and returns true. Anything else (not ARP, not a request, a
    /// gratuitous ARP, an unknown target) is left untouched and returns
    /// false: the switch forwards it as usual (head-end replication).
    pub fn arp_suppress(&self, vni: Vni, frame: &mut [u8], meta: &PacketMeta) -> bool {
        if meta.ethertype != wire::ETHERTYPE_ARP {
            return false;
        }
        let l3 = meta.l3_off as usize;
        let Some(Ok(arp)) = frame.get(l3..).map(arp::ArpPacket::new_checked) else {
            return false;
        };
        let Ok(request) = ArpRepr::parse(&arp) else {
            return false;
        };
        // A gratuitous ARP announces the sender; nobody is asked.
        if request.operation != arp::OP_REQUEST
            || request.target_protocol_addr == request.source_protocol_addr
        {
            return false;
        }
        let Some(mac) = self.remote_mac(vni, request.target_protocol_addr) else {
            return false;
        };
        // As Linux's vxlan proxy ARP (arp_reduce) does: the reply comes from
        // the endpoint's MAC, so the requester's bridge learns nothing odd.
        arp::reply_in_place(frame, l3, &request, mac)
    }
}

/// One learned inner MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LearnedEntry {
    vtep: Ipv4Addr,
    seen_ns: u64,
}

/// Inner source MAC -> VTEP, learned on decapsulation, with aging. One per
/// PMD thread (single writer, no lock); lookups skip aged entries, so the
/// sweep only reclaims memory.
#[derive(Debug)]
pub struct LearnedMacs {
    entries: HashMap<(Vni, MacAddr), LearnedEntry>,
    max_entries: usize,
    aging_ns: u64,
}

impl LearnedMacs {
    /// A table of at most `max_entries`, each forgotten `aging_secs` after
    /// it was last seen.
    pub fn new(max_entries: usize, aging_secs: u32) -> LearnedMacs {
        LearnedMacs {
            entries: HashMap::with_capacity(max_entries.min(4096)),
            max_entries,
            aging_ns: aging_secs as u64 * 1_000_000_000,
        }
    }

    /// Learns that `mac` on network `vni` lives behind `vtep`. Returns true
    /// when that is news (a new entry, or a MAC that moved to another
    /// VTEP). Multicast and zero MACs are never learned, nor MACs static
    /// config places, nor anything once the table is full.
    #[inline]
    pub fn learn(
        &mut self,
        tables: &VtepTables,
        vni: Vni,
        mac: MacAddr,
        vtep: Ipv4Addr,
        now_ns: u64,
    ) -> bool {
        if mac.is_multicast() || mac == MacAddr::ZERO {
            return false;
        }
        // The common case first, one lookup: a MAC already learned (never a
        // static one: those are refused below, and a reload that makes a
        // learned MAC static is covered by `destination` preferring static).
        if let Some(e) = self.entries.get_mut(&(vni, mac)) {
            let news = e.vtep != vtep || now_ns.saturating_sub(e.seen_ns) > self.aging_ns;
            *e = LearnedEntry {
                vtep,
                seen_ns: now_ns,
            };
            return news;
        }
        if self.entries.len() >= self.max_entries || tables.remote_vtep(vni, mac).is_some() {
            return false;
        }
        self.entries.insert(
            (vni, mac),
            LearnedEntry {
                vtep,
                seen_ns: now_ns,
            },
        );
        true
    }

    /// The VTEP `mac` was last seen behind, unless that is older than the
    /// aging time.
    #[inline]
    pub fn lookup(&self, vni: Vni, mac: MacAddr, now_ns: u64) -> Option<Ipv4Addr> {
        let e = self.entries.get(&(vni, mac))?;
        (now_ns.saturating_sub(e.seen_ns) <= self.aging_ns).then_some(e.vtep)
    }

    /// Removes aged entries and returns how many. Walks the whole table:
    /// call it now and then between bursts, not per packet (lookups never
    /// return aged entries, so a late sweep costs memory, not
    /// correctness).
    pub fn sweep(&mut self, now_ns: u64) -> usize {
        let aging = self.aging_ns;
        let before = self.entries.len();
        self.entries
            .retain(|_, e| now_ns.saturating_sub(e.seen_ns) <= aging);
        before - self.entries.len()
    }

    /// Forgets every MAC learned behind `vtep` (a peer went away).
    pub fn forget_vtep(&mut self, vtep: Ipv4Addr) {
        self.entries.retain(|_, e| e.vtep != vtep);
    }

    /// Entries held (aged ones included until swept).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is learned.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
