//! Several NAT networks behind one uplink: one address, port range,
//! table and mapping table, and isolation between the networks.

use super::*;

/// The second network, "back", with DB mapped on tcp 8081.
const BACK_GW: [u8; 4] = [172, 31, 0, 1];
const DB: [u8; 4] = [172, 31, 0, 10];
const FRONT: usize = 0;
const BACK: usize = 1;

fn back() -> InternalNet {
    InternalNet {
        subnet: "172.31.0.0/24".parse().unwrap(),
        gateway: BACK_GW.into(),
    }
}

/// `cfg()` (front: WEB and CLI, WEB mapped on 8080, 5353, 40000) plus
/// back (DB mapped on 8081).
fn two() -> NatConfig {
    let mut c = cfg();
    c.networks.push(back());
    c.mappings.push(PortMapping {
        proto: Proto::Tcp,
        host_port: 8081,
        internal_ip: DB.into(),
        internal_port: 80,
    });
    c
}

fn out_from(nat: &mut Nat, from: usize, f: &mut [u8], now: u64) -> Verdict {
    let m = meta::parse(f).unwrap();
    let v = nat.outbound(f, &m, from, L4Csum::Complete, now);
    if !matches!(v, Verdict::Drop(_)) {
        assert_checksums(f);
    }
    v
}

fn into(a: [u8; 4], net: usize) -> Verdict {
    Verdict::ToInternal { dst: a.into(), net }
}

#[test]
fn two_networks_share_the_external_address_and_its_port_range() {
    let mut nat = Nat::new(two());
    let mut a = udp(WEB, 40001, FAR, 53);
    let mut b = udp(DB, 40001, FAR, 53);
    assert_eq!(out_from(&mut nat, FRONT, &mut a, 0), Verdict::ToUplink);
    assert_eq!(out_from(&mut nat, BACK, &mut b, 0), Verdict::ToUplink);
    let (pa, pb) = (view(&a).1, view(&b).1);
    assert_eq!((view(&a).0, view(&b).0), (ip(EXT), ip(EXT)));
    assert_ne!(
        pa, pb,
        "one port range: no port overloading across networks"
    );
    let mut ra = udp(FAR, 53, EXT, pa);
    let mut rb = udp(FAR, 53, EXT, pb);
    assert_eq!(inb(&mut nat, &mut ra, 0), into(WEB, FRONT));
    assert_eq!(inb(&mut nat, &mut rb, 0), into(DB, BACK));
    assert_eq!(view(&rb), (ip(FAR), 53, ip(DB), 40001));
}

#[test]
fn one_mapping_table_reaches_into_each_network() {
    let mut nat = Nat::new(two());
    let mut web = tcp(OUT, 5555, EXT, 8080, F::Syn);
    let mut db = tcp(OUT, 5556, EXT, 8081, F::Syn);
    assert_eq!(inb(&mut nat, &mut web, 0), into(WEB, FRONT));
    assert_eq!(inb(&mut nat, &mut db, 0), into(DB, BACK));
    assert_eq!(view(&db), (ip(OUT), 5556, ip(DB), 80));
    let mut synack = tcp(DB, 80, OUT, 5556, F::SynAck);
    assert_eq!(out_from(&mut nat, BACK, &mut synack, 0), Verdict::ToUplink);
    assert_eq!(view(&synack), (ip(EXT), 8081, ip(OUT), 5556));
}

#[test]
fn a_frame_to_another_networks_endpoint_or_gateway_is_dropped_as_isolated() {
    let mut nat = Nat::new(two());
    let mut frames = [
        udp(WEB, 1000, DB, 53),
        tcp(WEB, 1001, DB, 80, F::Syn),
        tcp(WEB, 1002, BACK_GW, 22, F::Syn),
        echo(WEB, DB, 7, true),
        echo(WEB, BACK_GW, 8, true),
    ];
    for f in &mut frames {
        assert_eq!(
            out_from(&mut nat, FRONT, f, 0),
            Verdict::Drop(NatDrop::Isolated)
        );
    }
    let mut back_to_front = udp(DB, 1000, WEB, 53);
    assert_eq!(
        out_from(&mut nat, BACK, &mut back_to_front, 0),
        Verdict::Drop(NatDrop::Isolated)
    );
    assert_eq!(nat.counters().drops_of(NatDrop::Isolated), 6);
    assert!(nat.is_empty(), "no flow was opened");
}

#[test]
fn a_source_address_of_another_network_is_refused() {
    let mut nat = Nat::new(two());
    // DB's address sent from front: it would reach DB's flows.
    let mut f = udp(DB, 40001, FAR, 53);
    assert_eq!(
        out_from(&mut nat, FRONT, &mut f, 0),
        Verdict::Drop(NatDrop::BadSource)
    );
    let mut g = udp(WEB, 40001, FAR, 53);
    assert_eq!(
        out_from(&mut nat, 7, &mut g, 0),
        Verdict::Drop(NatDrop::BadSource),
        "an index past the networks owns no address"
    );
}

