//! Anti-spoofing: no container speaks for another.
//!
//! An endpoint port sends only with its own source MAC, its own IPv4
//! source and, in ARP, its own sender MAC and IP; anything else is a
//! [`pmd::DropReason::Spoofed`] drop on that port. The pipeline calls
//! [`Guard::allows`] once per frame, after parsing and before learning, so
//! a forged MAC is never learned and a victim's FDB entry never moves.
//!
//! Choices where the rule alone does not decide:
//! - An IPv4 source of 0.0.0.0 is dropped: podswitch serves no DHCP and
//!   its endpoints have static addresses, so nothing legitimate sends it.
//! - An ARP sender IP of 0.0.0.0 passes: it is an RFC 5227 probe
//!   (`arping -D`), which claims no address and updates no cache.
//! - IPv6: endpoints get no IPv6 addresses, but the kernel speaks
//!   link-local IPv6 on every interface (router and neighbour solicitation,
//!   MLD, DAD from `::`). Sources in fe80::/10 and `::` pass, every other
//!   IPv6 source is dropped: it could only be someone else's.
//! - Other EtherTypes: only the source MAC is checked.
//! - An endpoint behind a `[[port]]` without `mac` in the file: the
//!   switch does not own the far end's interface and cannot know its MAC,
//!   so only the addresses are checked (and that an ARP sender MAC is the
//!   frame's own). Give `mac` to guard the MAC too.
//!
//! A port without a [`Guard`] (uplinks, a `[[port]]` without endpoints,
//! endpoints with `allow_spoofing = true`) costs the pipeline a bounds
//! check, a load and a branch; a guarded IPv4 frame about 25 instructions
//! (bench/README.md, "Anti-spoofing check").

use std::net::Ipv4Addr;

use pmd::meta::PacketMeta;
use pmd::wire::arp::ArpPacket;
use pmd::wire::ipv6::Ipv6Packet;
use pmd::wire::{self, MacAddr};

/// What a guarded port may send as: its endpoint's address, and its MAC
/// where the switch knows it. A port carries one endpoint at most (a TAP is
/// one endpoint's; `check` refuses two behind one `[[port]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// The endpoint's MAC: always for a TAP (the switch sets it), for an
    /// endpoint behind a `[[port]]` only when the file gives `mac` (the
    /// switch does not own the far end's interface, so a derived MAC is no
    /// fact about it).
    pub mac: Option<MacAddr>,
    /// The endpoint's IPv4 address.
    pub ip: Ipv4Addr,
}

impl Guard {
    /// Whether `frame`, parsed into `meta`, speaks only for this port's
    /// endpoint.
    #[inline]
    pub fn allows(&self, meta: &PacketMeta, frame: &[u8]) -> bool {
        if self.mac.is_some_and(|m| m != meta.src_mac) {
            return false;
        }
        match meta.ethertype {
            wire::ETHERTYPE_IPV4 => meta.ip_src == self.ip.octets(),
            wire::ETHERTYPE_ARP => self.allows_arp(meta, frame),
            wire::ETHERTYPE_IPV6 => allows_ipv6(meta, frame),
            _ => true,
        }
    }

    /// The ARP sender is the frame's own source MAC (so, where known, the
    /// endpoint's) and the endpoint's address, or 0.0.0.0 for a probe.
    #[cold]
    fn allows_arp(&self, meta: &PacketMeta, frame: &[u8]) -> bool {
        let Some(Ok(arp)) = frame
            .get(meta.l3_off as usize..)
            .map(ArpPacket::new_checked)
        else {
            return false;
        };
        let spa = arp.source_protocol_addr();
        arp.source_hardware_addr() == meta.src_mac && (spa == self.ip || spa.is_unspecified())
    }
}

