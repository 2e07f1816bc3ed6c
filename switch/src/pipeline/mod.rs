//! The switching pipeline run by every PMD thread: parse once, learn the
//! source, answer for the gateway, forward to the learned port or flood
//! within the network. Frames never leave their network here; NAT and the
//! overlay will hang off the gateway and uplink stages.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam::channel::{Receiver, Sender};
use pmd::meta::{self, PacketMeta};
use pmd::thread::{Ctx, Pipeline};
use pmd::wire::{self, MacAddr};
use pmd::{DropReason, Frame, PortId};

use crate::config::AclDirection;
use crate::echo::{TokenBucket, ECHO_BURST, ECHO_RATE};
use crate::fdb::{Fdb, FdbEntry, Learned};
use crate::flows::{self, Arrival, Candidate, OffloadedFlows};
use crate::gateway::GatewayVerdict;
use crate::neighbor::NeighborCache;
use crate::spread::Replica;
use crate::stats::{NetCounters, UplinkCounters};
use crate::topology::OffloadTarget;
use crate::topology::{L2Mode, NetId, Topology};
use nat::{Nat, NatConfig};
use pmd::offload::FlowAction;
use pmd::Pool;

mod bridged;
mod dump;
mod overlaid;
mod routed;
mod traced;

pub use traced::TraceArm;

use crate::topology::UplinkId;
use overlay::{LearnedMacs, OverlayCounters, VtepTables};

/// Settings of the switching stage.
#[derive(Debug, Clone, Copy)]
pub struct SwitchSettings {
    /// MAC aging time in seconds.
    pub mac_aging_secs: u32,
    /// FDB entries per network.
    pub fdb_size: u32,
}

impl Default for SwitchSettings {
    fn default() -> Self {
        SwitchSettings {
            mac_aging_secs: 300,
            fdb_size: 65536,
        }
    }
}

/// One row of a dumped FDB.
#[derive(Debug, Clone)]
pub struct FdbRow {
    /// Network name.
    pub network: String,
    /// The MAC.
    pub mac: MacAddr,
    /// Where it was learned.
    pub port: PortId,
    /// Seconds since last seen.
    pub age_secs: f64,
}

/// Messages from the control side, handled between bursts.
pub enum Control {
    /// Send back every live FDB entry of this thread.
    DumpFdb(Sender<Vec<FdbRow>>),
    /// Replace the topology (reload), with this thread's counters of
    /// every network in it; learned state is kept for networks that still
    /// exist.
    Swap(Arc<Topology>, Vec<Arc<NetCounters>>),
    /// Replace an uplink's overlay tables (remote endpoints from the
    /// cluster store).
    OverlayTables(UplinkId, Arc<VtepTables>),
    /// Apply an uplink's new NAT config (networks, mappings, timeouts),
    /// keeping the connections it still allows (`Nat::reconfigure`); the
    /// networks are those of `NatConfig::networks`, in its order.
    Nat(UplinkId, Box<NatConfig>, Vec<NetId>),
    /// Drop the connections of an endpoint that left.
    ForgetAddress(UplinkId, Ipv4Addr),
    /// Send back up to `limit` live connections of the NATs this thread
    /// runs (of one network when given).
    DumpConntrack {
        /// Only this network's flows.
        network: Option<String>,
        /// At most this many.
        limit: usize,
        /// Where the rows go.
        reply: Sender<Vec<crate::inspect::ConntrackRow>>,
    },
    /// Send back every uplink's neighbour cache.
    DumpNeighbors(Sender<Vec<crate::inspect::NeighborRow>>),
    /// Send back the overlay tables in force (peers, remote endpoints).
    DumpOverlay(Sender<crate::inspect::OverlayView>),
    /// Arm a trace, or run an injected frame (`ctl trace`).
    Trace(Arc<TraceArm>),
    /// Answer once every message sent before this one is in force.
    Applied(Sender<()>),
}

impl Control {
    /// True for a message after which the kernel must leave every flow
    /// to the switch: a frame may be switched differently now, or a trace
    /// waits for a frame the kernel would carry past it (the others only
    /// read state).
    fn changes_forwarding(&self) -> bool {
        matches!(
            self,
            Control::Swap(..)
                | Control::OverlayTables(..)
                | Control::Nat(..)
                | Control::ForgetAddress(..)
                | Control::Trace(..)
        )
    }
}

