//! VXLAN encapsulation and decapsulation over pool frames, checked against
//! etherparse as an independent parser.

use std::net::Ipv4Addr;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use overlay::vxlan::{FLAG_I, FLANNEL_PORT, SRC_PORT_MIN};
use overlay::*;
use pmd::meta;
use pmd::wire::{checksum, MacAddr};
use pmd::{Frame, Pool, PoolConfig};

const VNI: Vni = 4242;
const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const STRANGER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 66);
const UPLINK_A: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 2]);
const UPLINK_B: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
const C1_MAC: MacAddr = MacAddr([0x02, 0, 10, 200, 0, 10]);
const C2_MAC: MacAddr = MacAddr([0x02, 0, 10, 200, 0, 20]);
const C1_IP: [u8; 4] = [10, 200, 0, 10];
const C2_IP: [u8; 4] = [10, 200, 0, 20];

fn pool() -> Pool {
    Pool::new(PoolConfig {
        chunks: 64,
        large: 1,
        umem: false,
    })
    .unwrap()
}

/// An inner Ethernet/IPv4/UDP frame of exactly `len` bytes (>= 42).
fn inner_udp(len: usize, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&C2_MAC.0);
    f[6..12].copy_from_slice(&C1_MAC.0);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    f[18..20].copy_from_slice(&0x1234u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&src);
    f[30..34].copy_from_slice(&dst);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    f
}

fn encap_a_to_b(port: u16) -> Encap {
    Encap {
        vni: VNI,
        src_vtep: HOST_A,
        dst_vtep: HOST_B,
        src_mac: UPLINK_A,
        dst_mac: UPLINK_B,
        udp_dst_port: port,
        ttl: 64,
    }
}

/// Host B's tables: VNI 4242 on `port`, host A a peer through the remote
/// endpoint C1.
fn tables_of_b(port: u16) -> VtepTables {
    let mut t = VtepTables::new(HOST_B);
    t.add_network(VNI, port, None).unwrap();
    t.add_remote_endpoint(RemoteEndpoint {
        vni: VNI,
        ip: Ipv4Addr::from(C1_IP),
        mac: C1_MAC,
        vtep: HOST_A,
    })
    .unwrap();
    t
}

/// Encapsulates `inner` as host A would and returns the outer bytes.
fn encapsulated(pool: &mut Pool, inner: &[u8], e: &Encap) -> Vec<u8> {
    let mut frame = pool.alloc_copy(inner).unwrap();
    encapsulate(pool, &mut frame, e).unwrap();
    let out = pool.data(&frame).to_vec();
    pool.free(frame);
    out
}

/// Decapsulates outer bytes at host B with fresh state.
fn decap_at_b(outer: &[u8], tables: &VtepTables, counters: &OverlayCounters) -> Decap {
    let mut learned = LearnedMacs::new(1024, 300);
    let m = meta::parse(outer).expect("the outer frame parses");
    receive(outer, &m, tables, &mut learned, counters, 1)
}

fn round_trip(len: usize) {
    let mut pool = pool();
    let inner = inner_udp(len, C1_IP, C2_IP, 40000, 53);
    assert_eq!(inner.len(), len, "the fixture is a {len}-byte frame");
    assert!(meta::parse(&inner).is_ok(), "the fixture is a valid frame");

    let mut frame: Frame = pool.alloc_copy(&inner).unwrap();
    let headroom = frame.headroom();
    encapsulate(&mut pool, &mut frame, &encap_a_to_b(VXLAN_PORT)).unwrap();
    assert_eq!(frame.len(), len + OUTER_LEN);
    assert_eq!(
        frame.headroom(),
        headroom - OUTER_LEN,
        "the outer headers went into the headroom"
    );
    assert_eq!(
        &pool.data(&frame)[OUTER_LEN..],
        &inner[..],
        "inner untouched"
    );

    let tables = tables_of_b(VXLAN_PORT);
    let mut learned = LearnedMacs::new(1024, 300);
    let counters = OverlayCounters::default();
    let outer = meta::parse(pool.data(&frame)).unwrap();
    let verdict = decapsulate_frame(
        &mut pool,
        &mut frame,
        &outer,
        &tables,
        &mut learned,
        &counters,
        1,
    );
    let Decap::Inner {
        vni,
        src_vtep,
        inner_offset,
        inner_len,
        meta,
    } = verdict
    else {
        panic!("dropped: {verdict:?}");
    };
    assert_eq!((vni, src_vtep), (VNI, HOST_A));
    assert_eq!((inner_offset, inner_len), (OUTER_LEN, len));
    assert_eq!(meta, meta::parse(&inner).unwrap());
    assert_eq!(pool.data(&frame), &inner[..], "byte-exact after decap");
    assert_eq!(frame.headroom(), headroom, "back where it started");
    assert_eq!(counters.decapsulated.get(), 1);
    assert_eq!(counters.total_decap_drops(), 0);
    pool.free(frame);
}

