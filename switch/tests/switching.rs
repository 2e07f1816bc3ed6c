//! MAC learning, aging, flooding, isolation and the gateway, over in-memory
//! ports with real PMD threads (no kernel needed).

mod inmem;

use std::net::Ipv4Addr;
use std::time::Duration;

use etherparse::{PacketBuilder, SlicedPacket};
use pmd::memport::{mem_link, MemPeer};
use pmd::thread::PollMode;
use pmd::wire::MacAddr;
use pmd::{DropReason, Pool, PoolConfig, Port, PortId};
use switch::dataplane::{Dataplane, StartError, ThreadSpec};
use switch::pipeline::SwitchSettings;
use switch::topology::{gateway_mac, Topology};
use test_support::wait_until;

fn mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, n]
}

fn udp(src: [u8; 6], dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv4([172, 30, 0, src[5]], [172, 30, 0, dst[5]], 64)
        .udp(1000, 2000)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// Two networks: `a` with ports 0,1,2 and `b` with ports 3,4; with two
/// PMD threads, `a` runs on thread 0 and `b` on thread 1.
struct Lab {
    dp: Option<Dataplane>,
    peers: Vec<MemPeer>,
    /// The PMD thread of each port.
    thread_of: Vec<usize>,
}

/// A PMD thread with a small heap pool and no ports yet.
fn thread_spec() -> ThreadSpec {
    ThreadSpec {
        core: None,
        mode: PollMode::default(),
        pool: Pool::new(PoolConfig {
            chunks: 1024,
            large: 4,
            umem: false,
        })
        .unwrap(),
        ports: Vec::new(),
        flows: None,
        replica: Default::default(),
    }
}

impl Lab {
    fn new(threads: usize, aging_secs: u32) -> Lab {
        let mut topo = Topology::default();
        let a = topo.add_network(
            "a",
            "172.30.0.0/24".parse().unwrap(),
            Some(Ipv4Addr::new(172, 30, 0, 1)),
        );
        let b = topo.add_network("b", "172.31.0.0/24".parse().unwrap(), None);
        let nets = [a, a, a, b, b];
        let mut specs: Vec<ThreadSpec> = (0..threads).map(|_| thread_spec()).collect();
        let mut peers = Vec::new();
        let mut thread_of = Vec::new();
        for (i, net) in nets.iter().enumerate() {
            let id = topo.add_port(&format!("p{i}"), Some(*net));
            let (port, peer) = mem_link(&format!("p{i}"), id, 256);
            // A network lives on one thread (Dataplane::start refuses less).
            let t = net.0 as usize % threads;
            specs[t].ports.push((id, Box::new(port) as Box<dyn Port>));
            peers.push(peer);
            thread_of.push(t);
        }
        let settings = SwitchSettings {
            mac_aging_secs: aging_secs,
            fdb_size: 1024,
        };
        let dp = Dataplane::start(topo, settings, specs).unwrap();
        Lab {
            dp: Some(dp),
            peers,
            thread_of,
        }
    }

    fn dp(&self) -> &Dataplane {
        self.dp.as_ref().unwrap()
    }

    /// Sends a frame in on `port` and returns what every port emitted.
    fn send(&self, port: usize, frame: Vec<u8>) -> Vec<Vec<Vec<u8>>> {
        assert!(self.peers[port].send(frame));
        inmem::outputs(self.dp(), &self.peers)
    }

    fn receivers(out: &[Vec<Vec<u8>>]) -> Vec<usize> {
        (0..out.len()).filter(|i| !out[*i].is_empty()).collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(dp) = self.dp.take() {
            let reports = dp.stop();
            if !std::thread::panicking() {
                for r in reports {
                    assert!(!r.panicked, "a PMD thread panicked");
                    assert_eq!(r.leaked, 0, "frames leaked from a pool");
                }
            }
        }
    }
}

fn switching_learns_and_floods(threads: usize) {
    let lab = Lab::new(threads, 300);
    // Unknown destination: flooded to the other ports of network a only.
    let out = lab.send(0, udp(mac(1), mac(2), b"hello"));
    assert_eq!(
        Lab::receivers(&out),
        vec![1, 2],
        "flood stays inside network a"
    );
    assert_eq!(out[1][0], udp(mac(1), mac(2), b"hello"), "frame unchanged");
    // The reply teaches the switch where mac 2 is; mac 1 is known already.
    let out = lab.send(1, udp(mac(2), mac(1), b"reply"));
    assert_eq!(Lab::receivers(&out), vec![0], "unicast to the learned port");
    let out = lab.send(0, udp(mac(1), mac(2), b"again"));
    assert_eq!(Lab::receivers(&out), vec![1]);
    let fdb = lab.dp().fdb();
    let learned: Vec<(MacAddr, PortId)> = fdb.iter().map(|r| (r.mac, r.port)).collect();
    assert!(learned.contains(&(MacAddr(mac(1)), PortId(0))));
    assert!(learned.contains(&(MacAddr(mac(2)), PortId(1))));
    let net = lab.dp().net_stats();
    assert_eq!(net[0].flooded, 1);
    assert_eq!(net[0].unicast, 2);
}

#[test]
fn unknown_unicast_floods_within_the_network_then_learned_macs_go_unicast() {
    switching_learns_and_floods(1);
}

#[test]
fn two_networks_on_two_pmd_threads_each_switch_their_own_traffic() {
    let lab = Lab::new(2, 300);
    assert_ne!(
        lab.thread_of[0], lab.thread_of[3],
        "fixture: a and b on two threads"
    );
    // Network a (ports 0,1,2), then network b (ports 3,4): flood, learn,
    // unicast, each on its own thread.
    for (x, y, flood) in [(0, 1, vec![1, 2]), (3, 4, vec![4])] {
        let (mx, my) = (mac(10 + x as u8), mac(10 + y as u8));
        let out = lab.send(x, udp(mx, my, b"who"));
        assert_eq!(Lab::receivers(&out), flood, "flood from port {x}");
        let out = lab.send(y, udp(my, mx, b"reply"));
        assert_eq!(Lab::receivers(&out), vec![x], "unicast back to port {x}");
        let out = lab.send(x, udp(mx, my, b"again"));
        assert_eq!(Lab::receivers(&out), vec![y], "unicast to port {y}");
    }
    let fdb: Vec<(String, PortId)> = lab
        .dp()
        .fdb()
        .into_iter()
        .map(|r| (r.network, r.port))
        .collect();
    for (net, port) in [("a", 0), ("a", 1), ("b", 3), ("b", 4)] {
        assert!(fdb.contains(&(net.to_string(), PortId(port))), "{fdb:?}");
    }
    for net in lab.dp().net_stats().iter().take(2) {
        assert_eq!((net.flooded, net.unicast), (1, 2));
    }
}

/// Starts a data plane over `topo` with each port on the given thread.
fn start_placed(
    topo: Topology,
    threads: usize,
    placement: &[(PortId, usize)],
) -> Result<Dataplane, StartError> {
    let mut specs: Vec<ThreadSpec> = (0..threads).map(|_| thread_spec()).collect();
    for (id, t) in placement {
        let (port, _peer) = mem_link(&format!("m{}", id.0), *id, 16);
        specs[*t].ports.push((*id, Box::new(port)));
    }
    Dataplane::start(topo, SwitchSettings::default(), specs)
}

#[test]
fn a_network_split_between_two_pmd_threads_is_refused_with_its_ports_named() {
    let mut topo = Topology::default();
    let a = topo.add_network("a", "172.30.0.0/24".parse().unwrap(), None);
    let p0 = topo.add_port("p0", Some(a));
    let p1 = topo.add_port("p1", Some(a));
    let err = start_placed(topo, 2, &[(p0, 0), (p1, 1)])
        .err()
        .expect("a split network is refused");
    assert_eq!(
        err.to_string(),
        "network a: port p1 is on PMD thread 1 but port p0 is on thread 0; a network, \
         its uplink and the networks sharing that uplink must be on the same PMD threads"
    );
}

#[test]
fn a_network_whose_every_port_has_a_queue_on_both_threads_starts_and_a_port_twice_on_one_does_not()
{
    let mut topo = Topology::default();
    let a = topo.add_network("a", "172.30.0.0/24".parse().unwrap(), None);
    let p0 = topo.add_port("p0", Some(a));
    let p1 = topo.add_port("p1", Some(a));
    let dp = start_placed(topo.clone(), 2, &[(p0, 0), (p1, 0), (p0, 1), (p1, 1)])
        .expect("a spread network starts");
    assert_eq!(
        dp.port_counters(p0).map(<[_]>::len),
        Some(2),
        "a queue per thread"
    );
    for r in dp.stop() {
        assert!(!r.panicked);
    }
    // p1 on thread 1 only: split.
    assert!(matches!(
        start_placed(topo.clone(), 2, &[(p0, 0), (p1, 0), (p0, 1)]),
        Err(StartError::SplitNetwork { .. })
    ));
    let err = start_placed(topo, 1, &[(p0, 0), (p1, 0), (p0, 0)])
        .err()
        .expect("one port twice on one thread is refused");
    assert_eq!(err.to_string(), "port p0 is given to PMD thread 0 twice");
}

/// Network `a` with port p0 and uplink up0: (topology, p0, up0's port).
fn network_with_uplink() -> (Topology, PortId, PortId) {
    let mut topo = Topology::default();
    let a = topo.add_network("a", "172.30.0.0/24".parse().unwrap(), None);
    let p0 = topo.add_port("p0", Some(a));
    let up = topo.add_uplink(
        "up0",
        Ipv4Addr::new(10, 99, 0, 2),
        "10.99.0.0/24".parse().unwrap(),
        None,
        MacAddr([2, 0x99, 0, 0, 0, 2]),
    );
    topo.set_uplink(a, up);
    let up_port = topo.uplink(up).port;
    (topo, p0, up_port)
}

#[test]
fn a_network_whose_uplink_is_on_another_pmd_thread_is_refused() {
    let (topo, p0, up0) = network_with_uplink();
    let err = start_placed(topo, 2, &[(p0, 0), (up0, 1)])
        .err()
        .expect("an uplink away from its network is refused");
    assert!(
        matches!(&err, StartError::SplitNetwork { network, port, .. } if network == "a" && port == "up0"),
        "{err}"
    );
    // The same network with its uplink on its own thread starts.
    let (topo, p0, up0) = network_with_uplink();
    let dp = start_placed(topo, 2, &[(p0, 1), (up0, 1)]).expect("one thread for both");
    for r in dp.stop() {
        assert!(!r.panicked);
        assert_eq!(r.leaked, 0);
    }
}

#[test]
fn broadcast_never_crosses_into_another_network() {
    let lab = Lab::new(1, 300);
    let out = lab.send(3, udp(mac(3), [0xff; 6], b"bcast from b"));
    assert_eq!(Lab::receivers(&out), vec![4]);
    let out = lab.send(0, udp(mac(1), [0xff; 6], b"bcast from a"));
    assert_eq!(Lab::receivers(&out), vec![1, 2]);
    // A MAC learned in network a is unknown in network b: flooded in b only.
    let out = lab.send(3, udp(mac(3), mac(1), b"to a's mac"));
    assert_eq!(Lab::receivers(&out), vec![4]);
}

#[test]
fn an_aged_mac_is_flooded_again() {
    let lab = Lab::new(1, 1);
    lab.send(1, udp(mac(2), mac(9), b"learn me"));
    assert_eq!(
        Lab::receivers(&lab.send(0, udp(mac(1), mac(2), b"x"))),
        vec![1]
    );
    wait_until(
        "MAC 2 to age out of the FDB (aging 1 s)",
        Duration::from_secs(10),
        || lab.dp().fdb().iter().all(|r| r.mac != MacAddr(mac(2))),
    );
    assert_eq!(
        Lab::receivers(&lab.send(0, udp(mac(1), mac(2), b"x"))),
        vec![1, 2],
        "after aging the destination is unknown again"
    );
}

#[test]
fn the_gateway_answers_arp_and_ping() {
    let lab = Lab::new(1, 300);
    let gw = [172, 30, 0, 1];
    let gw_mac = gateway_mac(Ipv4Addr::from(gw)).0;
    // ARP who-has 172.30.0.1 from 172.30.0.10.
    let mut arp = Vec::new();
    arp.extend_from_slice(&[0xff; 6]);
    arp.extend_from_slice(&mac(10));
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&mac(10));
    arp.extend_from_slice(&[172, 30, 0, 10]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&gw);
    arp.resize(60, 0);
    let out = lab.send(0, arp);
    assert_eq!(
        Lab::receivers(&out),
        vec![0],
        "only the asker gets the reply"
    );
    let reply = &out[0][0];
    assert_eq!(&reply[0..6], &mac(10));
    assert_eq!(&reply[6..12], &gw_mac);
    assert_eq!(&reply[20..22], &[0, 2], "ARP reply opcode");
    assert_eq!(&reply[22..28], &gw_mac, "sender MAC is the gateway's");
    assert_eq!(&reply[28..32], &gw, "sender IP is the gateway");

    // ICMP echo to the gateway.
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(mac(10), gw_mac)
        .ipv4([172, 30, 0, 10], gw, 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut ping, b"abcdefgh")
        .unwrap();
    let out = lab.send(0, ping);
    assert_eq!(Lab::receivers(&out), vec![0]);
    let p = SlicedPacket::from_ethernet(&out[0][0]).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    assert_eq!(ip.header().source(), gw);
    assert_eq!(ip.header().destination(), [172, 30, 0, 10]);
    let Some(etherparse::TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!("not ICMP")
    };
    assert!(matches!(
        icmp.icmp_type(),
        etherparse::Icmpv4Type::EchoReply(h) if h.id == 7 && h.seq == 1
    ));
    assert_eq!(icmp.payload(), b"abcdefgh");
    // Checksums are right: recompute and compare.
    let hdr = ip.header().to_header();
    assert_eq!(hdr.header_checksum, hdr.calc_header_checksum());
    let icmp_hdr = icmp.header();
    assert_eq!(
        icmp_hdr.checksum,
        icmp_hdr.icmp_type.calc_checksum(icmp.payload())
    );
    let net = lab.dp().net_stats();
    assert_eq!((net[0].arp_replies, net[0].echo_replies), (1, 1));
}