/// The per-thread switching pipeline.
pub struct SwitchPipeline {
    topo: Arc<Topology>,
    fdbs: Vec<Fdb>,
    settings: SwitchSettings,
    counters: Vec<Arc<NetCounters>>,
    control: Receiver<Control>,
    last_sweep_ns: u64,
    /// The NAT of each uplink (shared by its NAT networks), on the thread
    /// that polls the uplink.
    nats: Vec<Option<Nat>>,
    /// The network of each internal network of an uplink's NAT, by the
    /// index NAT uses.
    nat_nets: Vec<Vec<NetId>>,
    /// For each network behind a NAT of this thread: the uplink and the
    /// network's index in that NAT.
    nat_slot: Vec<Option<(UplinkId, usize)>>,
    /// Next hops of each uplink.
    neighbors: Vec<NeighborCache>,
    /// Overlay tables of each uplink's VTEP (swapped by the cluster store).
    vteps: Vec<Option<Arc<VtepTables>>>,
    /// Inner MACs learned from VXLAN, per uplink.
    learned: Vec<LearnedMacs>,
    /// Overlay counters per uplink (written only on the uplink's thread).
    overlay_counters: Vec<Arc<OverlayCounters>>,
    /// Echo and other counters per uplink (written only on its thread).
    uplink_counters: Vec<Arc<UplinkCounters>>,
    /// Which of its group's threads this is (`crate::spread`).
    replica: Replica,
    /// Echo replies each uplink's address may still send.
    echo_limits: Vec<TokenBucket>,
    /// Reused vector for GSO segments.
    scratch: Vec<Frame>,
    /// The armed trace, if any: checked once per burst.
    trace: Option<Arc<TraceArm>>,
    /// This thread's entries in the kernel's flow table, when the switch
    /// runs the flow offload.
    flows: Option<OffloadedFlows>,
    /// The frame being switched, if it arrived on an offload port as part
    /// of an established TCP flow: a send of it may be installed.
    flow_candidate: Option<Candidate>,
}

impl SwitchPipeline {
    /// A pipeline for one PMD thread. `counters` has one entry per
    /// network of `topo`, owned by this thread; `nats` has, by uplink, the
    /// NAT of each uplink this thread polls (`None` elsewhere) with the
    /// network of each of its internal networks, in its order. A
    /// network's ports all belong to one thread (see `pmd::thread`), so
    /// its FDB here is the only one that learns its MACs.
    pub fn new(
        topo: Arc<Topology>,
        settings: SwitchSettings,
        counters: Vec<Arc<NetCounters>>,
        control: Receiver<Control>,
        nats: Vec<Option<(Nat, Vec<NetId>)>>,
        overlay_counters: Vec<Arc<OverlayCounters>>,
        uplink_counters: Vec<Arc<UplinkCounters>>,
    ) -> SwitchPipeline {
        let uplinks = topo.uplinks.len();
        let mut nat_slot = vec![None; topo.networks.len()];
        let mut own_nats: Vec<Option<Nat>> = (0..uplinks).map(|_| None).collect();
        let mut nat_nets = vec![Vec::new(); uplinks];
        for (u, slot) in nats.into_iter().enumerate().take(uplinks) {
            let Some((nat, nets)) = slot else { continue };
            for (i, n) in nets.iter().enumerate() {
                nat_slot[n.0 as usize] = Some((UplinkId(u as u16), i));
            }
            own_nats[u] = Some(nat);
            nat_nets[u] = nets;
        }
        let overlay_counters = per_uplink(overlay_counters, uplinks);
        let uplink_counters = per_uplink(uplink_counters, uplinks);
        let vteps = topo.uplinks.iter().map(|u| u.vteps.clone()).collect();
        let learned = topo
            .uplinks
            .iter()
            .map(|_| LearnedMacs::new(settings.fdb_size as usize, settings.mac_aging_secs))
            .collect();
        let neighbors = topo
            .uplinks
            .iter()
            .map(|u| {
                let mut n = NeighborCache::new();
                for (ip, mac) in &u.static_neighbors {
                    n.add_static(*ip, *mac);
                }
                n
            })
            .collect();
        let fdbs = topo
            .networks
            .iter()
            .map(|_| Fdb::new(settings.fdb_size as usize, settings.mac_aging_secs))
            .collect();
        SwitchPipeline {
            topo,
            fdbs,
            settings,
            counters,
            control,
            last_sweep_ns: 0,
            nats: own_nats,
            nat_nets,
            nat_slot,
            neighbors,
            vteps,
            learned,
            overlay_counters,
            uplink_counters,
            echo_limits: vec![TokenBucket::new(ECHO_RATE, ECHO_BURST); uplinks],
            scratch: Vec::with_capacity(64),
            trace: None,
            flows: None,
            flow_candidate: None,
            replica: Replica::default(),
        }
    }

