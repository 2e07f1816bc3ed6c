//! Hostile input through the whole pipeline, without the kernel: random
//! and corrupted frames (Ethernet, ARP, IPv4/TCP/UDP/ICMP, VXLAN) on every
//! port of a switch with two NAT networks on one uplink and an overlay
//! network, over
//! in-memory ports. The switch must not panic, must not leak a buffer, and
//! must still forward good traffic afterwards.

mod inmem;

use std::net::Ipv4Addr;
use std::sync::Arc;

use etherparse::PacketBuilder;
use nat::{InternalNet, NatConfig, PortMapping, Proto};
use overlay::{RemoteEndpoint, VtepTables};
use pmd::memport::{mem_link, MemPeer};
use pmd::thread::PollMode;
use pmd::wire::MacAddr;
use pmd::{Pool, PoolConfig, Port};
use proptest::prelude::*;
use switch::dataplane::{Dataplane, ThreadSpec, UplinkNat};
use switch::pipeline::SwitchSettings;
use switch::topology::{gateway_mac, Topology};

const UPLINK_MAC: [u8; 6] = [2, 0x99, 0, 0, 0, 2];

/// Ports: 0, 1 = endpoints of nat network "front"; 2 = its uplink;
/// 3 = endpoint of overlay network "ov"; 4 = the overlay's uplink;
/// 5 = endpoint of nat network "back", which shares front's uplink.
fn start() -> (Dataplane, Vec<MemPeer>) {
    let mut topo = Topology::default();
    let front = topo.add_network(
        "front",
        "172.30.0.0/24".parse().unwrap(),
        Some(Ipv4Addr::new(172, 30, 0, 1)),
    );
    let ov = topo.add_network(
        "ov",
        "10.200.0.0/24".parse().unwrap(),
        Some(Ipv4Addr::new(10, 200, 0, 1)),
    );
    let back = topo.add_network(
        "back",
        "172.31.0.0/24".parse().unwrap(),
        Some(Ipv4Addr::new(172, 31, 0, 1)),
    );
    let mut ports: Vec<(pmd::PortId, Box<dyn Port>)> = Vec::new();
    let mut peers = Vec::new();
    let mut add = |id: pmd::PortId, name: &str| {
        let (p, peer) = mem_link(name, id, 1024);
        ports.push((id, Box::new(p)));
        peers.push(peer);
    };
    let p0 = topo.add_port("c0", Some(front));
    add(p0, "c0");
    let p1 = topo.add_port("c1", Some(front));
    add(p1, "c1");
    let u0 = topo.add_uplink(
        "up0",
        Ipv4Addr::new(10, 99, 0, 2),
        "10.99.0.0/24".parse().unwrap(),
        Some(Ipv4Addr::new(10, 99, 0, 1)),
        MacAddr(UPLINK_MAC),
    );
    topo.uplinks[0].static_neighbors =
        vec![(Ipv4Addr::new(10, 99, 0, 1), MacAddr([2, 0x99, 0, 0, 0, 1]))];
    topo.set_uplink(front, u0);
    let up0 = topo.uplink(u0).port;
    add(up0, "up0");
    let p3 = topo.add_port("c3", Some(ov));
    add(p3, "c3");
    let u1 = topo.add_uplink(
        "up1",
        Ipv4Addr::new(10, 98, 0, 2),
        "10.98.0.0/24".parse().unwrap(),
        None,
        MacAddr([2, 0x98, 0, 0, 0, 2]),
    );
    topo.set_uplink(ov, u1);
    topo.set_vxlan(ov, 42, 4789);
    let mut tables = VtepTables::new(Ipv4Addr::new(10, 98, 0, 2));
    tables.add_network(42, 4789, None).unwrap();
    tables
        .add_remote_endpoint(RemoteEndpoint {
            vni: 42,
            ip: Ipv4Addr::new(10, 200, 0, 20),
            mac: MacAddr([2, 0, 10, 200, 0, 20]),
            vtep: Ipv4Addr::new(10, 98, 0, 1),
        })
        .unwrap();
    topo.uplinks[1].vteps = Some(Arc::new(tables));
    topo.uplinks[1].overlay_nets = vec![(42, ov)];
    topo.uplinks[1].static_neighbors =
        vec![(Ipv4Addr::new(10, 98, 0, 1), MacAddr([2, 0x98, 0, 0, 0, 1]))];
    let up1 = topo.uplink(u1).port;
    add(up1, "up1");
    let p5 = topo.add_port("b0", Some(back));
    add(p5, "b0");
    topo.set_uplink(back, u0);
    for (net, ip, port) in [
        (front, "172.30.0.10", p0),
        (front, "172.30.0.11", p1),
        (back, "172.31.0.10", p5),
    ] {
        let ip: Ipv4Addr = ip.parse().unwrap();
        topo.add_endpoint_addr(net, ip, MacAddr::from_ipv4(ip), port);
    }
    let mut nat = NatConfig::new(
        Ipv4Addr::new(10, 99, 0, 2),
        "172.30.0.0/24".parse().unwrap(),
        Ipv4Addr::new(172, 30, 0, 1),
    );
    nat.networks.push(InternalNet {
        subnet: "172.31.0.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(172, 31, 0, 1),
    });
    nat.mappings.push(PortMapping {
        proto: Proto::Tcp,
        host_port: 8081,
        internal_ip: Ipv4Addr::new(172, 31, 0, 10),
        internal_port: 80,
    });
    nat.max_entries = 64;
    let nat = UplinkNat {
        config: nat,
        networks: vec![front, back],
    };
    let spec = ThreadSpec {
        core: None,
        mode: PollMode::default(),
        pool: Pool::new(PoolConfig {
            chunks: 2048,
            large: 4,
            umem: false,
        })
        .unwrap(),
        ports,
        flows: None,
        replica: Default::default(),
    };
    let settings = SwitchSettings {
        mac_aging_secs: 300,
        fdb_size: 256,
    };
    let dp = Dataplane::start_with_nat(topo, settings, vec![spec], vec![Some(nat), None]).unwrap();
    (dp, peers)
}

