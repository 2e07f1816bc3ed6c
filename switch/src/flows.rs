//! The flows a PMD thread has handed to the kernel's flow offload
//! (`pmd::offload`): which frames may be installed, what an entry says,
//! and when it goes again.
//!
//! The rule that keeps the switch in charge: an entry is only ever the
//! record of what the pipeline itself just did to a frame of the flow
//! (the headers it sent, the port it chose), installed under the headers
//! the frame arrived with. Only TCP frames of established flows qualify;
//! the program passes every SYN, FIN and RST to the switch, which then
//! forgets the flow in both directions. Entries also go:
//! - after [`MAX_AGE_NS`], so the switch sees every flow again now and then
//!   and refreshes what the kernel does not (conntrack, FDB ages, next
//!   hops);
//! - after [`IDLE_SWEEPS`] sweeps without a packet, to free the slot;
//! - all at once when the topology, a NAT config or an address changes
//!   (`flush`), and those of a port while a capture watches it.

use std::sync::Arc;

use hashbrown::HashMap;
use pmd::offload::{
    FlowAction, FlowKey, FlowStats, Tunnel, FLOW_DECAP, FLOW_ENCAP, FLOW_TO_PEER, OUTER_LEN,
};
use pmd::thread::TxQueues;
use pmd::wire::{self, tcp, EthernetFrame, Ipv4Packet, TcpPacket, UdpPacket};
use pmd::PortId;

use crate::stats::OffloadCounters;
use crate::topology::OffloadTarget;

/// An entry lives this long at most before its flow goes through the
/// switch again (a few frames, then it is installed anew).
pub const MAX_AGE_NS: u64 = 30_000_000_000;

/// How often the kernel's per-flow counters are read into the ports'.
pub const SWEEP_NS: u64 = 1_000_000_000;

/// Sweeps in a row without a packet after which an entry goes.
pub const IDLE_SWEEPS: u8 = 10;

/// How long a closed flow is kept from the kernel: longer than a
/// closing connection's last ACKs and TIME_WAIT (60 s on Linux).
pub const CLOSED_NS: u64 = 120_000_000_000;

/// Why the kernel table refused an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    /// No room: the flow stays on the switch's path.
    Full,
    /// Anything else (logged once).
    Other,
}

/// The kernel's flow table as a PMD thread uses it: the BPF map in
/// production, a map in memory in tests.
pub trait KernelFlowTable: Send {
    fn insert(&mut self, key: &FlowKey, action: &FlowAction) -> Result<(), TableError>;
    /// Removes the entry; its counters at that moment, if it was there.
    fn remove(&mut self, key: &FlowKey) -> Option<FlowStats>;
    fn stats(&mut self, key: &FlowKey) -> Option<FlowStats>;
}

impl KernelFlowTable for pmd::offload::FlowTable {
    fn insert(&mut self, key: &FlowKey, action: &FlowAction) -> Result<(), TableError> {
        match pmd::offload::FlowTable::insert(self, key, action) {
            Ok(()) => Ok(()),
            Err(pmd::offload::OffloadError::Full { .. }) => Err(TableError::Full),
            Err(e) => {
                tracing::debug!("flow offload insert: {e}");
                Err(TableError::Other)
            }
        }
    }

    fn remove(&mut self, key: &FlowKey) -> Option<FlowStats> {
        pmd::offload::FlowTable::remove(self, key).ok().flatten()
    }

    fn stats(&mut self, key: &FlowKey) -> Option<FlowStats> {
        pmd::offload::FlowTable::stats(self, key).ok().flatten()
    }
}

/// The frame of a flow that may be installed once the pipeline has sent
/// it: its ingress key and TTL as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// For a VXLAN datagram, the inner headers' key with the VNI.
    pub key: FlowKey,
    /// The (inner) TTL.
    pub ttl: u8,
    /// The outer headers, when the frame is a VXLAN datagram.
    pub vxlan: Option<Outer>,
}

/// What the decapsulation of a flow checks of its outer headers: that it
/// comes from the same VTEP, to the same address, on the same port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    pub src_vtep: [u8; 4],
    pub dst_vtep: [u8; 4],
    pub udp_dst_port: [u8; 2],
}

/// Offsets in the 50 VXLAN outer bytes (Ethernet 14, IPv4 20, UDP 8,
/// VXLAN 8) that the program reads or writes.
mod outer_at {
    pub const IP: usize = 14;
    pub const IP_TOTAL_LEN: usize = IP + 2;
    pub const IP_SRC: usize = IP + 12;
    pub const IP_DST: usize = IP + 16;
    pub const UDP: usize = 34;
    pub const UDP_DST: usize = UDP + 2;
    pub const UDP_LEN: usize = UDP + 4;
    pub const VNI: usize = 42 + 4;
}

/// What the headers of a frame arriving on an offload port say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Not TCP over IPv4 (or a fragment, or VLAN-tagged): never offloaded.
    Other,
    /// A SYN (`opens`), FIN or RST: the flow starts or ends.
    Boundary { key: FlowKey, opens: bool },
    /// A frame of an established flow.
    Established(Candidate),
}

/// Reads the offload key of `frame`, arriving on device `ifindex`. Only
/// untagged IPv4 TCP without fragmentation, as the program matches, or
/// such a frame inside one VXLAN datagram (outer IPv4 without options, not
/// fragmented): then the key is the inner headers' with the
/// VNI. Whether the datagram is VXLAN for this host at all is the
/// pipeline's to say (it only installs what it decapsulated).
pub fn arrival(ifindex: u32, frame: &[u8]) -> Arrival {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Arrival::Other;
    };
    if eth.ethertype() != wire::ETHERTYPE_IPV4 {
        return Arrival::Other;
    }
    let l3 = eth.payload();
    let Ok(ip) = Ipv4Packet::new_checked(l3) else {
        return Arrival::Other;
    };
    if ip.is_fragment() {
        return Arrival::Other;
    }
    if ip.protocol() == wire::IPPROTO_UDP {
        return vxlan_arrival(ifindex, frame);
    }
    inner_arrival(ifindex, frame, None)
}

