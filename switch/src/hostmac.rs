//! The MAC rewrites of the l2bridge and l2tunnel modes: on the wire every
//! frame of such a network carries the host's MAC, never an endpoint's
//! (HNS l2bridge: "the container's MAC is rewritten to the host's MAC on
//! egress, and back on ingress"). Egress writes the host's MAC as the
//! source (and as the sender hardware address of ARP); ingress finds the
//! endpoint by IPv4 address and writes its MAC back as the destination
//! (and as ARP's target hardware address where it was the host's).
//!
//! Only IPv4 and ARP can be mapped back: ingress knows endpoints by IPv4
//! address, so other EtherTypes have no way home.

use std::net::Ipv4Addr;

use pmd::meta::PacketMeta;
use pmd::wire::{self, ArpPacket, EthernetFrame, MacAddr};

/// The IPv4 address an ingress frame is for: the IPv4 destination, or the
/// target protocol address of ARP. `None` for other EtherTypes.
#[inline]
pub fn target_ip(buf: &[u8], meta: &PacketMeta) -> Option<Ipv4Addr> {
    match meta.ethertype {
        wire::ETHERTYPE_IPV4 => Some(Ipv4Addr::from(meta.ip_dst)),
        // `meta::parse` checked the whole ARP packet is there.
        wire::ETHERTYPE_ARP => {
            Some(ArpPacket::new_unchecked(&buf[meta.l3_off as usize..]).target_protocol_addr())
        }
        _ => None,
    }
}

/// Egress: the frame leaves as the host's, `host` as its source MAC and,
/// in ARP, as the sender hardware address (the peer answers the host).
#[inline]
pub fn to_host(buf: &mut [u8], meta: &PacketMeta, host: MacAddr) {
    EthernetFrame::new_unchecked(&mut *buf).set_src_addr(host);
    if meta.ethertype == wire::ETHERTYPE_ARP {
        ArpPacket::new_unchecked(&mut buf[meta.l3_off as usize..]).set_source_hardware_addr(host);
    }
}

/// Ingress: the frame reaches endpoint `ep`. A unicast destination (the
/// host's MAC) becomes `ep`; in ARP, a target hardware address that is the
/// host's (a reply to what `to_host` sent) becomes `ep` too. Broadcast
/// stays broadcast.
#[inline]
pub fn to_endpoint(buf: &mut [u8], meta: &PacketMeta, host: MacAddr, ep: MacAddr) {
    if !meta.dst_mac.is_multicast() {
        EthernetFrame::new_unchecked(&mut *buf).set_dst_addr(ep);
    }
    if meta.ethertype == wire::ETHERTYPE_ARP {
        let mut arp = ArpPacket::new_unchecked(&mut buf[meta.l3_off as usize..]);
        if arp.target_hardware_addr() == host {
            arp.set_target_hardware_addr(ep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: MacAddr = MacAddr([0x02, 0x50, 10, 0, 0, 2]);
    const EP: MacAddr = MacAddr([0x02, 0x00, 10, 0, 0, 21]);
    const ROUTER: MacAddr = MacAddr([0x0a, 0, 0, 0, 0, 1]);

    fn arp(op: u8, dst: MacAddr, src: MacAddr, sha: MacAddr, tha: MacAddr) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op]);
        f.extend_from_slice(&sha.0);
        f.extend_from_slice(&[10, 0, 0, 21]);
        f.extend_from_slice(&tha.0);
        f.extend_from_slice(&[10, 0, 0, 1]);
        f.resize(60, 0);
        f
    }

    #[test]
    fn an_endpoints_arp_request_leaves_with_the_host_mac_as_source_and_sender() {
        let mut f = arp(1, MacAddr::BROADCAST, EP, EP, MacAddr::ZERO);
        let meta = pmd::meta::parse(&f).unwrap();
        to_host(&mut f, &meta, HOST);
        assert_eq!(f, arp(1, MacAddr::BROADCAST, HOST, HOST, MacAddr::ZERO));
        assert_eq!(target_ip(&f, &meta), Some(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn an_arp_reply_to_the_host_mac_reaches_the_endpoint_with_its_own_mac() {
        let mut f = arp(2, HOST, ROUTER, ROUTER, HOST);
        let meta = pmd::meta::parse(&f).unwrap();
        to_endpoint(&mut f, &meta, HOST, EP);
        assert_eq!(f, arp(2, EP, ROUTER, ROUTER, EP));
    }

    #[test]
    fn a_broadcast_arp_request_for_an_endpoint_stays_broadcast() {
        let mut f = arp(1, MacAddr::BROADCAST, ROUTER, ROUTER, MacAddr::ZERO);
        let meta = pmd::meta::parse(&f).unwrap();
        to_endpoint(&mut f, &meta, HOST, EP);
        assert_eq!(f, arp(1, MacAddr::BROADCAST, ROUTER, ROUTER, MacAddr::ZERO));
    }

    #[test]
    fn an_ipv4_frame_is_found_by_its_destination_and_only_its_macs_change() {
        let mut f = vec![0u8; 34];
        f[..6].copy_from_slice(&HOST.0);
        f[6..12].copy_from_slice(&ROUTER.0);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14..34].copy_from_slice(&[
            0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 253, 0, 0, 10, 0, 0, 1, 10, 0, 0, 21,
        ]);
        f.resize(60, 0);
        let meta = pmd::meta::parse(&f).unwrap();
        assert_eq!(target_ip(&f, &meta), Some(Ipv4Addr::new(10, 0, 0, 21)));
        let before = f.clone();
        to_endpoint(&mut f, &meta, HOST, EP);
        assert_eq!(&f[..6], &EP.0);
        assert_eq!(&f[6..], &before[6..]);
        to_host(&mut f, &meta, HOST);
        assert_eq!(&f[6..12], &HOST.0);
        assert_eq!(&f[12..], &before[12..]);
    }
}
