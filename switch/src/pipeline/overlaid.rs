//! Overlay networks in the pipeline: frames of an overlay network that are
//! not for a local port are encapsulated in VXLAN toward the VTEP of the
//! remote endpoint (or replicated to every peer VTEP for broadcast and
//! unknown unicast); VXLAN arriving on the uplink is decapsulated and
//! switched inside its network, never sent back to the overlay (split
//! horizon).

use std::net::Ipv4Addr;

use overlay::{
    check_mtu, decapsulate_frame, encapsulate, frag_needed_in_place, Decap, Destination, Encap,
    GatewayAddr, MtuVerdict,
};
use pmd::meta::PacketMeta;
use pmd::thread::Ctx;
use pmd::wire::{self, udp, MacAddr, UdpPacket};
use pmd::{DropReason, Frame};

use super::SwitchPipeline;
use crate::neighbor::Hold;
use crate::topology::{NetId, UplinkId};

/// Outer TTL of VXLAN packets.
const OUTER_TTL: u8 = 64;

impl SwitchPipeline {
    /// Switches a frame of overlay network `net` (VNI `vni`) that came from
    /// a local port, after learning and the gateway.
    pub(super) fn overlay_out(
        &mut self,
        ctx: &mut Ctx<'_>,
        net: NetId,
        vni: u32,
        mut frame: Frame,
        meta: &PacketMeta,
    ) {
        let Some(up) = self.topo.network(net).uplink else {
            ctx.drop_frame(frame, DropReason::NoRoute);
            return;
        };
        let Some(tables) = self.vteps[up.0 as usize].clone() else {
            ctx.drop_frame(frame, DropReason::NoRoute);
            return;
        };
        let in_port = frame.in_port;
        if meta.dst_mac.is_multicast() {
            // Copies to many are never a flow's one way.
            self.flow_candidate = None;
            // ARP for a known remote endpoint is answered here (ARP
            // suppression), so it never floods the overlay.
            if meta.ethertype == wire::ETHERTYPE_ARP
                && tables.arp_suppress(vni, ctx.pool.data_mut(&mut frame), meta)
            {
                self.overlay_counters[up.0 as usize].arp_suppressed.add(1);
                ctx.send(in_port, frame);
                return;
            }
            // `tables` is this call's own Arc, so the peer list is borrowed
            // from it, not copied per frame.
            let peers = tables.network(vni).map_or(&[][..], |n| n.peers());
            self.replicate(ctx, net, up, vni, &frame, meta, peers);
            self.flood(ctx, net, frame);
            return;
        }
        match self.fdbs[net.0 as usize].lookup(meta.dst_mac, ctx.now_ns) {
            Some(out) if out == in_port => {
                ctx.drop_frame(frame, DropReason::Filtered);
                return;
            }
            Some(out) => {
                self.offer_flow(ctx, out, &frame);
                ctx.send(out, frame);
                return;
            }
            None => {}
        }
        let dest = tables.destination(vni, meta.dst_mac, &self.learned[up.0 as usize], ctx.now_ns);
        match dest {
            Some(Destination::Unicast(vtep)) => {
                self.encap_send(ctx, net, up, vni, frame, meta, vtep)
            }
            Some(Destination::Flood(peers)) => {
                self.flow_candidate = None;
                self.replicate(ctx, net, up, vni, &frame, meta, peers);
                self.flood(ctx, net, frame);
            }
            None => ctx.drop_frame(frame, DropReason::NoRoute),
        }
    }

    /// Head-end replication: a copy of `frame` to each VTEP in `peers`.
    #[allow(clippy::too_many_arguments)]
    fn replicate(
        &mut self,
        ctx: &mut Ctx<'_>,
        net: NetId,
        up: UplinkId,
        vni: u32,
        frame: &Frame,
        meta: &PacketMeta,
        peers: &[Ipv4Addr],
    ) {
        for vtep in peers {
            match ctx.pool.clone_frame(frame) {
                Some(copy) => self.encap_send(ctx, net, up, vni, copy, meta, *vtep),
                None => ctx.tx.count_drop(frame.in_port, DropReason::NoBuffer),
            }
        }
    }

