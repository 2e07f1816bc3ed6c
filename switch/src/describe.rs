//! One-line descriptions of frames, as tcpdump would print them, and the
//! addresses NAT rewrites: what a trace shows of a frame before and after
//! each stage.

use std::fmt::Write;
use std::net::Ipv4Addr;

use pmd::meta::{self, PacketMeta};
use pmd::wire::{self, icmpv4, ArpPacket, Ipv4Packet};

use crate::filter::l4_ports;

/// Outer Ethernet + IPv4 + UDP + VXLAN header: where an inner frame
/// starts.
const VXLAN_INNER: usize = overlay::vxlan::OUTER_LEN;

/// One end of a flow: an address, with the TCP/UDP port or the ICMP echo
/// identifier that NAT may rewrite along with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// An address alone.
    Addr(Ipv4Addr),
    /// An address and a TCP or UDP port.
    Port(Ipv4Addr, u16),
    /// An address and an ICMP echo identifier (the querier's end).
    Echo(Ipv4Addr, u16),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Addr(a) => write!(f, "{a}"),
            End::Port(a, p) => write!(f, "{a}:{p}"),
            End::Echo(a, id) => write!(f, "{a} id {id}"),
        }
    }
}

/// The ends of an IPv4 flow as NAT sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEnds {
    /// Where it comes from.
    pub src: End,
    /// Where it goes.
    pub dst: End,
}

impl FlowEnds {
    /// The flow ends of an IPv4 frame; `None` for anything else.
    pub fn of(frame: &[u8]) -> Option<FlowEnds> {
        let m = meta::parse(frame).ok()?;
        if m.ethertype != wire::ETHERTYPE_IPV4 {
            return None;
        }
        let (src, dst) = (Ipv4Addr::from(m.ip_src), Ipv4Addr::from(m.ip_dst));
        let ends = match (l4_ports(frame, &m), echo(frame, &m)) {
            (Some((sp, dp)), _) => (End::Port(src, sp), End::Port(dst, dp)),
            // The identifier is the querier's: the source of a request,
            // the destination of a reply.
            (None, Some((true, id))) => (End::Echo(src, id), End::Addr(dst)),
            (None, Some((false, id))) => (End::Addr(src), End::Echo(dst, id)),
            (None, None) => (End::Addr(src), End::Addr(dst)),
        };
        Some(FlowEnds {
            src: ends.0,
            dst: ends.1,
        })
    }