    /// Makes this pipeline one of several threads of a spread group: its
    /// NAT translates to its own slice of the port range, and only the
    /// first answers ARP requests on the uplink (every thread sees them).
    pub fn with_replica(mut self, replica: Replica) -> Self {
        self.replica = replica;
        self
    }

    /// Lets this thread install the flows it switches between offload
    /// ports into the kernel's table (`flows`).
    pub fn with_offload(mut self, flows: OffloadedFlows) -> Self {
        self.flows = Some(flows);
        self
    }

    #[inline(always)]
    fn learn(&mut self, net: NetId, mac: MacAddr, port: PortId, now_ns: u64) {
        let fdb = &mut self.fdbs[net.0 as usize];
        match fdb.learn(mac, port, now_ns) {
            Learned::Refreshed => {}
            Learned::New => self.counters[net.0 as usize].learned.add(1),
            Learned::TableFull => self.counters[net.0 as usize].fdb_full.add(1),
        }
    }

    /// Sends a copy of `frame` to every member of `net` except the port it
    /// came in on; the original goes to the last one.
    fn flood(&mut self, ctx: &mut Ctx<'_>, net: NetId, frame: Frame) {
        let in_port = frame.in_port;
        let members = &self.topo.network(net).members;
        let mut outs = members.iter().copied().filter(|p| *p != in_port);
        let Some(mut prev) = outs.next() else {
            ctx.drop_frame(frame, DropReason::Filtered);
            return;
        };
        self.counters[net.0 as usize].flooded.add(1);
        for next in outs {
            match ctx.pool.clone_frame(&frame) {
                Some(copy) => ctx.send(prev, copy),
                None => ctx.tx.count_drop(prev, DropReason::NoBuffer),
            }
            prev = next;
        }
        ctx.send(prev, frame);
    }

    // Always inlined into the burst loop: with the per-mode branches it grew
    // past LLVM's inlining threshold, and the call, with `learn`, the FDB
    // lookup and the queue push left out of line with it, cost 80
    // instructions a packet (callgrind, `podbench pipeline`).
    #[inline(always)]
    fn switch_one(&mut self, ctx: &mut Ctx<'_>, mut frame: Frame) {
        let in_port = frame.in_port;
        let meta: PacketMeta = match meta::parse(ctx.pool.data(&frame)) {
            Ok(m) => m,
            Err(reason) => {
                ctx.drop_frame(frame, reason);
                return;
            }
        };
        if (meta.frame_len as usize) < frame.len() {
            ctx.pool.set_len(&mut frame, meta.frame_len as usize);
        }
        pmd::partial_csum::resolve_frame(ctx.pool, &mut frame, &meta);
        let Some(net) = self.topo.network_of(in_port) else {
            match self.topo.uplink_of(in_port) {
                Some(up) => self.uplink_frame(ctx, up, frame, &meta),
                None => ctx.drop_frame(frame, DropReason::Filtered),
            }
            return;
        };
        if meta.src_mac.is_multicast() || meta.src_mac == MacAddr::ZERO {
            ctx.drop_frame(frame, DropReason::BadSourceMac);
            return;
        }
        // Before learning: a forged source MAC must not move its owner's
        // FDB entry.
        if let Some(guard) = self.topo.guard_of(in_port) {
            if !guard.allows(&meta, ctx.pool.data(&frame)) {
                ctx.drop_frame(frame, DropReason::Spoofed);
                return;
            }
        }
        self.learn(net, meta.src_mac, in_port, ctx.now_ns);
        if self.topo.network(net).acl
            && self.acl_blocks(net, Some(in_port), ctx.pool.data(&frame), &meta)
        {
            ctx.drop_frame(frame, DropReason::Acl);
            return;
        }

        if let Some(mode) = self.topo.network(net).l2 {
            if mode != L2Mode::Transparent {
                self.host_mac_out(ctx, net, mode, frame, &meta);
                return;
            }
        }

        if meta.ethertype == wire::ETHERTYPE_IPV4 {
            if let Some((up, from)) = self.nat_slot[net.0 as usize] {
                match self.nat_stage(ctx, net, up, from, frame, &meta) {
                    Some(f) => frame = f,
                    None => return,
                }
            }
        }

        if let Some(gw) = self.topo.network(net).gateway {
            let for_gateway = meta.dst_mac == gw.mac
                || (meta.dst_mac.is_broadcast() && meta.ethertype == wire::ETHERTYPE_ARP);
            if for_gateway {
                match gw.handle(ctx.pool, &mut frame, &meta) {
                    GatewayVerdict::ArpReply => {
                        self.counters[net.0 as usize].arp_replies.add(1);
                        ctx.send(in_port, frame);
                        return;
                    }
                    GatewayVerdict::EchoReply => {
                        self.counters[net.0 as usize].echo_replies.add(1);
                        ctx.send(in_port, frame);
                        return;
                    }
                    GatewayVerdict::Drop(reason) => {
                        ctx.drop_frame(frame, reason);
                        return;
                    }
                    GatewayVerdict::NotForGateway => {}
                }
            }
        }

        if let Some((vni, _)) = self.topo.network(net).vxlan {
            self.overlay_out(ctx, net, vni, frame, &meta);
            return;
        }
        if meta.dst_mac.is_multicast() {
            self.flood(ctx, net, frame);
            return;
        }
        match self.fdbs[net.0 as usize].lookup(meta.dst_mac, ctx.now_ns) {
            Some(out) if out == in_port => ctx.drop_frame(frame, DropReason::Filtered),
            Some(out) => {
                self.counters[net.0 as usize].unicast.add(1);
                self.offer_flow(ctx, out, &frame);
                ctx.send(out, frame);
            }
            None => self.flood(ctx, net, frame),
        }
    }

