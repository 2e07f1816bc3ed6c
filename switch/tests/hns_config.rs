//! HNS JSON in the config: `include = [...]` and `podswitch hns import`
//! with JSON as flannel and the Windows CNI plugins write it
//! (tests/hns/*.json): v1 and v2 shapes give one model, the imported TOML
//! is the same config, and every refusal names FILE:LINE:COL in the JSON.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use switch::config::{self, AclAction, AclDirection, Config, MacAddr, NetworkMode, Protocol};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hns")
        .join(name)
}

const OVERLAY_PORTS: &str = r#"
[[port]]
name = "Ethernet"
iface = "eth0"
ip = "192.168.50.2/24"
"#;

const NAT_PORTS: &str = r#"
[[port]]
name = "uplink"
iface = "eth0"
ip = "192.168.1.10/24"
gateway = "192.168.1.1"
"#;

/// The config of `ports` plus `include = [json]`, written beside nothing:
/// the include names the fixture by absolute path.
fn with_include(ports: &str, json: &Path) -> Result<Config, config::ConfigErrors> {
    let text = format!("include = [{:?}]\n{ports}", json.display().to_string());
    config::parse(&text, "/tmp/podswitch-hns-test.toml")
}

#[test]
fn v1_and_v2_overlay_objects_map_to_the_same_config() {
    let v1 = with_include(OVERLAY_PORTS, &fixture("overlay-v1.json")).unwrap();
    let v2 = with_include(OVERLAY_PORTS, &fixture("overlay-v2.json")).unwrap();
    assert_eq!(v1, v2);
    let net = v1.network("vxlan0").unwrap();
    assert_eq!(net.mode, NetworkMode::Overlay);
    assert_eq!(net.vni, Some(4096), "VSID is the VNI");
    assert_eq!(net.uplink.as_deref(), Some("Ethernet"));
    assert_eq!(net.gateway, Some(Ipv4Addr::new(10, 244, 1, 1)));
    assert_eq!(
        net.mac_pool,
        Some((
            "0e:2a:0a:f4:00:00".parse().unwrap(),
            "0e:2a:0a:f4:ff:ff".parse().unwrap()
        ))
    );
    let remote = &v1.remote_endpoints[0];
    assert_eq!(remote.ip, Ipv4Addr::new(10, 244, 2, 5));
    assert_eq!(remote.vtep, Ipv4Addr::new(192, 168, 50, 3), "the PA policy");
    assert_eq!(remote.mac, "0e:2a:0a:f4:02:05".parse::<MacAddr>().unwrap());
    let pod = v1.endpoint("pod1").unwrap();
    assert_eq!(pod.ip, Ipv4Addr::new(10, 244, 1, 2));
    assert_eq!(
        pod.policy.routes[0].destination,
        "10.96.0.0/12".parse().unwrap()
    );
}

#[test]
fn v1_and_v2_nat_policies_map_to_the_same_config() {
    let v1 = with_include(NAT_PORTS, &fixture("nat-v1.json")).unwrap();
    let v2 = with_include(NAT_PORTS, &fixture("nat-v2.json")).unwrap();
    assert_eq!(v1, v2);
    let net = v1.network("nat").unwrap();
    assert_eq!(
        net.uplink.as_deref(),
        Some("uplink"),
        "NetworkAdapterName by iface"
    );
    assert_eq!(
        net.dns,
        vec![Ipv4Addr::new(172, 16, 0, 10), Ipv4Addr::new(172, 16, 0, 11)]
    );
    let m = &v1.port_mappings[0];
    assert_eq!(
        (m.protocol, m.host_port, m.endpoint.as_str(), m.port),
        (Protocol::Tcp, 8080, "web", 80)
    );
    let web = v1.endpoint("web").unwrap();
    assert_eq!(
        web.policy.nat_exceptions,
        vec![
            "192.168.0.0/16".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap()
        ]
    );
    let acl = &web.policy.acl;
    assert_eq!(acl.len(), 2);
    assert_eq!(
        (
            acl[0].action,
            acl[0].direction,
            acl[0].protocols.clone(),
            acl[0].local_ports.clone(),
            acl[0].priority
        ),
        (
            AclAction::Block,
            AclDirection::In,
            vec![6],
            vec![(9090, 9090)],
            200
        )
    );
    assert_eq!(
        (
            acl[1].action,
            acl[1].direction,
            acl[1].protocols.clone(),
            acl[1].remote_ports.clone()
        ),
        (
            AclAction::Allow,
            AclDirection::Out,
            vec![17],
            vec![(53, 53)]
        )
    );
}

