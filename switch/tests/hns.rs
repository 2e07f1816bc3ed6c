//! HNS JSON end to end, as root: a switch whose networks and endpoints
//! come from `include = ["net.json"]`, written as flannel and the Windows
//! CNI plugins write it, checked on the wire. An overlay network (VSID
//! 4096, a remote endpoint with a PA policy) with a kernel vxlan peer; a
//! NAT network with an OutBoundNAT exception list and a port mapping; an
//! ACL that blocks one port. Every namespace and file is the test's own
//! and is removed by a guard, also when the test fails.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pmd::netns::{in_netns, unique_name, NetnsGuard};
use switch::lab::traffic::{ping, tcp_fetch, tcp_transfer, tcp_upload};

const MB: u64 = 1024 * 1024;

/// An HNS JSON file in the temp dir, removed on drop.
struct JsonFile(PathBuf);

impl JsonFile {
    fn new(text: &str) -> JsonFile {
        let path = std::env::temp_dir().join(format!("{}.json", unique_name("pshns")));
        std::fs::write(&path, text).unwrap();
        JsonFile(path)
    }

    fn include(&self) -> String {
        format!("include = [{:?}]", self.0.display().to_string())
    }
}

impl Drop for JsonFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether a TCP connection from `netns` to `to` is set up within 2 s.
fn connects(netns: &str, to: SocketAddr) -> bool {
    in_netns(netns, move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_ok()
    })
    .unwrap()
}

/// A listener on `at` inside `netns` (the kernel completes handshakes
/// into its backlog; nobody needs to accept).
fn listen(netns: &str, at: SocketAddr) -> TcpListener {
    in_netns(netns, move || TcpListener::bind(at))
        .unwrap()
        .unwrap()
}

#[test]
fn an_hns_overlay_with_vsid_4096_and_a_pa_remote_endpoint_talks_to_a_kernel_vxlan_peer() {
    if skip_unless_root("hns overlay") {
        return;
    }
    let host = NetnsGuard::new("psh-h").unwrap();
    let remote = NetnsGuard::new("psh-r").unwrap();
    let pod = NetnsGuard::new("psh-p").unwrap();
    uplink_veth(&host, &remote, "10.99.0.1/24");
    for args in [
        &[
            "link",
            "add",
            "vxlan0",
            "type",
            "vxlan",
            "id",
            "4096",
            "local",
            "10.99.0.1",
            "remote",
            "10.99.0.2",
            "dstport",
            "4789",
            "dev",
            "out0",
        ][..],
        &["link", "set", "vxlan0", "address", "0e:2a:0a:f4:02:05"],
        &["addr", "add", "10.244.2.5/16", "dev", "vxlan0"],
        &["link", "set", "vxlan0", "up"],
    ] {
        remote.exec("ip", args).unwrap();
    }
    // As flannel's vxlan backend (v1 hcsshim) and win-overlay write them.
    let json = JsonFile::new(&format!(
        r#"[
  {{
    "ID": "5b3a1e56-6d0a-4c8f-9c1e-0f4a1d2b3c4d",
    "Name": "vxlan0",
    "Type": "Overlay",
    "NetworkAdapterName": "up0",
    "Subnets": [
      {{
        "AddressPrefix": "10.244.0.0/16",
        "GatewayAddress": "10.244.1.1",
        "Policies": [{{"Type": "VSID", "VSID": 4096}}]
      }}
    ]
  }},
  {{
    "Name": "{pod}",
    "VirtualNetworkName": "vxlan0",
    "IPAddress": "10.244.1.2",
    "MacAddress": "0E-2A-0a-f4-01-02",
    "GatewayAddress": "10.244.1.1"
  }},
  {{
    "Name": "remote_10.244.2.5",
    "VirtualNetwork": "5b3a1e56-6d0a-4c8f-9c1e-0f4a1d2b3c4d",
    "IPAddress": "10.244.2.5",
    "MacAddress": "0E-2A-0a-f4-02-05",
    "IsRemoteEndpoint": true,
    "Policies": [{{"Type": "PA", "PA": "10.99.0.1"}}]
  }}
]"#,
        pod = pod.name()
    ));
    let text = format!(
        r#"{}
[switch]
control = "{}"

[[port]]
name = "uplink"
iface = "up0"
ip = "10.99.0.2/24"
"#,
        json.include(),
        control_path()
    );
    let mut daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
    let near = Ipv4Addr::new(10, 244, 1, 2);
    let far = Ipv4Addr::new(10, 244, 2, 5);
    assert_eq!(
        ping(pod.name(), far, 3).unwrap().received,
        3,
        "pod -> kernel vxlan"
    );
    assert_eq!(
        ping(remote.name(), near, 3).unwrap().received,
        3,
        "kernel vxlan -> pod"
    );
    let t = tcp_transfer(remote.name(), far, 6001, pod.name(), 10 * MB).unwrap();
    assert!(t.exact && t.bytes == 10 * MB, "pod -> kernel: {t:?}");
    let t = tcp_transfer(pod.name(), near, 6002, remote.name(), 10 * MB).unwrap();
    assert!(t.exact && t.bytes == 10 * MB, "kernel -> pod: {t:?}");
    let link = ip_in(pod.name(), &["link", "show", "eth0"]);
    assert!(
        link.contains("0e:2a:0a:f4:01:02"),
        "the endpoint has its HNS MAC: {link}"
    );
    let (code, err) = daemon.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        report_counter(&err, "vxlan ", "encap") > 100,
        "the traffic went through VXLAN:\n{err}"
    );
}

