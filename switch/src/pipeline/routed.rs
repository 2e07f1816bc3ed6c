//! Frames the switch routes instead of switching: from a network's gateway
//! out through its uplink's NAT, back in from the uplink to an endpoint of
//! any network behind it, hairpins, ARP on the uplink (answering for the
//! uplink address and resolving next hops) and ping of the uplink address.

use std::net::Ipv4Addr;

use nat::{L4Csum, Verdict};
use pmd::meta::PacketMeta;
use pmd::thread::Ctx;
use pmd::wire::{self, EthernetFrame, Ipv4Packet, MacAddr};
use pmd::{DropReason, Frame, PortId};

use super::SwitchPipeline;
use crate::arp::{self, ArpSeen};
use crate::echo;
use crate::neighbor::Hold;
use crate::route::{decrement_ttl, set_macs};
use crate::topology::{NetId, UplinkId};

impl SwitchPipeline {
    /// The NAT step for an IPv4 frame of network `net`, internal network
    /// `from` of uplink `up`'s NAT. Sent to the gateway MAC, it is routed
    /// through NAT unless it is a ping the switch answers itself (the
    /// gateway's, or the uplink address's); between two endpoints, it is
    /// offered to NAT as a hairpin reply while hairpin flows live. Returns
    /// the frame when switching goes on with it.
    pub(super) fn nat_stage(
        &mut self,
        ctx: &mut Ctx<'_>,
        net: NetId,
        up: UplinkId,
        from: usize,
        mut frame: Frame,
        meta: &PacketMeta,
    ) -> Option<Frame> {
        // `None` means the frame was consumed: every path that keeps it
        // returns it.
        let Some(gw) = self.topo.network(net).gateway else {
            return Some(frame);
        };
        let csum = L4Csum::from_offload(&frame.offload);
        if gw.mac == meta.dst_mac {
            if echo::is_echo_request(ctx.pool.data(&frame), meta) {
                if meta.ip_dst == gw.ip.octets() {
                    // The gateway's own: the gateway stage answers it.
                    return Some(frame);
                }
                if meta.ip_dst == self.topo.uplink(up).ip.octets() {
                    // The host's address, pinged from inside.
                    self.answer_uplink_echo(ctx, up, frame, meta, gw.mac);
                    return None;
                }
            }
            if self.nat_excepted(frame.in_port, meta) {
                // HNS OutBoundNAT ExceptionList: routed out as it is, so
                // the destination sees the container's own address.
                self.route_to_uplink(ctx, up, frame, meta.l3_off as usize);
                return None;
            }
            let Some(nat) = self.nats[up.0 as usize].as_mut() else {
                return Some(frame);
            };
            let v = nat.outbound(ctx.pool.data_mut(&mut frame), meta, from, csum, ctx.now_ns);
            self.apply_verdict(ctx, up, frame, meta, v);
            return None;
        }
        let Some(nat) = self.nats[up.0 as usize].as_mut() else {
            return Some(frame);
        };
        if nat.has_hairpin_flows() {
            // A hairpinned connection's target answers the client
            // directly; NAT puts the mapped address back.
            let buf = ctx.pool.data_mut(&mut frame);
            if let Some(v) = nat.hairpin_reply(buf, meta, from, csum, ctx.now_ns) {
                self.apply_verdict(ctx, up, frame, meta, v);
                return None;
            }
        }
        Some(frame)
    }

    /// Whether the sender's `nat_exceptions` hold the destination.
    #[inline]
    fn nat_excepted(&self, from: PortId, meta: &PacketMeta) -> bool {
        let Some(policy) = self
            .topo
            .ports
            .get(from.0 as usize)
            .and_then(|p| p.policy.as_ref())
        else {
            return false;
        };
        let dst = Ipv4Addr::from(meta.ip_dst);
        policy.nat_exceptions.iter().any(|n| n.contains(&dst))
    }

    /// Acts on what uplink `up`'s NAT decided for a frame.
    pub(super) fn apply_verdict(
        &mut self,
        ctx: &mut Ctx<'_>,
        up: UplinkId,
        frame: Frame,
        meta: &PacketMeta,
        verdict: Verdict,
    ) {
        match verdict {
            Verdict::ToUplink => self.route_to_uplink(ctx, up, frame, meta.l3_off as usize),
            Verdict::ToInternal { dst, net } => match self.nat_nets[up.0 as usize].get(net) {
                Some(&to) => self.route_to_endpoint(ctx, to, dst, frame, meta),
                None => ctx.drop_frame(frame, DropReason::NoRoute),
            },
            Verdict::Drop(_) => ctx.drop_frame(frame, DropReason::Nat),
        }
    }

