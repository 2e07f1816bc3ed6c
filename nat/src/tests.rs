//! Behaviour tests: frames built with etherparse, translated, then read
//! back and their checksums recomputed in full.

use std::net::Ipv4Addr;

use etherparse::icmpv4::{DestUnreachableHeader, TimeExceededCode};
use etherparse::{Icmpv4Type, NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use pmd::meta;
use pmd::wire::checksum;

use crate::*;

mod networks;

const EXT: [u8; 4] = [10, 99, 0, 2];
const GW: [u8; 4] = [172, 30, 0, 1];
const WEB: [u8; 4] = [172, 30, 0, 10];
const CLI: [u8; 4] = [172, 30, 0, 11];
const OUT: [u8; 4] = [10, 99, 0, 1];
const FAR: [u8; 4] = [203, 0, 113, 7];
const ROUTER: [u8; 4] = [10, 99, 0, 254];
const S: u64 = 1_000_000_000;

fn cfg() -> NatConfig {
    let mut c = NatConfig::new(EXT.into(), "172.30.0.0/24".parse().unwrap(), GW.into());
    c.mappings = vec![
        PortMapping {
            proto: Proto::Tcp,
            host_port: 8080,
            internal_ip: WEB.into(),
            internal_port: 80,
        },
        PortMapping {
            proto: Proto::Udp,
            host_port: 5353,
            internal_ip: WEB.into(),
            internal_port: 53,
        },
        PortMapping {
            proto: Proto::Tcp,
            host_port: 40000,
            internal_ip: WEB.into(),
            internal_port: 22,
        },
    ];
    c
}

fn eth() -> etherparse::PacketBuilderStep<etherparse::Ethernet2Header> {
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
}

#[derive(Clone, Copy)]
enum F {
    Syn,
    SynAck,
    Ack,
    FinAck,
    Rst,
}

fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, f: F) -> Vec<u8> {
    let b = eth().ipv4(src, dst, 64).tcp(sport, dport, 1000, 64240);
    let b = match f {
        F::Syn => b.syn(),
        F::SynAck => b.syn().ack(1),
        F::Ack => b.ack(1),
        F::FinAck => b.fin().ack(1),
        F::Rst => b.rst(),
    };
    let payload = b"hello through the nat";
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let b = eth().ipv4(src, dst, 64).udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, b"datagram").unwrap();
    v
}

fn echo(src: [u8; 4], dst: [u8; 4], id: u16, request: bool) -> Vec<u8> {
    let b = eth().ipv4(src, dst, 64);
    let b = if request {
        b.icmpv4_echo_request(id, 1)
    } else {
        b.icmpv4_echo_reply(id, 1)
    };
    let mut v = Vec::new();
    b.write(&mut v, b"ping").unwrap();
    v
}

/// An ICMP error from `from` to `to` quoting the IPv4 packet of `frame`.
fn icmp_error(from: [u8; 4], to: [u8; 4], ty: Icmpv4Type, frame: &[u8]) -> Vec<u8> {
    let b = eth().ipv4(from, to, 64).icmpv4(ty);
    let mut v = Vec::new();
    b.write(&mut v, &frame[14..]).unwrap();
    v
}

/// (source, source port, destination, destination port) via etherparse;
/// the ICMP echo id stands in both ports.
fn view(f: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let h = PacketHeaders::from_ethernet_slice(f).expect("etherparse reads the frame");
    let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
        panic!("not IPv4")
    };
    let (sp, dp) = match h.transport {
        Some(TransportHeader::Tcp(t)) => (t.source_port, t.destination_port),
        Some(TransportHeader::Udp(u)) => (u.source_port, u.destination_port),
        Some(TransportHeader::Icmpv4(i)) => match i.icmp_type {
            Icmpv4Type::EchoRequest(e) | Icmpv4Type::EchoReply(e) => (e.id, e.id),
            _ => (0, 0),
        },
        _ => (0, 0),
    };
    (ip.source.into(), sp, ip.destination.into(), dp)
}

/// Recomputes every checksum of an IPv4 frame in full (the quoted packet
/// of an ICMP error included) and asserts each verifies.
fn assert_checksums(f: &[u8]) {
    let m = meta::parse(f).unwrap();
    let (l3, l4) = (m.l3_off as usize, m.l4_off as usize);
    let end = m.frame_len as usize;
    assert_eq!(checksum::checksum(&f[l3..l4]), 0, "IPv4 header checksum");
    if m.later_fragment || f[l3 + 6] & 0x20 != 0 {
        // A fragment: the L4 checksum covers the whole datagram.
        return;
    }
    let len = (end - l4) as u16;
    match m.ip_proto {
        6 => {
            let acc = checksum::pseudo_header_v4(m.ip_src, m.ip_dst, 6, len);
            assert_eq!(
                checksum::fold(checksum::sum(acc, &f[l4..end])),
                0xffff,
                "TCP"
            );
        }
        17 if f[l4 + 6..l4 + 8] != [0, 0] => {
            let acc = checksum::pseudo_header_v4(m.ip_src, m.ip_dst, 17, len);
            assert_eq!(
                checksum::fold(checksum::sum(acc, &f[l4..end])),
                0xffff,
                "UDP"
            );
        }
        1 => {
            assert_eq!(checksum::checksum(&f[l4..end]), 0, "ICMP");
            if matches!(f[l4], 3 | 11) {
                let q = l4 + 8;
                let ihl = (f[q] & 15) as usize * 4;
                assert_eq!(checksum::checksum(&f[q..q + ihl]), 0, "quoted IPv4 header");
                let ql4 = q + ihl;
                let qlen = u16::from_be_bytes([f[q + 2], f[q + 3]]) - ihl as u16;
                if (end - ql4) as u16 == qlen {
                    // The whole quoted datagram is there: its L4 verifies.
                    let src = [f[q + 12], f[q + 13], f[q + 14], f[q + 15]];
                    let dst = [f[q + 16], f[q + 17], f[q + 18], f[q + 19]];
                    let acc = checksum::pseudo_header_v4(src, dst, f[q + 9], qlen);
                    assert_eq!(
                        checksum::fold(checksum::sum(acc, &f[ql4..end])),
                        0xffff,
                        "quoted L4"
                    );
                }
            }
        }
        _ => {}
    }
}

