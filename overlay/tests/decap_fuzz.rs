//! Decapsulation takes bytes from anyone on the underlay: whatever they
//! are, it returns a verdict and never panics.

use std::net::Ipv4Addr;

use overlay::*;
use pmd::meta::{self, PacketMeta};
use pmd::wire::MacAddr;
use proptest::prelude::*;

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

fn tables() -> VtepTables {
    let mut t = VtepTables::new(LOCAL);
    t.add_network(4242, VXLAN_PORT, None).unwrap();
    t.add_peer(4242, PEER).unwrap();
    t
}

fn check(packet: &[u8], m: &PacketMeta, t: &VtepTables) {
    let counters = OverlayCounters::default();
    let mut learned = LearnedMacs::new(8, 300);
    if let Decap::Inner {
        inner_offset,
        inner_len,
        ..
    } = receive(packet, m, t, &mut learned, &counters, 1)
    {
        assert!(inner_offset + inner_len <= packet.len());
        assert!(inner_len >= 14);
    }
    assert_eq!(
        counters.decapsulated.get() + counters.total_decap_drops(),
        1,
        "every packet is counted once"
    );
}

fn valid_packet(inner: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 64 + inner.len()];
    buf[64..].copy_from_slice(inner);
    let e = Encap {
        vni: 4242,
        src_vtep: PEER,
        dst_vtep: LOCAL,
        src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
        dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        udp_dst_port: VXLAN_PORT,
        ttl: 64,
    };
    let r = encapsulate_into(&mut buf, 64, inner.len(), &e).unwrap();
    buf[r].to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn random_bytes_never_make_decapsulation_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let t = tables();
        if let Ok(m) = meta::parse(&bytes) {
            check(&bytes, &m, &t);
        }
        // A meta that does not describe the bytes (a caller's bug) must not
        // panic either.
        let m = PacketMeta {
            ethertype: 0x0800,
            ip_proto: 17,
            ip_dst: LOCAL.octets(),
            ip_src: PEER.octets(),
            l3_off: bytes.first().copied().unwrap_or(0) as u16,
            l4_off: bytes.get(1).copied().unwrap_or(0) as u16,
            frame_len: bytes.len() as u32 + 7,
            ..PacketMeta::default()
        };
        check(&bytes, &m, &t);
    }

    #[test]
    fn corrupting_a_valid_vxlan_packet_never_makes_decapsulation_panic(
        inner in proptest::collection::vec(any::<u8>(), 0..120),
        edits in proptest::collection::vec((0usize..170, any::<u8>()), 0..6),
        cut in 0usize..200,
    ) {
        let t = tables();
        let mut p = valid_packet(&inner);
        for (at, v) in edits {
            if let Some(b) = p.get_mut(at) {
                *b = v;
            }
        }
        p.truncate(cut.max(14));
        if let Ok(m) = meta::parse(&p) {
            check(&p, &m, &t);
        }
    }
}
