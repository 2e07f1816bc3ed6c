//! Every file in configs/ is a valid config: a new example is covered
//! by adding it to the directory.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use switch::config::{
    self, Attach, EndpointLink, MacAddr, NetworkMode, PollCfg, PortKind, Protocol,
};

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

fn example(name: &str) -> config::Config {
    let path = configs_dir().join(name);
    config::load(&path).unwrap_or_else(|e| panic!("\n{e}"))
}

#[test]
fn every_example_config_loads() {
    let mut seen = 0;
    let mut failures = Vec::new();
    for entry in fs::read_dir(configs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            seen += 1;
            if let Err(e) = config::load(&path) {
                failures.push(e.to_string());
            }
        }
    }
    assert!(seen >= 3, "only {seen} example configs");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_veth_example_gives_its_network_veth_endpoints_and_the_others_taps() {
    let cfg = example("veth.toml");
    assert_eq!(
        cfg.network("front").unwrap().endpoint_link,
        EndpointLink::Veth
    );
    let nat = example("nat.toml");
    assert_eq!(
        nat.network("front").unwrap().endpoint_link,
        EndpointLink::Tap,
        "tap when left out"
    );
}

#[test]
fn the_nat_example_resolves_its_endpoints_and_mapping() {
    let cfg = example("nat.toml");
    let front = cfg.network("front").unwrap();
    assert_eq!(front.mode, NetworkMode::Nat);
    assert_eq!(front.uplink.as_deref(), Some("up0"));
    assert_eq!(cfg.uplink_of("front").unwrap().iface, "veth-up");

    let web = cfg.endpoint("web").unwrap();
    assert_eq!(web.ip, Ipv4Addr::new(172, 30, 0, 10));
    assert!(web.ip_given);
    assert_eq!(web.attach, Attach::Netns("web".into()));
    let db = cfg.endpoint("db").unwrap();
    assert_eq!(
        db.ip,
        Ipv4Addr::new(172, 30, 0, 2),
        "first free after the gateway"
    );
    assert!(!db.ip_given);
    assert_eq!(db.mac, "02:00:ac:1e:00:02".parse::<MacAddr>().unwrap());

    let m = &cfg.port_mappings[0];
    assert_eq!(m.network, "front", "resolved from the endpoint");
    assert_eq!((m.protocol, m.host_port, m.port), (Protocol::Tcp, 8080, 80));
    assert_eq!(cfg.nat.port_range, (32768, 60999));
}

#[test]
fn the_lab_example_keeps_its_networks_apart() {
    let cfg = example("lab.toml");
    assert_eq!(cfg.endpoints_of("left").count(), 2);
    assert_eq!(cfg.endpoints_of("right").count(), 1);
    let left = cfg.network("left").unwrap();
    assert_eq!(left.mode, NetworkMode::Nat, "bridge is an alias of nat");
    assert_eq!(
        left.gateway,
        Some(Ipv4Addr::new(10, 10, 1, 1)),
        "default gateway"
    );
    assert!(left.uplink.is_none());
    let ips: Vec<_> = cfg.endpoints.iter().map(|e| e.ip.to_string()).collect();
    assert_eq!(ips, ["10.10.1.2", "10.10.1.3", "10.10.2.1"]);
    assert!(cfg.cluster.is_none());
}

#[test]
fn the_rig_example_is_a_busy_polling_l2_switch_between_two_ports() {
    let cfg = example("rig.toml");
    assert_eq!(cfg.switch.poll, PollCfg::Busy);
    assert_eq!(cfg.switch.cores, [1], "the rig's DUT core");
    assert!(cfg.ports.iter().all(|p| p.kind == PortKind::AfXdp));
    let attaches: Vec<_> = cfg.endpoints.iter().map(|e| e.attach.clone()).collect();
    assert_eq!(
        attaches,
        [Attach::Port("pbd0".into()), Attach::Port("pbd1".into())]
    );
}

#[test]
fn the_rig_nat_examples_measure_af_xdp_on_one_core_and_af_packet_spread_over_two() {
    let one = example("rig-nat.toml");
    assert_eq!(one.switch.cores, [1]);
    assert!(
        one.ports.iter().all(|p| p.kind == PortKind::AfXdp),
        "packet rates"
    );
    let two = example("rig-nat-2cores.toml");
    assert_eq!(two.switch.cores, [1, 0], "the DUT core first");
    assert!(
        two.ports.iter().all(|p| p.kind == PortKind::Packet),
        "ports the kernel fans out"
    );
    assert_eq!(
        two.network("inside").map(|n| n.mode),
        Some(NetworkMode::Nat)
    );
    assert_ne!(
        one.switch.control, two.switch.control,
        "both can run at once"
    );
}

#[test]
fn the_nat_networks_example_shares_one_uplink_and_one_mapping_table() {
    let cfg = example("nat-networks.toml");
    for name in ["front", "back"] {
        let n = cfg.network(name).unwrap();
        assert_eq!(n.mode, NetworkMode::Nat, "{name}");
        assert_eq!(n.uplink.as_deref(), Some("up0"), "{name}");
    }
    let maps: Vec<_> = cfg
        .port_mappings
        .iter()
        .map(|m| (m.network.as_str(), m.protocol, m.host_port))
        .collect();
    assert_eq!(
        maps,
        [
            ("front", Protocol::Tcp, 8080),
            ("back", Protocol::Tcp, 5432),
            ("back", Protocol::Udp, 8080),
        ]
    );
}

#[test]
fn the_l2_examples_put_their_endpoints_on_the_uplinks_segment() {
    for (file, mode) in [
        ("transparent.toml", NetworkMode::Transparent),
        ("l2bridge.toml", NetworkMode::L2Bridge),
        ("l2tunnel.toml", NetworkMode::L2Tunnel),
    ] {
        let cfg = example(file);
        let lan = cfg.network("lan").unwrap();
        assert_eq!(lan.mode, mode, "{file}");
        assert_eq!(lan.uplink.as_deref(), Some("lan0"), "{file}");
        assert_eq!(lan.gateway, Some(Ipv4Addr::new(192, 168, 1, 1)), "{file}");
        assert_eq!(cfg.port("lan0").unwrap().kind, PortKind::Packet, "{file}");
        for e in cfg.endpoints_of("lan") {
            assert!(
                lan.subnet.contains(&e.ip),
                "{file}: {} on the segment",
                e.name
            );
        }
    }
    // IPAM skips the router and the uplink's own address.
    let tunnel = example("l2tunnel.toml");
    let web = tunnel.endpoint("web").unwrap();
    assert_eq!(web.ip, Ipv4Addr::new(192, 168, 1, 3));
    let transparent = example("transparent.toml");
    assert_eq!(
        transparent.endpoint("db").unwrap().mac,
        "02:00:c0:a8:01:33".parse::<MacAddr>().unwrap()
    );
}

#[test]
fn the_hns_example_takes_its_network_and_endpoint_from_its_json() {
    let cfg = example("hns.toml");
    let nat = cfg.network("nat").unwrap();
    assert_eq!(nat.mode, NetworkMode::Nat);
    assert_eq!(nat.uplink.as_deref(), Some("Ethernet"));
    let web = cfg.endpoint("web").unwrap();
    assert_eq!(web.mac, "00:15:5d:1f:00:02".parse::<MacAddr>().unwrap());
    assert_eq!(web.policy.nat_exceptions.len(), 1);
    assert_eq!(web.policy.acl.len(), 1);
    assert_eq!(cfg.port_mappings[0].host_port, 8080);
}
