//! `ctl trace` on the PMD thread: one frame run through the unchanged
//! pipeline (`process`, as a burst of one), with the thread's tables read before and its
//! counters, queues and held frames compared after.
//!
//! The stages themselves carry no trace code, so an unarmed switch pays
//! one branch per burst (`process` checks `self.trace`) and nothing per
//! frame or per stage. What a stage did is read from what it changed:
//! every stage counts what it does (a learned MAC, a gateway reply, a
//! translation and whether it made a connection, an encapsulation), every
//! drop counts its `DropReason` on a port, and every frame it sends sits in
//! a transmit queue until the burst ends. Since a thread runs one frame at
//! a time, every change between the two readings is this frame's.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam::channel::Sender;
use nat::NatDrop;
use overlay::vxlan::DecapDrop;
use pmd::meta::{self, PacketMeta};
use pmd::thread::{Ctx, Pipeline};
use pmd::wire::{self, MacAddr};
use pmd::{DropReason, Frame, PortId};

use super::SwitchPipeline;
use crate::describe::{self, FlowEnds};
use crate::filter::FrameMatch;
use crate::stats::NetSnapshot;
use crate::topology::UplinkId;
use crate::trace::TraceReport;

/// A trace armed by `ctl trace`, shared by every PMD thread; the first
/// thread that traces a frame reports it.
pub struct TraceArm {
    /// Only frames received on this port (required with `inject`).
    pub port: Option<PortId>,
    /// Only frames that match.
    pub filter: FrameMatch,
    /// A frame to run as if received on `port`, instead of a live one.
    pub inject: Option<Vec<u8>>,
    /// Set once a frame was traced, or when the control side gave up.
    pub done: AtomicBool,
    /// Where the report goes.
    pub reply: Sender<TraceReport>,
    /// Each thread says here that it has the trace (armed, or injected).
    pub ack: Sender<()>,
}

impl TraceArm {
    fn wants(&self, port: PortId, bytes: &[u8]) -> bool {
        self.port.is_none_or(|p| p == port) && self.filter.matches(bytes)
    }

    /// Hands `report` over, unless another thread already did.
    fn finish(&self, report: TraceReport) {
        if !self.done.swap(true, Ordering::AcqRel) {
            let _ = self.reply.try_send(report);
        }
    }
}