#[test]
fn a_port_mapped_into_another_network_is_reached_from_its_gateway() {
    let mut nat = Nat::new(two());
    let mut syn = tcp(WEB, 44444, EXT, 8081, F::Syn);
    assert_eq!(out_from(&mut nat, FRONT, &mut syn, 0), into(DB, BACK));
    let (src, p, dst, dport) = view(&syn);
    assert_eq!((src, dst, dport), (ip(BACK_GW), ip(DB), 80));
    assert!((32768..=60999).contains(&p), "the client's SNAT port: {p}");
    assert!(
        !nat.has_hairpin_flows(),
        "answered to the gateway: nothing for the switch to offer"
    );
    // A client of the same port in the other network gets another one.
    let mut syn2 = tcp(CLI, 44444, EXT, 8081, F::Syn);
    assert_eq!(out_from(&mut nat, FRONT, &mut syn2, 0), into(DB, BACK));
    assert_ne!(view(&syn2).1, p);
    // DB answers its gateway; the answer goes back into front.
    let mut synack = tcp(DB, 80, BACK_GW, p, F::SynAck);
    assert_eq!(out_from(&mut nat, BACK, &mut synack, 0), into(WEB, FRONT));
    assert_eq!(view(&synack), (ip(EXT), 8081, ip(WEB), 44444));
    let mut ack = tcp(WEB, 44444, EXT, 8081, F::Ack);
    assert_eq!(out_from(&mut nat, FRONT, &mut ack, 0), into(DB, BACK));
    assert_eq!(nat.counters().hairpin.get(), 4);
}

#[test]
fn the_snat_port_of_a_cross_network_hairpin_returns_when_it_expires() {
    let mut c = two();
    c.port_range = (50000, 50000);
    let mut nat = Nat::new(c);
    let mut syn = tcp(WEB, 1, EXT, 8081, F::Syn);
    assert_eq!(out_from(&mut nat, FRONT, &mut syn, 0), into(DB, BACK));
    assert_eq!(view(&syn).1, 50000);
    let mut other = tcp(CLI, 1, EXT, 8081, F::Syn);
    assert_eq!(
        out_from(&mut nat, FRONT, &mut other, 0),
        Verdict::Drop(NatDrop::PortsExhausted)
    );
    // The SYN_SENT timeout (120 s) passes: the sweep frees the port.
    assert_eq!(nat.sweep(121 * S, 16), 1);
    let mut later = tcp(CLI, 1, EXT, 8081, F::Syn);
    assert_eq!(
        out_from(&mut nat, FRONT, &mut later, 121 * S),
        into(DB, BACK)
    );
}

#[test]
fn a_hairpin_reply_is_taken_only_from_the_network_of_its_flow() {
    let mut nat = Nat::new(two());
    let mut syn = tcp(CLI, 44444, EXT, 8080, F::Syn);
    assert_eq!(out_from(&mut nat, FRONT, &mut syn, 0), into(WEB, FRONT));
    // The same reply tuple, offered from back (spoofed there).
    let mut spoof = tcp(WEB, 80, CLI, 44444, F::SynAck);
    let before = spoof.clone();
    let m = meta::parse(&spoof).unwrap();
    assert_eq!(
        nat.hairpin_reply(&mut spoof, &m, BACK, L4Csum::Complete, 0),
        None
    );
    assert_eq!(spoof, before, "untouched");
    let m = meta::parse(&spoof).unwrap();
    assert_eq!(
        nat.hairpin_reply(&mut spoof, &m, FRONT, L4Csum::Complete, 0),
        Some(into(CLI, FRONT))
    );
}

#[test]
fn an_icmp_error_from_one_network_cannot_reach_a_flow_of_another() {
    let mut nat = Nat::new(two());
    let mut sent = udp(DB, 5000, FAR, 9);
    assert_eq!(out_from(&mut nat, BACK, &mut sent, 0), Verdict::ToUplink);
    // front quotes back's translated datagram as if it had received it.
    let ty = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
    let mut err = icmp_error(WEB, FAR, ty.clone(), &sent);
    assert_eq!(
        out_from(&mut nat, FRONT, &mut err, 0),
        Verdict::Drop(NatDrop::NoMapping)
    );
    // From outside the same error is translated for DB.
    let mut real = icmp_error(FAR, EXT, ty, &sent);
    assert_eq!(inb(&mut nat, &mut real, 0), into(DB, BACK));
}