    /// Answers an echo request to uplink `up`'s address, from the outside
    /// or from a container behind it, within the uplink's rate; the reply
    /// comes from `mac` and goes back out of the port the request came in.
    fn answer_uplink_echo(
        &mut self,
        ctx: &mut Ctx<'_>,
        up: UplinkId,
        mut frame: Frame,
        meta: &PacketMeta,
        mac: MacAddr,
    ) {
        let i = up.0 as usize;
        if !self.echo_limits[i].take(ctx.now_ns) {
            self.uplink_counters[i].echo_limited.add(1);
            ctx.drop_frame(frame, DropReason::RateLimited);
            return;
        }
        if !echo::reply_in_place(ctx.pool.data_mut(&mut frame), meta, mac) {
            ctx.drop_frame(frame, DropReason::NotForUs);
            return;
        }
        // A reply never carries the request's offload state.
        frame.offload = pmd::Offload::default();
        self.uplink_counters[i].echo_replies.add(1);
        let port = frame.in_port;
        ctx.send(port, frame);
    }

    /// Routes a translated frame out of `up` to its next hop.
    fn route_to_uplink(&mut self, ctx: &mut Ctx<'_>, up: UplinkId, mut frame: Frame, l3: usize) {
        let uplink = self.topo.uplink(up);
        let (port, mac) = (uplink.port, uplink.mac);
        let buf = ctx.pool.data_mut(&mut frame);
        if !decrement_ttl(buf, l3) {
            ctx.drop_frame(frame, DropReason::TtlExceeded);
            return;
        }
        // decrement_ttl found the whole fixed header at `l3`.
        let dst = Ipv4Packet::new_unchecked(&buf[l3..]).dst_addr();
        let Some(hop) = uplink.next_hop(dst) else {
            ctx.drop_frame(frame, DropReason::NoRoute);
            return;
        };
        let neighbors = &mut self.neighbors[up.0 as usize];
        if let Some(hop_mac) = neighbors.lookup(hop, ctx.now_ns) {
            set_macs(ctx.pool.data_mut(&mut frame), hop_mac, mac);
            self.offer_flow(ctx, port, &frame);
            ctx.send(port, frame);
            return;
        }
        set_macs(ctx.pool.data_mut(&mut frame), MacAddr::ZERO, mac);
        match neighbors.hold(hop, frame, ctx.now_ns) {
            Hold::Held { request } => {
                if request {
                    self.send_arp_request(ctx, up, hop);
                }
            }
            Hold::Full(frame) => ctx.drop_frame(frame, DropReason::Unresolved),
        }
    }

    /// Sends "who has `target`?" out of uplink `up`.
    pub(super) fn send_arp_request(&mut self, ctx: &mut Ctx<'_>, up: UplinkId, target: Ipv4Addr) {
        let uplink = self.topo.uplink(up);
        let Some(mut req) = ctx.pool.alloc() else {
            ctx.tx.count_drop(uplink.port, DropReason::NoBuffer);
            return;
        };
        let n = arp::write_request(ctx.pool.room_mut(&mut req), uplink.mac, uplink.ip, target);
        ctx.pool.set_len(&mut req, n);
        req.in_port = uplink.port;
        ctx.send(uplink.port, req);
    }

    /// Delivers a routed frame to the endpoint that owns `dst` in `net`.
    fn route_to_endpoint(
        &mut self,
        ctx: &mut Ctx<'_>,
        net: NetId,
        dst: Ipv4Addr,
        mut frame: Frame,
        meta: &PacketMeta,
    ) {
        let network = self.topo.network(net);
        let (Some(gw), Some(&(mac, port))) = (network.gateway, network.endpoints.get(&dst)) else {
            ctx.drop_frame(frame, DropReason::NoRoute);
            return;
        };
        if network.acl {
            // NAT may have rewritten the addresses and ports `meta` holds.
            let buf = ctx.pool.data(&frame);
            let blocked =
                pmd::meta::parse(buf).map_or(true, |m| self.acl_blocks(net, None, buf, &m));
            if blocked {
                ctx.drop_frame(frame, DropReason::Acl);
                return;
            }
        }
        let buf = ctx.pool.data_mut(&mut frame);
        if !decrement_ttl(buf, meta.l3_off as usize) {
            ctx.drop_frame(frame, DropReason::TtlExceeded);
            return;
        }
        set_macs(buf, mac, gw.mac);
        self.offer_flow(ctx, port, &frame);
        ctx.send(port, frame);
    }