#[test]
fn a_64_byte_inner_frame_round_trips_byte_exact() {
    round_trip(64);
}

#[test]
fn a_1450_byte_inner_frame_round_trips_byte_exact() {
    round_trip(1450);
}

#[test]
fn the_outer_headers_are_what_etherparse_and_rfc_7348_expect() {
    let mut pool = pool();
    let inner = inner_udp(1450, C1_IP, C2_IP, 40000, 53);
    let outer = encapsulated(&mut pool, &inner, &encap_a_to_b(VXLAN_PORT));

    let p = SlicedPacket::from_ethernet(&outer).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4")
    };
    let h = ip.header();
    assert_eq!(h.source(), HOST_A.octets());
    assert_eq!(h.destination(), HOST_B.octets());
    assert_eq!(h.ttl(), 64);
    assert!(h.dont_fragment(), "DF is set (vxlan::OUTER_DF)");
    assert_eq!(h.total_len() as usize, outer.len() - 14);
    assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
    assert_eq!(checksum::checksum(&outer[14..34]), 0);
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        panic!("not UDP")
    };
    assert_eq!(udp.destination_port(), 4789);
    assert!(udp.source_port() >= SRC_PORT_MIN);
    assert_eq!(udp.checksum(), 0, "RFC 7348: UDP checksum SHOULD be zero");
    assert_eq!(udp.length() as usize, 8 + 8 + inner.len());
    let vx = udp.payload();
    // Linux's struct vxlanhdr: flags word 0x08000000, then VNI << 8.
    assert_eq!(&vx[0..4], &[FLAG_I, 0, 0, 0]);
    assert_eq!(u32::from_be_bytes([vx[4], vx[5], vx[6], vx[7]]), VNI << 8);
    assert_eq!(&vx[8..], &inner[..]);
    assert_eq!(&outer[0..6], &UPLINK_B.0);
    assert_eq!(&outer[6..12], &UPLINK_A.0);
}

#[test]
fn a_flannel_network_uses_port_8472_and_only_accepts_it() {
    let mut pool = pool();
    let inner = inner_udp(64, C1_IP, C2_IP, 40000, 53);
    let outer = encapsulated(&mut pool, &inner, &encap_a_to_b(FLANNEL_PORT));
    assert_eq!(&outer[36..38], &8472u16.to_be_bytes());
    let c = OverlayCounters::default();
    assert!(matches!(
        decap_at_b(&outer, &tables_of_b(FLANNEL_PORT), &c),
        Decap::Inner { .. }
    ));
    let on_4789 = encapsulated(&mut pool, &inner, &encap_a_to_b(VXLAN_PORT));
    assert_eq!(
        decap_at_b(&on_4789, &tables_of_b(FLANNEL_PORT), &c),
        Decap::Drop(DecapDrop::NotVxlan)
    );
}

#[test]
fn different_inner_flows_get_different_source_ports_and_one_flow_keeps_its_port() {
    let mut ports = std::collections::HashSet::new();
    for sport in 0..200u16 {
        let f = inner_udp(64, C1_IP, C2_IP, 30000 + sport, 53);
        let p = source_port(&f);
        assert!(p >= SRC_PORT_MIN, "{p} is in 49152-65535");
        // Lengths and payload vary within a flow; the port does not.
        let g = inner_udp(1000, C1_IP, C2_IP, 30000 + sport, 53);
        assert_eq!(source_port(&g), p, "same flow, same port");
        ports.insert(p);
    }
    assert!(
        ports.len() >= 195,
        "200 flows spread over {} ports",
        ports.len()
    );
    let a = inner_udp(64, C1_IP, C2_IP, 40000, 53);
    let b = inner_udp(64, C1_IP, [10, 200, 0, 21], 40000, 53);
    assert_ne!(source_port(&a), source_port(&b), "destination IP counts");
}