fn out(nat: &mut Nat, f: &mut [u8], now: u64) -> Verdict {
    let m = meta::parse(f).unwrap();
    let v = nat.outbound(f, &m, 0, L4Csum::Complete, now);
    if !matches!(v, Verdict::Drop(_)) {
        assert_checksums(f);
    }
    v
}

fn inb(nat: &mut Nat, f: &mut [u8], now: u64) -> Verdict {
    let m = meta::parse(f).unwrap();
    let v = nat.inbound(f, &m, L4Csum::Complete, now);
    if !matches!(v, Verdict::Drop(_)) {
        assert_checksums(f);
    }
    v
}

fn to(a: [u8; 4]) -> Verdict {
    Verdict::ToInternal {
        dst: a.into(),
        net: 0,
    }
}

fn ip(a: [u8; 4]) -> Ipv4Addr {
    a.into()
}

/// Opens an outbound TCP connection WEB:sport -> FAR:443 through the
/// handshake; returns the external port.
fn established(nat: &mut Nat, sport: u16, now: u64) -> u16 {
    let mut syn = tcp(WEB, sport, FAR, 443, F::Syn);
    assert_eq!(out(nat, &mut syn, now), Verdict::ToUplink);
    let ext_port = view(&syn).1;
    let mut synack = tcp(FAR, 443, EXT, ext_port, F::SynAck);
    assert_eq!(inb(nat, &mut synack, now), to(WEB));
    let mut ack = tcp(WEB, sport, FAR, 443, F::Ack);
    assert_eq!(out(nat, &mut ack, now), Verdict::ToUplink);
    ext_port
}

#[test]
fn an_outbound_tcp_syn_gets_the_external_address_and_a_port_from_the_range() {
    let mut nat = Nat::new(cfg());
    let mut f = tcp(WEB, 51000, FAR, 443, F::Syn);
    assert_eq!(out(&mut nat, &mut f, 0), Verdict::ToUplink);
    let (src, sport, dst, dport) = view(&f);
    assert_eq!((src, dst, dport), (ip(EXT), ip(FAR), 443));
    assert!((32768..=60999).contains(&sport), "port {sport}");
    assert_eq!(sport, 51000, "a free internal port in the range is kept");
    assert_eq!(nat.counters().translated_out.get(), 1);
    assert_eq!(nat.counters().occupancy(), 1);
}

#[test]
fn a_port_outside_the_range_is_replaced_by_one_inside() {
    let mut nat = Nat::new(cfg());
    let mut f = tcp(WEB, 1234, FAR, 443, F::Syn);
    out(&mut nat, &mut f, 0);
    assert!((32768..=60999).contains(&view(&f).1));
}

#[test]
fn the_reply_of_an_snat_flow_goes_back_to_the_container_translated() {
    let mut nat = Nat::new(cfg());
    let p = established(&mut nat, 1234, 0);
    let mut data = tcp(FAR, 443, EXT, p, F::Ack);
    assert_eq!(inb(&mut nat, &mut data, S), to(WEB));
    assert_eq!(view(&data), (ip(FAR), 443, ip(WEB), 1234));
}

#[test]
fn the_same_internal_port_keeps_its_external_port_for_a_second_destination() {
    let mut nat = Nat::new(cfg());
    let mut a = udp(WEB, 1234, FAR, 53);
    let mut b = udp(WEB, 1234, OUT, 9999);
    out(&mut nat, &mut a, 0);
    out(&mut nat, &mut b, 0);
    assert_eq!(view(&a).1, view(&b).1);
    assert_eq!(nat.len(), 2);
    assert_eq!(nat.snat_mappings(), 1);
}

#[test]
fn two_containers_with_the_same_port_get_different_external_ports() {
    let mut nat = Nat::new(cfg());
    let mut a = udp(WEB, 40001, FAR, 53);
    let mut b = udp(CLI, 40001, FAR, 53);
    out(&mut nat, &mut a, 0);
    out(&mut nat, &mut b, 0);
    assert_eq!(view(&a).1, 40001);
    assert_ne!(view(&b).1, 40001, "RFC 4787 REQ-4: no port overloading");
}

#[test]
fn mapped_host_ports_are_never_used_for_snat() {
    let mut nat = Nat::new(cfg());
    let mut f = tcp(CLI, 40000, FAR, 443, F::Syn);
    out(&mut nat, &mut f, 0);
    assert_ne!(view(&f).1, 40000, "40000 is a mapped host port");
}