    /// The ACL step of network `net` (only called when a port of it has an
    /// ACL): whether the `Out` rules of the sender `from` (an endpoint
    /// port, when the frame comes from one) or the `In` rules of the
    /// endpoint that owns the destination address block the frame. Out of
    /// line: a network without ACLs pays only the flag test in `switch_one`.
    #[inline(never)]
    fn acl_blocks(&self, net: NetId, from: Option<PortId>, buf: &[u8], meta: &PacketMeta) -> bool {
        let acl_of = |port: PortId| {
            self.topo
                .ports
                .get(port.0 as usize)?
                .policy
                .as_ref()?
                .acl
                .as_ref()
        };
        if let Some(acl) = from.and_then(acl_of) {
            if !acl.admits(AclDirection::Out, buf, meta) {
                return true;
            }
        }
        if meta.ethertype != wire::ETHERTYPE_IPV4 {
            return false;
        }
        let to = self
            .topo
            .network(net)
            .endpoints
            .get(&Ipv4Addr::from(meta.ip_dst));
        to.and_then(|&(_, port)| acl_of(port))
            .is_some_and(|acl| !acl.admits(AclDirection::In, buf, meta))
    }

    /// Switches every frame of a burst. Out of line, so the trace check
    /// in `process` leaves its code as it was (measured: inlined, the
    /// check shifted registers for 3 instructions a packet; out of line,
    /// it costs a call per burst).
    #[inline(never)]
    fn switch_burst(&mut self, ctx: &mut Ctx<'_>, burst: &mut Vec<Frame>) {
        if self.flows.is_some() {
            // A burst comes from one port.
            let ifindex = burst
                .first()
                .and_then(|f| self.topo.offload_of(f.in_port))
                .map(|t| t.ifindex);
            if let Some(ifindex) = ifindex {
                self.switch_burst_offloading(ctx, burst, ifindex);
                return;
            }
        }
        for frame in burst.drain(..) {
            self.switch_one(ctx, frame);
        }
    }

    /// `switch_burst` for a burst from an offload port (device `ifindex`):
    /// each frame of an established TCP flow is a candidate while it is
    /// switched, and a SYN, FIN or RST takes its flow out of the kernel.
    #[inline(never)]
    fn switch_burst_offloading(&mut self, ctx: &mut Ctx<'_>, burst: &mut Vec<Frame>, ifindex: u32) {
        for frame in burst.drain(..) {
            match flows::arrival(ifindex, ctx.pool.data(&frame)) {
                Arrival::Established(c) => self.flow_candidate = Some(c),
                Arrival::Boundary { key, opens } => {
                    if let Some(f) = &mut self.flows {
                        f.forget(ctx.tx, &key, opens, ctx.now_ns);
                    }
                }
                Arrival::Other => {}
            }
            self.switch_one(ctx, frame);
            self.flow_candidate = None;
        }
    }