#[test]
fn encapsulate_into_a_plain_buffer_matches_the_pool_version() {
    let mut pool = pool();
    let inner = inner_udp(300, C1_IP, C2_IP, 40000, 53);
    let e = encap_a_to_b(VXLAN_PORT);
    let from_pool = encapsulated(&mut pool, &inner, &e);
    let mut buf = vec![0u8; 128 + inner.len()];
    buf[128..].copy_from_slice(&inner);
    let r = encapsulate_into(&mut buf, 128, inner.len(), &e).unwrap();
    assert_eq!(&buf[r], &from_pool[..]);
    assert_eq!(
        encapsulate_into(&mut buf, 49, 10, &e),
        Err(EncapError::NoHeadroom { headroom: 49 })
    );
}

#[test]
fn a_frame_without_headroom_or_a_gso_frame_is_not_encapsulated() {
    let mut pool = pool();
    let inner = inner_udp(64, C1_IP, C2_IP, 40000, 53);
    let e = encap_a_to_b(VXLAN_PORT);
    let mut frame = pool.alloc_copy(&inner).unwrap();
    encapsulate(&mut pool, &mut frame, &e).unwrap();
    let before = pool.data(&frame).to_vec();
    // 256 - 50 = 206 bytes left: four more encapsulations fit, the fifth
    // does not.
    for _ in 0..4 {
        encapsulate(&mut pool, &mut frame, &e).unwrap();
    }
    let len = frame.len();
    frame.offload.needs_csum = true;
    frame.offload.csum_start = 34;
    assert_eq!(
        encapsulate(&mut pool, &mut frame, &e),
        Err(EncapError::NoHeadroom { headroom: 6 })
    );
    assert_eq!(frame.len(), len, "unchanged on error");
    assert_eq!(frame.offload.csum_start, 34, "offload unchanged on error");
    assert_eq!(&pool.data(&frame)[200..], &before[..]);
    pool.free(frame);

    let mut gso = pool.alloc_copy(&inner).unwrap();
    gso.offload.gso_type = 1;
    gso.offload.gso_size = 1400;
    assert_eq!(
        encapsulate(&mut pool, &mut gso, &e),
        Err(EncapError::NeedsSegmentation)
    );
    pool.free(gso);
}