/// The HNS NAT network of `NatLab` as the Windows CNI plugins (win-bridge,
/// v1 HNS) write it: `web` with `policies`, and its neighbour `cli`.
fn nat_json(web: &str, cli: &str, policies: &str) -> String {
    format!(
        r#"[
  {{
    "Name": "nat",
    "Type": "NAT",
    "NetworkAdapterName": "up0",
    "DNSServerList": "172.16.0.53",
    "Subnets": [{{"AddressPrefix": "172.16.0.0/24", "GatewayAddress": "172.16.0.1"}}]
  }},
  {{
    "Name": "{web}",
    "VirtualNetworkName": "nat",
    "IPAddress": "172.16.0.2",
    "MacAddress": "00-15-5D-00-00-02",
    "GatewayAddress": "172.16.0.1",
    "Policies": [{policies}]
  }},
  {{
    "Name": "{cli}",
    "VirtualNetworkName": "nat",
    "IPAddress": "172.16.0.3",
    "GatewayAddress": "172.16.0.1"
  }}
]"#,
    )
}

/// The NAT lab: podswitch in `host` with uplink up0 (10.99.0.2/24, next
/// hop 10.99.0.1) toward `outside`, which has 10.99.0.1/24 and 10.98.0.1/24
/// on out0; container `web` (172.16.0.2) and its neighbour `cli`
/// (172.16.0.3) on the HNS NAT network, web with `policies`.
struct NatLab {
    daemon: Option<Daemon>,
    json: JsonFile,
    _host: NetnsGuard,
    outside: NetnsGuard,
    web: NetnsGuard,
    cli: NetnsGuard,
}

impl NatLab {
    fn new(policies: &str) -> NatLab {
        let host = NetnsGuard::new("psh-h").unwrap();
        let outside = NetnsGuard::new("psh-o").unwrap();
        let web = NetnsGuard::new("psh-w").unwrap();
        let cli = NetnsGuard::new("psh-c").unwrap();
        uplink_veth(&host, &outside, "10.99.0.1/24");
        outside
            .exec("ip", &["addr", "add", "10.98.0.1/24", "dev", "out0"])
            .unwrap();
        let json = JsonFile::new(&nat_json(web.name(), cli.name(), policies));
        let text = format!(
            r#"{}
[switch]
control = "{}"

[[port]]
name = "uplink"
iface = "up0"
ip = "10.99.0.2/24"
gateway = "10.99.0.1"
"#,
            json.include(),
            control_path()
        );
        let daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
        NatLab {
            daemon: Some(daemon),
            json,
            _host: host,
            outside,
            web,
            cli,
        }
    }