/// [`arrival`] of a UDP datagram: the inner frame's, if it is VXLAN as the
/// program decapsulates it (one datagram: the lengths are the frame's).
#[inline(never)]
fn vxlan_arrival(ifindex: u32, frame: &[u8]) -> Arrival {
    let Some(outer) = frame.get(..OUTER_LEN) else {
        return Arrival::Other;
    };
    let ip = Ipv4Packet::new_unchecked(&outer[outer_at::IP..]);
    let udp = UdpPacket::new_unchecked(&outer[outer_at::UDP..]);
    let vx = overlay::VxlanHeader::new_unchecked(&outer[outer_at::VNI - 4..]);
    if ip.header_len() != wire::ipv4::HEADER_LEN
        || usize::from(ip.total_len()) + wire::ETH_HDR != frame.len()
        || vx.flags() != overlay::vxlan::FLAG_I
        || vx.vni() == 0
    {
        return Arrival::Other;
    }
    let found = Outer {
        src_vtep: ip.src_addr().octets(),
        dst_vtep: ip.dst_addr().octets(),
        udp_dst_port: udp.dst_port().to_be_bytes(),
    };
    let inner = &frame[OUTER_LEN..];
    // The program takes no inner IPv4 options, and only a datagram whose
    // inner packet is all of it (not a train of many).
    let whole =
        Ipv4Packet::new_checked(inner.get(wire::ETH_HDR..).unwrap_or_default()).is_ok_and(|i| {
            i.header_len() == wire::ipv4::HEADER_LEN
                && usize::from(i.total_len()) + wire::ETH_HDR == inner.len()
        });
    if !whole {
        return Arrival::Other;
    }
    match inner_arrival(ifindex, inner, Some(found)) {
        Arrival::Boundary { mut key, opens } => {
            key.pad = vni_bytes(vx.vni());
            Arrival::Boundary { key, opens }
        }
        Arrival::Established(mut c) => {
            c.key.pad = vni_bytes(vx.vni());
            Arrival::Established(c)
        }
        Arrival::Other => Arrival::Other,
    }
}

fn vni_bytes(vni: u32) -> [u8; 3] {
    let b = vni.to_be_bytes();
    [b[1], b[2], b[3]]
}

/// [`arrival`] of an untagged Ethernet frame of IPv4 TCP.
#[inline(always)]
fn inner_arrival(ifindex: u32, frame: &[u8], vxlan: Option<Outer>) -> Arrival {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Arrival::Other;
    };
    if eth.ethertype() != wire::ETHERTYPE_IPV4 {
        return Arrival::Other;
    }
    let l3 = eth.payload();
    let Ok(ip) = Ipv4Packet::new_checked(l3) else {
        return Arrival::Other;
    };
    if ip.protocol() != wire::IPPROTO_TCP || ip.is_fragment() {
        return Arrival::Other;
    }
    let Some(l4) = l3.get(ip.header_len()..) else {
        return Arrival::Other;
    };
    let Ok(t) = TcpPacket::new_checked(l4) else {
        return Arrival::Other;
    };
    let key = FlowKey {
        ifindex,
        src_ip: ip.src_addr().octets(),
        dst_ip: ip.dst_addr().octets(),
        src_port: t.src_port().to_be_bytes(),
        dst_port: t.dst_port().to_be_bytes(),
        dst_mac: eth.dst_addr().0,
        src_mac: eth.src_addr().0,
        proto: wire::IPPROTO_TCP,
        pad: [0; 3],
    };
    let flags = t.flags();
    if flags & (tcp::flags::SYN | tcp::flags::FIN | tcp::flags::RST) != 0 {
        Arrival::Boundary {
            key,
            opens: flags & tcp::flags::SYN != 0 && flags & tcp::flags::RST == 0,
        }
    } else {
        Arrival::Established(Candidate {
            key,
            ttl: ip.ttl(),
            vxlan,
        })
    }
}

/// What the kernel must do to a flow's frames to send them as the switch
/// just sent `frame` (its headers after the pipeline) out of `to`, given
/// the TTL the frame arrived with. `None` when the frame is not one the
/// program could produce (tagged, changed protocol, TTL gone up).
pub fn action_for(frame: &[u8], in_ttl: u8, to: OffloadTarget) -> Option<FlowAction> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != wire::ETHERTYPE_IPV4 {
        return None;
    }
    let l3 = eth.payload();
    let ip = Ipv4Packet::new_checked(l3).ok()?;
    if ip.protocol() != wire::IPPROTO_TCP {
        return None;
    }
    let t = TcpPacket::new_checked(l3.get(ip.header_len()..)?).ok()?;
    Some(FlowAction {
        out_ifindex: to.ifindex,
        flags: if to.to_peer { FLOW_TO_PEER } else { 0 },
        src_ip: ip.src_addr().octets(),
        dst_ip: ip.dst_addr().octets(),
        src_port: t.src_port().to_be_bytes(),
        dst_port: t.dst_port().to_be_bytes(),
        dst_mac: eth.dst_addr().0,
        src_mac: eth.src_addr().0,
        ttl_dec: in_ttl.checked_sub(ip.ttl())?,
        pad: [0; 7],
        tunnel: Tunnel::default(),
    })
}