#[test]
fn exhausted_ports_drop_new_endpoints_but_not_new_flows_of_mapped_ones() {
    let mut c = cfg();
    c.port_range = (50000, 50001);
    let mut nat = Nat::new(c);
    for sport in [1, 2] {
        let mut f = udp(WEB, sport, FAR, 53);
        assert_eq!(out(&mut nat, &mut f, 0), Verdict::ToUplink);
    }
    let mut third = udp(WEB, 3, FAR, 53);
    assert_eq!(
        out(&mut nat, &mut third, 0),
        Verdict::Drop(NatDrop::PortsExhausted)
    );
    let mut again = udp(WEB, 1, OUT, 53);
    assert_eq!(out(&mut nat, &mut again, 0), Verdict::ToUplink);
    assert_eq!(nat.counters().drops_of(NatDrop::PortsExhausted), 1);
}

#[test]
fn a_full_table_refuses_new_flows_but_keeps_established_ones() {
    let mut c = cfg();
    c.max_entries = 2;
    let mut nat = Nat::new(c);
    let p1 = established(&mut nat, 1001, 0);
    established(&mut nat, 1002, 0);
    let mut third = tcp(WEB, 1003, FAR, 443, F::Syn);
    assert_eq!(
        out(&mut nat, &mut third, S),
        Verdict::Drop(NatDrop::TableFull)
    );
    let mut inbound = tcp(OUT, 5555, EXT, 8080, F::Syn);
    assert_eq!(
        inb(&mut nat, &mut inbound, S),
        Verdict::Drop(NatDrop::TableFull)
    );
    assert_eq!(nat.counters().drops_of(NatDrop::TableFull), 2);
    // The established flows still translate, both ways.
    let mut data = tcp(WEB, 1001, FAR, 443, F::Ack);
    assert_eq!(out(&mut nat, &mut data, 2 * S), Verdict::ToUplink);
    let mut reply = tcp(FAR, 443, EXT, p1, F::Ack);
    assert_eq!(inb(&mut nat, &mut reply, 2 * S), to(WEB));
    assert_eq!(nat.len(), 2);
}

#[test]
fn a_full_table_reclaims_an_expired_flow_for_a_new_one() {
    let mut c = cfg();
    c.max_entries = 1;
    let mut nat = Nat::new(c);
    let mut a = udp(WEB, 1, FAR, 53);
    out(&mut nat, &mut a, 0);
    let mut b = udp(WEB, 2, FAR, 53);
    assert_eq!(
        out(&mut nat, &mut b, 10 * S),
        Verdict::Drop(NatDrop::TableFull)
    );
    assert_eq!(out(&mut nat, &mut b, 31 * S), Verdict::ToUplink);
    assert_eq!(nat.len(), 1);
}

#[test]
fn an_icmp_frag_needed_for_a_tracked_flow_is_translated_inner_header_included() {
    let mut nat = Nat::new(cfg());
    let p = established(&mut nat, 1234, 0);
    // What left the uplink, as a router quotes it back.
    let mut sent = tcp(WEB, 1234, FAR, 443, F::Ack);
    out(&mut nat, &mut sent, S);
    assert_eq!(
        view(&sent),
        (ip(EXT), p, ip(FAR), 443),
        "fixture: the translated segment"
    );
    let ty = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: 1400,
    });
    let mut err = icmp_error(ROUTER, EXT, ty, &sent);
    assert_checksums(&err);
    assert_eq!(inb(&mut nat, &mut err, S), to(WEB));
    let (src, _, dst, _) = view(&err);
    assert_eq!(
        (src, dst),
        (ip(ROUTER), ip(WEB)),
        "outer: router to the container"
    );
    let q = &err[14 + 20 + 8..];
    assert_eq!(&q[12..16], &WEB, "quoted source is the container again");
    assert_eq!(&q[16..20], &FAR);
    assert_eq!(
        u16::from_be_bytes([q[20], q[21]]),
        1234,
        "quoted source port"
    );
    assert_eq!(
        u16::from_be_bytes([err[14 + 20 + 6], err[14 + 20 + 7]]),
        1400,
        "MTU kept"
    );
    assert_eq!(nat.counters().icmp_errors.get(), 1);
}

#[test]
fn a_port_unreachable_from_the_destination_itself_reaches_the_container() {
    let mut nat = Nat::new(cfg());
    let mut sent = udp(WEB, 5000, FAR, 9);
    out(&mut nat, &mut sent, 0);
    let ty = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
    let mut err = icmp_error(FAR, EXT, ty, &sent);
    assert_eq!(inb(&mut nat, &mut err, 0), to(WEB));
    assert_eq!(view(&err).0, ip(FAR));
    let ty = Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit);
    let mut ttl = icmp_error(ROUTER, EXT, ty, &sent);
    assert_eq!(inb(&mut nat, &mut ttl, 0), to(WEB));
}