    fn stop(&mut self) -> String {
        let (code, err) = self.daemon.take().unwrap().stop(libc::SIGTERM);
        assert_eq!(code, Some(0), "clean exit; stderr:\n{err}");
        err
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        self.daemon.take();
    }
}

/// The source address `outside` sees on a datagram that container
/// `from` sends to `to`, sent again every 100 ms (the first wait for ARP)
/// for up to 5 s.
fn seen_source(lab: &NatLab, to: SocketAddr) -> Ipv4Addr {
    let rx = in_netns(lab.outside.name(), move || {
        UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], to.port())))
    })
    .unwrap()
    .unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let tx = in_netns(lab.web.name(), || UdpSocket::bind("0.0.0.0:0"))
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        tx.send_to(b"hns", to).unwrap();
        if let Ok((_, SocketAddr::V4(peer))) = rx.recv_from(&mut buf) {
            return *peer.ip();
        }
    }
    panic!("no datagram to {to} reached the outside within 5 s");
}

#[test]
fn an_outbound_nat_exception_keeps_the_container_address_and_a_port_mapping_is_reached_from_outside(
) {
    if skip_unless_root("hns nat") {
        return;
    }
    let mut lab = NatLab::new(
        r#"
      {"Name": "EndpointPolicy", "Value": {"Type": "OutBoundNAT", "ExceptionList": ["10.98.0.0/24"]}},
      {"Name": "EndpointPolicy", "Value": {"Type": "NAT", "InternalPort": 80, "ExternalPort": 8080, "Protocol": "TCP"}},
      {"Name": "EndpointPolicy", "Value": {"Type": "ROUTE", "DestinationPrefix": "10.97.0.0/16", "NeedEncap": true}}"#,
    );
    assert_eq!(
        seen_source(&lab, "10.98.0.1:7000".parse().unwrap()),
        Ipv4Addr::new(172, 16, 0, 2),
        "to an excepted subnet: the container's own address"
    );
    assert_eq!(
        seen_source(&lab, "10.99.0.1:7001".parse().unwrap()),
        Ipv4Addr::new(10, 99, 0, 2),
        "elsewhere: masqueraded to the uplink address"
    );
    let t = tcp_upload(
        lab.web.name(),
        Ipv4Addr::new(172, 16, 0, 2),
        80,
        lab.outside.name(),
        "10.99.0.2:8080".parse().unwrap(),
        MB,
    )
    .unwrap();
    assert!(t.exact && t.bytes == MB, "port mapping 8080 -> 80: {t:?}");
    let routes = ip_in(lab.web.name(), &["route", "show"]);
    assert!(
        routes.contains("10.97.0.0/16 via 172.16.0.1"),
        "the ROUTE policy is a route in the container: {routes}"
    );
    let resolv = PathBuf::from("/etc/netns")
        .join(lab.web.name())
        .join("resolv.conf");
    assert_eq!(
        std::fs::read_to_string(&resolv).unwrap(),
        "nameserver 172.16.0.53\n",
        "DNSServerList is what `ip netns exec` shows as /etc/resolv.conf"
    );
    let err = lab.stop();
    assert!(report_counter(&err, "nat ", "out") > 0, "{err}");
    assert!(
        !resolv.exists(),
        "the name server file goes with the switch"
    );
}