    /// Handles a frame that arrived on uplink `up`: ARP for the uplink
    /// address and from next hops, and IPv4 to the uplink address: echo
    /// requests (answered), VXLAN (the overlay), the rest (NAT).
    pub(super) fn uplink_frame(
        &mut self,
        ctx: &mut Ctx<'_>,
        up: UplinkId,
        mut frame: Frame,
        meta: &PacketMeta,
    ) {
        let uplink = self.topo.uplink(up);
        if let Some(net) = uplink.l2 {
            match self.l2_in(ctx, up, net, frame, meta) {
                Some(f) => frame = f,
                None => return,
            }
        }
        let uplink = self.topo.uplink(up);
        let (ip, mac, port) = (uplink.ip, uplink.mac, uplink.port);
        if ip.is_unspecified() {
            // An L2 network's uplink without an address of the switch's.
            ctx.drop_frame(frame, DropReason::NotForUs);
            return;
        }
        match meta.ethertype {
            wire::ETHERTYPE_ARP => {
                let l3 = meta.l3_off as usize;
                let buf = ctx.pool.data_mut(&mut frame);
                match arp::answer_in_place(buf, l3, ip, mac) {
                    // The asker tells where it is. Every thread of a
                    // spread uplink gets the request; one answers.
                    ArpSeen::Answered { ip: from, mac: at } => {
                        self.learn_neighbor(ctx, up, from, at);
                        if self.replica.is_first() {
                            ctx.send(port, frame);
                        } else {
                            ctx.pool.free(frame);
                        }
                    }
                    ArpSeen::Reply { ip: from, mac: at } => {
                        ctx.pool.free(frame);
                        self.learn_neighbor(ctx, up, from, at);
                    }
                    ArpSeen::NotOurs => ctx.drop_frame(frame, DropReason::NotForUs),
                    ArpSeen::Malformed => ctx.drop_frame(frame, DropReason::Malformed),
                }
            }
            wire::ETHERTYPE_IPV4 if meta.ip_dst == ip.octets() => {
                if self.is_vxlan(up, ctx.pool.data(&frame), meta) {
                    self.overlay_in(ctx, up, frame, meta);
                    return;
                }
                // An echo request to the uplink address is the switch's
                // own; echo replies are NAT's (pings from containers).
                if echo::is_echo_request(ctx.pool.data(&frame), meta) {
                    self.answer_uplink_echo(ctx, up, frame, meta, mac);
                    return;
                }
                let csum = L4Csum::from_offload(&frame.offload);
                let Some(nat) = self.nats[up.0 as usize].as_mut() else {
                    ctx.drop_frame(frame, DropReason::NotForUs);
                    return;
                };
                let v = nat.inbound(ctx.pool.data_mut(&mut frame), meta, csum, ctx.now_ns);
                self.apply_verdict(ctx, up, frame, meta, v);
            }
            wire::ETHERTYPE_IPV4 => match self.excepted_reply(up, meta) {
                Some(net) => {
                    let dst = Ipv4Addr::from(meta.ip_dst);
                    self.route_to_endpoint(ctx, net, dst, frame, meta);
                }
                None => ctx.drop_frame(frame, DropReason::NotForUs),
            },
            _ => ctx.drop_frame(frame, DropReason::NotForUs),
        }
    }

    /// The network of the endpoint a frame from the uplink is addressed to,
    /// when it comes from one of that endpoint's `nat_exceptions`: the
    /// other way of traffic that left untranslated.
    fn excepted_reply(&self, up: UplinkId, meta: &PacketMeta) -> Option<NetId> {
        let (dst, src) = (Ipv4Addr::from(meta.ip_dst), Ipv4Addr::from(meta.ip_src));
        self.nat_nets[up.0 as usize].iter().copied().find(|&net| {
            let Some(&(_, port)) = self.topo.network(net).endpoints.get(&dst) else {
                return false;
            };
            let policy = self
                .topo
                .ports
                .get(port.0 as usize)
                .and_then(|p| p.policy.as_ref());
            policy.is_some_and(|p| p.nat_exceptions.iter().any(|n| n.contains(&src)))
        })
    }

    /// Records a next hop and sends the frames that waited for it.
    fn learn_neighbor(&mut self, ctx: &mut Ctx<'_>, up: UplinkId, ip: Ipv4Addr, mac: MacAddr) {
        if ip.is_unspecified() || mac.is_multicast() {
            return;
        }
        let port = self.topo.uplink(up).port;
        for mut held in self.neighbors[up.0 as usize].learn(ip, mac, ctx.now_ns) {
            EthernetFrame::new_unchecked(ctx.pool.data_mut(&mut held)).set_dst_addr(mac);
            ctx.send(port, held);
        }
    }

    /// ARP retries and frames given up on; called from housekeeping.
    pub(super) fn tick_neighbors(&mut self, ctx: &mut Ctx<'_>) {
        for i in 0..self.neighbors.len() {
            let up = UplinkId(i as u16);
            let (retry, dead) = self.neighbors[i].tick(ctx.now_ns);
            for f in dead {
                ctx.drop_frame(f, DropReason::Unresolved);
            }
            for ip in retry {
                self.send_arp_request(ctx, up, ip);
            }
        }
    }
}
