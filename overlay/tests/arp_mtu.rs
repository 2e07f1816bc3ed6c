//! ARP suppression for remote endpoints, and the overlay MTU with ICMP
//! fragmentation-needed.

use std::net::Ipv4Addr;

use etherparse::{Icmpv4Type, NetSlice, SlicedPacket, TransportSlice};
use overlay::*;
use pmd::meta;
use pmd::wire::{checksum, MacAddr};
use pmd::{Pool, PoolConfig};
use smoltcp::wire::{ArpOperation, ArpPacket};

const VNI: Vni = 4242;
const LOCAL_MAC: MacAddr = MacAddr([0x02, 0, 10, 200, 0, 10]);
const LOCAL_IP: [u8; 4] = [10, 200, 0, 10];
const REMOTE_MAC: MacAddr = MacAddr([0x02, 0, 10, 200, 0, 20]);
const REMOTE_IP: [u8; 4] = [10, 200, 0, 20];
const GW: GatewayAddr = GatewayAddr {
    ip: Ipv4Addr::new(10, 200, 0, 1),
    mac: MacAddr([0x02, 0x50, 0, 0, 0, 1]),
};

fn tables() -> VtepTables {
    let mut t = VtepTables::new(Ipv4Addr::new(10, 99, 0, 2));
    t.add_network(VNI, VXLAN_PORT, Some(GW)).unwrap();
    t.add_remote_endpoint(RemoteEndpoint {
        vni: VNI,
        ip: Ipv4Addr::from(REMOTE_IP),
        mac: REMOTE_MAC,
        vtep: Ipv4Addr::new(10, 99, 0, 1),
    })
    .unwrap();
    t
}

/// A broadcast ARP request from the local container, padded to 60 bytes.
fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
    f[6..12].copy_from_slice(&LOCAL_MAC.0);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&LOCAL_MAC.0);
    f[28..32].copy_from_slice(&LOCAL_IP);
    f[38..42].copy_from_slice(&target);
    f
}

#[test]
fn an_arp_request_for_a_remote_endpoint_is_answered_in_place_with_its_mac() {
    let t = tables();
    let mut f = arp_request(REMOTE_IP);
    let m = meta::parse(&f).unwrap();
    assert_eq!(m.ethertype, 0x0806, "the fixture is ARP");
    assert!(t.arp_suppress(VNI, &mut f, &m));
    assert_eq!(f.len(), 60);
    assert_eq!(&f[0..6], &LOCAL_MAC.0, "back to the requester");
    assert_eq!(&f[6..12], &REMOTE_MAC.0, "from the remote endpoint");
    let arp = ArpPacket::new_checked(&f[14..]).unwrap();
    assert_eq!(arp.operation(), ArpOperation::Reply);
    assert_eq!(arp.source_hardware_addr(), &REMOTE_MAC.0);
    assert_eq!(arp.source_protocol_addr(), &REMOTE_IP);
    assert_eq!(arp.target_hardware_addr(), &LOCAL_MAC.0);
    assert_eq!(arp.target_protocol_addr(), &LOCAL_IP);
}

#[test]
fn arp_for_an_unknown_address_or_a_gratuitous_arp_is_left_to_the_switch() {
    let t = tables();
    for (what, mut f) in [
        ("unknown target", arp_request([10, 200, 0, 99])),
        ("gratuitous", arp_request(LOCAL_IP)),
        ("a reply", {
            let mut f = arp_request(REMOTE_IP);
            f[21] = 2;
            f
        }),
    ] {
        let before = f.clone();
        let m = meta::parse(&f).unwrap();
        assert!(!t.arp_suppress(VNI, &mut f, &m), "{what}");
        assert_eq!(f, before, "{what}: untouched");
    }
    let mut f = arp_request(REMOTE_IP);
    let m = meta::parse(&f).unwrap();
    assert!(!t.arp_suppress(7, &mut f, &m), "another VNI's endpoint");
}