#[test]
fn an_icmp_error_from_a_container_about_a_mapped_flow_leaves_from_the_external_address() {
    let mut nat = Nat::new(cfg());
    let mut q = udp(OUT, 7777, EXT, 5353);
    assert_eq!(inb(&mut nat, &mut q, 0), to(WEB));
    let ty = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
    let mut err = icmp_error(WEB, OUT, ty, &q);
    assert_eq!(out(&mut nat, &mut err, 0), Verdict::ToUplink);
    assert_eq!(view(&err).0, ip(EXT));
    let qh = &err[14 + 20 + 8..];
    assert_eq!(
        &qh[16..20],
        &EXT,
        "the quote shows the mapped address again"
    );
    assert_eq!(u16::from_be_bytes([qh[22], qh[23]]), 5353);
}

#[test]
fn an_icmp_error_for_an_unknown_flow_is_dropped() {
    let mut nat = Nat::new(cfg());
    let sent = udp(EXT, 45000, FAR, 53);
    let ty = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
    let mut err = icmp_error(FAR, EXT, ty, &sent);
    assert_eq!(
        inb(&mut nat, &mut err, 0),
        Verdict::Drop(NatDrop::NoMapping)
    );
}

#[test]
fn an_inbound_syn_to_a_mapped_port_reaches_the_container_with_the_clients_address() {
    let mut nat = Nat::new(cfg());
    let mut syn = tcp(OUT, 5555, EXT, 8080, F::Syn);
    assert_eq!(inb(&mut nat, &mut syn, 0), to(WEB));
    assert_eq!(view(&syn), (ip(OUT), 5555, ip(WEB), 80));
    let mut synack = tcp(WEB, 80, OUT, 5555, F::SynAck);
    assert_eq!(out(&mut nat, &mut synack, 0), Verdict::ToUplink);
    assert_eq!(view(&synack), (ip(EXT), 8080, ip(OUT), 5555));
}

#[test]
fn a_udp_mapping_works_both_ways() {
    let mut nat = Nat::new(cfg());
    let mut q = udp(OUT, 7777, EXT, 5353);
    assert_eq!(inb(&mut nat, &mut q, 0), to(WEB));
    assert_eq!(view(&q), (ip(OUT), 7777, ip(WEB), 53));
    let mut a = udp(WEB, 53, OUT, 7777);
    assert_eq!(out(&mut nat, &mut a, 0), Verdict::ToUplink);
    assert_eq!(view(&a), (ip(EXT), 5353, ip(OUT), 7777));
}

#[test]
fn an_inbound_packet_to_an_unmapped_port_is_dropped_as_no_mapping() {
    let mut nat = Nat::new(cfg());
    let mut f = tcp(OUT, 5555, EXT, 9999, F::Syn);
    assert_eq!(inb(&mut nat, &mut f, 0), Verdict::Drop(NatDrop::NoMapping));
    let mut p = echo(OUT, EXT, 7, true);
    assert_eq!(inb(&mut nat, &mut p, 0), Verdict::Drop(NatDrop::NoMapping));
    assert_eq!(nat.counters().drops_of(NatDrop::NoMapping), 2);
}

#[test]
fn an_snat_port_accepts_only_the_destination_it_was_opened_for() {
    let mut nat = Nat::new(cfg());
    let p = established(&mut nat, 1234, 0);
    let mut other = tcp(OUT, 443, EXT, p, F::Syn);
    assert_eq!(
        inb(&mut nat, &mut other, 0),
        Verdict::Drop(NatDrop::NoMapping)
    );
}

#[test]
fn a_tcp_segment_that_is_not_a_syn_does_not_open_a_flow() {
    let mut nat = Nat::new(cfg());
    let mut ack = tcp(WEB, 1234, FAR, 443, F::Ack);
    assert_eq!(
        out(&mut nat, &mut ack, 0),
        Verdict::Drop(NatDrop::InvalidState)
    );
    let mut inb_ack = tcp(OUT, 5555, EXT, 8080, F::Ack);
    assert_eq!(
        inb(&mut nat, &mut inb_ack, 0),
        Verdict::Drop(NatDrop::InvalidState)
    );
    assert!(nat.is_empty());
}

#[test]
fn hairpin_to_another_container_keeps_the_clients_address() {
    let mut nat = Nat::new(cfg());
    let mut syn = tcp(CLI, 44444, EXT, 8080, F::Syn);
    assert_eq!(out(&mut nat, &mut syn, 0), to(WEB));
    assert_eq!(view(&syn), (ip(CLI), 44444, ip(WEB), 80));
    assert!(nat.has_hairpin_flows());
    // The reply is addressed to the client: the switch offers it here.
    let mut synack = tcp(WEB, 80, CLI, 44444, F::SynAck);
    let m = meta::parse(&synack).unwrap();
    let v = nat.hairpin_reply(&mut synack, &m, 0, L4Csum::Complete, 0);
    assert_eq!(v, Some(to(CLI)));
    assert_checksums(&synack);
    assert_eq!(view(&synack), (ip(EXT), 8080, ip(CLI), 44444));
    // Plain traffic between the two is not NAT's.
    let mut direct = tcp(WEB, 80, CLI, 1111, F::Ack);
    let before = direct.clone();
    let m = meta::parse(&direct).unwrap();
    assert_eq!(
        nat.hairpin_reply(&mut direct, &m, 0, L4Csum::Complete, 0),
        None
    );
    assert_eq!(direct, before);
    assert_eq!(nat.counters().hairpin.get(), 2);
}