/// Well-formed frames of every kind the switch parses, to corrupt.
fn templates() -> Vec<(usize, Vec<u8>)> {
    let c0 = [2, 0, 172, 30, 0, 10];
    let gw = gateway_mac(Ipv4Addr::new(172, 30, 0, 1)).0;
    let mut v = Vec::new();
    let mut f = Vec::new();
    PacketBuilder::ethernet2(c0, gw)
        .ipv4([172, 30, 0, 10], [10, 99, 0, 1], 64)
        .tcp(40000, 80, 1, 1000)
        .syn()
        .write(&mut f, b"")
        .unwrap();
    v.push((0, f));
    let mut f = Vec::new();
    PacketBuilder::ethernet2(c0, gw)
        .ipv4([172, 30, 0, 10], [10, 99, 0, 1], 64)
        .udp(5000, 53)
        .write(&mut f, b"query")
        .unwrap();
    v.push((0, f));
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0x99, 0, 0, 0, 1], UPLINK_MAC)
        .ipv4([10, 99, 0, 1], [10, 99, 0, 2], 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut f, b"ping")
        .unwrap();
    v.push((2, f));
    // VXLAN from the known remote VTEP to the overlay uplink.
    let mut inner = Vec::new();
    PacketBuilder::ethernet2([2, 0, 10, 200, 0, 20], [0xff; 6])
        .ipv4([10, 200, 0, 20], [10, 200, 0, 255], 64)
        .udp(1, 2)
        .write(&mut inner, b"bcast")
        .unwrap();
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    vx.extend_from_slice(&inner);
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0x98, 0, 0, 0, 1], [2, 0x98, 0, 0, 0, 2])
        .ipv4([10, 98, 0, 1], [10, 98, 0, 2], 64)
        .udp(50000, 4789)
        .write(&mut f, &vx)
        .unwrap();
    v.push((4, f));
    // ARP request for the gateway.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&c0);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&c0);
    arp.extend_from_slice(&[172, 30, 0, 10, 0, 0, 0, 0, 0, 0, 172, 30, 0, 1]);
    v.push((0, arp));
    // Overlay endpoint to the remote endpoint.
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0, 10, 200, 0, 10], [2, 0, 10, 200, 0, 20])
        .ipv4([10, 200, 0, 10], [10, 200, 0, 20], 64)
        .udp(7, 7)
        .write(&mut f, b"over")
        .unwrap();
    v.push((3, f));
    // back to front's endpoint (isolated), and front to back's mapped
    // port through the uplink address (a hairpin across networks).
    let back_gw = gateway_mac(Ipv4Addr::new(172, 31, 0, 1)).0;
    for (port, src_mac, gw_mac, src, dst) in [
        (
            5,
            [2, 0, 172, 31, 0, 10],
            back_gw,
            [172, 31, 0, 10],
            [172, 30, 0, 10],
        ),
        (0, c0, gw, [172, 30, 0, 10], [10, 99, 0, 2]),
    ] {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(src_mac, gw_mac)
            .ipv4(src, dst, 64)
            .tcp(40000, 8081, 1, 1000)
            .syn()
            .write(&mut f, b"")
            .unwrap();
        v.push((port, f));
    }
    v
}

/// The UDP query of `templates()[1]` after SNAT: from the uplink address
/// to 10.99.0.1:53.
fn is_query_from_the_uplink(f: &[u8]) -> bool {
    let Ok(p) = etherparse::SlicedPacket::from_ethernet(f) else {
        return false;
    };
    let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Udp(udp))) =
        (p.net, p.transport)
    else {
        return false;
    };
    ip.header().source() == [10, 99, 0, 2]
        && ip.header().destination() == [10, 99, 0, 1]
        && udp.destination_port() == 53
        && udp.payload() == b"query"
}

fn hostile_frame() -> impl Strategy<Value = (usize, Vec<u8>)> {
    let t = templates();
    prop_oneof![
        (0usize..6, proptest::collection::vec(any::<u8>(), 0..200)),
        (
            0..t.len(),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            any::<prop::sample::Index>()
        )
            .prop_map(move |(i, flips, cut)| {
                let (port, mut f) = t[i].clone();
                for (at, b) in flips {
                    let k = at.index(f.len());
                    f[k] = b;
                }
                let keep = cut.index(f.len() + 1).max(f.len() / 2);
                f.truncate(keep);
                (port, f)
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_and_corrupted_frames_never_panic_or_leak(frames in proptest::collection::vec(hostile_frame(), 1..64)) {
        let (dp, peers) = start();
        for (port, f) in frames {
            let _ = peers[port].send(f);
        }
        inmem::outputs(&dp, &peers);
        // Good traffic still flows: the NAT-ed UDP query leaves the uplink.
        let (_, good) = templates()[1].clone();
        prop_assert!(peers[0].send(good));
        let out = inmem::outputs(&dp, &peers);
        prop_assert!(
            out[2].iter().any(|f| is_query_from_the_uplink(f)),
            "the switch stopped forwarding after hostile input; the uplink sent {:?}",
            out[2]
        );
        for r in dp.stop() {
            prop_assert!(!r.panicked, "a PMD thread panicked");
            prop_assert_eq!(r.leaked, 0, "frames leaked from the pool");
        }
    }
}