#[test]
fn a_reload_that_adds_a_network_keeps_every_flow() {
    let mut nat = Nat::new(cfg());
    let p = established(&mut nat, 1234, 0);
    assert!(nat.reconfigure(two()));
    assert_eq!(nat.len(), 1);
    let mut reply = tcp(FAR, 443, EXT, p, F::Ack);
    assert_eq!(inb(&mut nat, &mut reply, S), to(WEB));
    let mut db = tcp(OUT, 5556, EXT, 8081, F::Syn);
    assert_eq!(inb(&mut nat, &mut db, S), into(DB, BACK));
}

#[test]
fn a_reload_that_removes_a_network_drops_its_flows_and_keeps_the_others() {
    let mut nat = Nat::new(two());
    let p = established(&mut nat, 1234, 0);
    let mut b = udp(DB, 5000, FAR, 53);
    assert_eq!(out_from(&mut nat, BACK, &mut b, 0), Verdict::ToUplink);
    let pb = view(&b).1;
    // front is gone; back is now the only network (index 0).
    let mut c = two();
    c.networks.remove(FRONT);
    c.mappings.retain(|m| m.internal_ip == ip(DB));
    assert!(nat.reconfigure(c));
    assert_eq!(nat.len(), 1, "front's connection went with it");
    let mut reply = tcp(FAR, 443, EXT, p, F::Ack);
    assert_eq!(
        inb(&mut nat, &mut reply, S),
        Verdict::Drop(NatDrop::NoMapping)
    );
    let mut rb = udp(FAR, 53, EXT, pb);
    assert_eq!(inb(&mut nat, &mut rb, S), into(DB, 0));
}

#[test]
fn a_reload_that_moves_a_networks_gateway_drops_that_networks_flows() {
    let mut nat = Nat::new(two());
    established(&mut nat, 1234, 0);
    let mut b = udp(DB, 5000, FAR, 53);
    out_from(&mut nat, BACK, &mut b, 0);
    let mut c = two();
    c.networks[BACK].gateway = Ipv4Addr::new(172, 31, 0, 254);
    assert!(nat.reconfigure(c));
    assert_eq!(nat.len(), 1, "front's connection stays, back's goes");
}

#[test]
fn networks_far_apart_in_the_address_space_are_each_found() {
    // No common prefix: 10/8 and 192.168/16 share no leading bit.
    let mut c = NatConfig::new(
        EXT.into(),
        "10.1.0.0/24".parse().unwrap(),
        [10, 1, 0, 1].into(),
    );
    c.networks.push(InternalNet {
        subnet: "192.168.5.0/24".parse().unwrap(),
        gateway: [192, 168, 5, 1].into(),
    });
    let mut nat = Nat::new(c);
    let (a, b) = ([10, 1, 0, 7], [192, 168, 5, 7]);
    let mut fa = udp(a, 1000, FAR, 53);
    let mut fb = udp(b, 1000, FAR, 53);
    assert_eq!(out_from(&mut nat, 0, &mut fa, 0), Verdict::ToUplink);
    assert_eq!(out_from(&mut nat, 1, &mut fb, 0), Verdict::ToUplink);
    let mut ra = udp(FAR, 53, EXT, view(&fa).1);
    let mut rb = udp(FAR, 53, EXT, view(&fb).1);
    assert_eq!(inb(&mut nat, &mut ra, 0), into(a, 0));
    assert_eq!(inb(&mut nat, &mut rb, 0), into(b, 1));
    let mut across = udp(a, 1000, b, 53);
    assert_eq!(
        out_from(&mut nat, 0, &mut across, 0),
        Verdict::Drop(NatDrop::Isolated)
    );
}

#[test]
fn removing_an_endpoints_flows_drops_only_that_address_and_frees_its_ports() {
    let mut nat = Nat::new(two());
    let p = established(&mut nat, 1234, 0);
    let mut b = udp(DB, 5000, FAR, 53);
    assert_eq!(out_from(&mut nat, BACK, &mut b, 0), Verdict::ToUplink);
    let pb = view(&b).1;
    let snat_before = nat.snat_mappings();
    assert_eq!(nat.remove_flows_of(WEB.into()), 1);
    assert_eq!(nat.len(), 1);
    assert_eq!(
        nat.snat_mappings(),
        snat_before - 1,
        "WEB's port is free again"
    );
    let mut reply = tcp(FAR, 443, EXT, p, F::Ack);
    assert_eq!(
        inb(&mut nat, &mut reply, S),
        Verdict::Drop(NatDrop::NoMapping)
    );
    let mut rb = udp(FAR, 53, EXT, pb);
    assert_eq!(inb(&mut nat, &mut rb, S), into(DB, BACK));
}
