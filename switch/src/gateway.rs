//! The network's gateway address, owned by the switch: it answers ARP for
//! the gateway IP and ICMP echo to it, as the Docker bridge's and HNS's
//! gateway does. Replies are built in place in the request's buffer.

use std::net::Ipv4Addr;

use crate::arp::{self, ArpSeen};
use crate::echo;
use pmd::meta::PacketMeta;
use pmd::wire::{self, MacAddr};
use pmd::{DropReason, Frame, Pool};

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
            ArpSeen::Answered { .. } => GatewayVerdict::ArpReply,
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
        if !echo::reply_in_place(pool.data_mut(frame), meta, self.mac) {
            return GatewayVerdict::Drop(DropReason::NotForUs);
        }
        // A reply never carries the request's offload state.
        frame.offload = pmd::Offload::default();
        GatewayVerdict::EchoReply
    }
}
