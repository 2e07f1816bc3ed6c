//! [`Nat`]: the translation state of one uplink's NAT networks and its
//! entry points.

use std::net::Ipv4Addr;
use std::sync::Arc;

use hashbrown::HashMap;
use pmd::meta::PacketMeta;

use crate::config::{InternalNet, NatConfig, Timeouts};
use crate::conntrack::{ConnTrack, Entry, Tuple, F_CLOSER_REPLY, F_DNAT, F_HAIRPIN, F_SNAT_PORT};
use crate::frag::FragTable;
use crate::icmp_error::{parse_quoted, rewrite_error};
use crate::packet::{Kind, Pkt};
use crate::ports::PortAllocator;
use crate::rewrite::{rewrite, set_addrs, L4Csum};
use crate::state::{next_tcp, next_udp, tcp_timeout, udp_timeout, Side, TcpState};
use crate::verdict::{NatCounters, NatDrop, Verdict};

/// Slab slots a new flow sweeps for expired entries (the background part
/// of lazy expiry; `Nat::sweep` from housekeeping does the rest).
const SWEEP_PER_NEW_FLOW: usize = 4;
/// Slots swept to reclaim room when the table or the port range is full.
const RECLAIM_BUDGET: usize = 256;

/// 0.0.0.0/8, 127.0.0.0/8 and 224.0.0.0/3 (multicast, reserved,
/// broadcast): never translated (RFC 1122 section 3.2.1.3 forbids
/// forwarding most of them; multicast stays on the network's L2).
#[inline]
fn martian(a: u32) -> bool {
    let top = a >> 24;
    top == 0 || top == 127 || top >= 224
}

#[inline]
fn secs(now_ns: u64) -> u32 {
    (now_ns / 1_000_000_000) as u32
}

/// One internal network as the hot path reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Internal {
    net: u32,
    mask: u32,
    gw: u32,
}

impl Internal {
    fn of(n: &InternalNet) -> Internal {
        Internal {
            net: u32::from(n.subnet.network()),
            mask: u32::from(n.subnet.netmask()),
            gw: u32::from(n.gateway),
        }
    }

    #[inline]
    fn contains(&self, a: u32) -> bool {
        a & self.mask == self.net
    }

    /// The longest prefix every network of `nets` lies in (all of IPv4
    /// for none), so that most addresses outside them all are told apart
    /// with one compare.
    fn span(nets: &[Internal]) -> Internal {
        let Some(first) = nets.first() else {
            return Internal {
                net: 0,
                mask: u32::MAX,
                gw: 0,
            };
        };
        let mut mask = nets.iter().fold(first.mask, |m, n| m & n.mask);
        for n in nets {
            // Keep only the leading bits where this network agrees with
            // the first.
            let differ = (n.net ^ first.net) & mask;
            if differ != 0 {
                mask &= !(u32::MAX >> differ.leading_zeros());
            }
        }
        Internal {
            net: first.net & mask,
            mask,
            gw: 0,
        }
    }
}

/// The index of the internal network that holds `a`.
#[inline]
fn net_of(nets: &[Internal], a: u32) -> Option<usize> {
    // A linear scan: an uplink carries a few tens of networks at most,
    // and one compare each beats any index at that size.
    for (i, n) in nets.iter().enumerate() {
        if n.contains(a) {
            return Some(i);
        }
    }
    None
}

/// The translation state of one uplink's NAT networks: connection table,
/// SNAT ports, port mappings, fragment table and counters, shared by all
/// of them. Owned by one PMD thread; no locks.
pub struct Nat {
    ext: u32,
    nets: Vec<Internal>,
    /// The prefix all of `nets` share (`Internal::span`).
    span: Internal,
    port_range: (u16, u16),
    timeouts: Timeouts,
    /// (protocol, host port) -> (endpoint address, endpoint port).
    mappings: HashMap<(u8, u16), (u32, u16)>,
    ct: ConnTrack,
    ports: PortAllocator,
    frags: FragTable,
    hairpins: u32,
    counters: Arc<NatCounters>,
}