/// What a frame can change, read before and after it runs.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    /// Frames queued per port (by `PortId`), 0 for another thread's.
    queued: Vec<usize>,
    /// Drops per port, by reason.
    drops: Vec<Option<[u64; DropReason::COUNT]>>,
    unowned_drops: u64,
    /// This thread's network counters, by `NetId`.
    nets: Vec<NetSnapshot>,
    /// Per uplink: NAT translations out/in, hairpins, connections made,
    /// drops by `NatDrop`.
    nat: Vec<Option<NatSeen>>,
    /// Per uplink: overlay counters.
    overlay: Vec<OverlaySeen>,
    /// Per uplink: echo replies sent from its address, echoes over the
    /// rate limit.
    echo: Vec<(u64, u64)>,
    /// Per uplink: frames waiting for ARP.
    held: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct NatSeen {
    out: u64,
    inbound: u64,
    hairpin: u64,
    created: u64,
    drops: [u64; NatDrop::COUNT],
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct OverlaySeen {
    encapsulated: u64,
    decapsulated: u64,
    learned: u64,
    arp_suppressed: u64,
    frag_needed: u64,
    too_big: u64,
    encap_errors: u64,
    decap_drops: [u64; DecapDrop::COUNT],
}

impl SwitchPipeline {
    /// A burst while a trace is armed: when a frame of it is wanted, the
    /// frames before it are switched, then it alone (traced), then the
    /// rest, and true is returned; false leaves the burst to `process`.
    ///
    /// Each part goes through `process` again (with the trace taken, so
    /// it switches as always): `switch_one` keeps a single call site,
    /// which LLVM inlines into `process` (a second one, here, made it keep
    /// `switch_one` out of line: 40 more instructions a packet, measured).
    #[cold]
    #[inline(never)]
    pub(super) fn trace_burst(&mut self, ctx: &mut Ctx<'_>, burst: &mut Vec<Frame>) -> bool {
        let Some(arm) = self.trace.clone() else {
            return false;
        };
        if arm.done.load(Ordering::Acquire) {
            // Traced elsewhere, or given up on.
            self.trace = None;
            return false;
        }
        let Some(i) = burst
            .iter()
            .position(|f| arm.wants(f.in_port, ctx.pool.data(f)))
        else {
            return false;
        };
        self.trace = None;
        let mut rest = burst.split_off(i + 1);
        let Some(frame) = burst.pop() else {
            return false;
        };
        self.process(ctx, burst);
        let report = self.switch_traced(ctx, frame);
        arm.finish(report);
        self.process(ctx, &mut rest);
        true
    }

    /// Takes a trace from the control side (housekeeping): a live one is
    /// armed for the bursts to come; an injected frame runs now on the
    /// thread that polls its port.
    pub(super) fn take_trace(&mut self, ctx: &mut Ctx<'_>, arm: std::sync::Arc<TraceArm>) {
        match (&arm.inject, arm.port) {
            (Some(bytes), Some(port)) if ctx.tx.owns(port) => {
                let report = match ctx.pool.alloc_copy(bytes) {
                    Some(mut frame) => {
                        frame.in_port = port;
                        // A live trace armed before stays armed, untouched.
                        let live = self.trace.take();
                        let report = self.switch_traced(ctx, frame);
                        self.trace = live;
                        report
                    }
                    None => TraceReport {
                        in_port: self.port_name(port),
                        stages: Vec::new(),
                        verdict: "drop: no_buffer (no free buffer for the frame)".into(),
                    },
                };
                arm.finish(report);
            }
            (Some(_), _) => {}
            (None, _) => self.trace = Some(arm.clone()),
        }
        let _ = arm.ack.send(());
    }

    /// Drops a trace that is over (run from housekeeping, so an expired
    /// trace stops costing the per-frame filter soon).
    pub(super) fn expire_trace(&mut self) {
        if self
            .trace
            .as_ref()
            .is_some_and(|a| a.done.load(Ordering::Acquire))
        {
            self.trace = None;
        }
    }

    fn port_name(&self, port: PortId) -> String {
        self.topo
            .ports
            .get(port.0 as usize)
            .map_or_else(|| format!("#{}", port.0), |p| p.name.clone())
    }

    // Per-thread tables may outgrow the topology (counters of networks a
    // reload removed), so names are looked up, not indexed.
    fn net_name(&self, i: usize) -> String {
        self.topo
            .networks
            .get(i)
            .map_or_else(|| format!("#{i}"), |n| n.name.clone())
    }

    fn uplink_name(&self, u: usize) -> String {
        self.topo
            .uplinks
            .get(u)
            .map_or_else(|| format!("#{u}"), |up| up.name.clone())
    }

    fn vxlan_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .topo
            .networks
            .iter()
            .filter_map(|n| n.vxlan.map(|(_, p)| p))
            .collect();
        ports.dedup();
        ports
    }

    /// Runs `frame` through the pipeline and tells what happened.
    fn switch_traced(&mut self, ctx: &mut Ctx<'_>, frame: Frame) -> TraceReport {
        let in_port = frame.in_port;
        let input = ctx.pool.data(&frame).to_vec();
        let offload = frame.offload;
        let vx = self.vxlan_ports();
        let mut stages = vec![format!("received: {}", describe::frame(&input, &vx))];
        match meta::parse(&input) {
            Ok(m) => self.note_ingress(&mut stages, in_port, &m, ctx.now_ns),
            Err(reason) => stages.push(format!(
                "parse: {} on {}; no later stage sees it",
                reason.name(),
                self.port_name(in_port)
            )),
        }
        if offload.gso_type != 0 {
            stages.push(format!(
                "offload: a GSO segment of {} bytes, {} bytes a piece: switched whole, cut \
                 (GSO) only where it leaves through a port without offloads",
                input.len(),
                offload.gso_size
            ));
        }
        let before = self.seen(ctx);
        let mut one = vec![frame];
        self.process(ctx, &mut one);
        let after = self.seen(ctx);
        let verdict = self.effects(ctx, &mut stages, &before, &after, &input, &vx);
        TraceReport {
            in_port: self.port_name(in_port),
            stages,
            verdict,
        }
    }

    /// What the switch will decide from its tables, before it runs: the
    /// port's network or uplink, the source checks, the FDB entries of
    /// both MACs, the gateway.
    fn note_ingress(&self, stages: &mut Vec<String>, port: PortId, m: &PacketMeta, now_ns: u64) {
        let name = self.port_name(port);
        let Some(net) = self.topo.network_of(port) else {
            match self.topo.uplink_of(port) {
                Some(up) => self.note_uplink(stages, &name, up, m),
                None => stages.push(format!("ingress: port {name} belongs to no network")),
            }
            return;
        };
        let network = self.topo.network(net);
        let kind = if network.vxlan.is_some() {
            "overlay"
        } else if self.nat_slot[net.0 as usize].is_some() {
            "nat"
        } else {
            "switched"
        };
        stages.push(format!(
            "ingress: port {name} in network {} ({kind})",
            network.name
        ));
        if m.src_mac.is_multicast() || m.src_mac == MacAddr::ZERO {
            stages.push(format!(
                "ingress check: source MAC {} is multicast or zero",
                m.src_mac
            ));
            return;
        }
        let fdb = &self.fdbs[net.0 as usize];
        match fdb.lookup(m.src_mac, now_ns) {
            Some(p) if p == port => {
                stages.push(format!("fdb learn: {} already on {name}", m.src_mac))
            }
            Some(p) => stages.push(format!(
                "fdb learn: {} moves from {} to {name}",
                m.src_mac,
                self.port_name(p)
            )),
            None => stages.push(format!("fdb learn: {} on {name} (new)", m.src_mac)),
        }
        if let Some(gw) = network.gateway {
            if m.dst_mac == gw.mac {
                stages.push(format!(
                    "gateway: addressed to the gateway's MAC ({} at {})",
                    gw.ip, gw.mac
                ));
                return;
            }
        }
        if m.dst_mac.is_multicast() {
            stages.push(format!("fdb lookup: {} is broadcast/multicast", m.dst_mac));
            return;
        }
        match fdb.lookup(m.dst_mac, now_ns) {
            Some(p) => stages.push(format!(
                "fdb lookup: {} on {}",
                m.dst_mac,
                self.port_name(p)
            )),
            None => stages.push(format!("fdb lookup: {} unknown", m.dst_mac)),
        }
    }

    fn note_uplink(&self, stages: &mut Vec<String>, name: &str, up: UplinkId, m: &PacketMeta) {
        let uplink = self.topo.uplink(up);
        stages.push(format!("ingress: uplink {name} (address {})", uplink.ip));
        if m.ethertype == wire::ETHERTYPE_IPV4 && Ipv4Addr::from(m.ip_dst) != uplink.ip {
            stages.push(format!(
                "uplink: IPv4 to {}, not the uplink's address",
                Ipv4Addr::from(m.ip_dst)
            ));
        }
    }

    /// Reads every counter, queue and table size a frame can change.
    fn seen(&self, ctx: &Ctx<'_>) -> Seen {
        let ports = (0..self.topo.ports.len()).map(|i| PortId(i as u16));
        let mut nets = vec![NetSnapshot::default(); self.counters.len()];
        for (c, s) in self.counters.iter().zip(&mut nets) {
            c.add_to(s);
        }
        Seen {
            queued: ports.clone().map(|p| ctx.tx.queued(p).len()).collect(),
            drops: ports.map(|p| ctx.tx.drops_of(p)).collect(),
            unowned_drops: ctx.tx.unowned_drops(),
            nets,
            nat: self
                .nats
                .iter()
                .map(|n| {
                    let c = n.as_ref()?.counters();
                    Some(NatSeen {
                        out: c.translated_out.get(),
                        inbound: c.translated_in.get(),
                        hairpin: c.hairpin.get(),
                        created: c.flows_created.get(),
                        drops: NatDrop::ALL.map(|r| c.drops_of(r)),
                    })
                })
                .collect(),
            overlay: self
                .overlay_counters
                .iter()
                .map(|c| OverlaySeen {
                    encapsulated: c.encapsulated.get(),
                    decapsulated: c.decapsulated.get(),
                    learned: c.learned.get(),
                    arp_suppressed: c.arp_suppressed.get(),
                    frag_needed: c.frag_needed.get(),
                    too_big: c.too_big.get(),
                    encap_errors: c.encap_errors.get(),
                    decap_drops: DecapDrop::ALL.map(|r| c.decap_drops_of(r)),
                })
                .collect(),
            echo: self
                .uplink_counters
                .iter()
                .map(|c| (c.echo_replies.get(), c.echo_limited.get()))
                .collect(),
            held: self.neighbors.iter().map(|n| n.held()).collect(),
        }
    }

    /// The stages told by what changed, and the verdict.
    fn effects(
        &self,
        ctx: &Ctx<'_>,
        stages: &mut Vec<String>,
        before: &Seen,
        after: &Seen,
        input: &[u8],
        vx: &[u16],
    ) -> String {
        for (i, (b, a)) in before.nets.iter().zip(&after.nets).enumerate() {
            note_net(stages, &self.net_name(i), b, a);
        }
        let outputs = self.outputs(ctx, before, after);
        let first_out = outputs.first().map(|(_, f)| f.as_slice());
        for (u, (b, a)) in before.nat.iter().zip(&after.nat).enumerate() {
            if let (Some(b), Some(a)) = (b, a) {
                let name = &self.uplink_name(u);
                note_nat(stages, name, b, a, input, first_out);
            }
        }
        for (u, (b, a)) in before.overlay.iter().zip(&after.overlay).enumerate() {
            note_overlay(stages, &self.uplink_name(u), b, a);
        }
        for (u, (b, a)) in before.echo.iter().zip(&after.echo).enumerate() {
            let name = &self.uplink_name(u);
            if a.0 > b.0 {
                stages.push(format!(
                    "uplink {name}: answered an echo request to its address"
                ));
            }
            if a.1 > b.1 {
                stages.push(format!("uplink {name}: echo request over the rate limit"));
            }
        }
        if let Some(out) = first_out {
            let (t_in, t_out) = (ttl(input), ttl(out));
            if t_out < t_in {
                // meta::parse accepted `out` (it has a TTL), so it has an
                // Ethernet header.
                stages.push(format!(
                    "route: TTL {t_in} -> {t_out}, to next hop {}",
                    pmd::wire::EthernetFrame::new_unchecked(out).dst_addr()
                ));
            }
        }
        let held: usize = after.held.iter().sum::<usize>() - before.held.iter().sum::<usize>();
        for (port, frame) in &outputs {
            stages.push(format!(
                "output {}: {}",
                self.port_name(*port),
                describe::frame(frame, vx)
            ));
        }
        self.verdict(before, after, &outputs, held)
    }

    /// Copies of the frames this frame queued, by port.
    fn outputs(&self, ctx: &Ctx<'_>, before: &Seen, after: &Seen) -> Vec<(PortId, Vec<u8>)> {
        let mut out = Vec::new();
        for (i, (&b, &a)) in before.queued.iter().zip(&after.queued).enumerate() {
            let port = PortId(i as u16);
            for f in ctx.tx.queued(port).get(b..a).unwrap_or(&[]) {
                out.push((port, ctx.pool.data(f).to_vec()));
            }
        }
        out
    }

    fn verdict(
        &self,
        before: &Seen,
        after: &Seen,
        outputs: &[(PortId, Vec<u8>)],
        held: usize,
    ) -> String {
        if !outputs.is_empty() {
            let mut ports: Vec<String> = Vec::new();
            for (p, _) in outputs {
                let name = self.port_name(*p);
                if !ports.contains(&name) {
                    ports.push(name);
                }
            }
            let frames = if outputs.len() > ports.len() {
                format!(" ({} frames)", outputs.len())
            } else {
                String::new()
            };
            return format!("output to {}{frames}", ports.join(", "));
        }
        for (i, (b, a)) in before.drops.iter().zip(&after.drops).enumerate() {
            let (Some(b), Some(a)) = (b, a) else { continue };
            if let Some(k) = (0..DropReason::COUNT).find(|&k| a[k] > b[k]) {
                let reason = DropReason::ALL[k];
                return format!(
                    "drop: {} (counted on {}): {}",
                    reason.name(),
                    self.port_name(PortId(i as u16)),
                    why(reason)
                );
            }
        }
        if after.unowned_drops > before.unowned_drops {
            return "drop: sent to a port of another PMD thread".into();
        }
        if held > 0 {
            return "held: waiting for the next hop's ARP reply (sent again until it answers)"
                .into();
        }
        "consumed by the switch (nothing sent, nothing dropped)".into()
    }
}

