//! Frames the switch routes instead of switching: from a network's gateway
//! out through NAT to the uplink, back in from the uplink to an endpoint,
//! hairpins, and ARP on the uplink (answering for the uplink address and
//! resolving next hops).

use std::net::Ipv4Addr;

use nat::{L4Csum, Verdict};
use pmd::meta::PacketMeta;
use pmd::thread::Ctx;
use pmd::wire::{self, MacAddr};
use pmd::{DropReason, Frame};

use super::SwitchPipeline;
use crate::arp::{self, ArpSeen};
use crate::neighbor::Hold;
use crate::route::{decrement_ttl, set_macs};
use crate::topology::{NetId, UplinkId};

impl SwitchPipeline {
    /// Acts on what NAT decided for a frame of network `net`.
    pub(super) fn apply_verdict(
        &mut self,
        ctx: &mut Ctx<'_>,
        net: NetId,
        frame: Frame,
        meta: &PacketMeta,
        verdict: Verdict,
    ) {
        match verdict {
            Verdict::ToUplink => match self.topo.network(net).uplink {
                Some(up) => self.route_to_uplink(ctx, up, frame, meta.l3_off as usize),
                None => ctx.drop_frame(frame, DropReason::NoRoute),
            },
            Verdict::ToInternal { dst } => self.route_to_endpoint(ctx, net, dst, frame, meta),
            Verdict::Drop(_) => ctx.drop_frame(frame, DropReason::Nat),
        }
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
        let dst = Ipv4Addr::new(buf[l3 + 16], buf[l3 + 17], buf[l3 + 18], buf[l3 + 19]);
        let Some(hop) = uplink.next_hop(dst) else {
            ctx.drop_frame(frame, DropReason::NoRoute);
            return;
        };
        let neighbors = &mut self.neighbors[up.0 as usize];
        if let Some(hop_mac) = neighbors.lookup(hop, ctx.now_ns) {
            set_macs(ctx.pool.data_mut(&mut frame), hop_mac, mac);
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
        let buf = ctx.pool.data_mut(&mut frame);
        if !decrement_ttl(buf, meta.l3_off as usize) {
            ctx.drop_frame(frame, DropReason::TtlExceeded);
            return;
        }
        set_macs(buf, mac, gw.mac);
        ctx.send(port, frame);
    }

    /// Handles a frame that arrived on uplink `up`: ARP for the uplink
    /// address and from next hops, and IPv4 to the uplink address (NAT).
    pub(super) fn uplink_frame(
        &mut self,
        ctx: &mut Ctx<'_>,
        up: UplinkId,
        mut frame: Frame,
        meta: &PacketMeta,
    ) {
        let uplink = self.topo.uplink(up);
        let (ip, mac, port) = (uplink.ip, uplink.mac, uplink.port);
        match meta.ethertype {
            wire::ETHERTYPE_ARP => {
                let l3 = meta.l3_off as usize;
                let buf = ctx.pool.data_mut(&mut frame);
                // The sender of any ARP on the link tells where it is.
                let spa = Ipv4Addr::new(buf[l3 + 14], buf[l3 + 15], buf[l3 + 16], buf[l3 + 17]);
                let sha = MacAddr::from_slice(&buf[l3 + 8..l3 + 14]);
                let seen = arp::answer_in_place(buf, l3, ip, mac);
                match seen {
                    ArpSeen::Answered => {
                        self.learn_neighbor(ctx, up, spa, sha);
                        ctx.send(port, frame);
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
                let Some(net) = self.uplink_nat[up.0 as usize] else {
                    ctx.drop_frame(frame, DropReason::NotForUs);
                    return;
                };
                let csum = L4Csum::from_offload(&frame.offload);
                let Some(nat) = self.nats[net.0 as usize].as_mut() else {
                    ctx.drop_frame(frame, DropReason::NotForUs);
                    return;
                };
                let v = nat.inbound(ctx.pool.data_mut(&mut frame), meta, csum, ctx.now_ns);
                self.apply_verdict(ctx, net, frame, meta, v);
            }
            _ => ctx.drop_frame(frame, DropReason::NotForUs),
        }
    }

    /// Records a next hop and sends the frames that waited for it.
    fn learn_neighbor(&mut self, ctx: &mut Ctx<'_>, up: UplinkId, ip: Ipv4Addr, mac: MacAddr) {
        if ip.is_unspecified() || mac.is_multicast() {
            return;
        }
        let port = self.topo.uplink(up).port;
        for mut held in self.neighbors[up.0 as usize].learn(ip, mac, ctx.now_ns) {
            ctx.pool.data_mut(&mut held)[0..6].copy_from_slice(&mac.0);
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