    /// Encapsulates `frame` toward `vtep` and sends it to the underlay next
    /// hop; GSO segments are cut first, oversized frames answered with
    /// ICMP fragmentation-needed (IPv4 with DF) or dropped.
    #[allow(clippy::too_many_arguments)]
    fn encap_send(
        &mut self,
        ctx: &mut Ctx<'_>,
        net: NetId,
        up: UplinkId,
        vni: u32,
        frame: Frame,
        meta: &PacketMeta,
        vtep: Ipv4Addr,
    ) {
        let inner_mtu = self
            .topo
            .uplink(up)
            .mtu
            .saturating_sub(overlay::OUTER_LEN as u32) as u16;
        if frame.offload.gso_type != 0 {
            let mut segs = std::mem::take(&mut self.scratch);
            let r = pmd::gso::segment_tcp(ctx.pool, &frame, &mut segs);
            let in_port = frame.in_port;
            ctx.pool.free(frame);
            if r.is_err() {
                self.scratch = segs;
                ctx.tx.count_drop(in_port, DropReason::OffloadError);
                return;
            }
            // Segments are as long as the sender's MSS allows; when its MTU
            // is larger than the overlay's, the first one is answered with
            // fragmentation-needed and all are dropped.
            let too_big = segs
                .first()
                .is_some_and(|f| f.len() > inner_mtu as usize + wire::ETH_HDR);
            let mut it = segs.drain(..);
            if too_big {
                if let Some(mut first) = it.next() {
                    first.in_port = in_port;
                    for rest in it.by_ref() {
                        ctx.pool.free(rest);
                    }
                    match pmd::meta::parse(ctx.pool.data(&first)) {
                        Ok(m) => self.too_big(ctx, net, up, first, &m, inner_mtu, true),
                        Err(reason) => ctx.drop_frame(first, reason),
                    }
                }
            } else if self.topo.uplink(up).udp_gso {
                self.encap_train(ctx, up, vni, it.by_ref(), vtep);
            } else {
                for seg in it.by_ref() {
                    self.encap_one(ctx, up, vni, seg, vtep);
                }
            }
            drop(it);
            self.scratch = segs;
            return;
        }
        match check_mtu(ctx.pool.data(&frame), meta, inner_mtu) {
            MtuVerdict::Fits => self.encap_one(ctx, up, vni, frame, vtep),
            MtuVerdict::FragNeeded => self.too_big(ctx, net, up, frame, meta, inner_mtu, true),
            MtuVerdict::Drop => self.too_big(ctx, net, up, frame, meta, inner_mtu, false),
        }
    }

    /// A frame too big for the overlay: ICMP fragmentation-needed back to
    /// the sender (from the network's gateway) when `answer`, else a drop.
    #[allow(clippy::too_many_arguments)]
    fn too_big(
        &mut self,
        ctx: &mut Ctx<'_>,
        net: NetId,
        up: UplinkId,
        mut frame: Frame,
        meta: &PacketMeta,
        inner_mtu: u16,
        answer: bool,
    ) {
        let gw = self.topo.network(net).gateway;
        let from = gw.map(|g| GatewayAddr {
            ip: g.ip,
            mac: g.mac,
        });
        let in_port = frame.in_port;
        match from {
            Some(from)
                if answer && frag_needed_in_place(ctx.pool, &mut frame, meta, inner_mtu, from) =>
            {
                self.overlay_counters[up.0 as usize].frag_needed.add(1);
                frame.offload = pmd::Offload::default();
                ctx.send(in_port, frame);
            }
            _ => {
                self.overlay_counters[up.0 as usize].too_big.add(1);
                ctx.drop_frame(frame, DropReason::TooBig);
            }
        }
    }

    /// Sends the VXLAN frames of one TCP segment's pieces (`segs`, all the
    /// MSS long but the last) as UDP GSO trains: one Ethernet/IPv4/UDP
    /// header over the concatenated VXLAN payloads, marked `UDP_L4` with
    /// the payload size as `gso_size`. The kernel hands a train across the
    /// veth as one skb and the receiver cuts it into datagrams (the kernel
    /// in `udp_rcv`, podswitch's AF_PACKET port in `afpacket`), so a 64 KB
    /// segment costs the underlay one skb instead of 45. Without a known
    /// next hop, the pieces go one by one (they wait for ARP).
    fn encap_train(
        &mut self,
        ctx: &mut Ctx<'_>,
        up: UplinkId,
        vni: u32,
        segs: impl Iterator<Item = Frame>,
        vtep: Ipv4Addr,
    ) {
        let uplink = self.topo.uplink(up);
        let port = uplink.port;
        let hop_mac = uplink
            .next_hop(vtep)
            .and_then(|hop| self.neighbors[up.0 as usize].lookup(hop, ctx.now_ns));
        let Some(hop_mac) = hop_mac else {
            for seg in segs {
                self.encap_one(ctx, up, vni, seg, vtep);
            }
            return;
        };
        let e = self.outer(up, vni, vtep, hop_mac);
        let mut train = overlay::train::Train::default();
        for mut seg in segs {
            if !self.encapsulate_counted(ctx, up, &mut seg, &e) {
                ctx.drop_frame(seg, DropReason::TooBig);
                continue;
            }
            // The first datagram as the kernel would send the segment's.
            self.offer_encap(ctx, up, &seg);
            if let Some(full) = train.push(ctx.pool, seg) {
                ctx.send(port, full);
            }
        }
        if let Some(last) = train.finish(ctx.pool) {
            ctx.send(port, last);
        }
    }

    /// The outer headers toward `vtep` on uplink `up`, via `hop_mac`.
    fn outer(&self, up: UplinkId, vni: u32, vtep: Ipv4Addr, hop_mac: MacAddr) -> Encap {
        let uplink = self.topo.uplink(up);
        let udp_dst_port = self.vteps[up.0 as usize]
            .as_ref()
            .and_then(|t| t.network(vni).map(|n| n.udp_port))
            .unwrap_or(overlay::VXLAN_PORT);
        Encap {
            vni,
            src_vtep: uplink.ip,
            dst_vtep: vtep,
            src_mac: uplink.mac,
            dst_mac: hop_mac,
            udp_dst_port,
            ttl: OUTER_TTL,
        }
    }