#[test]
fn hairpin_to_its_own_mapped_port_sees_the_gateway() {
    let mut nat = Nat::new(cfg());
    let mut syn = tcp(WEB, 44444, EXT, 8080, F::Syn);
    assert_eq!(out(&mut nat, &mut syn, 0), to(WEB));
    // From the gateway, with an SNAT port of the range (as a client from
    // another network gets), not the container's own port.
    let (src, sport, dst, dport) = view(&syn);
    assert_eq!((src, dst, dport), (ip(GW), ip(WEB), 80));
    let range = cfg().port_range;
    assert!((range.0..=range.1).contains(&sport), "{sport} in {range:?}");
    assert_eq!(nat.counters().hairpin.get(), 1);
    // The container answers the gateway address: an outbound frame.
    let mut synack = tcp(WEB, 80, GW, sport, F::SynAck);
    assert_eq!(out(&mut nat, &mut synack, 0), to(WEB));
    assert_eq!(view(&synack), (ip(EXT), 8080, ip(WEB), 44444));
    // Its answers come to the gateway, so the switch need not offer its
    // frames to `hairpin_reply`.
    assert!(!nat.has_hairpin_flows());
}

#[test]
fn a_container_to_an_unmapped_external_port_is_dropped() {
    let mut nat = Nat::new(cfg());
    let mut f = tcp(CLI, 44444, EXT, 9999, F::Syn);
    assert_eq!(out(&mut nat, &mut f, 0), Verdict::Drop(NatDrop::NoMapping));
}

#[test]
fn a_source_outside_the_network_is_dropped_both_ways() {
    let mut nat = Nat::new(cfg());
    let mut f = udp(FAR, 1, OUT, 2);
    assert_eq!(out(&mut nat, &mut f, 0), Verdict::Drop(NatDrop::BadSource));
    let mut g = udp(CLI, 1, EXT, 5353);
    assert_eq!(inb(&mut nat, &mut g, 0), Verdict::Drop(NatDrop::BadSource));
}

#[test]
fn multicast_broadcast_and_loopback_are_never_translated() {
    let mut nat = Nat::new(cfg());
    for dst in [
        [224, 0, 0, 251],
        [255, 255, 255, 255],
        [127, 0, 0, 1],
        [0, 1, 2, 3],
    ] {
        let mut f = udp(WEB, 5353, dst, 5353);
        assert_eq!(
            out(&mut nat, &mut f, 0),
            Verdict::Drop(NatDrop::BadDestination)
        );
        let mut g = udp(dst, 5353, EXT, 5353);
        assert_eq!(inb(&mut nat, &mut g, 0), Verdict::Drop(NatDrop::BadSource));
    }
    assert!(nat.is_empty());
}

#[test]
fn a_udp_flow_expires_after_its_timeout_and_its_port_is_reused() {
    let mut c = cfg();
    c.port_range = (50000, 50000);
    let mut nat = Nat::new(c);
    let mut a = udp(WEB, 1, FAR, 53);
    out(&mut nat, &mut a, 0);
    assert_eq!(view(&a).1, 50000);
    let mut b = udp(CLI, 1, FAR, 53);
    assert_eq!(
        out(&mut nat, &mut b, 29 * S),
        Verdict::Drop(NatDrop::PortsExhausted)
    );
    // A reply after expiry finds nothing.
    let mut late = udp(FAR, 53, EXT, 50000);
    assert_eq!(
        inb(&mut nat, &mut late, 30 * S),
        Verdict::Drop(NatDrop::NoMapping)
    );
    assert_eq!(nat.len(), 0, "lazy expiry removed it");
    assert_eq!(out(&mut nat, &mut b, 30 * S), Verdict::ToUplink);
    assert_eq!(view(&b).1, 50000, "the port is free again");
}

#[test]
fn a_replied_udp_flow_lives_for_the_stream_timeout() {
    let mut nat = Nat::new(cfg());
    let mut a = udp(WEB, 1, FAR, 53);
    out(&mut nat, &mut a, 0);
    let p = view(&a).1;
    let mut r = udp(FAR, 53, EXT, p);
    inb(&mut nat, &mut r, S);
    let mut r2 = udp(FAR, 53, EXT, p);
    assert_eq!(inb(&mut nat, &mut r2, 100 * S), to(WEB));
    let mut r3 = udp(FAR, 53, EXT, p);
    assert_eq!(
        inb(&mut nat, &mut r3, 221 * S),
        Verdict::Drop(NatDrop::NoMapping)
    );
}

#[test]
fn tcp_timeouts_follow_the_state() {
    let mut c = cfg();
    c.timeouts.tcp_syn_sent = 5;
    let mut nat = Nat::new(c);
    // An unanswered SYN goes after the syn_sent timeout.
    let mut syn = tcp(WEB, 1, FAR, 443, F::Syn);
    out(&mut nat, &mut syn, 0);
    assert_eq!(nat.sweep(5 * S, 100), 1);
    // An established flow outlives it by far.
    let p = established(&mut nat, 2, 10 * S);
    let mut data = tcp(FAR, 443, EXT, p, F::Ack);
    assert_eq!(inb(&mut nat, &mut data, 3600 * S), to(WEB));
    // A reset leaves it 10 s.
    let mut rst = tcp(WEB, 2, FAR, 443, F::Rst);
    out(&mut nat, &mut rst, 3600 * S);
    assert_eq!(nat.sweep(3609 * S, 100), 0);
    assert_eq!(nat.sweep(3610 * S, 100), 1);
}

