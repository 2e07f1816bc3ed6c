//! Software GRO toward a container, as root: an "outside" namespace behind
//! an AF_XDP uplink (veth, default offloads on the outside end) sends TCP
//! through NAT to a container on a TAP. AF_XDP hands the switch 1,514-byte
//! frames; the TAP should carry them merged into large segments. Every
//! namespace is the test's own and is removed by a guard, also when the
//! test fails.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::*;
use pmd::netns::NetnsGuard;
use switch::lab::traffic::tcp_fetch;

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const MB: u64 = 1024 * 1024;

/// The `rx pkts`, `rx bytes`, `tx pkts` and `tx bytes` columns of port
/// `name` in the final counters.
fn port_counts(stderr: &str, name: &str) -> [u64; 4] {
    let line = stderr
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no port `{name}` in:\n{stderr}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    [2, 3, 4, 5].map(|i| w[i].parse().unwrap())
}

#[test]
fn a_download_through_an_afxdp_uplink_reaches_the_container_in_large_segments() {
    if skip_unless_root("gro download") {
        return;
    }
    let host = NetnsGuard::new("psg-h").unwrap();
    let outside = NetnsGuard::new("psg-o").unwrap();
    let c1 = NetnsGuard::new("psg-a").unwrap();
    uplink_veth(&host, &outside, "10.99.0.1/24");
    let text = format!(
        r#"
[switch]
control = "{}"

[[port]]
name = "up0"
iface = "up0"
kind = "afxdp"
ip = "10.99.0.2/24"
gateway = "10.99.0.1"

[[network]]
name = "front"
mode = "nat"
subnet = "172.30.0.0/24"
gateway = "172.30.0.1"
uplink = "up0"

[[endpoint]]
name = "c1"
network = "front"
netns = "{}"
ip = "172.30.0.10"
"#,
        control_path(),
        c1.name()
    );
    let mut daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
    let (t, _) = tcp_fetch(
        outside.name(),
        OUTSIDE,
        8000,
        c1.name(),
        SocketAddr::from((OUTSIDE, 8000)),
        20 * MB,
    )
    .unwrap();
    assert!(t.exact && t.bytes == 20 * MB, "download: {t:?}");
    let err = daemon.stop_clean();
    let [up_rx, up_rx_bytes, _, _] = port_counts(&err, "up0");
    assert!(
        up_rx_bytes / up_rx <= 1514,
        "the fixture: the uplink received MTU-sized frames ({up_rx} frames)"
    );
    let [_, _, pkts, bytes] = port_counts(&err, "c1");
    assert!(
        bytes > 20 * MB,
        "the TAP carried the download: {bytes} bytes"
    );
    let per_frame = bytes / pkts.max(1);
    assert!(
        per_frame > 4000,
        "frames toward the container average {per_frame} bytes ({pkts} frames); counters:\n{err}"
    );
    assert!(report_counter(&err, "c1", "gro_merged") > 0, "{err}");
}