/// Rewrites a field of an encapsulated frame and fixes the outer IPv4
/// checksum, so only the change under test is wrong.
fn fix_ip_checksum(outer: &mut [u8]) {
    outer[24..26].fill(0);
    let c = checksum::checksum(&outer[14..34]);
    outer[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn decapsulation_drops_each_kind_of_bad_packet_and_counts_it_under_its_reason() {
    let mut pool = pool();
    let inner = inner_udp(100, C1_IP, C2_IP, 40000, 53);
    let good = encapsulated(&mut pool, &inner, &encap_a_to_b(VXLAN_PORT));
    let tables = tables_of_b(VXLAN_PORT);
    let counters = OverlayCounters::default();
    assert!(
        matches!(decap_at_b(&good, &tables, &counters), Decap::Inner { .. }),
        "the fixture itself is accepted"
    );

    let unknown_vni = {
        let mut p = good.clone();
        p[46..49].copy_from_slice(&[0, 0, 7]);
        p
    };
    let unknown_vtep = {
        let mut p = good.clone();
        p[26..30].copy_from_slice(&STRANGER.octets());
        fix_ip_checksum(&mut p);
        p
    };
    // Cut inside the VXLAN header, the IPv4 length fixed to match: the
    // outer frame parses, but UDP claims more than the packet has.
    let truncated_outer = {
        let mut p = good[..14 + 20 + 8 + 4].to_vec();
        p[16..18].copy_from_slice(&32u16.to_be_bytes());
        fix_ip_checksum(&mut p);
        p
    };
    let udp_longer_than_packet = {
        let mut p = good.clone();
        let longer = u16::from_be_bytes([p[38], p[39]]) + 1;
        p[38..40].copy_from_slice(&longer.to_be_bytes());
        p
    };
    let no_i_flag = {
        let mut p = good.clone();
        p[42] = 0;
        p
    };
    let reserved_bit = {
        let mut p = good.clone();
        p[49] = 1;
        p
    };
    let short_inner = {
        // Outer lengths say: 10 bytes of inner frame.
        let mut p = good[..50 + 10].to_vec();
        p[16..18].copy_from_slice(&((20 + 8 + 8 + 10) as u16).to_be_bytes());
        p[38..40].copy_from_slice(&((8 + 8 + 10) as u16).to_be_bytes());
        fix_ip_checksum(&mut p);
        p
    };
    let invalid_inner = {
        // Inner IPv4 version 6 in a v4 EtherType.
        let mut p = good.clone();
        p[50 + 14] = 0x65;
        p
    };
    let not_vxlan = {
        let mut p = good.clone();
        p[36..38].copy_from_slice(&53u16.to_be_bytes());
        p
    };
    let fragment = {
        let mut p = good.clone();
        p[20] = 0x20; // MF
        fix_ip_checksum(&mut p);
        p
    };
    let bad_checksum = {
        let mut p = good.clone();
        p[24] ^= 0xff;
        p
    };

    let cases: [(&str, &[u8], DecapDrop); 11] = [
        ("unknown VNI", &unknown_vni, DecapDrop::UnknownVni),
        ("unknown VTEP", &unknown_vtep, DecapDrop::UnknownVtep),
        ("truncated outer", &truncated_outer, DecapDrop::Truncated),
        ("UDP length", &udp_longer_than_packet, DecapDrop::Truncated),
        ("I flag missing", &no_i_flag, DecapDrop::BadFlags),
        ("reserved bit", &reserved_bit, DecapDrop::BadFlags),
        ("short inner", &short_inner, DecapDrop::BadInner),
        ("invalid inner", &invalid_inner, DecapDrop::BadInner),
        ("not VXLAN", &not_vxlan, DecapDrop::NotVxlan),
        ("outer fragment", &fragment, DecapDrop::OuterFragment),
        ("outer checksum", &bad_checksum, DecapDrop::BadOuterChecksum),
    ];
    for (what, packet, reason) in cases {
        let before = counters.decap_drops_of(reason);
        let total = counters.total_decap_drops();
        let m = meta::parse(packet).unwrap_or_else(|e| panic!("{what}: outer parse {e:?}"));
        let mut learned = LearnedMacs::new(16, 300);
        assert_eq!(
            receive(packet, &m, &tables, &mut learned, &counters, 1),
            Decap::Drop(reason),
            "{what}"
        );
        assert_eq!(counters.decap_drops_of(reason), before + 1, "{what}");
        assert_eq!(counters.total_decap_drops(), total + 1, "{what}");
        assert!(learned.is_empty(), "{what}: nothing learned from a drop");
    }
    assert_eq!(counters.decapsulated.get(), 1);
}

#[test]
fn decapsulation_learns_the_inner_source_mac_behind_the_sending_vtep() {
    let mut pool = pool();
    let mut tables = VtepTables::new(HOST_B);
    tables.add_network(VNI, VXLAN_PORT, None).unwrap();
    tables.add_peer(VNI, HOST_A).unwrap();
    let inner = inner_udp(64, C1_IP, C2_IP, 40000, 53);
    let outer = encapsulated(&mut pool, &inner, &encap_a_to_b(VXLAN_PORT));
    let m = meta::parse(&outer).unwrap();
    let counters = OverlayCounters::default();
    let mut learned = LearnedMacs::new(16, 300);
    let sec = 1_000_000_000u64;

    assert_eq!(
        tables.destination(VNI, C1_MAC, &learned, sec),
        Some(Destination::Flood(&[HOST_A])),
        "unknown unicast floods to the peers before learning"
    );
    receive(&outer, &m, &tables, &mut learned, &counters, sec);
    assert_eq!(counters.learned.get(), 1);
    assert_eq!(
        tables.destination(VNI, C1_MAC, &learned, 2 * sec),
        Some(Destination::Unicast(HOST_A))
    );
    receive(&outer, &m, &tables, &mut learned, &counters, 2 * sec);
    assert_eq!(counters.learned.get(), 1, "a refresh is not news");
    // Aged out after 300 s without traffic.
    assert_eq!(
        tables.destination(VNI, C1_MAC, &learned, 303 * sec),
        Some(Destination::Flood(&[HOST_A]))
    );
    assert_eq!(learned.sweep(303 * sec), 1);
    assert!(learned.is_empty());
    // A learned VTEP that is no longer a peer (after a reload) is ignored.
    receive(&outer, &m, &tables, &mut learned, &counters, 400 * sec);
    let mut reloaded = VtepTables::new(HOST_B);
    reloaded.add_network(VNI, VXLAN_PORT, None).unwrap();
    reloaded.add_peer(VNI, STRANGER).unwrap();
    assert_eq!(
        reloaded.destination(VNI, C1_MAC, &learned, 401 * sec),
        Some(Destination::Flood(&[STRANGER]))
    );
}

#[test]
fn static_remote_endpoints_win_over_learning_and_broadcast_goes_to_every_peer() {
    let mut t = tables_of_b(VXLAN_PORT);
    t.add_peer(VNI, STRANGER).unwrap();
    let mut learned = LearnedMacs::new(16, 300);
    // A peer claims C1's MAC: not learned, static config says host A.
    assert!(!learned.learn(&t, VNI, C1_MAC, STRANGER, 1));
    assert_eq!(
        t.destination(VNI, C1_MAC, &learned, 1),
        Some(Destination::Unicast(HOST_A))
    );
    assert!(!learned.learn(&t, VNI, MacAddr::BROADCAST, HOST_A, 1));
    let mut peers = vec![HOST_A, STRANGER];
    peers.sort();
    assert_eq!(
        t.destination(VNI, MacAddr::BROADCAST, &learned, 1),
        Some(Destination::Flood(&peers))
    );
    assert_eq!(t.destination(7, C1_MAC, &learned, 1), None);
}

#[test]
fn the_tables_refuse_configs_that_cannot_work() {
    let mut t = VtepTables::new(HOST_B);
    assert_eq!(
        t.add_network(1 << 24, VXLAN_PORT, None),
        Err(VtepConfigError::VniOutOfRange(1 << 24))
    );
    t.add_network(VNI, VXLAN_PORT, None).unwrap();
    assert_eq!(
        t.add_network(VNI, VXLAN_PORT, None),
        Err(VtepConfigError::DuplicateVni(VNI))
    );
    assert_eq!(
        t.add_peer(VNI, HOST_B),
        Err(VtepConfigError::LocalVtep(HOST_B))
    );
    assert_eq!(t.add_peer(9, HOST_A), Err(VtepConfigError::UnknownVni(9)));
    let ep = RemoteEndpoint {
        vni: VNI,
        ip: Ipv4Addr::from(C1_IP),
        mac: C1_MAC,
        vtep: HOST_A,
    };
    t.add_remote_endpoint(ep).unwrap();
    assert!(matches!(
        t.add_remote_endpoint(ep),
        Err(VtepConfigError::DuplicateIp { .. })
    ));
    assert!(matches!(
        t.add_remote_endpoint(RemoteEndpoint {
            ip: Ipv4Addr::from(C2_IP),
            ..ep
        }),
        Err(VtepConfigError::DuplicateMac { .. })
    ));
    assert_eq!(t.network(VNI).unwrap().peers(), &[HOST_A]);
}

#[test]
fn a_pending_inner_checksum_offload_moves_with_the_inner_frame() {
    let mut pool = pool();
    let inner = inner_udp(64, C1_IP, C2_IP, 40000, 53);
    let mut frame = pool.alloc_copy(&inner).unwrap();
    frame.offload.needs_csum = true;
    frame.offload.csum_start = 34;
    frame.offload.csum_offset = 6;
    encapsulate(&mut pool, &mut frame, &encap_a_to_b(VXLAN_PORT)).unwrap();
    assert_eq!(frame.offload.csum_start, 34 + OUTER_LEN as u16);
    assert_eq!(frame.offload.csum_offset, 6);
    pool.free(frame);
}

#[test]
fn the_tables_list_each_remote_endpoint_with_its_vtep() {
    let t = tables_of_b(VXLAN_PORT);
    let listed: Vec<RemoteEndpoint> = t.remote_endpoints().collect();
    assert_eq!(
        listed,
        [RemoteEndpoint {
            vni: VNI,
            ip: Ipv4Addr::from(C1_IP),
            mac: C1_MAC,
            vtep: HOST_A,
        }]
    );
}