#[cold]
fn allows_ipv6(meta: &PacketMeta, frame: &[u8]) -> bool {
    let Some(Ok(ip)) = frame
        .get(meta.l3_off as usize..)
        .map(Ipv6Packet::new_checked)
    else {
        return false;
    };
    let src = ip.src_addr();
    let link_local = src[0] == 0xfe && src[1] & 0xc0 == 0x80;
    link_local || src == [0; 16]
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmd::meta;

    const OWN_MAC: MacAddr = MacAddr([0x02, 0, 10, 0, 0, 2]);
    const OTHER_MAC: MacAddr = MacAddr([0x02, 0, 10, 0, 0, 3]);
    const OWN_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const OTHER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    fn guard() -> Guard {
        Guard {
            mac: Some(OWN_MAC),
            ip: OWN_IP,
        }
    }

    fn eth(src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f.resize(f.len().max(60), 0);
        f
    }

    fn udp(src: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
        p.extend_from_slice(&ip.octets());
        p.extend_from_slice(&[10, 0, 0, 1]);
        p.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        eth(src, wire::ETHERTYPE_IPV4, &p)
    }

    fn arp(src: MacAddr, sha: MacAddr, spa: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1];
        p.extend_from_slice(&sha.0);
        p.extend_from_slice(&spa.octets());
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&spa.octets());
        eth(src, wire::ETHERTYPE_ARP, &p)
    }

    fn ipv6(src: [u8; 16]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 58, 255];
        p.extend_from_slice(&src);
        p.extend_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        eth(OWN_MAC, wire::ETHERTYPE_IPV6, &p)
    }

    fn allowed(f: &[u8]) -> bool {
        let m = meta::parse(f).expect("the test frame parses");
        guard().allows(&m, f)
    }

    #[test]
    fn an_endpoint_speaking_as_itself_passes() {
        assert!(allowed(&udp(OWN_MAC, OWN_IP)));
        assert!(allowed(&arp(OWN_MAC, OWN_MAC, OWN_IP)));
    }

    #[test]
    fn a_foreign_source_mac_or_ip_is_spoofing() {
        assert!(!allowed(&udp(OTHER_MAC, OWN_IP)));
        assert!(!allowed(&udp(OWN_MAC, OTHER_IP)));
        assert!(!allowed(&udp(OWN_MAC, Ipv4Addr::UNSPECIFIED)));
    }

    #[test]
    fn a_gratuitous_arp_for_another_address_is_spoofing() {
        assert!(!allowed(&arp(OWN_MAC, OWN_MAC, OTHER_IP)));
        assert!(!allowed(&arp(OWN_MAC, OTHER_MAC, OWN_IP)));
    }

    #[test]
    fn an_arp_probe_from_the_unspecified_address_passes() {
        assert!(allowed(&arp(OWN_MAC, OWN_MAC, Ipv4Addr::UNSPECIFIED)));
    }

    #[test]
    fn link_local_and_unspecified_ipv6_pass_and_other_ipv6_is_spoofing() {
        let mut ll = [0u8; 16];
        ll[0] = 0xfe;
        ll[1] = 0x80;
        ll[15] = 2;
        assert!(allowed(&ipv6(ll)));
        assert!(allowed(&ipv6([0; 16])));
        let mut global = [0u8; 16];
        global[0] = 0x20;
        global[1] = 0x01;
        global[15] = 2;
        assert!(!allowed(&ipv6(global)));
    }

    #[test]
    fn without_a_known_mac_the_address_is_still_guarded_and_arp_must_match_its_frame() {
        let g = Guard {
            mac: None,
            ip: OWN_IP,
        };
        let check = |f: Vec<u8>| g.allows(&meta::parse(&f).unwrap(), &f);
        assert!(
            check(udp(OTHER_MAC, OWN_IP)),
            "any MAC: the switch does not know it"
        );
        assert!(!check(udp(OTHER_MAC, OTHER_IP)));
        assert!(check(arp(OTHER_MAC, OTHER_MAC, OWN_IP)));
        assert!(
            !check(arp(OWN_MAC, OTHER_MAC, OWN_IP)),
            "a sender MAC not the frame's"
        );
        assert!(!check(arp(OTHER_MAC, OTHER_MAC, OTHER_IP)));
    }
}