fn note_net(stages: &mut Vec<String>, name: &str, b: &NetSnapshot, a: &NetSnapshot) {
    if a.fdb_full > b.fdb_full {
        stages.push(format!(
            "fdb learn: network {name}'s table is full; not learned"
        ));
    }
    if a.arp_replies > b.arp_replies {
        stages.push(format!("gateway of {name}: answered ARP"));
    }
    if a.echo_replies > b.echo_replies {
        stages.push(format!("gateway of {name}: answered the echo request"));
    }
    if a.unicast > b.unicast {
        stages.push(format!("switch {name}: to the learned port"));
    }
    if a.flooded > b.flooded {
        stages.push(format!("switch {name}: flooded to every other port"));
    }
}

fn note_nat(
    stages: &mut Vec<String>,
    uplink: &str,
    b: &NatSeen,
    a: &NatSeen,
    input: &[u8],
    output: Option<&[u8]>,
) {
    let dir = if a.out > b.out {
        "outbound (SNAT)"
    } else if a.inbound > b.inbound {
        "inbound"
    } else {
        ""
    };
    if !dir.is_empty() {
        let conn = if a.created > b.created {
            "conntrack entry new"
        } else {
            "conntrack entry found"
        };
        let hairpin = if a.hairpin > b.hairpin {
            ", hairpin"
        } else {
            ""
        };
        let change = match (FlowEnds::of(input), output.and_then(FlowEnds::of)) {
            (Some(i), Some(o)) => i.changes_to(&o).unwrap_or_else(|| "no change".into()),
            _ => "translated".into(),
        };
        stages.push(format!("nat of {uplink}: {dir}{hairpin}, {conn}: {change}"));
    }
    if let Some(k) = (0..NatDrop::COUNT).find(|&k| a.drops[k] > b.drops[k]) {
        stages.push(format!(
            "nat of {uplink}: refused ({})",
            NatDrop::ALL[k].name()
        ));
    }
}