    /// "source A:p -> B:q, destination ..." for the ends that differ.
    pub fn changes_to(&self, after: &FlowEnds) -> Option<String> {
        let mut parts = Vec::new();
        if self.src != after.src {
            parts.push(format!("source {} -> {}", self.src, after.src));
        }
        if self.dst != after.dst {
            parts.push(format!("destination {} -> {}", self.dst, after.dst));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// Whether an ICMP frame is an echo request (true) or reply (false), with
/// its identifier.
fn echo(frame: &[u8], m: &PacketMeta) -> Option<(bool, u16)> {
    let id = echo_id(frame, m)?;
    let l4 = m.l4_off as usize;
    Some((frame.get(l4) == Some(&8), id))
}

/// The identifier of an ICMP echo request or reply.
fn echo_id(frame: &[u8], m: &PacketMeta) -> Option<u16> {
    if m.ip_proto != wire::IPPROTO_ICMP || m.later_fragment {
        return None;
    }
    let l4 = m.l4_off as usize;
    let h = frame.get(l4..l4 + icmpv4::HEADER_LEN)?;
    matches!(h[0], 0 | 8).then(|| u16::from_be_bytes([h[4], h[5]]))
}

/// "02:00:.. > 02:50:.., IPv4 172.30.0.10 > 10.99.0.1 ICMP echo request
/// id 7, ttl 64, 98 bytes"; a VXLAN frame on one of `vxlan_ports` also
/// describes its inner frame.
pub fn frame(bytes: &[u8], vxlan_ports: &[u16]) -> String {
    let m = match meta::parse(bytes) {
        Ok(m) => m,
        Err(reason) => {
            return format!(
                "{} bytes that do not parse ({})",
                bytes.len(),
                reason.name()
            )
        }
    };
    let mut s = format!("{} > {}, ", m.src_mac, m.dst_mac);
    match m.ethertype {
        wire::ETHERTYPE_ARP => arp(&mut s, bytes, &m),
        wire::ETHERTYPE_IPV4 => ipv4(&mut s, bytes, &m, vxlan_ports),
        other => {
            let _ = write!(s, "ethertype {other:#06x}");
        }
    }
    let _ = write!(s, ", {} bytes", bytes.len());
    s
}

fn arp(s: &mut String, bytes: &[u8], m: &PacketMeta) {
    // meta::parse checked the ARP header is whole.
    let a = ArpPacket::new_unchecked(&bytes[m.l3_off as usize..]);
    let _ = match a.operation() {
        1 => write!(
            s,
            "ARP who-has {} tell {}",
            a.target_protocol_addr(),
            a.source_protocol_addr()
        ),
        2 => write!(
            s,
            "ARP reply {} is-at {}",
            a.source_protocol_addr(),
            a.source_hardware_addr()
        ),
        op => write!(s, "ARP operation {op}"),
    };
}

fn ipv4(s: &mut String, bytes: &[u8], m: &PacketMeta, vxlan_ports: &[u16]) {
    let l3 = m.l3_off as usize;
    // meta::parse checked the fixed header is whole.
    let ttl = Ipv4Packet::new_unchecked(&bytes[l3..]).ttl();
    let (src, dst) = (Ipv4Addr::from(m.ip_src), Ipv4Addr::from(m.ip_dst));
    match (m.ip_proto, l4_ports(bytes, m)) {
        (wire::IPPROTO_TCP, Some((sp, dp))) => {
            let _ = write!(s, "IPv4 {src}:{sp} > {dst}:{dp} TCP");
        }
        (wire::IPPROTO_UDP, Some((sp, dp))) => {
            let _ = write!(s, "IPv4 {src}:{sp} > {dst}:{dp} UDP");
            if vxlan_ports.contains(&dp) {
                if let Some(inner) = bytes.get(VXLAN_INNER..) {
                    let vni = bytes
                        .get(VXLAN_INNER - 4..VXLAN_INNER - 1)
                        .map_or(0, |v| u32::from_be_bytes([0, v[0], v[1], v[2]]));
                    let _ = write!(s, " VXLAN vni {vni} [{}]", frame(inner, &[]));
                }
            }
        }
        (wire::IPPROTO_ICMP, _) => {
            let l4 = m.l4_off as usize;
            let kind = match bytes.get(l4).copied() {
                Some(8) => "echo request",
                Some(0) => "echo reply",
                Some(3) => "destination unreachable",
                Some(11) => "time exceeded",
                _ => "other",
            };
            let _ = write!(s, "IPv4 {src} > {dst} ICMP {kind}");
            if let Some(id) = echo_id(bytes, m) {
                let _ = write!(s, " id {id}");
            }
        }
        (p, _) => {
            let _ = write!(s, "IPv4 {src} > {dst} protocol {p}");
        }
    }
    let _ = write!(s, ", ttl {ttl}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ICMP echo request 172.30.0.10 > 10.99.0.1, id 0x1234.
    fn echo_request() -> Vec<u8> {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 172, 30, 0, 10], [2, 0x50, 172, 30, 0, 1])
            .ipv4([172, 30, 0, 10], [10, 99, 0, 1], 64)
            .icmpv4_echo_request(0x1234, 1)
            .write(&mut f, &[])
            .unwrap();
        f
    }

    #[test]
    fn an_echo_request_reads_as_tcpdump_would_print_it() {
        let f = echo_request();
        assert_eq!(
            frame(&f, &[]),
            "02:00:ac:1e:00:0a > 02:50:ac:1e:00:01, IPv4 172.30.0.10 > 10.99.0.1 \
             ICMP echo request id 4660, ttl 64, 42 bytes"
        );
    }

    #[test]
    fn a_rewritten_source_is_named_with_its_echo_id() {
        let before = echo_request();
        let mut after = before.clone();
        after[26..30].copy_from_slice(&[10, 99, 0, 2]);
        after[38..40].copy_from_slice(&61000u16.to_be_bytes());
        let (b, a) = (
            FlowEnds::of(&before).unwrap(),
            FlowEnds::of(&after).unwrap(),
        );
        assert_eq!(
            b.changes_to(&a).unwrap(),
            "source 172.30.0.10 id 4660 -> 10.99.0.2 id 61000"
        );
        assert_eq!(b.changes_to(&b), None);
    }

    #[test]
    fn a_frame_that_does_not_parse_says_why() {
        assert_eq!(frame(&[0; 6], &[]), "6 bytes that do not parse (runt)");
    }
}