#[test]
fn hns_import_output_passes_check_as_the_same_config() {
    for (ports, files) in [
        (OVERLAY_PORTS, ["overlay-v1.json"]),
        (OVERLAY_PORTS, ["overlay-v2.json"]),
        (NAT_PORTS, ["nat-v1.json"]),
        (NAT_PORTS, ["nat-v2.json"]),
    ] {
        let paths: Vec<PathBuf> = files.iter().map(|f| fixture(f)).collect();
        let toml = config::import_hns(&paths, Some((ports, "ports.toml"))).unwrap();
        let imported = config::parse(&format!("{ports}\n{toml}"), "imported.toml")
            .unwrap_or_else(|e| panic!("{files:?}: check refuses the import:\n{e}\n---\n{toml}"));
        let included = with_include(ports, &paths[0]).unwrap();
        assert_eq!(imported, included, "{files:?}:\n{toml}");
    }
}

#[test]
fn the_podswitch_binary_imports_and_checks() {
    let dir = std::env::temp_dir().join(format!("pshns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ports = dir.join("ports.toml");
    std::fs::write(&ports, NAT_PORTS).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_podswitch"))
        .args(["hns", "import", "--config"])
        .arg(&ports)
        .arg(fixture("nat-v1.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = String::from_utf8(out.stdout).unwrap();
    let file = dir.join("imported.toml");
    std::fs::write(&file, format!("{NAT_PORTS}\n{toml}")).unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_podswitch"))
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        check.status.success(),
        "{}\n---\n{toml}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Includes `json` (written to a temp file) from a config with
/// `ports`, and returns the one error line, which must name the JSON
/// file at the line and column of `needle` (its first occurrence).
fn refused_at(ports: &str, json: &str, needle: &str) -> String {
    let dir = std::env::temp_dir().join(format!("pshns-{}-{}", std::process::id(), needle.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let jf = dir.join("net.json");
    std::fs::write(&jf, json).unwrap();
    let cf = dir.join("host.toml");
    std::fs::write(&cf, format!("include = [\"net.json\"]\n{ports}")).unwrap();
    let errs = config::load(&cf).expect_err("refused").to_string();
    let _ = std::fs::remove_dir_all(&dir);
    let at = json.find(needle).expect("needle in the JSON");
    let (line, col) = config::line_col(json, at);
    let want = format!("{}:{line}:{col}: ", jf.display());
    assert!(
        errs.lines().any(|l| l.starts_with(&want)),
        "want an error at {want}; got:\n{errs}"
    );
    errs
}

const NAT_NET: &str = r#"{
  "Name": "nat",
  "Type": "NAT",
  "NetworkAdapterName": "eth0",
  "Subnets": [{"AddressPrefix": "172.16.0.0/24", "GatewayAddress": "172.16.0.1"}]
}"#;

#[test]
fn an_unsupported_policy_is_refused_by_name_at_its_place() {
    let json = format!(
        r#"[{NAT_NET},
  {{
    "Name": "web",
    "VirtualNetworkName": "nat",
    "Policies": [
      {{"Type": "QOS", "MaximumOutgoingBandwidthInBytes": 1000000}}
    ]
  }}]"#
    );
    let errs = refused_at(NAT_PORTS, &json, "\"QOS\"");
    assert!(
        errs.contains("policy type \"QOS\" is not supported"),
        "{errs}"
    );
}

#[test]
fn an_unknown_field_is_refused_not_dropped() {
    let json = format!(
        r#"[{NAT_NET},
  {{"Name": "web", "VirtualNetworkName": "nat", "DisableICC": true}}]"#
    );
    let errs = refused_at(NAT_PORTS, &json, "\"DisableICC\"");
    assert!(errs.contains("\"DisableICC\" is not supported"), "{errs}");
}

#[test]
fn ics_and_private_networks_are_refused_by_name() {
    for ty in ["ICS", "Private"] {
        let json = NAT_NET.replace("\"NAT\"", &format!("{ty:?}"));
        let errs = refused_at(NAT_PORTS, &json, &format!("{ty:?}"));
        assert!(
            errs.contains(&format!("HNS network type {ty:?} is not supported")),
            "{errs}"
        );
    }
}

#[test]
fn a_bad_mac_is_refused_at_its_place_in_the_json() {
    let json = format!(
        r#"[{NAT_NET},
  {{"Name": "web", "VirtualNetworkName": "nat", "MacAddress": "0E-2A-0a-f4-02"}}]"#
    );
    let errs = refused_at(NAT_PORTS, &json, "\"0E-2A-0a-f4-02\"");
    assert!(errs.contains("mac"), "{errs}");
}

#[test]
fn a_bad_prefix_is_refused_at_its_place_in_the_json() {
    let json = NAT_NET.replace("172.16.0.0/24", "172.16.0.0/33");
    let errs = refused_at(NAT_PORTS, &json, "\"172.16.0.0/33\"");
    assert!(errs.contains("subnet"), "{errs}");
}

#[test]
fn a_json_syntax_error_is_refused_at_its_place() {
    let json = NAT_NET.replace("\"Type\": \"NAT\",", "\"Type\": \"NAT\" ,,");
    // The second comma is the unexpected token.
    refused_at(NAT_PORTS, &json, ",\n  \"NetworkAdapterName\"");
}

#[test]
fn a_remote_endpoint_without_a_pa_policy_is_refused() {
    let json = r#"[{
  "Name": "ov", "Type": "Overlay", "NetworkAdapterName": "Ethernet",
  "Subnets": [{"AddressPrefix": "10.244.0.0/16", "Policies": [{"Type": "VSID", "VSID": 4096}]}]
}, {
  "Name": "r", "VirtualNetworkName": "ov", "IPAddress": "10.244.2.5", "IsRemoteEndpoint": true
}]"#;
    let errs = refused_at(OVERLAY_PORTS, json, "{\n  \"Name\": \"r\"");
    assert!(errs.contains("PA policy"), "{errs}");
}

#[test]
fn an_endpoint_gateway_other_than_its_networks_is_refused() {
    let json = format!(
        r#"[{NAT_NET},
  {{"Name": "web", "VirtualNetworkName": "nat", "GatewayAddress": "172.16.0.254"}}]"#
    );
    let errs = refused_at(NAT_PORTS, &json, "\"172.16.0.254\"");
    assert!(
        errs.contains("is not the gateway of network \"nat\""),
        "{errs}"
    );
}