#[test]
fn a_closed_connection_waits_in_time_wait_then_goes() {
    let mut nat = Nat::new(cfg());
    let p = established(&mut nat, 7, 0);
    let mut fin = tcp(WEB, 7, FAR, 443, F::FinAck);
    out(&mut nat, &mut fin, S);
    let mut fin2 = tcp(FAR, 443, EXT, p, F::FinAck);
    inb(&mut nat, &mut fin2, S);
    let mut last = tcp(WEB, 7, FAR, 443, F::Ack);
    out(&mut nat, &mut last, S);
    assert_eq!(nat.sweep(120 * S, 100), 0);
    assert_eq!(nat.sweep(121 * S, 100), 1, "time_wait is 120 s");
    assert_eq!(nat.snat_mappings(), 0, "and the port went with it");
}

#[test]
fn a_zero_udp_checksum_stays_zero() {
    let mut nat = Nat::new(cfg());
    let mut f = udp(WEB, 1234, FAR, 53);
    f[14 + 20 + 6] = 0;
    f[14 + 20 + 7] = 0;
    assert_eq!(out(&mut nat, &mut f, 0), Verdict::ToUplink);
    assert_eq!(view(&f).0, ip(EXT));
    assert_eq!(&f[40..42], &[0, 0]);
}

#[test]
fn an_icmp_echo_gets_an_external_id_and_its_reply_comes_back() {
    let mut nat = Nat::new(cfg());
    let mut a = echo(WEB, FAR, 7, true);
    let mut b = echo(CLI, FAR, 7, true);
    assert_eq!(out(&mut nat, &mut a, 0), Verdict::ToUplink);
    assert_eq!(out(&mut nat, &mut b, 0), Verdict::ToUplink);
    let (ida, idb) = (view(&a).1, view(&b).1);
    assert_ne!(ida, idb, "two containers, one id: two external ids");
    assert_eq!(view(&a).0, ip(EXT));
    let mut reply = echo(FAR, EXT, idb, false);
    assert_eq!(inb(&mut nat, &mut reply, S), to(CLI));
    assert_eq!(view(&reply), (ip(FAR), 7, ip(CLI), 7));
}

#[test]
fn a_pseudo_header_seed_is_updated_for_addresses_only() {
    let mut nat = Nat::new(cfg());
    let mut f = tcp(WEB, 1234, FAR, 443, F::Syn);
    // Turn the frame into what a TAP with offloads hands over: the
    // checksum field holds the pseudo-header sum only.
    let len = (f.len() - 34) as u16;
    let seed = checksum::fold(checksum::pseudo_header_v4(WEB, FAR, 6, len));
    f[50..52].copy_from_slice(&seed.to_be_bytes());
    let m = meta::parse(&f).unwrap();
    assert_eq!(
        nat.outbound(&mut f, &m, 0, L4Csum::PseudoSeed, 0),
        Verdict::ToUplink
    );
    let new_seed = checksum::fold(checksum::pseudo_header_v4(EXT, FAR, 6, len));
    assert_eq!(u16::from_be_bytes([f[50], f[51]]), new_seed);
    assert!(nat.counters().translated_out.get() == 1);
    // Finishing it as the device would gives a valid segment.
    f[50..52].copy_from_slice(&[0, 0]);
    let c = !checksum::fold(checksum::sum(new_seed as u32, &f[34..]));
    f[50..52].copy_from_slice(&c.to_be_bytes());
    assert_checksums(&f);
}

/// A UDP datagram cut in two fragments: (first, later).
fn fragmented_udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> (Vec<u8>, Vec<u8>) {
    let whole = {
        let b = eth().ipv4(src, dst, 64).udp(sport, dport);
        let mut v = Vec::new();
        b.write(&mut v, &[0xab; 40]).unwrap();
        v
    };
    let mut first = whole[..14 + 20 + 24].to_vec();
    let mut later = whole[..14 + 20].to_vec();
    later.extend_from_slice(&whole[14 + 20 + 24..]);
    for (f, frag, len) in [(&mut first, 0x2000u16, 44u16), (&mut later, 3, 20 + 24)] {
        f[18..20].copy_from_slice(&0x4242u16.to_be_bytes());
        f[20..22].copy_from_slice(&frag.to_be_bytes());
        f[16..18].copy_from_slice(&len.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    (first, later)
}

#[test]
fn later_fragments_follow_their_first_fragment() {
    let mut nat = Nat::new(cfg());
    let (mut first, mut later) = fragmented_udp(WEB, 1234, FAR, 53);
    assert!(
        meta::parse(&later).unwrap().later_fragment,
        "fixture: a later fragment"
    );
    assert_eq!(out(&mut nat, &mut first, 0), Verdict::ToUplink);
    assert_eq!(out(&mut nat, &mut later, 0), Verdict::ToUplink);
    assert_eq!(&later[26..30], &EXT);
    assert_eq!(nat.counters().fragments.get(), 1);
    // Reassembled, the datagram verifies with the translated checksum.
    let mut whole = first.clone();
    whole.extend_from_slice(&later[34..]);
    whole[16..18].copy_from_slice(&(20u16 + 48).to_be_bytes());
    whole[20..22].copy_from_slice(&[0, 0]);
    whole[24..26].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&whole[14..34]);
    whole[24..26].copy_from_slice(&c.to_be_bytes());
    assert_checksums(&whole);
}

#[test]
fn a_later_fragment_without_its_first_is_dropped() {
    let mut nat = Nat::new(cfg());
    let (_, mut later) = fragmented_udp(WEB, 1234, FAR, 53);
    assert_eq!(
        out(&mut nat, &mut later, 0),
        Verdict::Drop(NatDrop::FragmentUnknown)
    );
    assert_eq!(nat.counters().drops_of(NatDrop::FragmentUnknown), 1);
}

#[test]
fn an_unsupported_protocol_is_dropped_and_counted() {
    let mut nat = Nat::new(cfg());
    let mut f = udp(WEB, 1, FAR, 2);
    f[23] = 47; // GRE
    f[24..26].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        out(&mut nat, &mut f, 0),
        Verdict::Drop(NatDrop::Unsupported)
    );
}

