//! Which frames a capture or a trace takes: a [`FrameFilter`] checked
//! once (bad MAC, unknown protocol) and matched against frame bytes on the
//! PMD thread.

use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use pmd::meta::{self, PacketMeta};
use pmd::wire::{self, udp, ArpPacket, MacAddr, UdpPacket};

use crate::control::protocol::FrameFilter;

/// `proto` of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Ip(u8),
    Arp,
}

/// A checked [`FrameFilter`]: every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameMatch {
    mac: Option<MacAddr>,
    ip: Option<Ipv4Addr>,
    proto: Option<Proto>,
    l4_port: Option<u16>,
}

impl FrameMatch {
    /// Checks `f`: a MAC that does not parse or an unknown protocol is an
    /// error the user can act on.
    pub fn new(f: &FrameFilter) -> Result<FrameMatch> {
        let mac = match &f.mac {
            Some(m) => Some(
                m.parse::<MacAddr>()
                    .ok()
                    .with_context(|| format!("filter mac {m:?} is not aa:bb:cc:dd:ee:ff"))?,
            ),
            None => None,
        };
        let proto = match f.proto.as_deref() {
            None => None,
            Some("tcp") => Some(Proto::Ip(wire::IPPROTO_TCP)),
            Some("udp") => Some(Proto::Ip(wire::IPPROTO_UDP)),
            Some("icmp") => Some(Proto::Ip(wire::IPPROTO_ICMP)),
            Some("arp") => Some(Proto::Arp),
            Some(other) => bail!("filter proto {other:?}: expected tcp, udp, icmp or arp"),
        };
        Ok(FrameMatch {
            mac,
            ip: f.ip,
            proto,
            l4_port: f.l4_port,
        })
    }

    /// True when the filter takes every frame.
    pub fn is_any(&self) -> bool {
        *self == FrameMatch::default()
    }

    /// True when `frame` matches; a frame that does not parse matches only
    /// the empty filter (it has no addresses to compare).
    pub fn matches(&self, frame: &[u8]) -> bool {
        if self.is_any() {
            return true;
        }
        match meta::parse(frame) {
            Ok(m) => self.matches_meta(frame, &m),
            Err(_) => false,
        }
    }

    /// As [`matches`](Self::matches), for a frame already parsed.
    pub fn matches_meta(&self, frame: &[u8], m: &PacketMeta) -> bool {
        if let Some(mac) = self.mac {
            if m.src_mac != mac && m.dst_mac != mac {
                return false;
            }
        }
        let is_arp = m.ethertype == wire::ETHERTYPE_ARP;
        let is_ipv4 = m.ethertype == wire::ETHERTYPE_IPV4;
        match self.proto {
            Some(Proto::Arp) if !is_arp => return false,
            Some(Proto::Ip(p)) if !is_ipv4 || m.ip_proto != p => return false,
            _ => {}
        }
        if let Some(ip) = self.ip {
            let (a, b) = if is_ipv4 {
                (Ipv4Addr::from(m.ip_src), Ipv4Addr::from(m.ip_dst))
            } else if is_arp {
                // meta::parse checked that the ARP header is whole.
                let arp = ArpPacket::new_unchecked(&frame[m.l3_off as usize..]);
                (arp.source_protocol_addr(), arp.target_protocol_addr())
            } else {
                return false;
            };
            if a != ip && b != ip {
                return false;
            }
        }
        if let Some(port) = self.l4_port {
            match l4_ports(frame, m) {
                Some((s, d)) if s == port || d == port => {}
                _ => return false,
            }
        }
        true
    }
}

/// Source and destination port of a TCP or UDP frame (both keep them in
/// the first four bytes, as UDP's header lays them out).
pub fn l4_ports(frame: &[u8], m: &PacketMeta) -> Option<(u16, u16)> {
    let l4_proto = m.ip_proto == wire::IPPROTO_TCP || m.ip_proto == wire::IPPROTO_UDP;
    if m.ethertype != wire::ETHERTYPE_IPV4 || !l4_proto || m.later_fragment {
        return None;
    }
    let l4 = m.l4_off as usize;
    let h = frame.get(l4..l4 + udp::HEADER_LEN)?;
    let u = UdpPacket::new_unchecked(h);
    Some((u.src_port(), u.dst_port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 + UDP 172.30.0.10:5000 -> 10.99.0.1:53.
    fn udp_frame() -> Vec<u8> {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 172, 30, 0, 10], [2, 0x50, 172, 30, 0, 1])
            .ipv4([172, 30, 0, 10], [10, 99, 0, 1], 64)
            .udp(5000, 53)
            .write(&mut f, &[])
            .unwrap();
        f
    }

    fn filter(
        mac: Option<&str>,
        ip: Option<&str>,
        proto: Option<&str>,
        port: Option<u16>,
    ) -> FrameMatch {
        FrameMatch::new(&FrameFilter {
            mac: mac.map(String::from),
            ip: ip.map(|i| i.parse().unwrap()),
            proto: proto.map(String::from),
            l4_port: port,
        })
        .unwrap()
    }

    #[test]
    fn a_udp_frame_matches_its_own_addresses_and_ports_and_no_others() {
        let f = udp_frame();
        assert!(meta::parse(&f).is_ok(), "the fixture is a valid frame");
        assert!(filter(None, None, None, None).matches(&f));
        assert!(filter(Some("02:00:ac:1e:00:0a"), None, None, None).matches(&f));
        assert!(filter(None, Some("10.99.0.1"), Some("udp"), Some(53)).matches(&f));
        assert!(filter(None, None, None, Some(5000)).matches(&f));
        assert!(!filter(Some("02:00:ac:1e:00:0b"), None, None, None).matches(&f));
        assert!(!filter(None, Some("10.99.0.2"), None, None).matches(&f));
        assert!(!filter(None, None, Some("tcp"), None).matches(&f));
        assert!(!filter(None, None, Some("arp"), None).matches(&f));
        assert!(!filter(None, None, None, Some(80)).matches(&f));
    }

    #[test]
    fn a_bad_mac_or_protocol_in_a_filter_is_an_error_that_names_it() {
        let e = FrameMatch::new(&FrameFilter {
            mac: Some("nope".into()),
            ..FrameFilter::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("\"nope\""), "{e}");
        let e = FrameMatch::new(&FrameFilter {
            proto: Some("sctp".into()),
            ..FrameFilter::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("sctp"), "{e}");
    }

    #[test]
    fn a_runt_matches_only_the_empty_filter() {
        assert!(filter(None, None, None, None).matches(&[1, 2, 3]));
        assert!(!filter(None, None, Some("udp"), None).matches(&[1, 2, 3]));
    }
}