    /// Called where the pipeline sends a frame whose output depends only
    /// on its headers (a known unicast MAC, a routed NAT flow): if the
    /// frame is a candidate, the kernel does the same to its flow from now.
    #[inline(always)]
    fn offer_flow(&mut self, ctx: &mut Ctx<'_>, out: PortId, frame: &Frame) {
        if self.flow_candidate.is_some() {
            self.offer_flow_now(ctx, out, frame);
        }
    }

    #[inline(never)]
    fn offer_flow_now(&mut self, ctx: &mut Ctx<'_>, out: PortId, frame: &Frame) {
        self.offer_built(ctx, out, frame, |sent, cand, to| {
            // A VXLAN datagram's inner key is only ever installed by the
            // decapsulation (`offer_decap`).
            match cand.vxlan {
                Some(_) => None,
                None => flows::action_for(sent, cand.ttl, to),
            }
        });
    }

    /// The frame's candidacy, used up; none while a trace is armed: it
    /// must see its frame go through the switch.
    fn take_candidate(&mut self) -> Option<Candidate> {
        let cand = self.flow_candidate.take();
        if self.trace.is_some() {
            return None;
        }
        cand
    }

    /// The one way every offer goes: the candidate used up, the action
    /// `build` makes of the frame as sent out of `out`, handed to this
    /// thread's flows.
    fn offer_built(
        &mut self,
        ctx: &mut Ctx<'_>,
        out: PortId,
        frame: &Frame,
        build: impl FnOnce(&[u8], &Candidate, OffloadTarget) -> Option<FlowAction>,
    ) {
        let (Some(cand), Some(to), Some(flows)) = (
            self.take_candidate(),
            self.topo.offload_of(out),
            self.flows.as_mut(),
        ) else {
            return;
        };
        let Some(action) = build(ctx.pool.data(frame), &cand, to) else {
            return;
        };
        let ports = (frame.in_port, out);
        flows.offer_action(ctx.tx, &cand, ports, action, ctx.now_ns);
    }

    /// Called where the pipeline sends `sent`, a frame it encapsulated in
    /// VXLAN toward one remote VTEP, out of uplink `up`: if the inner
    /// frame was a candidate, the kernel encapsulates its flow from now.
    #[inline(always)]
    fn offer_encap(&mut self, ctx: &mut Ctx<'_>, up: UplinkId, sent: &Frame) {
        if self.flow_candidate.is_some() {
            self.offer_encap_now(ctx, up, sent);
        }
    }

    #[inline(never)]
    fn offer_encap_now(&mut self, ctx: &mut Ctx<'_>, up: UplinkId, sent: &Frame) {
        let uplink = self.topo.uplink(up);
        let port = uplink.port;
        let inner_mtu = uplink
            .mtu
            .saturating_sub(overlay::OUTER_LEN as u32)
            .min(u16::MAX as u32) as u16;
        self.offer_built(ctx, port, sent, |sent, cand, to| match cand.vxlan {
            Some(_) => None,
            None => flows::encap_action_for(sent, cand.ttl, to, inner_mtu),
        });
    }

    /// Called where the pipeline delivers `frame`, the inner frame of a
    /// VXLAN datagram, to the local port `out`: if the datagram was a
    /// candidate, the kernel decapsulates and delivers its flow from now.
    #[inline(always)]
    fn offer_decap(&mut self, ctx: &mut Ctx<'_>, out: PortId, frame: &Frame) {
        if self.flow_candidate.is_some() {
            self.offer_decap_now(ctx, out, frame);
        }
    }

    #[inline(never)]
    fn offer_decap_now(&mut self, ctx: &mut Ctx<'_>, out: PortId, frame: &Frame) {
        self.offer_built(ctx, out, frame, flows::decap_action_for);
    }

    fn dump_fdb(&self, now_ns: u64) -> Vec<FdbRow> {
        let mut rows = Vec::new();
        for (i, fdb) in self.fdbs.iter().enumerate() {
            for (mac, FdbEntry { port, seen_ns, .. }) in fdb.entries(now_ns) {
                rows.push(FdbRow {
                    network: self.topo.networks[i].name.clone(),
                    mac,
                    port,
                    age_secs: now_ns.saturating_sub(seen_ns) as f64 / 1e9,
                });
            }
        }
        rows
    }

