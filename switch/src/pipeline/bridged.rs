//! The L2 modes (transparent, l2bridge, l2tunnel): networks whose
//! endpoints sit on their uplink's own segment. The switch owns no
//! address in them and routes nothing: the physical network's router is
//! the gateway. Transparent is plain switching with the uplink as one more
//! port; l2bridge and l2tunnel put the host's MAC on every frame
//! (`crate::hostmac`).

use pmd::meta::PacketMeta;
use pmd::thread::Ctx;
use pmd::wire;
use pmd::{DropReason, Frame};

use super::SwitchPipeline;
use crate::hostmac;
use crate::topology::{L2Mode, NetId, UplinkId};

impl SwitchPipeline {
    /// An endpoint's frame in an l2bridge or l2tunnel network: it takes
    /// the host's MAC, then goes to a local endpoint (l2bridge, when it is
    /// addressed to the host's MAC and to a local endpoint's address) or
    /// out of the uplink. Broadcasts flood (the uplink is a member): each
    /// copy already carries the host's MAC, as it would coming back from
    /// the wire. In l2tunnel everything takes the wire; the physical
    /// switch hairpins what is for this host's endpoints. Out of line, so
    /// networks of the other modes keep `switch_one` small enough to be
    /// inlined into the burst loop.
    #[inline(never)]
    pub(super) fn host_mac_out(
        &mut self,
        ctx: &mut Ctx<'_>,
        net: NetId,
        mode: L2Mode,
        mut frame: Frame,
        meta: &PacketMeta,
    ) {
        let network = self.topo.network(net);
        let Some(up) = network.uplink else {
            ctx.drop_frame(frame, DropReason::NoRoute);
            return;
        };
        let uplink = self.topo.uplink(up);
        let (host, up_port) = (uplink.mac, uplink.port);
        hostmac::to_host(ctx.pool.data_mut(&mut frame), meta, host);
        if mode == L2Mode::Tunnel {
            self.counters[net.0 as usize].unicast.add(1);
            ctx.send(up_port, frame);
            return;
        }
        if meta.dst_mac.is_multicast() {
            self.flood(ctx, net, frame);
            return;
        }
        if meta.dst_mac == host {
            let local = hostmac::target_ip(ctx.pool.data(&frame), meta)
                .and_then(|ip| network.endpoints.get(&ip).copied());
            if let Some((mac, port)) = local.filter(|(_, p)| *p != frame.in_port) {
                hostmac::to_endpoint(ctx.pool.data_mut(&mut frame), meta, host, mac);
                self.counters[net.0 as usize].unicast.add(1);
                ctx.send(port, frame);
                return;
            }
        }
        self.counters[net.0 as usize].unicast.add(1);
        ctx.send(up_port, frame);
    }

    /// A frame from uplink `up`, whose segment L2 network `net` shares.
    /// Returns it when it is not the network's (the uplink's own address,
    /// its NAT or VXLAN), for the uplink's own handling.
    pub(super) fn l2_in(
        &mut self,
        ctx: &mut Ctx<'_>,
        up: UplinkId,
        net: NetId,
        frame: Frame,
        meta: &PacketMeta,
    ) -> Option<Frame> {
        let uplink = self.topo.uplink(up);
        let (host, up_port, own_ip) = (uplink.mac, uplink.port, uplink.ip);
        let network = self.topo.network(net);
        let mode = network.l2?;
        if network.acl && self.acl_blocks(net, None, ctx.pool.data(&frame), meta) {
            // An endpoint's `In` rules hold for frames from the segment too.
            ctx.drop_frame(frame, DropReason::Acl);
            return None;
        }
        match mode {
            L2Mode::Transparent => {
                let for_uplink = if meta.dst_mac.is_multicast() {
                    meta.ethertype == wire::ETHERTYPE_ARP
                        && !own_ip.is_unspecified()
                        && hostmac::target_ip(ctx.pool.data(&frame), meta) == Some(own_ip)
                } else {
                    meta.dst_mac == host
                };
                if for_uplink {
                    return Some(frame);
                }
                if meta.src_mac.is_multicast() || meta.src_mac == wire::MacAddr::ZERO {
                    ctx.drop_frame(frame, DropReason::BadSourceMac);
                    return None;
                }
                self.learn(net, meta.src_mac, up_port, ctx.now_ns);
                if meta.dst_mac.is_multicast() {
                    self.flood(ctx, net, frame);
                    return None;
                }
                // Unknown unicast from the wire is for an endpoint's MAC
                // (the uplink's filter passed it): one that has not spoken
                // yet, so the FDB does not know its port.
                match self.fdbs[net.0 as usize].lookup(meta.dst_mac, ctx.now_ns) {
                    Some(out) if out != up_port => {
                        self.counters[net.0 as usize].unicast.add(1);
                        ctx.send(out, frame);
                    }
                    _ => self.flood(ctx, net, frame),
                }
                None
            }
            L2Mode::Bridge | L2Mode::Tunnel => {
                if !meta.dst_mac.is_multicast() && meta.dst_mac != host {
                    return Some(frame);
                }
                let to = hostmac::target_ip(ctx.pool.data(&frame), meta)
                    .and_then(|ip| network.endpoints.get(&ip).copied());
                let Some((mac, port)) = to else {
                    return Some(frame);
                };
                let mut frame = frame;
                hostmac::to_endpoint(ctx.pool.data_mut(&mut frame), meta, host, mac);
                self.counters[net.0 as usize].unicast.add(1);
                ctx.send(port, frame);
                None
            }
        }
    }
}