#[test]
fn outbound_nat_on_an_overlay_endpoint_is_refused() {
    let json = r#"[{
  "Name": "ov", "Type": "Overlay", "NetworkAdapterName": "Ethernet",
  "Subnets": [{"AddressPrefix": "10.244.0.0/16", "Policies": [{"Type": "VSID", "VSID": 4096}]}]
}, {
  "Name": "pod", "VirtualNetworkName": "ov",
  "Policies": [{"Type": "OutBoundNAT", "ExceptionList": ["10.244.0.0/16"]}]
}]"#;
    let errs = refused_at(OVERLAY_PORTS, json, "\"10.244.0.0/16\"]");
    assert!(
        errs.contains("nat_exceptions are for endpoints of nat networks"),
        "{errs}"
    );
}

#[test]
fn transparent_l2bridge_and_l2tunnel_networks_map_onto_the_l2_modes_and_pass_check() {
    for (hns, mode) in [
        ("Transparent", NetworkMode::Transparent),
        ("L2Bridge", NetworkMode::L2Bridge),
        ("L2Tunnel", NetworkMode::L2Tunnel),
    ] {
        // As the Windows l2bridge CNI plugin writes them: the network is
        // the host's own segment, its gateway the segment's router.
        let json = format!(
            r#"[
  {{
    "Name": "seg",
    "Type": "{hns}",
    "NetworkAdapterName": "Ethernet",
    "Subnets": [{{"AddressPrefix": "192.168.1.0/24", "GatewayAddress": "192.168.1.1"}}]
  }},
  {{
    "Name": "pod1",
    "VirtualNetworkName": "seg",
    "IPAddress": "192.168.1.50",
    "MacAddress": "00-15-5D-01-02-03"
  }}
]"#
        );
        let dir = std::env::temp_dir().join(format!("pshns-l2-{}-{hns}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jf = dir.join("seg.json");
        std::fs::write(&jf, json).unwrap();
        let cfg = with_include(
            "[[port]]\nname = \"Ethernet\"\niface = \"eth0\"\nip = \"192.168.1.10/24\"\n",
            &jf,
        );
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = cfg.unwrap_or_else(|e| panic!("{hns}: {e}"));
        let net = cfg.network("seg").unwrap();
        assert_eq!(net.mode, mode, "{hns}");
        assert_eq!(net.uplink.as_deref(), Some("Ethernet"), "{hns}");
        assert_eq!(net.gateway, Some(Ipv4Addr::new(192, 168, 1, 1)), "{hns}");
        let pod = cfg.endpoint("pod1").unwrap();
        assert_eq!(pod.ip, Ipv4Addr::new(192, 168, 1, 50), "{hns}");
        assert_eq!(pod.mac, "00:15:5d:01:02:03".parse::<MacAddr>().unwrap());
    }
}
