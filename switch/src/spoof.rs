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
//!
//! A port without a [`Guard`] (uplinks, a `[[port]]` without endpoints,
//! endpoints with `allow_spoofing = true`) costs the pipeline one load and
//! one branch.

use std::net::Ipv4Addr;

use pmd::meta::PacketMeta;
use pmd::wire::{self, MacAddr};

/// Offsets in an ARP packet for Ethernet/IPv4 (RFC 826), which
/// `meta::parse` has validated (hardware length 6, protocol length 4).
mod field {
    pub const SHA: std::ops::Range<usize> = 8..14;
    pub const SPA: std::ops::Range<usize> = 14..18;
    /// The IPv6 source address in an IPv6 header (RFC 8200).
    pub const IPV6_SRC: std::ops::Range<usize> = 8..24;
}

/// One address pair an endpoint may send from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Its MAC.
    pub mac: MacAddr,
    /// Its IPv4 address.
    pub ip: Ipv4Addr,
}

/// What a guarded port may send as: the identity of its endpoint (a TAP),
/// or of each endpoint behind it (a `[[port]]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    ids: Vec<Identity>,
}

impl Guard {
    /// A guard that lets `id` speak.
    pub fn new(id: Identity) -> Guard {
        Guard { ids: vec![id] }
    }

    /// Lets `id` speak too (another endpoint behind the same port).
    pub fn add(&mut self, id: Identity) {
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
    }

    /// Stops `ip` speaking (its endpoint left); true when none is left.
    pub fn remove(&mut self, ip: Ipv4Addr) -> bool {
        self.ids.retain(|i| i.ip != ip);
        self.ids.is_empty()
    }

    /// The identities it lets speak.
    pub fn identities(&self) -> &[Identity] {
        &self.ids
    }

    /// Whether `frame`, parsed into `meta`, speaks only for this port's
    /// endpoint(s).
    #[inline]
    pub fn allows(&self, meta: &PacketMeta, frame: &[u8]) -> bool {
        let Some(id) = self.ids.iter().find(|i| i.mac == meta.src_mac) else {
            return false;
        };
        match meta.ethertype {
            wire::ETHERTYPE_IPV4 => {
                let src = Ipv4Addr::from(meta.ip_src);
                src == id.ip || self.other_ip_of(meta.src_mac, src)
            }
            wire::ETHERTYPE_ARP => self.allows_arp(meta, frame),
            wire::ETHERTYPE_IPV6 => allows_ipv6(meta, frame),
            _ => true,
        }
    }

    /// Several endpoints behind one `[[port]]` may share a MAC only in a
    /// config nobody writes; look them all up rather than the first.
    #[cold]
    fn other_ip_of(&self, mac: MacAddr, ip: Ipv4Addr) -> bool {
        self.ids.iter().any(|i| i.mac == mac && i.ip == ip)
    }

    #[cold]
    fn allows_arp(&self, meta: &PacketMeta, frame: &[u8]) -> bool {
        let l3 = meta.l3_off as usize;
        let (Some(sha), Some(spa)) = (
            frame.get(l3 + field::SHA.start..l3 + field::SHA.end),
            frame.get(l3 + field::SPA.start..l3 + field::SPA.end),
        ) else {
            return false;
        };
        let sha = MacAddr(sha.try_into().unwrap_or_default());
        let spa = Ipv4Addr::new(spa[0], spa[1], spa[2], spa[3]);
        self.ids
            .iter()
            .any(|i| i.mac == sha && (i.ip == spa || spa.is_unspecified()))
    }
}

#[cold]
fn allows_ipv6(meta: &PacketMeta, frame: &[u8]) -> bool {
    let l3 = meta.l3_off as usize;
    let Some(src) = frame.get(l3 + field::IPV6_SRC.start..l3 + field::IPV6_SRC.end) else {
        return false;
    };
    let link_local = src[0] == 0xfe && src[1] & 0xc0 == 0x80;
    link_local || src.iter().all(|b| *b == 0)
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
        Guard::new(Identity {
            mac: OWN_MAC,
            ip: OWN_IP,
        })
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
    fn a_port_with_two_endpoints_lets_each_speak_only_as_itself() {
        let mut g = guard();
        g.add(Identity {
            mac: OTHER_MAC,
            ip: OTHER_IP,
        });
        let check = |g: &Guard, f: Vec<u8>| g.allows(&meta::parse(&f).unwrap(), &f);
        assert!(check(&g, udp(OTHER_MAC, OTHER_IP)));
        assert!(check(&g, udp(OWN_MAC, OWN_IP)));
        assert!(!check(&g, udp(OTHER_MAC, OWN_IP)));
        assert!(!g.remove(OWN_IP), "the other endpoint is still there");
        assert!(!check(&g, udp(OWN_MAC, OWN_IP)));
        assert!(g.remove(OTHER_IP), "no endpoint is left");
    }
}