/// An inner IPv4/TCP frame of `len` bytes, DF as asked.
fn inner_tcp(len: usize, df: bool) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&REMOTE_MAC.0);
    f[6..12].copy_from_slice(&LOCAL_MAC.0);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    f[20] = if df { 0x40 } else { 0 };
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&LOCAL_IP);
    f[30..34].copy_from_slice(&REMOTE_IP);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..42].copy_from_slice(&[0x9c, 0x40, 0, 80, 1, 2, 3, 4]);
    f[46] = 0x50;
    f
}

#[test]
fn the_inner_mtu_is_the_uplink_mtu_less_50() {
    assert_eq!(inner_mtu(1500), 1450);
    assert_eq!(inner_mtu(9000), 8950);
    assert_eq!(inner_mtu(20), 0);
    let fits = inner_tcp(14 + 1450, true);
    let m = meta::parse(&fits).unwrap();
    assert_eq!(check_mtu(&fits, &m, 1450), MtuVerdict::Fits);
    let big = inner_tcp(14 + 1451, true);
    let m = meta::parse(&big).unwrap();
    assert_eq!(check_mtu(&big, &m, 1450), MtuVerdict::FragNeeded);
    let big_no_df = inner_tcp(14 + 1451, false);
    let m = meta::parse(&big_no_df).unwrap();
    assert_eq!(
        check_mtu(&big_no_df, &m, 1450),
        MtuVerdict::Drop,
        "no DF: dropped, never truncated or fragmented"
    );
}

#[test]
fn no_fragmentation_needed_is_sent_about_an_icmp_error_or_a_broadcast() {
    let mut icmp_err = inner_tcp(1500, true);
    icmp_err[23] = 1;
    icmp_err[34] = 3;
    icmp_err[24..26].fill(0);
    let c = checksum::checksum(&icmp_err[14..34]);
    icmp_err[24..26].copy_from_slice(&c.to_be_bytes());
    let m = meta::parse(&icmp_err).unwrap();
    assert_eq!(m.ip_proto, 1, "the fixture is ICMP");
    assert_eq!(check_mtu(&icmp_err, &m, 1450), MtuVerdict::Drop);
    let mut bcast = inner_tcp(1500, true);
    bcast[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
    let m = meta::parse(&bcast).unwrap();
    assert_eq!(check_mtu(&bcast, &m, 1450), MtuVerdict::Drop);
}

fn assert_frag_needed(msg: &[u8], offending: &[u8]) {
    let p = SlicedPacket::from_ethernet(msg).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4")
    };
    let h = ip.header();
    assert_eq!(h.source(), GW.ip.octets(), "from the gateway");
    assert_eq!(h.destination(), LOCAL_IP, "to the sender");
    assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
    assert_eq!(h.total_len() as usize, msg.len() - 14);
    assert_eq!(&msg[0..6], &LOCAL_MAC.0);
    assert_eq!(&msg[6..12], &GW.mac.0);
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
        panic!("not ICMP")
    };
    assert_eq!(
        icmp.icmp_type(),
        Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1450 }
        )
    );
    assert_eq!(checksum::checksum(&msg[34..]), 0, "ICMP checksum valid");
    assert_eq!(
        icmp.payload(),
        &offending[14..14 + 20 + 8],
        "quotes the IP header and 8 bytes of data"
    );
}

#[test]
fn an_oversized_df_frame_gets_fragmentation_needed_quoting_its_header() {
    let big = inner_tcp(14 + 1480, true);
    let m = meta::parse(&big).unwrap();
    let mut out = [0u8; 128];
    let n = build_frag_needed(&big, &m, 1450, GW, &mut out).unwrap();
    assert_eq!(n, 14 + 20 + 8 + 28);
    assert_frag_needed(&out[..n], &big);
    assert_eq!(build_frag_needed(&big, &m, 1450, GW, &mut out[..60]), None);

    let mut pool = Pool::new(PoolConfig {
        chunks: 8,
        large: 1,
        umem: false,
    })
    .unwrap();
    let mut frame = pool.alloc_copy(&big).unwrap();
    assert!(frag_needed_in_place(&mut pool, &mut frame, &m, 1450, GW));
    assert_frag_needed(pool.data(&frame), &big);
    pool.free(frame);
}