    /// Encapsulates `frame` in place and counts it; false (counted as an
    /// encapsulation error) when it cannot be.
    fn encapsulate_counted(
        &mut self,
        ctx: &mut Ctx<'_>,
        up: UplinkId,
        frame: &mut Frame,
        e: &Encap,
    ) -> bool {
        let counters = &self.overlay_counters[up.0 as usize];
        if encapsulate(ctx.pool, frame, e).is_err() {
            counters.encap_errors.add(1);
            return false;
        }
        counters.encapsulated.add(1);
        true
    }

    fn encap_one(
        &mut self,
        ctx: &mut Ctx<'_>,
        up: UplinkId,
        vni: u32,
        mut frame: Frame,
        vtep: Ipv4Addr,
    ) {
        let uplink = self.topo.uplink(up);
        let port = uplink.port;
        let Some(hop) = uplink.next_hop(vtep) else {
            ctx.drop_frame(frame, DropReason::NoRoute);
            return;
        };
        let hop_mac = self.neighbors[up.0 as usize].lookup(hop, ctx.now_ns);
        // Unresolved: encapsulated now, the MAC filled in when ARP answers.
        let e = self.outer(up, vni, vtep, hop_mac.unwrap_or(MacAddr::ZERO));
        if !self.encapsulate_counted(ctx, up, &mut frame, &e) {
            ctx.drop_frame(frame, DropReason::TooBig);
            return;
        }
        if hop_mac.is_some() {
            self.offer_encap(ctx, up, &frame);
            ctx.send(port, frame);
            return;
        }
        match self.neighbors[up.0 as usize].hold(hop, frame, ctx.now_ns) {
            Hold::Held { request } => {
                if request {
                    self.send_arp_request(ctx, up, hop);
                }
            }
            Hold::Full(frame) => ctx.drop_frame(frame, DropReason::Unresolved),
        }
    }

    /// True when the uplink frame is VXLAN for this host's VTEP.
    pub(super) fn is_vxlan(&self, up: UplinkId, frame: &[u8], meta: &PacketMeta) -> bool {
        let Some(tables) = self.vteps[up.0 as usize].as_ref() else {
            return false;
        };
        let l4 = meta.l4_off as usize;
        meta.ip_proto == wire::IPPROTO_UDP
            && !meta.later_fragment
            && frame
                .get(l4..l4 + udp::HEADER_LEN)
                .is_some_and(|u| tables.is_vxlan_port(UdpPacket::new_unchecked(u).dst_port()))
    }

    /// Decapsulates VXLAN from uplink `up` and switches the inner frame in
    /// its network; never back to the overlay.
    pub(super) fn overlay_in(
        &mut self,
        ctx: &mut Ctx<'_>,
        up: UplinkId,
        mut frame: Frame,
        meta: &PacketMeta,
    ) {
        let Some(tables) = self.vteps[up.0 as usize].clone() else {
            ctx.drop_frame(frame, DropReason::NotForUs);
            return;
        };
        let verdict = decapsulate_frame(
            ctx.pool,
            &mut frame,
            meta,
            &tables,
            &mut self.learned[up.0 as usize],
            &self.overlay_counters[up.0 as usize],
            ctx.now_ns,
        );
        let (vni, inner) = match verdict {
            Decap::Inner { vni, meta, .. } => {
                pmd::partial_csum::resolve_frame(ctx.pool, &mut frame, &meta);
                (vni, meta)
            }
            Decap::Drop(_) => {
                ctx.drop_frame(frame, DropReason::Overlay);
                return;
            }
        };
        let Some(&(_, net)) = self
            .topo
            .uplink(up)
            .overlay_nets
            .iter()
            .find(|(v, _)| *v == vni)
        else {
            ctx.drop_frame(frame, DropReason::Overlay);
            return;
        };
        // A remote host may not speak for a local endpoint's MAC.
        let fdb = &self.fdbs[net.0 as usize];
        if inner.src_mac.is_multicast()
            || fdb
                .lookup(inner.src_mac, ctx.now_ns)
                .is_some_and(|p| p != frame.in_port)
        {
            ctx.drop_frame(frame, DropReason::BadSourceMac);
            return;
        }
        if self.topo.network(net).acl && self.acl_blocks(net, None, ctx.pool.data(&frame), &inner) {
            ctx.drop_frame(frame, DropReason::Acl);
            return;
        }
        if inner.dst_mac.is_multicast() {
            self.flood(ctx, net, frame);
            return;
        }
        let fdb = &self.fdbs[net.0 as usize];
        match fdb.lookup(inner.dst_mac, ctx.now_ns) {
            Some(out) => {
                self.counters[net.0 as usize].unicast.add(1);
                self.offer_decap(ctx, out, &frame);
                ctx.send(out, frame);
            }
            None => self.flood(ctx, net, frame),
        }
    }
}