/// What the kernel must do to a flow's frames to send them as the switch
/// just sent `sent`, a VXLAN datagram of the flow's frame (outer headers as
/// `overlay::encapsulate` writes them), out of the uplink `to`: the inner
/// action, and the outer headers as a template whose lengths the program
/// fills in per skb (it takes inner packets of `inner_mtu` at most).
pub fn encap_action_for(
    sent: &[u8],
    in_ttl: u8,
    to: OffloadTarget,
    inner_mtu: u16,
) -> Option<FlowAction> {
    let outer = sent.get(..OUTER_LEN)?;
    let eth = EthernetFrame::new_checked(outer).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if eth.ethertype() != wire::ETHERTYPE_IPV4
        || ip.header_len() != wire::ipv4::HEADER_LEN
        || ip.protocol() != wire::IPPROTO_UDP
        || to.to_peer
    {
        return None;
    }
    let mut a = action_for(&sent[OUTER_LEN..], in_ttl, to)?;
    a.flags = FLOW_ENCAP;
    a.tunnel.inner_mtu = inner_mtu;
    a.tunnel.outer.copy_from_slice(outer);
    let t = &mut a.tunnel.outer;
    t[outer_at::IP_TOTAL_LEN..outer_at::IP_TOTAL_LEN + 2].fill(0);
    t[outer_at::UDP_LEN..outer_at::UDP_LEN + 2].fill(0);
    Ipv4Packet::new_unchecked(&mut t[outer_at::IP..outer_at::UDP]).fill_checksum();
    Some(a)
}

/// What the kernel must do to a VXLAN datagram of the flow of `cand` (from
/// the uplink) to deliver it as the switch just delivered its inner frame,
/// `delivered`, to `to`: check the outer headers are those `cand` arrived
/// with, take them off and do the inner action.
pub fn decap_action_for(
    delivered: &[u8],
    cand: &Candidate,
    to: OffloadTarget,
) -> Option<FlowAction> {
    let outer = cand.vxlan?;
    let mut a = action_for(delivered, cand.ttl, to)?;
    a.flags |= FLOW_DECAP;
    let t = &mut a.tunnel.outer;
    t[outer_at::IP_SRC..outer_at::IP_SRC + 4].copy_from_slice(&outer.src_vtep);
    t[outer_at::IP_DST..outer_at::IP_DST + 4].copy_from_slice(&outer.dst_vtep);
    t[outer_at::UDP_DST..outer_at::UDP_DST + 2].copy_from_slice(&outer.udp_dst_port);
    Some(a)
}

/// The key the flow's replies arrive with: on the device the flow leaves
/// by, with the sent headers swapped; for a flow the kernel encapsulates,
/// they arrive in VXLAN of its VNI.
fn reverse_of(key: &FlowKey, a: &FlowAction) -> FlowKey {
    let pad = if a.flags & FLOW_ENCAP != 0 {
        let v = &a.tunnel.outer[outer_at::VNI..outer_at::VNI + 3];
        [v[0], v[1], v[2]]
    } else {
        [0; 3]
    };
    FlowKey {
        ifindex: a.out_ifindex,
        src_ip: a.dst_ip,
        dst_ip: a.src_ip,
        src_port: a.dst_port,
        dst_port: a.src_port,
        dst_mac: a.src_mac,
        src_mac: a.dst_mac,
        proto: key.proto,
        pad,
    }
}

struct Installed {
    action: FlowAction,
    reverse: FlowKey,
    in_port: PortId,
    out_port: PortId,
    since_ns: u64,
    /// The kernel's counters when last read.
    seen: FlowStats,
    idle_sweeps: u8,
}

/// One PMD thread's entries in the kernel's flow table.
pub struct OffloadedFlows {
    table: Box<dyn KernelFlowTable>,
    flows: HashMap<FlowKey, Installed>,
    /// The key replies arrive with -> the installed entry it answers.
    replies: HashMap<FlowKey, FlowKey>,
    /// Flows that sent a FIN or RST, and when: their last ACKs would
    /// install them again, to sit idle in the table. A SYN clears them.
    closed: HashMap<FlowKey, u64>,
    counters: Arc<OffloadCounters>,
    last_sweep_ns: u64,
    warned: bool,
}

impl OffloadedFlows {
    pub fn new(table: Box<dyn KernelFlowTable>, counters: Arc<OffloadCounters>) -> Self {
        OffloadedFlows {
            table,
            flows: HashMap::new(),
            replies: HashMap::new(),
            closed: HashMap::new(),
            counters,
            last_sweep_ns: 0,
            warned: false,
        }
    }

    /// Entries this thread has in the table now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Records that the pipeline sent a frame that arrived on `in_port`
    /// as `cand` out of `out_port`, doing `action` to it (made by
    /// [`action_for`], [`encap_action_for`] or [`decap_action_for`] from
    /// the frame as sent): the kernel does the same to the flow's next
    /// frames. Nothing happens while a capture watches either port (it
    /// must see every frame), for a closed flow, or when the entry is
    /// there already.
    pub fn offer_action(
        &mut self,
        tx: &TxQueues,
        cand: &Candidate,
        (in_port, out_port): (PortId, PortId),
        action: FlowAction,
        now_ns: u64,
    ) {
        if watched(tx, in_port) || watched(tx, out_port) {
            return;
        }
        let reverse = reverse_of(&cand.key, &action);
        if !self.closed.is_empty()
            && (self.closed.contains_key(&cand.key) || self.closed.contains_key(&reverse))
        {
            return;
        }
        if let Some(old) = self.flows.get(&cand.key) {
            if old.action == action {
                return;
            }
        }
        match self.table.insert(&cand.key, &action) {
            Ok(()) => {}
            Err(TableError::Full) => {
                self.counters.table_full.add(1);
                return;
            }
            Err(TableError::Other) => {
                self.counters.errors.add(1);
                if !self.warned {
                    self.warned = true;
                    tracing::warn!("flow offload: the kernel refused an entry; flows stay on the switch's path");
                }
                return;
            }
        }
        self.counters.installed.add(1);
        self.replies.insert(reverse, cand.key);
        // A replaced entry's counters were reset by the insert: what it
        // carried before is lost, a rare route change mid-flow.
        self.flows.insert(
            cand.key,
            Installed {
                action,
                reverse,
                in_port,
                out_port,
                since_ns: now_ns,
                seen: FlowStats::default(),
                idle_sweeps: 0,
            },
        );
    }