#[test]
fn the_sweep_removes_expired_flows_and_frees_their_ports() {
    let mut nat = Nat::new(cfg());
    for i in 0..100u16 {
        let mut f = udp(WEB, 1000 + i, FAR, 53);
        out(&mut nat, &mut f, 0);
    }
    assert_eq!(nat.len(), 100);
    // Budgeted: one call visits at most `budget` slots.
    assert_eq!(nat.sweep(31 * S, 10), 10);
    assert_eq!(nat.sweep(31 * S, 1000), 90);
    assert_eq!((nat.len(), nat.snat_mappings()), (0, 0));
    assert_eq!(nat.counters().occupancy(), 0);
}

#[test]
fn a_huge_configured_timeout_saturates_instead_of_overflowing() {
    let mut c = cfg();
    c.timeouts.udp = u32::MAX;
    let mut nat = Nat::new(c);
    let mut f = udp(WEB, 1, FAR, 53);
    assert_eq!(
        out(&mut nat, &mut f, u32::MAX as u64 * S),
        Verdict::ToUplink
    );
}

#[test]
fn a_reload_drops_the_flows_of_a_removed_mapping_and_keeps_the_rest() {
    let mut nat = Nat::new(cfg());
    let p = established(&mut nat, 1234, 0);
    let mut web = tcp(OUT, 5555, EXT, 8080, F::Syn);
    assert_eq!(inb(&mut nat, &mut web, 0), to(WEB));
    let mut dns = udp(OUT, 7777, EXT, 5353);
    assert_eq!(inb(&mut nat, &mut dns, 0), to(WEB));
    assert_eq!(nat.len(), 3, "fixture: one SNAT and two DNAT flows");
    let mut c = cfg();
    c.mappings.retain(|m| m.host_port != 8080);
    assert!(nat.reconfigure(c));
    assert_eq!(nat.len(), 2);
    let mut again = tcp(OUT, 5555, EXT, 8080, F::Ack);
    assert_eq!(
        inb(&mut nat, &mut again, S),
        Verdict::Drop(NatDrop::NoMapping)
    );
    let mut dns2 = udp(OUT, 7777, EXT, 5353);
    assert_eq!(inb(&mut nat, &mut dns2, S), to(WEB));
    let mut reply = tcp(FAR, 443, EXT, p, F::Ack);
    assert_eq!(inb(&mut nat, &mut reply, S), to(WEB));
}

