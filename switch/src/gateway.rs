//! The network's gateway address, owned by the switch: it answers ARP for
//! the gateway IP and ICMP echo to it, as the Docker bridge's and HNS's
//! gateway does. Replies are built in place in the request's buffer.

use std::net::Ipv4Addr;

use pmd::meta::PacketMeta;
use pmd::wire::{self, MacAddr};
use pmd::{DropReason, Frame, Pool};
use smoltcp::wire::{Icmpv4Message, Icmpv4Packet, Ipv4Packet};

use crate::arp::{self, ArpSeen};

/// A gateway's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gateway {
    /// The gateway IP.
    pub ip: Ipv4Addr,
    /// The MAC the switch answers with.
    pub mac: MacAddr,
}

/// What the gateway did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayVerdict {
    /// The frame was turned into an ARP reply: send it back.
    ArpReply,
    /// The frame was turned into an echo reply: send it back.
    EchoReply,
    /// Not addressed to the gateway (an ARP for someone else): switch it.
    NotForGateway,
    /// Addressed to the gateway but nothing it answers.
    Drop(DropReason),
}

impl Gateway {
    /// Handles a frame whose destination is the gateway MAC or broadcast.
    pub fn handle(&self, pool: &mut Pool, frame: &mut Frame, meta: &PacketMeta) -> GatewayVerdict {
        match meta.ethertype {
            wire::ETHERTYPE_ARP => self.arp(pool, frame, meta),
            wire::ETHERTYPE_IPV4 if meta.dst_mac == self.mac => self.ipv4(pool, frame, meta),
            _ if meta.dst_mac == self.mac => GatewayVerdict::Drop(DropReason::NotForUs),
            _ => GatewayVerdict::NotForGateway,
        }
    }

    fn arp(&self, pool: &mut Pool, frame: &mut Frame, meta: &PacketMeta) -> GatewayVerdict {
        match arp::answer_in_place(
            pool.data_mut(frame),
            meta.l3_off as usize,
            self.ip,
            self.mac,
        ) {
            ArpSeen::Answered => GatewayVerdict::ArpReply,
            ArpSeen::NotOurs => GatewayVerdict::NotForGateway,
            ArpSeen::Reply { .. } if meta.dst_mac == self.mac => {
                GatewayVerdict::Drop(DropReason::NotForUs)
            }
            ArpSeen::Reply { .. } => GatewayVerdict::NotForGateway,
            ArpSeen::Malformed => GatewayVerdict::Drop(DropReason::Malformed),
        }
    }

    fn ipv4(&self, pool: &mut Pool, frame: &mut Frame, meta: &PacketMeta) -> GatewayVerdict {
        if meta.ip_dst != self.ip.octets() {
            // Leaving the subnet through the gateway: routing and NAT.
            return GatewayVerdict::Drop(DropReason::NoRoute);
        }
        if meta.ip_proto != wire::IPPROTO_ICMP || meta.later_fragment {
            return GatewayVerdict::Drop(DropReason::NotForUs);
        }
        let (l3, l4) = (meta.l3_off as usize, meta.l4_off as usize);
        let end = meta.frame_len as usize;
        let buf = pool.data_mut(frame);
        {
            let Ok(mut icmp) = Icmpv4Packet::new_checked(&mut buf[l4..end]) else {
                return GatewayVerdict::Drop(DropReason::Truncated);
            };
            if icmp.msg_type() != Icmpv4Message::EchoRequest {
                return GatewayVerdict::Drop(DropReason::NotForUs);
            }
            icmp.set_msg_type(Icmpv4Message::EchoReply);
            icmp.set_msg_code(0);
            icmp.fill_checksum();
        }
        {
            let Ok(mut ip) = Ipv4Packet::new_checked(&mut buf[l3..end]) else {
                return GatewayVerdict::Drop(DropReason::Truncated);
            };
            let src = ip.src_addr();
            ip.set_dst_addr(src);
            ip.set_src_addr(self.ip);
            ip.set_hop_limit(64);
            ip.fill_checksum();
        }
        let src_mac = meta.src_mac;
        buf[0..6].copy_from_slice(&src_mac.0);
        buf[6..12].copy_from_slice(&self.mac.0);
        // A reply never carries the request's offload state.
        frame.offload = pmd::Offload::default();
        GatewayVerdict::EchoReply
    }
}