/// A hairpin within one network: the target answers the client directly
/// (not through the gateway), so its replies reach NAT only through
/// [`Nat::hairpin_reply`]. A hairpin across networks holds an SNAT port
/// and is answered to the target network's gateway instead.
#[inline]
fn direct_hairpin(flags: u8) -> bool {
    flags & (F_HAIRPIN | F_SNAT_PORT) == F_HAIRPIN
}

fn release(ports: &mut PortAllocator, counters: &NatCounters, hairpins: &mut u32, e: &Entry) {
    if e.flags & F_SNAT_PORT != 0 {
        let o = e.tuples[Side::Orig as usize];
        ports.release(e.proto, o.src, o.sport);
    }
    if direct_hairpin(e.flags) {
        *hairpins -= 1;
    }
    counters.flows_removed.add(1);
}

impl Nat {
    /// A NAT for `cfg`. Mapped host ports inside `port_range` are taken
    /// out of the SNAT range.
    pub fn new(cfg: NatConfig) -> Nat {
        let mut ports = PortAllocator::new(cfg.port_range.0, cfg.port_range.1);
        let mut mappings = HashMap::new();
        for m in &cfg.mappings {
            ports.reserve(m.proto.number(), m.host_port);
            mappings.insert(
                (m.proto.number(), m.host_port),
                (u32::from(m.internal_ip), m.internal_port),
            );
        }
        let ext = u32::from(cfg.external_ip);
        let nets: Vec<Internal> = cfg.networks.iter().map(Internal::of).collect();
        Nat {
            ext,
            span: Internal::span(&nets),
            nets,
            port_range: cfg.port_range,
            timeouts: cfg.timeouts,
            mappings,
            ct: ConnTrack::new(cfg.max_entries as usize),
            ports,
            frags: FragTable::new(ext.rotate_left(7) ^ 0x5bd1_e995),
            hairpins: 0,
            counters: Arc::new(NatCounters::default()),
        }
    }

    /// Applies a reloaded config (DESIGN.md: "Flows of a removed endpoint
    /// or mapping are dropped; all others go on untouched").
    ///
    /// While the external address and the port range stay, the table is
    /// kept: timeouts and `max_entries` apply from now on (a smaller bound
    /// evicts nothing, it refuses new flows until the table drains), and
    /// one pass over the table (reload work, not packet work) removes the
    /// connections of a mapping that is gone or points elsewhere and those
    /// with an address whose network is gone, changed (subnet or gateway)
    /// or new: networks added next to the others, or removed, leave the
    /// flows of the rest alone. A new host port that an internal endpoint
    /// holds for SNAT stays with it until its connections end. When the
    /// address or the port range changed, every translation is stale and
    /// the table starts empty. Returns true when connections were kept.
    pub fn reconfigure(&mut self, cfg: NatConfig) -> bool {
        let same = u32::from(cfg.external_ip) == self.ext && cfg.port_range == self.port_range;
        if !same {
            let counters = Arc::clone(&self.counters);
            counters.flows_removed.add(self.ct.len() as u64);
            *self = Nat::new(cfg);
            self.counters = counters;
            return false;
        }
        let old = std::mem::replace(
            &mut self.nets,
            cfg.networks.iter().map(Internal::of).collect(),
        );
        self.span = Internal::span(&self.nets);
        self.timeouts = cfg.timeouts;
        self.ct.set_max(cfg.max_entries as usize);
        self.ports.clear_reserved();
        self.mappings.clear();
        for m in &cfg.mappings {
            self.ports.reserve(m.proto.number(), m.host_port);
            self.mappings.insert(
                (m.proto.number(), m.host_port),
                (u32::from(m.internal_ip), m.internal_port),
            );
        }
        let Nat {
            ct,
            ports,
            counters,
            hairpins,
            mappings,
            nets,
            ..
        } = self;
        // An address means the same before and after when it is in the
        // same network (subnet and gateway) or outside all of them both
        // times.
        let unchanged =
            |a: u32| net_of(&old, a).map(|i| old[i]) == net_of(nets, a).map(|i| nets[i]);
        ct.retain(
            |e| {
                let (o, r) = (
                    e.tuples[Side::Orig as usize],
                    e.tuples[Side::Reply as usize],
                );
                let mapping_kept = e.flags & (F_DNAT | F_HAIRPIN) == 0
                    || mappings.get(&(e.proto, o.dport)) == Some(&(r.src, r.sport));
                mapping_kept && [o.src, o.dst, r.src, r.dst].into_iter().all(unchanged)
            },
            |e| release(ports, counters, hairpins, &e),
        );
        true
    }