fn note_overlay(stages: &mut Vec<String>, uplink: &str, b: &OverlaySeen, a: &OverlaySeen) {
    let notes = [
        (a.decapsulated > b.decapsulated, "decapsulated VXLAN"),
        (
            a.learned > b.learned,
            "learned the inner source MAC at its VTEP",
        ),
        (
            a.arp_suppressed > b.arp_suppressed,
            "answered ARP for a remote endpoint (ARP suppression)",
        ),
        (a.encapsulated > b.encapsulated, "encapsulated in VXLAN"),
        (
            a.frag_needed > b.frag_needed,
            "too big for the overlay: answered fragmentation-needed",
        ),
        (a.too_big > b.too_big, "too big for the overlay"),
        (a.encap_errors > b.encap_errors, "could not encapsulate"),
    ];
    for (happened, what) in notes {
        if happened {
            stages.push(format!("overlay of {uplink}: {what}"));
        }
    }
    if let Some(k) = (0..DecapDrop::COUNT).find(|&k| a.decap_drops[k] > b.decap_drops[k]) {
        stages.push(format!(
            "overlay of {uplink}: VXLAN refused ({})",
            DecapDrop::ALL[k].name()
        ));
    }
}

/// A drop reason in words (from `DropReason`'s documentation).
fn why(r: DropReason) -> &'static str {
    match r {
        DropReason::NoBuffer => "no free buffer",
        DropReason::TxFull => "the transmit ring was full",
        DropReason::TxError => "the kernel refused the frame",
        DropReason::Runt => "shorter than an Ethernet header",
        DropReason::BadEtherType => "an 802.3 length or an EtherType the switch does not carry",
        DropReason::Truncated => "a header shorter than it claims",
        DropReason::Malformed => "a header with impossible values",
        DropReason::BadSourceMac => "a multicast or zero source MAC",
        DropReason::Filtered => {
            "the destination is on another network, or back out of its own port"
        }
        DropReason::TooBig => "larger than the output port's MTU",
        DropReason::NoRoute => "no route or neighbour for the destination",
        DropReason::NotForUs => "for the switch's address, but nothing it answers",
        DropReason::OffloadError => "could not be segmented or checksummed",
        DropReason::TtlExceeded => "the TTL ran out",
        DropReason::Nat => "NAT refused it (see the nat stage)",
        DropReason::Unresolved => "the next hop did not answer ARP",
        DropReason::Overlay => "the overlay refused the VXLAN frame",
        DropReason::RateLimited => "over the echo rate limit",
        DropReason::Acl => "blocked by the endpoint's ACL",
    }
}