    /// The flow of `key` starts again (`opens`: a SYN) or ends (a FIN or
    /// RST came through the switch): both directions leave the table, so
    /// the switch sees the rest of the exchange and any new connection on
    /// the same addresses is decided afresh. An ended flow is not
    /// installed again until it opens.
    pub fn forget(&mut self, tx: &TxQueues, key: &FlowKey, opens: bool, now_ns: u64) {
        if opens {
            self.closed.remove(key);
        } else {
            self.closed.insert(*key, now_ns);
        }
        if let Some(reverse) = self.remove(tx, key) {
            self.remove(tx, &reverse);
        }
        // Only the other direction may be installed.
        if let Some(answered) = self.replies.get(key).copied() {
            self.remove(tx, &answered);
        }
    }

    /// Removes one entry, accounting what the kernel carried; returns its
    /// reverse key.
    fn remove(&mut self, tx: &TxQueues, key: &FlowKey) -> Option<FlowKey> {
        let e = self.flows.remove(key)?;
        if self.replies.get(&e.reverse) == Some(key) {
            self.replies.remove(&e.reverse);
        }
        let last = self.table.remove(key).unwrap_or(e.seen);
        account(tx, &e, &last);
        self.counters.removed.add(1);
        Some(e.reverse)
    }

    /// Every entry goes (the topology or a NAT config changed).
    pub fn flush(&mut self, tx: &TxQueues) {
        let keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        for k in keys {
            self.remove(tx, &k);
        }
    }

    /// Called from housekeeping: once per [`SWEEP_NS`], reads the kernel's
    /// counters into the ports' and retires old, idle and watched entries.
    pub fn sweep(&mut self, tx: &TxQueues, now_ns: u64) {
        if now_ns.saturating_sub(self.last_sweep_ns) < SWEEP_NS {
            return;
        }
        self.last_sweep_ns = now_ns;
        let mut retire = Vec::new();
        for (key, e) in self.flows.iter_mut() {
            let now = self.table.stats(key).unwrap_or(e.seen);
            let moved = now.packets != e.seen.packets;
            account(tx, e, &now);
            e.seen = now;
            e.idle_sweeps = if moved { 0 } else { e.idle_sweeps + 1 };
            if e.idle_sweeps >= IDLE_SWEEPS
                || now_ns.saturating_sub(e.since_ns) >= MAX_AGE_NS
                || watched(tx, e.in_port)
                || watched(tx, e.out_port)
            {
                retire.push(*key);
            }
        }
        for k in retire {
            self.remove(tx, &k);
        }
        self.closed
            .retain(|_, at| now_ns.saturating_sub(*at) < CLOSED_NS);
        self.counters.active.set(self.flows.len() as u64);
    }
}

/// True while `ctl capture` watches `port`.
fn watched(tx: &TxQueues, port: PortId) -> bool {
    tx.counters_of(port).is_some_and(|c| c.mirror.is_armed())
}