#[test]
fn malformed_frames_are_counted_and_the_switch_keeps_working() {
    let lab = Lab::new(1, 300);
    let good = udp(mac(1), mac(2), b"fine");
    let mut llc = good.clone();
    llc[12..14].copy_from_slice(&46u16.to_be_bytes());
    let mut truncated_ip = good.clone();
    truncated_ip.truncate(30);
    let mut bad_len = good.clone();
    bad_len[16..18].copy_from_slice(&1400u16.to_be_bytes());
    let mut mcast_src = good.clone();
    mcast_src[6] = 0x01;
    for bad in [vec![0u8; 9], llc, truncated_ip, bad_len, mcast_src, vec![]] {
        let out = lab.send(0, bad);
        assert!(Lab::receivers(&out).is_empty(), "a bad frame was forwarded");
    }
    let stats = lab.dp().port_stats();
    assert_eq!(stats[0].drops_of(DropReason::Runt), 2);
    assert_eq!(stats[0].drops_of(DropReason::BadEtherType), 1);
    assert_eq!(stats[0].drops_of(DropReason::Truncated), 2);
    assert_eq!(stats[0].drops_of(DropReason::BadSourceMac), 1);
    // And good traffic still flows.
    let out = lab.send(0, good);
    assert_eq!(Lab::receivers(&out), vec![1, 2]);
}

#[test]
fn ethernet_padding_is_trimmed_before_forwarding() {
    let lab = Lab::new(1, 300);
    let frame = udp(mac(1), mac(2), b"hi");
    let mut padded = frame.clone();
    padded.resize(60, 0xee);
    let out = lab.send(0, padded);
    assert_eq!(out[1][0], frame);
}