/// The IPv4 TTL of a frame (0 when it is not IPv4).
fn ttl(frame: &[u8]) -> u8 {
    match meta::parse(frame) {
        Ok(m) if m.ethertype == wire::ETHERTYPE_IPV4 => {
            frame.get(m.l3_off as usize + 8).copied().unwrap_or(0)
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crossbeam::channel;
    use pmd::counters::PortCounters;
    use pmd::thread::TxQueues;
    use pmd::{Pool, PoolConfig};

    use super::*;
    use crate::control::protocol::FrameFilter;
    use crate::pipeline::SwitchSettings;
    use crate::stats::NetCounters;
    use crate::topology::Topology;

    /// A UDP frame from port 0's host to port 1's, numbered by its
    /// source port.
    fn udp(n: u16) -> Vec<u8> {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([172, 30, 0, 1], [172, 30, 0, 2], 64)
            .udp(n, 9)
            .write(&mut f, &[])
            .unwrap();
        f
    }

    fn source_port(frame: &[u8]) -> u16 {
        u16::from_be_bytes([frame[34], frame[35]])
    }

    #[test]
    fn a_traced_frame_in_the_middle_of_a_burst_leaves_with_its_burst_in_order() {
        let mut topo = Topology::default();
        let net = topo.add_network("n", "172.30.0.0/24".parse().unwrap(), None);
        let p0 = topo.add_port("p0", Some(net));
        let p1 = topo.add_port("p1", Some(net));
        let counters: Vec<Arc<NetCounters>> = vec![Arc::default()];
        let (_control, control_rx) = channel::unbounded();
        let mut pipeline = SwitchPipeline::new(
            Arc::new(topo),
            SwitchSettings::default(),
            counters,
            control_rx,
            vec![],
            vec![],
            vec![],
        );
        let mut tx = TxQueues::new(&[
            (p0, Arc::new(PortCounters::default())),
            (p1, Arc::new(PortCounters::default())),
        ]);
        let mut pool = Pool::new(PoolConfig {
            chunks: 64,
            large: 1,
            umem: false,
        })
        .unwrap();
        let mut ctx = Ctx {
            pool: &mut pool,
            tx: &mut tx,
            now_ns: 1,
            thread: 0,
        };
        // p1's MAC learned first, so the burst is unicast to p1.
        let mut learn = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4([172, 30, 0, 2], [172, 30, 0, 1], 64)
            .udp(9, 9)
            .write(&mut learn, &[])
            .unwrap();
        let mut f = ctx.pool.alloc_copy(&learn).unwrap();
        f.in_port = p1;
        pipeline.process(&mut ctx, &mut vec![f]);
        for f in ctx.tx.take(p0) {
            ctx.pool.free(f);
        }

        let (reply, report) = channel::bounded(1);
        let (ack, _acks) = channel::unbounded();
        let filter = FrameMatch::new(&FrameFilter {
            l4_port: Some(1003),
            ..FrameFilter::default()
        })
        .unwrap();
        pipeline.trace = Some(Arc::new(TraceArm {
            port: Some(p0),
            filter,
            inject: None,
            done: AtomicBool::new(false),
            reply,
            ack,
        }));
        let mut burst: Vec<Frame> = (1001..=1005)
            .map(|n| {
                let mut f = ctx.pool.alloc_copy(&udp(n)).unwrap();
                f.in_port = p0;
                f
            })
            .collect();
        pipeline.process(&mut ctx, &mut burst);
        assert!(burst.is_empty(), "every frame taken");
        let out: Vec<u16> = ctx
            .tx
            .take(p1)
            .into_iter()
            .map(|f| {
                let n = source_port(ctx.pool.data(&f));
                ctx.pool.free(f);
                n
            })
            .collect();
        assert_eq!(out, [1001, 1002, 1003, 1004, 1005], "once each, in order");
        let r = report.try_recv().expect("a report");
        assert!(r.stages[0].contains(":1003 > 172.30.0.2:9"), "{r:#?}");
        assert_eq!(r.verdict, "output to p1");
        assert!(pipeline.trace.is_none(), "one frame per trace");
        assert_eq!(ctx.pool.in_flight(), 0, "no frame leaked");
    }
}