#[test]
fn a_reload_with_a_new_external_address_starts_an_empty_table() {
    let mut nat = Nat::new(cfg());
    established(&mut nat, 1234, 0);
    let mut c = cfg();
    c.external_ip = Ipv4Addr::new(10, 99, 0, 3);
    assert!(!nat.reconfigure(c));
    assert!(nat.is_empty());
    assert_eq!(nat.counters().occupancy(), 0);
    assert_eq!(nat.counters().flows_created.get(), 1, "counters survive");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn frame_of(
        kind: u8,
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut v = Vec::new();
        let b = eth().ipv4(src, dst, 64);
        match kind {
            0 => {
                let b = b.tcp(sport, dport, 7, 1000).syn();
                b.write(&mut v, payload).unwrap();
            }
            1 => {
                let b = b.udp(sport, dport);
                b.write(&mut v, payload).unwrap();
            }
            _ => {
                let b = b.icmpv4_echo_request(sport, dport);
                b.write(&mut v, payload).unwrap();
            }
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// RFC 1624: the incremental update equals a full recompute, for
        /// every header the rewrite touches.
        #[test]
        fn incremental_checksums_equal_a_full_recompute(
            kind in 0u8..3,
            host in 2u8..250,
            sport in any::<u16>(),
            far0 in 1u8..224,
            far_rest in any::<[u8; 3]>(),
            dport in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            ttl in any::<u8>(),
            zero_udp in any::<bool>(),
        ) {
            let far = [far0, far_rest[0], far_rest[1], far_rest[2]];
            prop_assume!(far0 != 172 && far0 != 127 && far != EXT);
            let mut nat = Nat::new(cfg());
            let mut f = frame_of(kind, [172, 30, 0, host], sport, far, dport, &payload);
            f[22] = ttl;
            f[24..26].copy_from_slice(&[0, 0]);
            let c = checksum::checksum(&f[14..34]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            if kind == 1 && zero_udp {
                f[40..42].copy_from_slice(&[0, 0]);
            }
            let m = meta::parse(&f).unwrap();
            let v = nat.outbound(&mut f, &m, 0, L4Csum::Complete, 0);
            prop_assert_eq!(v, Verdict::ToUplink);
            // Recompute each checksum in full and compare with the stored one.
            let ip_c = u16::from_be_bytes([f[24], f[25]]);
            let mut h = f[14..34].to_vec();
            h[10..12].copy_from_slice(&[0, 0]);
            prop_assert_eq!(ip_c, checksum::checksum(&h));
            let (src, dst) = ([f[26], f[27], f[28], f[29]], [f[30], f[31], f[32], f[33]]);
            let mut l4 = f[34..].to_vec();
            let len = l4.len() as u16;
            match kind {
                0 | 1 => {
                    let at = if kind == 0 { 16 } else { 6 };
                    let stored = u16::from_be_bytes([l4[at], l4[at + 1]]);
                    if kind == 1 && zero_udp {
                        prop_assert_eq!(stored, 0);
                    } else {
                        l4[at..at + 2].copy_from_slice(&[0, 0]);
                        let proto = if kind == 0 { 6 } else { 17 };
                        let acc = checksum::pseudo_header_v4(src, dst, proto, len);
                        prop_assert_eq!(stored, checksum::finish_l4(checksum::sum(acc, &l4)));
                    }
                }
                _ => {
                    let stored = u16::from_be_bytes([l4[2], l4[3]]);
                    l4[2..4].copy_from_slice(&[0, 0]);
                    prop_assert_eq!(stored, checksum::checksum(&l4));
                }
            }
        }

        /// Random bytes, and valid frames truncated or with a flipped byte,
        /// never panic in any entry point; a drop always has a reason.
        #[test]
        fn hostile_frames_never_panic(
            kind in 0u8..4,
            cut in any::<usize>(),
            flip_at in any::<usize>(),
            flip in any::<u8>(),
            noise in proptest::collection::vec(any::<u8>(), 0..120),
            stale_meta in any::<bool>(),
            from in 0usize..3,
        ) {
            let mut nat = Nat::new(cfg());
            let mut f = match kind {
                0 => tcp(OUT, 5555, EXT, 8080, F::Syn),
                1 => udp(WEB, 1, FAR, 53),
                2 => {
                    let mut sent = udp(WEB, 5000, FAR, 9);
                    let m = meta::parse(&sent).unwrap();
                    nat.outbound(&mut sent, &m, 0, L4Csum::Complete, 0);
                    let ty = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
                    icmp_error(FAR, EXT, ty, &sent)
                }
                _ => {
                    let mut v = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
                    v.extend_from_slice(&noise);
                    v
                }
            };
            let good_meta = meta::parse(&f).ok();
            if !f.is_empty() {
                let i = flip_at % f.len();
                f[i] ^= flip;
            }
            let keep = cut % (f.len() + 1);
            f.truncate(keep);
            // The switch parses first; a stale record (from before the
            // damage) must not make NAT read out of bounds either.
            let m = if stale_meta { good_meta } else { meta::parse(&f).ok() };
            if let Some(m) = m {
                for entry in 0..3 {
                    let mut g = f.clone();
                    let v = match entry {
                        0 => nat.outbound(&mut g, &m, from, L4Csum::Complete, 0),
                        1 => nat.inbound(&mut g, &m, L4Csum::PseudoSeed, 0),
                        _ => nat.hairpin_reply(&mut g, &m, from, L4Csum::Complete, 0).unwrap_or(Verdict::ToUplink),
                    };
                    if let Verdict::Drop(r) = v {
                        prop_assert!(NatDrop::ALL.contains(&r));
                    }
                }
            }
        }
    }
}

#[test]
fn the_connection_listing_shows_both_directions_state_and_network_and_stops_at_the_limit() {
    let mut nat = Nat::new(cfg());
    let ext_port = established(&mut nat, 51000, 0);
    let mut q = udp(OUT, 7777, EXT, 5353);
    assert_eq!(inb(&mut nat, &mut q, 0), to(WEB));
    let all: Vec<Connection> = nat.connections(S).collect();
    assert_eq!(all.len(), 2);
    let tcp = all.iter().find(|c| c.proto_name == "tcp").unwrap();
    assert_eq!(tcp.state, "established");
    assert_eq!((tcp.orig.src, tcp.orig.sport), (ip(WEB), 51000));
    assert_eq!((tcp.orig.dst, tcp.orig.dport), (ip(FAR), 443));
    assert_eq!((tcp.reply.dst, tcp.reply.dport), (ip(EXT), ext_port));
    assert_eq!((tcp.network, tcp.snat, tcp.dnat), (Some(0), true, false));
    let dnat = all.iter().find(|c| c.proto_name == "udp").unwrap();
    assert_eq!((dnat.state, dnat.dnat), ("unreplied", true));
    assert_eq!(
        dnat.network,
        Some(0),
        "an inbound flow belongs to its endpoint's network"
    );
    assert_eq!(nat.connections(S).take(1).count(), 1);
    // Expired connections are not listed, swept or not.
    assert_eq!(nat.connections(4_000_000 * S).count(), 0);
}