#[test]
fn an_hns_acl_blocks_one_port_lets_another_through_and_counts_the_drop() {
    if skip_unless_root("hns acl") {
        return;
    }
    let mut lab = NatLab::new(
        r#"
      {"Type": "ACL", "Protocols": "6", "Action": "Block", "Direction": "In", "LocalPorts": "9090", "RuleType": "Switch", "Priority": 200},
      {"Type": "NAT", "InternalPort": 9090, "ExternalPort": 8090, "Protocol": "TCP"},
      {"Type": "NAT", "InternalPort": 9091, "ExternalPort": 8091, "Protocol": "TCP"}"#,
    );
    let web = Ipv4Addr::new(172, 16, 0, 2);
    let _blocked = listen(lab.web.name(), SocketAddr::from((web, 9090)));
    let open = listen(lab.web.name(), SocketAddr::from((web, 9091)));
    // From a container on the same network (switched).
    assert!(
        connects(lab.cli.name(), SocketAddr::from((web, 9091))),
        "9091 is open"
    );
    assert!(
        !connects(lab.cli.name(), SocketAddr::from((web, 9090))),
        "9090 is blocked"
    );
    // From outside through the port mappings (routed after NAT).
    assert!(
        connects(lab.outside.name(), "10.99.0.2:8091".parse().unwrap()),
        "8091 -> 9091 is open"
    );
    assert!(
        !connects(lab.outside.name(), "10.99.0.2:8090".parse().unwrap()),
        "8090 -> 9090 is blocked"
    );
    // The transfer's own server takes the open port.
    drop(open);
    let t = tcp_transfer(lab.web.name(), web, 9091, lab.cli.name(), MB).unwrap();
    assert!(
        t.exact && t.bytes == MB,
        "the open port carries data: {t:?}"
    );
    let err = lab.stop();
    let from_cli = report_counter(&err, &format!("{} ", lab.cli.name()), "acl");
    let from_outside = report_counter(&err, "uplink ", "acl");
    assert!(
        from_cli >= 1,
        "the switched SYNs are counted as acl drops:\n{err}"
    );
    assert!(
        from_outside >= 1,
        "the routed SYNs are counted as acl drops:\n{err}"
    );
}

#[test]
fn tcp_to_an_outbound_nat_exception_keeps_the_container_address_both_ways() {
    if skip_unless_root("hns nat exception both ways") {
        return;
    }
    // The uplink is the default kind, a NIC shared with the host. The
    // outside plays the physical network: it has 10.99.0.1 and 10.98.0.1
    // and routes the container subnet to the switch's address, as a
    // network that knows where container addresses live does.
    let mut lab = NatLab::new(EXCEPT_10_98);
    excepted_tcp_both_ways(&lab);
    lab.stop();
}

/// OutBoundNAT in the v2 shape: 10.98.0.0/24 sees the container's address.
const EXCEPT_10_98: &str =
    r#"{"Type": "OutBoundNAT", "Settings": {"Exceptions": ["10.98.0.0/24"]}}"#;

/// With the outside routing the container subnet to the switch's address,
/// as a network that knows where container addresses live does: TCP from
/// web to 10.98.0.1 (excepted) arrives from 172.16.0.2, byte-exact; to
/// 10.99.0.1 it is masqueraded.
fn excepted_tcp_both_ways(lab: &NatLab) {
    lab.outside
        .exec(
            "ip",
            &["route", "replace", "172.16.0.0/24", "via", "10.99.0.2"],
        )
        .unwrap();
    let (t, peer) = tcp_fetch(
        lab.outside.name(),
        Ipv4Addr::new(10, 98, 0, 1),
        7100,
        lab.web.name(),
        "10.98.0.1:7100".parse().unwrap(),
        MB,
    )
    .unwrap();
    assert!(t.exact && t.bytes == MB, "{t:?}");
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::from(Ipv4Addr::new(172, 16, 0, 2)),
        "the excepted destination sees the container's address"
    );
    let (_, peer) = tcp_fetch(
        lab.outside.name(),
        Ipv4Addr::new(10, 99, 0, 1),
        7101,
        lab.web.name(),
        "10.99.0.1:7101".parse().unwrap(),
        MB,
    )
    .unwrap();
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::from(Ipv4Addr::new(10, 99, 0, 2)),
        "elsewhere: masqueraded"
    );
}

#[test]
fn an_outbound_nat_exception_added_by_a_reload_carries_traffic_both_ways() {
    if skip_unless_root("hns nat exception by reload") {
        return;
    }
    let mut lab = NatLab::new("");
    std::fs::write(
        &lab.json.0,
        nat_json(lab.web.name(), lab.cli.name(), EXCEPT_10_98),
    )
    .unwrap();
    let daemon = lab.daemon.as_ref().unwrap();
    kill(Pid::from_raw(daemon.pid()), Signal::SIGHUP).unwrap();
    daemon.wait_for_log("reloaded on SIGHUP");
    excepted_tcp_both_ways(&lab);
    lab.stop();
}