    /// Removes every connection of internal address `ip` (an endpoint that
    /// left: its flows must not reach whoever gets the address next).
    /// Reload work, one pass over the table. Returns how many went.
    pub fn remove_flows_of(&mut self, ip: Ipv4Addr) -> usize {
        let ip = u32::from(ip);
        let Nat {
            ct,
            ports,
            counters,
            hairpins,
            ..
        } = self;
        let mut gone = 0;
        ct.retain(
            |e| {
                let (o, r) = (
                    e.tuples[Side::Orig as usize],
                    e.tuples[Side::Reply as usize],
                );
                o.src != ip && r.src != ip
            },
            |e| {
                gone += 1;
                release(ports, counters, hairpins, &e)
            },
        );
        gone
    }

    /// The counters; clone the `Arc` for the stats side.
    pub fn counters(&self) -> &Arc<NatCounters> {
        &self.counters
    }

    /// Connections in the table (including expired ones not yet swept).
    pub fn len(&self) -> usize {
        self.ct.len()
    }

    /// True with no connection in the table.
    pub fn is_empty(&self) -> bool {
        self.ct.len() == 0
    }

    /// Live connections at `now_ns` (the clock `outbound` gets), lazily:
    /// take as many as you need.
    pub fn connections(&self, now_ns: u64) -> impl Iterator<Item = crate::Connection> + '_ {
        crate::dump::connections(&self.ct, secs(now_ns), |a| self.net_of(a))
    }

    /// Internal endpoints (`ip:port` per protocol) holding an external
    /// port now.
    pub fn snat_mappings(&self) -> usize {
        self.ports.mappings()
    }

    /// True while a hairpin connection within one network lives: only then
    /// must the switch offer frames between two endpoints to
    /// [`Nat::hairpin_reply`].
    #[inline]
    pub fn has_hairpin_flows(&self) -> bool {
        self.hairpins > 0
    }

    /// Heap bytes of the connection table per connection in it now (slab,
    /// free list and index; port mappings not included).
    pub fn bytes_per_connection(&self) -> f64 {
        self.ct.heap_bytes() as f64 / self.ct.len().max(1) as f64
    }

    /// The index of the internal network that holds `a`.
    #[inline]
    fn net_of(&self, a: u32) -> Option<usize> {
        if !self.span.contains(a) {
            return None;
        }
        net_of(&self.nets, a)
    }

    /// True when internal network `net` holds `a` (subnets do not
    /// overlap: then no other network does).
    #[inline]
    fn holds(&self, net: usize, a: u32) -> bool {
        self.nets.get(net).is_some_and(|n| n.contains(a))
    }

    #[inline]
    fn internal(&self, a: u32) -> bool {
        self.net_of(a).is_some()
    }

    #[inline]
    fn toward(&self, dst: u32) -> Verdict {
        match self.net_of(dst) {
            Some(net) => Verdict::ToInternal {
                dst: Ipv4Addr::from(dst),
                net,
            },
            None => Verdict::ToUplink,
        }
    }

    #[inline]
    fn done(&self, r: Result<Verdict, NatDrop>) -> Verdict {
        match r {
            Ok(v) => v,
            Err(d) => {
                self.counters.count_drop(d);
                Verdict::Drop(d)
            }
        }
    }

    /// Translates an IPv4 frame from an endpoint of internal network
    /// `from` (its index in `NatConfig::networks`) whose destination is
    /// outside the subnet (the external address included: hairpin), or is
    /// the gateway address without being ARP or echo for the gateway
    /// itself (the reply of a container that reached its own mapped port,
    /// or that a port mapping from another network reached). `csum` says
    /// what the L4 checksum field holds.
    pub fn outbound(
        &mut self,
        frame: &mut [u8],
        meta: &PacketMeta,
        from: usize,
        csum: L4Csum,
        now_ns: u64,
    ) -> Verdict {
        let r = self.outbound_inner(frame, meta, from, csum, secs(now_ns));
        if r.is_ok() {
            self.counters.translated_out.add(1);
        }
        self.done(r)
    }

    fn outbound_inner(
        &mut self,
        frame: &mut [u8],
        meta: &PacketMeta,
        from: usize,
        csum: L4Csum,
        now_s: u32,
    ) -> Result<Verdict, NatDrop> {
        let pkt = Pkt::parse(frame, meta)?;
        // A source of another network would reach that network's flows.
        if !self.holds(from, pkt.tuple.src) {
            return Err(NatDrop::BadSource);
        }
        if martian(pkt.tuple.dst) {
            return Err(NatDrop::BadDestination);
        }
        match pkt.kind {
            Kind::LaterFragment => return self.follow_fragment(frame, &pkt, now_s),
            Kind::IcmpError => return self.icmp_error(frame, &pkt, now_s, Some(from), false),
            _ => {}
        }
        let (idx, side) = match self.find(pkt.proto, &pkt.tuple, now_s) {
            Some(hit) => hit,
            None => self.open_outbound(&pkt, from, now_s)?,
        };
        Ok(self.apply(frame, &pkt, idx, side, csum, now_s))
    }

    /// Translates an IPv4 frame that arrived on the uplink addressed to
    /// the external address: replies of SNAT connections, packets of
    /// connections to mapped ports (new ones are created), ICMP errors
    /// about either, and later fragments of those.
    pub fn inbound(
        &mut self,
        frame: &mut [u8],
        meta: &PacketMeta,
        csum: L4Csum,
        now_ns: u64,
    ) -> Verdict {
        let r = self.inbound_inner(frame, meta, csum, secs(now_ns));
        if r.is_ok() {
            self.counters.translated_in.add(1);
        }
        self.done(r)
    }

    fn inbound_inner(
        &mut self,
        frame: &mut [u8],
        meta: &PacketMeta,
        csum: L4Csum,
        now_s: u32,
    ) -> Result<Verdict, NatDrop> {
        let pkt = Pkt::parse(frame, meta)?;
        if pkt.tuple.dst != self.ext {
            return Err(NatDrop::NoMapping);
        }
        if self.internal(pkt.tuple.src) || martian(pkt.tuple.src) {
            return Err(NatDrop::BadSource);
        }
        match pkt.kind {
            Kind::LaterFragment => return self.follow_fragment(frame, &pkt, now_s),
            Kind::IcmpError => return self.icmp_error(frame, &pkt, now_s, None, false),
            _ => {}
        }
        let (idx, side) = match self.find(pkt.proto, &pkt.tuple, now_s) {
            Some(hit) => hit,
            None => self.open_inbound(&pkt, now_s)?,
        };
        Ok(self.apply(frame, &pkt, idx, side, csum, now_s))
    }

    /// Offers a frame between two endpoints of internal network `from`. A
    /// hairpinned connection within one network keeps the client's
    /// address (DESIGN.md), so the target's replies are addressed to the
    /// client directly and never pass the gateway: the switch hands them
    /// here (only while [`Nat::has_hairpin_flows`]) before switching.
    /// `None`: not a hairpin reply, switch it as usual (the frame is
    /// untouched). `Some`: the frame was translated (source becomes the
    /// external address and mapped port) or dropped.
    pub fn hairpin_reply(
        &mut self,
        frame: &mut [u8],
        meta: &PacketMeta,
        from: usize,
        csum: L4Csum,
        now_ns: u64,
    ) -> Option<Verdict> {
        if self.hairpins == 0 {
            return None;
        }
        let now_s = secs(now_ns);
        let pkt = Pkt::parse(frame, meta).ok()?;
        if !self.holds(from, pkt.tuple.src) {
            return None;
        }
        if pkt.kind == Kind::IcmpError {
            let q = parse_quoted(frame, &pkt).ok()?;
            let (idx, _) = self.find(q.proto, &q.tuple.inverted(), now_s)?;
            if !direct_hairpin(self.ct.get(idx).flags) {
                return None;
            }
            let r = self.icmp_error(frame, &pkt, now_s, Some(from), true);
            self.counters.hairpin.add(1);
            return Some(self.done(r));
        }
        if !matches!(pkt.kind, Kind::Tcp(_) | Kind::Udp) {
            return None;
        }
        let (idx, side) = self.find(pkt.proto, &pkt.tuple, now_s)?;
        if !direct_hairpin(self.ct.get(idx).flags) {
            return None;
        }
        self.counters.translated_out.add(1);
        Some(self.apply(frame, &pkt, idx, side, csum, now_s))
    }

    /// Visits up to `budget` slab slots and removes the expired
    /// connections among them (the incremental half of lazy expiry; call
    /// it from housekeeping). Returns the number removed.
    ///
    /// Measured (bench `nat_sweep`, 1M-entry table, 2-core VM): visiting a
    /// live slot costs about 1.1 ns, removing an expired connection about
    /// 530 ns (a few cache misses: both index slots and the port mapping).
    /// A budget of 256 bounds a call to about 140 us even when everything
    /// expires at once, and at one call per millisecond visits a million
    /// slots every 4 s.
    pub fn sweep(&mut self, now_ns: u64, budget: usize) -> usize {
        self.sweep_s(secs(now_ns), budget)
    }

    fn sweep_s(&mut self, now_s: u32, budget: usize) -> usize {
        let Nat {
            ct,
            ports,
            counters,
            hairpins,
            ..
        } = self;
        ct.sweep(now_s, budget, |e| release(ports, counters, hairpins, &e))
    }

    fn remove_conn(&mut self, idx: u32) {
        let e = self.ct.remove(idx);
        release(&mut self.ports, &self.counters, &mut self.hairpins, &e);
    }

    /// A live connection with `t` on one side; an expired one is removed
    /// here (lazy expiry) and reported absent.
    #[inline]
    fn find(&mut self, proto: u8, t: &Tuple, now_s: u32) -> Option<(u32, Side)> {
        let (idx, side) = self.ct.lookup(proto, t)?;
        if self.ct.get(idx).expires_s <= now_s {
            self.remove_conn(idx);
            return None;
        }
        Some((idx, side))
    }

    fn open_outbound(
        &mut self,
        pkt: &Pkt,
        from: usize,
        now_s: u32,
    ) -> Result<(u32, Side), NatDrop> {
        let t = pkt.tuple;
        match pkt.kind {
            Kind::Tcp(f) if !f.opens() => return Err(NatDrop::InvalidState),
            Kind::EchoReply => return Err(NatDrop::NoMapping),
            _ => {}
        }
        if t.dst == self.ext {
            return self.open_hairpin(pkt, from, now_s);
        }
        if let Some(to) = self.net_of(t.dst) {
            // The gateway routes nothing between the networks of an
            // uplink (DESIGN.md: they stay isolated from each other).
            return Err(if to == from {
                NatDrop::NoMapping
            } else {
                NatDrop::Isolated
            });
        }
        let ext_port = self.snat_port(pkt, now_s)?;
        let reply = Tuple {
            src: t.dst,
            sport: t.dport,
            dst: self.ext,
            dport: ext_port,
        };
        self.open_snat(pkt, reply, 0, now_s)
    }

    /// A container of network `from` to the external address: DNAT to the
    /// mapped endpoint.
    ///
    /// RFC 4787 section 6, REQ-9: "A NAT MUST support 'Hairpinning'."
    /// RFC 5382 asks the same of TCP.
    fn open_hairpin(&mut self, pkt: &Pkt, from: usize, now_s: u32) -> Result<(u32, Side), NatDrop> {
        let t = pkt.tuple;
        let &(ip, port) = self
            .mappings
            .get(&(pkt.proto, t.dport))
            .ok_or(NatDrop::NoMapping)?;
        let to = self.net_of(ip).ok_or(NatDrop::NoMapping)?;
        let target = self.nets[to];
        if to != from || t.src == ip {
            // A port mapped into another network: as Docker's proxy does,
            // the target sees its own gateway as the client, so no address
            // of the client's network enters it. The source port is the
            // client's SNAT port, which no other internal endpoint holds,
            // so clients from several networks never collide. A container
            // reaching its own mapped port would see its own address as
            // client and answer itself; it sees the gateway too, with an
            // SNAT port, so its answers go by the port's slice on a spread
            // network (as the answers from another network do).
            let ext_port = self.snat_port(pkt, now_s)?;
            let reply = Tuple {
                src: ip,
                sport: port,
                dst: target.gw,
                dport: ext_port,
            };
            return self.open_snat(pkt, reply, F_HAIRPIN, now_s);
        }
        // Within one network the client keeps its address.
        let reply = Tuple {
            src: ip,
            sport: port,
            dst: t.src,
            dport: t.sport,
        };
        self.open(pkt, reply, F_HAIRPIN, now_s)
    }

    /// The external port of the packet's internal source endpoint (RFC
    /// 4787 endpoint-independent: the one it holds, or a free one).
    fn snat_port(&mut self, pkt: &Pkt, now_s: u32) -> Result<u16, NatDrop> {
        let t = pkt.tuple;
        self.make_room(now_s)?;
        match self.ports.acquire(pkt.proto, t.src, t.sport) {
            Some(p) => Ok(p),
            None => {
                self.sweep_s(now_s, RECLAIM_BUDGET);
                self.ports
                    .acquire(pkt.proto, t.src, t.sport)
                    .ok_or(NatDrop::PortsExhausted)
            }
        }
    }

    /// Opens a connection that holds its source's SNAT port (taken by
    /// [`Nat::snat_port`]), giving the port back if it cannot.
    fn open_snat(
        &mut self,
        pkt: &Pkt,
        reply: Tuple,
        flags: u8,
        now_s: u32,
    ) -> Result<(u32, Side), NatDrop> {
        let r = self.open(pkt, reply, flags | F_SNAT_PORT, now_s);
        if r.is_err() {
            self.ports
                .release(pkt.proto, pkt.tuple.src, pkt.tuple.sport);
        }
        r
    }

    fn open_inbound(&mut self, pkt: &Pkt, now_s: u32) -> Result<(u32, Side), NatDrop> {
        let t = pkt.tuple;
        // Address-and-port-dependent filtering, as Linux does: only mapped
        // ports accept new connections from outside; an SNAT port answers
        // only the remote ip:port it was opened for. RFC 4787 section 5,
        // REQ-8 recommends endpoint-independent filtering when application
        // transparency matters most and address-dependent filtering when
        // stringency does; this is stricter still (one below both
        // recommendations), like the Docker hosts it stands in for.
        let &(ip, port) = match pkt.kind {
            Kind::Tcp(_) | Kind::Udp => self.mappings.get(&(pkt.proto, t.dport)),
            _ => None,
        }
        .ok_or(NatDrop::NoMapping)?;
        if let Kind::Tcp(f) = pkt.kind {
            if !f.opens() {
                return Err(NatDrop::InvalidState);
            }
        }
        // Port mappings keep the client's source address (DESIGN.md).
        let reply = Tuple {
            src: ip,
            sport: port,
            dst: t.src,
            dport: t.sport,
        };
        self.open(pkt, reply, F_DNAT, now_s)
    }

    fn make_room(&mut self, now_s: u32) -> Result<(), NatDrop> {
        if self.ct.is_full() {
            // Expired entries may be reclaimed; live ones are never
            // evicted to make room.
            self.sweep_s(now_s, RECLAIM_BUDGET);
            if self.ct.is_full() {
                return Err(NatDrop::TableFull);
            }
        }
        Ok(())
    }

    fn open(
        &mut self,
        pkt: &Pkt,
        reply: Tuple,
        flags: u8,
        now_s: u32,
    ) -> Result<(u32, Side), NatDrop> {
        self.sweep_s(now_s, SWEEP_PER_NEW_FLOW);
        self.make_room(now_s)?;
        if self.find(pkt.proto, &reply, now_s).is_some() {
            return Err(NatDrop::TupleInUse);
        }
        let t = &self.timeouts;
        let (state, timeout) = match pkt.kind {
            Kind::Tcp(_) => (TcpState::SynSent as u8, t.tcp_syn_sent),
            Kind::Udp => (0, t.udp),
            _ => (0, t.icmp),
        };
        let idx = self.ct.insert(Entry {
            tuples: [pkt.tuple, reply],
            expires_s: now_s.saturating_add(timeout.max(1)),
            proto: pkt.proto,
            state,
            flags,
        });
        if direct_hairpin(flags) {
            self.hairpins += 1;
        }
        self.counters.flows_created.add(1);
        Ok((idx, Side::Orig))
    }

    /// Advances the state, refreshes the timer and rewrites the frame to
    /// the other side's tuple, inverted.
    #[inline]
    fn apply(
        &mut self,
        frame: &mut [u8],
        pkt: &Pkt,
        idx: u32,
        side: Side,
        csum: L4Csum,
        now_s: u32,
    ) -> Verdict {
        let t = self.timeouts;
        let e = self.ct.get_mut(idx);
        let timeout = match pkt.kind {
            Kind::Tcp(flags) => {
                let closer = if e.flags & F_CLOSER_REPLY != 0 {
                    Side::Reply
                } else {
                    Side::Orig
                };
                let (s, c) = next_tcp(TcpState::from_u8(e.state), closer, side, flags);
                e.state = s as u8;
                e.flags =
                    (e.flags & !F_CLOSER_REPLY) | if c == Side::Reply { F_CLOSER_REPLY } else { 0 };
                tcp_timeout(s, &t)
            }
            Kind::Udp => {
                let replied = next_udp(e.state != 0, side);
                e.state = replied as u8;
                udp_timeout(replied, &t)
            }
            _ => t.icmp,
        };
        e.expires_s = now_s.saturating_add(timeout.max(1));
        let new = e.tuples[side.other() as usize].inverted();
        let hairpin = e.flags & F_HAIRPIN != 0;
        rewrite(frame, pkt, &new, csum);
        if pkt.first_fragment {
            self.frags.record(
                pkt.tuple.src,
                pkt.tuple.dst,
                pkt.ip_id,
                pkt.proto,
                new.src,
                new.dst,
                now_s,
            );
        }
        if hairpin {
            self.counters.hairpin.add(1);
        }
        self.toward(new.dst)
    }

    fn follow_fragment(
        &mut self,
        frame: &mut [u8],
        pkt: &Pkt,
        now_s: u32,
    ) -> Result<Verdict, NatDrop> {
        let t = pkt.tuple;
        let (src, dst) = self
            .frags
            .lookup(t.src, t.dst, pkt.ip_id, pkt.proto, now_s)
            .ok_or(NatDrop::FragmentUnknown)?;
        set_addrs(frame, pkt.l3, src, dst);
        self.counters.fragments.add(1);
        Ok(self.toward(dst))
    }

    /// RFC 5508 section 4.1: the quoted packet is one this NAT translated,
    /// so its tuple inverted is a side of a connection; it is reverted to
    /// the other side's tuple (its form before translation), and the outer
    /// destination becomes that tuple's source.
    ///
    /// `from`: the internal network the error came from (`None`: the
    /// uplink). It must have received the quoted packet, so an error from
    /// one network cannot reach another network's flows.
    fn icmp_error(
        &mut self,
        frame: &mut [u8],
        pkt: &Pkt,
        now_s: u32,
        from: Option<usize>,
        hairpin_only: bool,
    ) -> Result<Verdict, NatDrop> {
        let q = parse_quoted(frame, pkt)?;
        if from.is_some() && self.net_of(q.tuple.dst) != from {
            return Err(NatDrop::NoMapping);
        }
        let (idx, side) = self
            .find(q.proto, &q.tuple.inverted(), now_s)
            .ok_or(NatDrop::NoMapping)?;
        let e = *self.ct.get(idx);
        if hairpin_only && !direct_hairpin(e.flags) {
            return Err(NatDrop::NoMapping);
        }
        let inner = e.tuples[side.other() as usize];
        let outer = pkt.tuple;
        let dst = inner.src;
        let src = if outer.src == q.tuple.dst {
            // Sent by the quoted packet's destination itself: it appears
            // as that destination did to the flow's sender.
            inner.dst
        } else if self
            .net_of(outer.src)
            .is_some_and(|n| self.net_of(dst) != Some(n))
        {
            // An error from inside (a container acting as a router) leaves
            // its network from the external address, like any other
            // outbound packet.
            self.ext
        } else {
            outer.src
        };
        rewrite_error(frame, pkt, &q, src, dst, &inner);
        self.counters.icmp_errors.add(1);
        Ok(self.toward(dst))
    }
}
