//! What the checker fills in: defaults and IPAM, through `config::parse`.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use switch::config::{self, MacAddr, NatCfg, PollCfg, SwitchCfg};

const NET: &str = r#"
[[network]]
name = "n"
subnet = "10.0.0.0/24"
gateway = "10.0.0.2"
"#;

fn ips(cfg: &config::Config) -> Vec<String> {
    cfg.endpoints.iter().map(|e| e.ip.to_string()).collect()
}

#[test]
fn an_empty_file_is_a_config_of_defaults() {
    let cfg = config::parse("", "empty.toml").unwrap();
    assert_eq!(cfg.switch, SwitchCfg::default());
    assert!(
        cfg.switch.cores.is_empty(),
        "empty: the daemon picks the last core"
    );
    assert_eq!(cfg.switch.control, PathBuf::from("/run/podswitch.sock"));
    assert_eq!(cfg.switch.poll, PollCfg::Adaptive);
    assert_eq!(
        (cfg.switch.mac_aging_secs, cfg.switch.fdb_size),
        (300, 65536)
    );
    assert_eq!(cfg.nat, NatCfg::default());
    assert_eq!(cfg.nat.tcp_established, 432_000);
    assert_eq!(cfg.nat.max_entries, 1_048_576);
}

#[test]
fn ipam_skips_the_gateway_and_addresses_given_later_in_the_file() {
    let text = format!(
        "{NET}
[[endpoint]]
name = \"a\"
network = \"n\"
netns = \"a\"

[[endpoint]]
name = \"b\"
network = \"n\"
netns = \"b\"

[[endpoint]]
name = \"c\"
network = \"n\"
netns = \"c\"
ip = \"10.0.0.3\"
"
    );
    let cfg = config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    // .1 free, .2 the gateway, .3 named by c further down.
    assert_eq!(ips(&cfg), ["10.0.0.1", "10.0.0.4", "10.0.0.3"]);
    assert_eq!(
        cfg.endpoints[1].mac,
        MacAddr::from_ipv4(Ipv4Addr::new(10, 0, 0, 4))
    );
    assert!(!cfg.endpoints[0].ip_given && cfg.endpoints[2].ip_given);
}

#[test]
fn every_semantic_error_is_reported_not_just_the_first() {
    let text = format!(
        "{NET}uplink = \"nope\"
vni = 3

[[endpoint]]
name = \"a\"
network = \"m\"
"
    );
    let err = config::parse(&text, "t.toml").unwrap_err();
    let lines: Vec<_> = err.to_string().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines[0].starts_with("t.toml:6:10: uplink \"nope\""),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with("t.toml:7:7: vni is only"),
        "{lines:#?}"
    );
    assert!(
        lines[2].starts_with("t.toml:9:1: endpoint \"a\" needs netns"),
        "{lines:#?}"
    );
    assert!(
        lines[3].starts_with("t.toml:11:11: network \"m\""),
        "{lines:#?}"
    );
}

#[test]
fn a_toml_syntax_error_is_the_one_error_reported() {
    let err = config::parse("[switch\ncores = [1]\n", "t.toml").unwrap_err();
    assert_eq!(err.errors().len(), 1);
    assert_eq!((err.errors()[0].line, err.errors()[0].col), (1, 8));
}

#[test]
fn one_host_port_may_be_mapped_on_two_uplinks() {
    let mut text = String::new();
    for i in 0..2 {
        text += &format!(
            "
[[port]]
name = \"up{i}\"
iface = \"veth{i}\"
ip = \"10.9{i}.0.2/24\"

[[network]]
name = \"n{i}\"
subnet = \"172.3{i}.0.0/24\"
uplink = \"up{i}\"

[[endpoint]]
name = \"e{i}\"
network = \"n{i}\"
netns = \"e{i}\"

[[port_mapping]]
protocol = \"tcp\"
host_port = 8080
endpoint = \"e{i}\"
port = 80
"
        );
    }
    let cfg = config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.port_mappings.len(), 2, "each uplink has its own table");
}

#[test]
fn ipam_skips_reserved_ranges_and_hands_out_the_mac_pool_around_given_macs() {
    let text = r#"
[[network]]
name = "n"
subnet = "10.0.0.0/24"
reserved = ["10.0.0.2-10.0.0.4", "10.0.0.6"]
mac_pool = "00:15:5d:00:00:00-00:15:5d:00:ff:ff"
[[endpoint]]
name = "a"
network = "n"
netns = "a"
[[endpoint]]
name = "b"
network = "n"
netns = "b"
[[endpoint]]
name = "c"
network = "n"
netns = "c"
mac = "00:15:5d:00:00:01"
allow_spoofing = true
"#;
    let cfg = config::parse(text, "t.toml").unwrap();
    assert_eq!(ips(&cfg), ["10.0.0.5", "10.0.0.7", "10.0.0.8"]);
    let macs: Vec<String> = cfg.endpoints.iter().map(|e| e.mac.to_string()).collect();
    assert_eq!(
        macs,
        [
            "00:15:5d:00:00:00",
            "00:15:5d:00:00:02",
            "00:15:5d:00:00:01"
        ],
        "the pool skips the MAC c gives"
    );
    let n = cfg.network("n").unwrap();
    assert_eq!(
        n.mac_pool.map(|(a, _)| a.to_string()).as_deref(),
        Some("00:15:5d:00:00:00")
    );
    let spoof: Vec<bool> = cfg.endpoints.iter().map(|e| e.allow_spoofing).collect();
    assert_eq!(
        spoof,
        [false, false, true],
        "anti-spoofing is on by default"
    );
}