    fn swap(&mut self, topo: Arc<Topology>) {
        let mut fdbs = Vec::with_capacity(topo.networks.len());
        for n in &topo.networks {
            let old = self.topo.network_id(&n.name);
            match old {
                Some(id) => {
                    let mut fdb = std::mem::replace(&mut self.fdbs[id.0 as usize], Fdb::new(0, 0));
                    // A MAC learned on a port that left the network must
                    // not send frames to it (or to a port that reuses its
                    // id).
                    for gone in &self.topo.network(id).members {
                        if !n.members.contains(gone) {
                            fdb.flush_port(*gone);
                        }
                    }
                    fdbs.push(fdb);
                }
                None => fdbs.push(Fdb::new(
                    self.settings.fdb_size as usize,
                    self.settings.mac_aging_secs,
                )),
            }
        }
        self.fdbs = fdbs;
        self.nat_slot.resize(topo.networks.len(), None);
        self.topo = topo;
    }
}

/// `v` when it has one entry per uplink, else fresh counters (a caller
/// that reads none).
fn per_uplink<T: Default>(v: Vec<Arc<T>>, uplinks: usize) -> Vec<Arc<T>> {
    if v.len() == uplinks {
        v
    } else {
        (0..uplinks).map(|_| Arc::default()).collect()
    }
}

impl Pipeline for SwitchPipeline {
    fn process(&mut self, ctx: &mut Ctx<'_>, burst: &mut Vec<Frame>) {
        if self.trace.is_some() && self.trace_burst(ctx, burst) {
            return;
        }
        self.switch_burst(ctx, burst);
    }

    fn release(&mut self, pool: &mut Pool) {
        for f in self.scratch.drain(..) {
            pool.free(f);
        }
        for n in &mut self.neighbors {
            for f in n.drain_held() {
                pool.free(f);
            }
        }
    }

    fn housekeeping(&mut self, ctx: &mut Ctx<'_>) {
        for nat in self.nats.iter_mut().flatten() {
            nat.sweep(ctx.now_ns, 256);
        }
        if !self.neighbors.is_empty() {
            self.tick_neighbors(ctx);
        }
        while let Ok(msg) = self.control.try_recv() {
            if let (Some(f), true) = (&mut self.flows, msg.changes_forwarding()) {
                // What the kernel was told may no longer be what the
                // switch would do.
                f.flush(ctx.tx);
            }
            match msg {
                Control::DumpFdb(reply) => {
                    let _ = reply.send(self.dump_fdb(ctx.now_ns));
                }
                Control::Swap(topo, counters) => {
                    if counters.len() >= topo.networks.len() {
                        self.counters = counters;
                    }
                    self.swap(topo)
                }
                Control::OverlayTables(up, tables) => {
                    if let Some(slot) = self.vteps.get_mut(up.0 as usize) {
                        *slot = Some(tables);
                    }
                }
                Control::Nat(up, cfg, nets) => {
                    if let Some(Some(nat)) = self.nats.get_mut(up.0 as usize) {
                        nat.reconfigure(self.replica.nat_slice(*cfg));
                        for slot in self.nat_slot.iter_mut() {
                            if slot.is_some_and(|(u, _)| u == up) {
                                *slot = None;
                            }
                        }
                        for (i, n) in nets.iter().enumerate() {
                            if let Some(slot) = self.nat_slot.get_mut(n.0 as usize) {
                                *slot = Some((up, i));
                            }
                        }
                        self.nat_nets[up.0 as usize] = nets;
                    }
                }
                Control::ForgetAddress(up, ip) => {
                    if let Some(Some(nat)) = self.nats.get_mut(up.0 as usize) {
                        nat.remove_flows_of(ip);
                    }
                }
                Control::DumpConntrack {
                    network,
                    limit,
                    reply,
                } => {
                    let _ = reply.send(self.dump_conntrack(network.as_deref(), limit, ctx.now_ns));
                }
                Control::DumpNeighbors(reply) => {
                    let _ = reply.send(self.dump_neighbors(ctx.now_ns));
                }
                Control::DumpOverlay(reply) => {
                    let _ = reply.send(self.dump_overlay());
                }
                Control::Trace(arm) => self.take_trace(ctx, arm),
                Control::Applied(reply) => {
                    let _ = reply.send(());
                }
            }
        }
        self.expire_trace();
        if let Some(f) = &mut self.flows {
            f.sweep(ctx.tx, ctx.now_ns);
        }
        if ctx.now_ns.saturating_sub(self.last_sweep_ns) > 1_000_000_000 {
            self.last_sweep_ns = ctx.now_ns;
            for fdb in &mut self.fdbs {
                fdb.sweep(ctx.now_ns);
            }
            for l in &mut self.learned {
                l.sweep(ctx.now_ns);
            }
        }
    }
}