/// Adds what the kernel carried for entry `e` since `e.seen` to its ports:
/// received on the one it came in by, sent on the one it left by.
fn account(tx: &TxQueues, e: &Installed, now: &FlowStats) {
    let packets = now.packets.saturating_sub(e.seen.packets);
    let bytes = now.bytes.saturating_sub(e.seen.bytes);
    if packets == 0 {
        return;
    }
    if let Some(c) = tx.counters_of(e.in_port) {
        c.rx_packets.add(packets);
        c.rx_bytes.add(bytes);
        c.offloaded_packets.add(packets);
        c.offloaded_bytes.add(bytes);
    }
    if let Some(c) = tx.counters_of(e.out_port) {
        c.tx_packets.add(packets);
        c.tx_bytes.add(bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use crossbeam::channel;
    use pmd::counters::PortCounters;
    use pmd::thread::{Ctx, Pipeline};
    use pmd::{Frame, Pool, PoolConfig};

    use super::*;
    use crate::pipeline::{Control, SwitchPipeline, SwitchSettings};
    use crate::stats::NetCounters;
    use crate::topology::Topology;

    type Entries = Arc<Mutex<HashMap<FlowKey, (FlowAction, FlowStats)>>>;

    /// The kernel's table, in memory.
    struct FakeTable(Entries);

    impl KernelFlowTable for FakeTable {
        fn insert(&mut self, key: &FlowKey, action: &FlowAction) -> Result<(), TableError> {
            let mut m = self.0.lock().unwrap();
            if m.len() >= 4 && !m.contains_key(key) {
                return Err(TableError::Full);
            }
            m.insert(*key, (*action, FlowStats::default()));
            Ok(())
        }
        fn remove(&mut self, key: &FlowKey) -> Option<FlowStats> {
            self.0.lock().unwrap().remove(key).map(|(_, s)| s)
        }
        fn stats(&mut self, key: &FlowKey) -> Option<FlowStats> {
            self.0.lock().unwrap().get(key).map(|(_, s)| *s)
        }
    }

    const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const IP0: [u8; 4] = [172, 30, 0, 10];
    const IP1: [u8; 4] = [172, 30, 0, 11];

    enum Flag {
        Ack,
        Syn,
        Fin,
    }

    fn tcp(from: ([u8; 6], [u8; 4], u16), to: ([u8; 6], [u8; 4], u16), flag: Flag) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2(from.0, to.0)
            .ipv4(from.1, to.1, 64)
            .tcp(from.2, to.2, 1000, 65535);
        let b = match flag {
            Flag::Ack => b.ack(1),
            Flag::Syn => b.syn(),
            Flag::Fin => b.fin().ack(1),
        };
        let mut f = Vec::new();
        b.write(&mut f, &[0u8; 100]).unwrap();
        f
    }

    /// A pipeline over `topo` whose kernel table is `entries`, and its
    /// control channel.
    fn offloading(
        topo: Topology,
        entries: &Entries,
        offload: Arc<OffloadCounters>,
    ) -> (SwitchPipeline, channel::Sender<Control>) {
        let (control, rx) = channel::unbounded();
        let pipeline = SwitchPipeline::new(
            Arc::new(topo),
            SwitchSettings::default(),
            vec![Arc::<NetCounters>::default()],
            rx,
            vec![],
            vec![],
            vec![],
        )
        .with_offload(OffloadedFlows::new(
            Box::new(FakeTable(entries.clone())),
            offload,
        ));
        (pipeline, control)
    }

    /// A pipeline over two offload ports (veth host ends 10 and 11) of one
    /// network, with the kernel's table in memory.
    struct Rig {
        pipeline: SwitchPipeline,
        pool: Pool,
        tx: TxQueues,
        entries: Entries,
        control: channel::Sender<Control>,
        topo: Topology,
        counters: [Arc<PortCounters>; 2],
        offload: Arc<OffloadCounters>,
        now_ns: u64,
    }

    impl Rig {
        fn new() -> Rig {
            let mut topo = Topology::default();
            let net = topo.add_network("n", "172.30.0.0/24".parse().unwrap(), None);
            for (i, name) in ["p0", "p1"].iter().enumerate() {
                let p = topo.add_port(name, Some(net));
                topo.set_port_offload(
                    p,
                    Some(OffloadTarget {
                        ifindex: 10 + i as u32,
                        to_peer: true,
                    }),
                );
            }
            let entries = Entries::default();
            let offload: Arc<OffloadCounters> = Arc::default();
            let (pipeline, control) = offloading(topo.clone(), &entries, offload.clone());
            let counters: [Arc<PortCounters>; 2] = [Arc::default(), Arc::default()];
            let tx = TxQueues::new(&[
                (PortId(0), counters[0].clone()),
                (PortId(1), counters[1].clone()),
            ]);
            let pool = Pool::new(PoolConfig {
                chunks: 64,
                large: 1,
                umem: false,
            })
            .unwrap();
            Rig {
                pipeline,
                pool,
                tx,
                entries,
                control,
                topo,
                counters,
                offload,
                now_ns: 1,
            }
        }

        /// Switches `frame` arriving on port `port`; returns the ports it
        /// left by.
        fn send(&mut self, port: u16, frame: &[u8]) -> Vec<u16> {
            let mut f: Frame = self.pool.alloc_copy(frame).unwrap();
            f.in_port = PortId(port);
            let mut ctx = Ctx {
                pool: &mut self.pool,
                tx: &mut self.tx,
                now_ns: self.now_ns,
                thread: 0,
            };
            self.pipeline.process(&mut ctx, &mut vec![f]);
            let mut out = Vec::new();
            for p in 0..2 {
                for f in ctx.tx.take(PortId(p)) {
                    out.push(p);
                    ctx.pool.free(f);
                }
            }
            out
        }

        fn housekeeping(&mut self) {
            let mut ctx = Ctx {
                pool: &mut self.pool,
                tx: &mut self.tx,
                now_ns: self.now_ns,
                thread: 0,
            };
            self.pipeline.housekeeping(&mut ctx);
        }

        fn keys(&self) -> Vec<FlowKey> {
            self.entries.lock().unwrap().keys().copied().collect()
        }

        /// A rig whose flow from port 0 to port 1 is installed.
        fn with_one_flow() -> Rig {
            let mut rig = Rig::new();
            rig.learn();
            rig.data_0_to_1();
            assert_eq!(rig.keys().len(), 1);
            rig
        }

        /// A data frame of the flow from port 0 to port 1.
        fn data_0_to_1(&mut self) -> Vec<u16> {
            self.send(0, &tcp((MAC0, IP0, 5000), (MAC1, IP1, 80), Flag::Ack))
        }

        /// Both MACs learned, with SYNs (which are never installed).
        fn learn(&mut self) {
            self.send(0, &tcp((MAC0, IP0, 5000), (MAC1, IP1, 80), Flag::Syn));
            self.send(1, &tcp((MAC1, IP1, 80), (MAC0, IP0, 5000), Flag::Syn));
        }
    }

    #[test]
    fn a_switched_frame_of_an_established_flow_is_installed_as_what_the_switch_did() {
        let mut rig = Rig::new();
        rig.learn();
        assert!(rig.keys().is_empty(), "SYNs are never installed");
        let out = rig.data_0_to_1();
        assert_eq!(out, vec![1]);
        let m = rig.entries.lock().unwrap().clone();
        assert_eq!(m.len(), 1);
        let (key, (action, _)) = m.iter().next().unwrap();
        assert_eq!(key.ifindex, 10);
        assert_eq!((key.src_ip, key.dst_ip), (IP0, IP1));
        assert_eq!((key.src_mac, key.dst_mac), (MAC0, MAC1));
        assert_eq!(key.src_port, 5000u16.to_be_bytes());
        assert_eq!(action.out_ifindex, 11);
        assert_eq!(action.flags, FLOW_TO_PEER);
        assert_eq!((action.src_ip, action.dst_ip), (IP0, IP1));
        assert_eq!((action.src_mac, action.dst_mac), (MAC0, MAC1));
        assert_eq!(action.ttl_dec, 0);
        assert_eq!(rig.offload.installed.get(), 1);
    }

    #[test]
    fn a_fin_from_either_side_takes_both_directions_out_of_the_kernel() {
        for fin_from in [0u16, 1] {
            let mut rig = Rig::new();
            rig.learn();
            rig.data_0_to_1();
            rig.send(1, &tcp((MAC1, IP1, 80), (MAC0, IP0, 5000), Flag::Ack));
            assert_eq!(rig.keys().len(), 2);
            let fin = if fin_from == 0 {
                tcp((MAC0, IP0, 5000), (MAC1, IP1, 80), Flag::Fin)
            } else {
                tcp((MAC1, IP1, 80), (MAC0, IP0, 5000), Flag::Fin)
            };
            assert_eq!(
                rig.send(fin_from, &fin),
                vec![1 - fin_from],
                "the FIN is switched"
            );
            assert!(rig.keys().is_empty(), "FIN from port {fin_from}");
        }
    }

    #[test]
    fn a_fin_from_the_side_never_installed_still_takes_the_other_direction_out() {
        let mut rig = Rig::with_one_flow();
        rig.send(1, &tcp((MAC1, IP1, 80), (MAC0, IP0, 5000), Flag::Fin));
        assert!(rig.keys().is_empty());
    }

    #[test]
    fn the_last_acks_of_a_closed_flow_are_not_installed_until_it_opens_again() {
        let mut rig = Rig::with_one_flow();
        rig.send(0, &tcp((MAC0, IP0, 5000), (MAC1, IP1, 80), Flag::Fin));
        assert!(rig.keys().is_empty());
        rig.data_0_to_1();
        rig.send(1, &tcp((MAC1, IP1, 80), (MAC0, IP0, 5000), Flag::Ack));
        assert!(rig.keys().is_empty(), "ACKs after the FIN, both ways");
        rig.send(0, &tcp((MAC0, IP0, 5000), (MAC1, IP1, 80), Flag::Syn));
        rig.data_0_to_1();
        assert_eq!(rig.keys().len(), 1, "a new connection on the same ports");
    }

    #[test]
    fn a_flooded_frame_is_not_installed() {
        let mut rig = Rig::new();
        // MAC1 never learned: the frame is flooded.
        rig.data_0_to_1();
        assert!(rig.keys().is_empty());
    }

    #[test]
    fn nothing_is_installed_while_a_capture_watches_a_port_and_arming_one_retires_its_flows() {
        let mut rig = Rig::with_one_flow();
        struct Ignore;
        impl pmd::mirror::MirrorSink for Ignore {
            fn offer(&self, _: pmd::mirror::Direction, _: &[u8]) {}
        }
        rig.counters[1].mirror.arm(Arc::new(Ignore)).unwrap();
        rig.now_ns += SWEEP_NS;
        rig.housekeeping();
        assert!(rig.keys().is_empty(), "a watched port's flows go");
        rig.data_0_to_1();
        assert!(rig.keys().is_empty(), "and are not installed again");
    }

    #[test]
    fn arming_a_trace_flushes_every_entry() {
        let mut rig = Rig::with_one_flow();
        let (reply, _report) = channel::bounded(1);
        let (ack, _acks) = channel::unbounded();
        let arm = crate::pipeline::TraceArm {
            port: None,
            filter: crate::filter::FrameMatch::new(&Default::default()).unwrap(),
            inject: None,
            done: std::sync::atomic::AtomicBool::new(false),
            reply,
            ack,
        };
        rig.control.send(Control::Trace(Arc::new(arm))).unwrap();
        rig.housekeeping();
        assert!(rig.keys().is_empty());
    }

    #[test]
    fn a_topology_change_flushes_every_entry() {
        let mut rig = Rig::with_one_flow();
        let topo = Arc::new(rig.topo.clone());
        rig.control.send(Control::Swap(topo, vec![])).unwrap();
        rig.housekeeping();
        assert!(rig.keys().is_empty());
    }

    #[test]
    fn what_the_kernel_carried_is_counted_on_both_ports_and_an_idle_entry_goes() {
        let mut rig = Rig::new();
        rig.learn();
        rig.data_0_to_1();
        let key = rig.keys()[0];
        let rx0 = rig.counters[0].rx_packets.get();
        let tx1 = rig.counters[1].tx_packets.get();
        rig.entries.lock().unwrap().get_mut(&key).unwrap().1 = FlowStats {
            packets: 7,
            bytes: 7 * 65_000,
            last_used_ns: 1,
        };
        rig.now_ns += SWEEP_NS;
        rig.housekeeping();
        assert_eq!(rig.counters[0].rx_packets.get() - rx0, 7);
        assert_eq!(rig.counters[0].offloaded_bytes.get(), 7 * 65_000);
        assert_eq!(rig.counters[1].tx_packets.get() - tx1, 7);
        for _ in 0..IDLE_SWEEPS {
            rig.now_ns += SWEEP_NS;
            rig.housekeeping();
        }
        assert!(rig.keys().is_empty(), "idle for {IDLE_SWEEPS} sweeps");
        assert_eq!(rig.counters[0].offloaded_packets.get(), 7, "counted once");
    }

    #[test]
    fn an_entry_goes_after_its_maximum_age_even_with_traffic() {
        let mut rig = Rig::new();
        rig.learn();
        rig.data_0_to_1();
        let key = rig.keys()[0];
        let mut packets = 0;
        while rig.now_ns < MAX_AGE_NS {
            packets += 1;
            rig.entries.lock().unwrap().get_mut(&key).unwrap().1.packets = packets;
            rig.now_ns += SWEEP_NS;
            rig.housekeeping();
        }
        assert!(rig.keys().is_empty());
    }

    #[test]
    fn a_full_table_is_counted_and_the_flow_still_switched() {
        let mut rig = Rig::new();
        rig.learn();
        for port in 5000..5006 {
            let out = rig.send(0, &tcp((MAC0, IP0, port), (MAC1, IP1, 80), Flag::Ack));
            assert_eq!(out, vec![1]);
        }
        assert_eq!(rig.keys().len(), 4);
        assert_eq!(rig.offload.table_full.get(), 2);
    }

    #[test]
    fn udp_fragments_and_tagged_frames_are_never_candidates() {
        let mut udp = Vec::new();
        etherparse::PacketBuilder::ethernet2(MAC0, MAC1)
            .ipv4(IP0, IP1, 64)
            .udp(1, 2)
            .write(&mut udp, &[])
            .unwrap();
        assert_eq!(arrival(1, &udp), Arrival::Other);
        let mut frag = tcp((MAC0, IP0, 5000), (MAC1, IP1, 80), Flag::Ack);
        frag[20] |= 0x20; // more fragments
        assert_eq!(arrival(1, &frag), Arrival::Other);
        let mut tagged = tcp((MAC0, IP0, 5000), (MAC1, IP1, 80), Flag::Ack);
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        assert_eq!(arrival(1, &tagged), Arrival::Other);
        assert_eq!(arrival(1, &tagged[..30]), Arrival::Other);
    }

    // An overlay network (VNI 42) with a veth endpoint (port 0, device 10)
    // and a packet uplink (port 1, device 20, VTEP 10.99.0.2) whose next
    // hop to the remote VTEP 10.99.0.3 is known; the remote endpoint
    // 10.200.0.11 (MAC1) is behind it.
    const UP_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x99];
    const HOP_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x98];
    const VTEP: [u8; 4] = [10, 99, 0, 2];
    const REMOTE_VTEP: [u8; 4] = [10, 99, 0, 3];
    const OIP0: [u8; 4] = [10, 200, 0, 10];
    const OIP1: [u8; 4] = [10, 200, 0, 11];

    struct OverlayRig {
        pipeline: SwitchPipeline,
        pool: Pool,
        tx: TxQueues,
        entries: Entries,
    }

    impl OverlayRig {
        fn new() -> OverlayRig {
            use std::net::Ipv4Addr;
            let mut topo = Topology::default();
            let net = topo.add_network("ov", "10.200.0.0/24".parse().unwrap(), None);
            let p0 = topo.add_port("c1", Some(net));
            topo.set_port_offload(
                p0,
                Some(OffloadTarget {
                    ifindex: 10,
                    to_peer: true,
                }),
            );
            let up = topo.add_uplink(
                "up0",
                Ipv4Addr::from(VTEP),
                "10.99.0.0/24".parse().unwrap(),
                None,
                pmd::wire::MacAddr(UP_MAC),
            );
            let up_port = topo.uplink(up).port;
            topo.set_port_offload(
                up_port,
                Some(OffloadTarget {
                    ifindex: 20,
                    to_peer: false,
                }),
            );
            topo.set_uplink(net, up);
            topo.set_vxlan(net, 42, overlay::VXLAN_PORT);
            let mut tables = overlay::VtepTables::new(Ipv4Addr::from(VTEP));
            tables.add_network(42, overlay::VXLAN_PORT, None).unwrap();
            tables
                .add_remote_endpoint(overlay::RemoteEndpoint {
                    vni: 42,
                    ip: Ipv4Addr::from(OIP1),
                    mac: pmd::wire::MacAddr(MAC1),
                    vtep: Ipv4Addr::from(REMOTE_VTEP),
                })
                .unwrap();
            let u = &mut topo.uplinks[up.0 as usize];
            u.vteps = Some(Arc::new(tables));
            u.overlay_nets = vec![(42, net)];
            u.static_neighbors = vec![(Ipv4Addr::from(REMOTE_VTEP), pmd::wire::MacAddr(HOP_MAC))];
            let entries = Entries::default();
            let (pipeline, _control) = offloading(topo, &entries, Arc::default());
            let tx = TxQueues::new(&[(PortId(0), Arc::default()), (PortId(1), Arc::default())]);
            let pool = Pool::new(PoolConfig {
                chunks: 64,
                large: 1,
                umem: false,
            })
            .unwrap();
            OverlayRig {
                pipeline,
                pool,
                tx,
                entries,
            }
        }

        /// Switches `frame` arriving on `port`; the frames that left, by
        /// port.
        fn send(&mut self, port: u16, frame: &[u8]) -> Vec<(u16, Vec<u8>)> {
            let mut f: Frame = self.pool.alloc_copy(frame).unwrap();
            f.in_port = PortId(port);
            let mut ctx = Ctx {
                pool: &mut self.pool,
                tx: &mut self.tx,
                now_ns: 1,
                thread: 0,
            };
            self.pipeline.process(&mut ctx, &mut vec![f]);
            let mut out = Vec::new();
            for p in 0..2 {
                for f in ctx.tx.take(PortId(p)) {
                    out.push((p, ctx.pool.data(&f).to_vec()));
                    ctx.pool.free(f);
                }
            }
            out
        }

        fn entry(&self, pred: impl Fn(&FlowKey) -> bool) -> Option<(FlowKey, FlowAction)> {
            let m = self.entries.lock().unwrap();
            m.iter().find(|(k, _)| pred(k)).map(|(k, (a, _))| (*k, *a))
        }
    }

    /// A frame of the connection from OIP0:5000 to OIP1:80, either way.
    fn overlay_tcp(from: ([u8; 6], [u8; 4]), to: ([u8; 6], [u8; 4]), flag: Flag) -> Vec<u8> {
        let (sport, dport) = if from.1 == OIP0 {
            (5000, 80)
        } else {
            (80, 5000)
        };
        tcp((from.0, from.1, sport), (to.0, to.1, dport), flag)
    }

    /// `inner` in VXLAN (VNI 42) from the remote VTEP to this host, with
    /// the UDP checksum Linux's vxlan sends.
    fn from_remote_vtep(inner: &[u8]) -> Vec<u8> {
        let mut payload = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        payload.extend_from_slice(inner);
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2(HOP_MAC, UP_MAC)
            .ipv4(REMOTE_VTEP, VTEP, 64)
            .udp(51000, overlay::VXLAN_PORT)
            .write(&mut f, &payload)
            .unwrap();
        f
    }

    /// What the program writes over an encapsulated skb of `len` bytes:
    /// the template with its lengths, the IPv4 checksum adjusted as
    /// pd_encap does (ones' complement add of the total length).
    fn outer_as_the_program_writes_it(t: &Tunnel, len: usize) -> [u8; OUTER_LEN] {
        let mut o = t.outer;
        let tot = (len - wire::ETH_HDR) as u16;
        o[16..18].copy_from_slice(&tot.to_be_bytes());
        o[38..40].copy_from_slice(&(tot - 20).to_be_bytes());
        let check = u16::from_be_bytes([o[24], o[25]]);
        let mut sum = (!check) as u32 + tot as u32;
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        o[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        o
    }

    #[test]
    fn an_encapsulated_send_installs_the_outer_headers_the_pipeline_sent() {
        let mut rig = OverlayRig::new();
        rig.send(0, &overlay_tcp((MAC0, OIP0), (MAC1, OIP1), Flag::Syn));
        assert!(
            rig.entries.lock().unwrap().is_empty(),
            "a SYN is never installed"
        );
        let data = overlay_tcp((MAC0, OIP0), (MAC1, OIP1), Flag::Ack);
        let out = rig.send(0, &data);
        assert_eq!(out.len(), 1, "one VXLAN datagram");
        let (port, sent) = &out[0];
        assert_eq!(*port, 1, "out of the uplink");
        assert_eq!(&sent[OUTER_LEN..], &data[..], "the inner frame unchanged");
        let (key, a) = rig.entry(|k| k.ifindex == 10).expect("installed");
        assert_eq!((key.src_ip, key.dst_ip, key.pad), (OIP0, OIP1, [0; 3]));
        assert_eq!(a.flags, FLOW_ENCAP);
        assert_eq!(a.out_ifindex, 20);
        assert_eq!((a.dst_mac, a.src_mac, a.ttl_dec), (MAC1, MAC0, 0));
        assert_eq!(a.tunnel.inner_mtu, 1450);
        // The template plus the program's length arithmetic is, byte for
        // byte, the outer header the switch sent.
        assert_eq!(
            outer_as_the_program_writes_it(&a.tunnel, sent.len()),
            sent[..OUTER_LEN]
        );
        assert_eq!(&a.tunnel.outer[0..6], &HOP_MAC);
        assert!(Ipv4Packet::new_unchecked(&sent[14..34]).verify_checksum());
    }

    #[test]
    fn a_vxlan_arrival_is_keyed_by_its_inner_headers_and_vni() {
        let inner = overlay_tcp((MAC1, OIP1), (MAC0, OIP0), Flag::Ack);
        let frame = from_remote_vtep(&inner);
        let Arrival::Established(c) = arrival(20, &frame) else {
            panic!("{:?}", arrival(20, &frame));
        };
        assert_eq!(c.key.ifindex, 20);
        assert_eq!((c.key.src_ip, c.key.dst_ip), (OIP1, OIP0));
        assert_eq!((c.key.src_mac, c.key.dst_mac), (MAC1, MAC0));
        assert_eq!(c.key.src_port, 80u16.to_be_bytes());
        assert_eq!(c.key.pad, [0, 0, 42], "the VNI");
        assert_eq!(
            c.vxlan,
            Some(Outer {
                src_vtep: REMOTE_VTEP,
                dst_vtep: VTEP,
                udp_dst_port: overlay::VXLAN_PORT.to_be_bytes(),
            })
        );
        let fin = from_remote_vtep(&overlay_tcp((MAC1, OIP1), (MAC0, OIP0), Flag::Fin));
        assert!(matches!(
            arrival(20, &fin),
            Arrival::Boundary { key, opens: false } if key.pad == [0, 0, 42]
        ));
        // A train (the datagrams' payloads end to end) is not one
        // datagram: its inner length is not the frame's.
        let mut train = frame.clone();
        train.extend_from_slice(&frame[42..]);
        let tot = (train.len() - 14) as u16;
        train[16..18].copy_from_slice(&tot.to_be_bytes());
        assert_eq!(arrival(20, &train), Arrival::Other);
    }

    #[test]
    fn a_decapsulated_delivery_installs_the_decap_and_a_fin_forgets_both_directions() {
        let mut rig = OverlayRig::new();
        rig.send(0, &overlay_tcp((MAC0, OIP0), (MAC1, OIP1), Flag::Syn));
        rig.send(0, &overlay_tcp((MAC0, OIP0), (MAC1, OIP1), Flag::Ack));
        let inner = overlay_tcp((MAC1, OIP1), (MAC0, OIP0), Flag::Ack);
        let out = rig.send(1, &from_remote_vtep(&inner));
        assert_eq!(out, vec![(0, inner.clone())], "delivered to c1");
        let (key, a) = rig.entry(|k| k.ifindex == 20).expect("installed");
        assert_eq!(key.pad, [0, 0, 42]);
        assert_eq!(a.flags, FLOW_DECAP | FLOW_TO_PEER);
        assert_eq!(a.out_ifindex, 10);
        assert_eq!((a.dst_mac, a.src_mac), (MAC0, MAC1));
        assert_eq!(&a.tunnel.outer[26..30], &REMOTE_VTEP);
        assert_eq!(&a.tunnel.outer[30..34], &VTEP);
        assert_eq!(&a.tunnel.outer[36..38], &overlay::VXLAN_PORT.to_be_bytes());
        assert_eq!(rig.entries.lock().unwrap().len(), 2, "both directions");
        let fin = overlay_tcp((MAC1, OIP1), (MAC0, OIP0), Flag::Fin);
        assert_eq!(rig.send(1, &from_remote_vtep(&fin)).len(), 1);
        let left: Vec<FlowKey> = rig.entries.lock().unwrap().keys().copied().collect();
        assert!(left.is_empty(), "a FIN from the remote end: {left:?}");
    }

    #[test]
    fn a_flooded_overlay_frame_is_not_installed() {
        let mut rig = OverlayRig::new();
        // Unknown destination MAC: replicated to the peers and flooded.
        let unknown = [2, 0, 0, 0, 0, 0x42];
        rig.send(0, &overlay_tcp((MAC0, OIP0), (unknown, OIP1), Flag::Ack));
        assert!(rig.entries.lock().unwrap().is_empty());
    }
}
