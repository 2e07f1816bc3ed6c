//! `podswitch demo`: a small built-in lab, traffic through it, and a report
//! a newcomer can read. Two "containers" (web, db) share the NAT network
//! `front`, whose uplink leads to an "outside" namespace; a third (other)
//! sits alone on `back` to show isolation.
//! Everything it creates is removed before it returns, also on error.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use pmd::netns::{is_root, move_link, unique_name, LinkGuard, NetnsGuard};

use crate::config;
use crate::daemon::Switch;
use crate::lab::traffic;
use crate::report;

/// Bytes moved by the demo's TCP transfer.
const TRANSFER_BYTES: u64 = 200 * 1024 * 1024;

fn demo_config(web: &str, db: &str, other: &str, sock: &str, uplink: &str) -> String {
    format!(
        r#"
[switch]
control = "{sock}"

[[port]]
name = "up0"
iface = "{uplink}"
ip = "10.99.0.2/24"
gateway = "10.99.0.1"

[[network]]
name = "front"
mode = "nat"
subnet = "172.30.0.0/24"
gateway = "172.30.0.1"
uplink = "up0"

[[port_mapping]]
protocol = "tcp"
host_port = 8080
endpoint = "db"
port = 80

[[network]]
name = "back"
mode = "nat"
subnet = "172.31.0.0/24"
gateway = "172.31.0.1"

[[endpoint]]
name = "web"
network = "front"
netns = "{web}"

[[endpoint]]
name = "db"
network = "front"
netns = "{db}"

[[endpoint]]
name = "other"
network = "back"
netns = "{other}"
"#
    )
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn ok(good: bool) -> &'static str {
    if good {
        "ok"
    } else {
        "FAILED"
    }
}

/// Runs the demo; an error means the demo could not show what it promises.
pub fn run() -> Result<()> {
    if !is_root() {
        bail!("podswitch demo creates network namespaces and TAP devices: run it as root");
    }
    let web_ns = NetnsGuard::new("psdemo-web")?;
    let db_ns = NetnsGuard::new("psdemo-db")?;
    let other_ns = NetnsGuard::new("psdemo-oth")?;
    // "The outside": a namespace at 10.99.0.1 behind the uplink veth, whose
    // other end podswitch owns (AF_PACKET) with the address 10.99.0.2.
    let outside_ns = NetnsGuard::new("psdemo-out")?;
    let up = unique_name("psdemo-up");
    let peer = unique_name("psdemo-pe");
    let _uplink = LinkGuard::veth(&up, &peer)?;
    move_link(
        &peer,
        outside_ns.name(),
        "eth0",
        Some((Ipv4Addr::new(10, 99, 0, 1), 24)),
    )?;
    let sock = format!("/run/{}.sock", unique_name("psdemo"));
    let text = demo_config(web_ns.name(), db_ns.name(), other_ns.name(), &sock, &up);
    let cfg = config::parse(&text, "<built-in demo>").map_err(|e| anyhow::anyhow!("{e}"))?;

    println!("podswitch demo: a userspace switch with two networks and three \"containers\"");
    println!("  network front 172.30.0.0/24 (gateway 172.30.0.1): web, db; NAT to 10.99.0.2 on the uplink,");
    println!("                host port 8080 mapped to db:80; \"the outside\" is 10.99.0.1 behind the uplink");
    println!("  network back  172.31.0.0/24 (gateway 172.31.0.1): other");
    for e in &cfg.endpoints {
        println!(
            "  container {:<6} eth0 {:<14} mac {}  on {}",
            e.name,
            e.ip.to_string(),
            e.mac,
            e.network
        );
    }
    let ip_of = |name: &str| -> Ipv4Addr {
        cfg.endpoints
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.ip)
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    };
    let (web, db, other) = (ip_of("web"), ip_of("db"), ip_of("other"));

    let switch = Switch::start(&cfg).context("starting the switch")?;
    let mut failures = 0;
    let mut check = |good: bool| {
        if !good {
            failures += 1;
        }
        ok(good)
    };

    step("ping through the switch (each container's eth0 is a TAP the switch polls)");
    let gw = Ipv4Addr::new(172, 30, 0, 1);
    let p = traffic::ping(web_ns.name(), gw, 3)?;
    println!(
        "  web -> gateway {gw}: {}/{} replies  {}",
        p.received,
        p.sent,
        check(p.received == p.sent)
    );
    let p = traffic::ping(web_ns.name(), db, 3)?;
    println!(
        "  web -> db {db}: {}/{} replies  {}",
        p.received,
        p.sent,
        check(p.received == p.sent)
    );
    let p = traffic::ping(db_ns.name(), web, 3)?;
    println!(
        "  db -> web {web}: {}/{} replies  {}",
        p.received,
        p.sent,
        check(p.received == p.sent)
    );

    step("isolation: networks never see each other's frames (only the uplink leads out)");
    let p = traffic::ping(web_ns.name(), other, 2)?;
    println!(
        "  web -> other {other} (network back): {}/{} replies, expected none  {}",
        p.received,
        p.sent,
        check(p.received == 0)
    );

    step("TCP: web sends 200 MiB to db, every byte checked");
    let before: u64 = switch
        .dataplane()
        .port_stats()
        .iter()
        .map(|s| s.rx_packets)
        .sum();
    let t0 = Instant::now();
    let t = traffic::tcp_transfer(db_ns.name(), db, 5001, web_ns.name(), TRANSFER_BYTES)?;
    let secs = t0.elapsed().as_secs_f64();
    let after: u64 = switch
        .dataplane()
        .port_stats()
        .iter()
        .map(|s| s.rx_packets)
        .sum();
    let frames = after - before;
    println!(
        "  {} MiB in {:.2} s = {:.2} Gbit/s, byte-exact: {}  {}",
        t.bytes / (1024 * 1024),
        t.secs,
        t.gbps(),
        t.exact,
        check(t.exact)
    );
    println!(
        "  the switch moved {frames} frames ({:.0} frames/s, {:.0} bytes/frame on average:",
        frames as f64 / secs,
        t.bytes as f64 / frames.max(1) as f64
    );
    println!("  TCP segments cross as 64 KB TSO frames, as vhost-net does)");

    step("NAT: web downloads 20 MiB from a server outside (10.99.0.1)");
    let outside = Ipv4Addr::new(10, 99, 0, 1);
    let own = Ipv4Addr::new(10, 99, 0, 2);
    let p = traffic::ping(outside_ns.name(), own, 3)?;
    println!(
        "  the outside pings podswitch's own {own}: {}/{} replies  {}",
        p.received,
        p.sent,
        check(p.received == p.sent)
    );
    let uplink_port = switch.dataplane().topology().uplinks[0].port.0 as usize;
    let uplink_rx = || switch.dataplane().port_stats()[uplink_port].rx_packets;
    let before = uplink_rx();
    let (t, seen) = traffic::tcp_fetch(
        outside_ns.name(),
        outside,
        8000,
        web_ns.name(),
        SocketAddr::from((outside, 8000)),
        20 * 1024 * 1024,
    )?;
    let frames = uplink_rx() - before;
    println!(
        "  {:.2} Gbit/s, byte-exact: {}; the server saw the client as {seen} (masqueraded)  {}",
        t.gbps(),
        t.exact,
        check(t.exact && seen.ip() == Ipv4Addr::new(10, 99, 0, 2))
    );
    println!(
        "  the uplink took it in {frames} frames ({:.0} bytes/frame: the outside's TSO segments\n  \
         cross whole, AF_PACKET with virtio-net headers, and NAT translates each once)",
        t.bytes as f64 / frames.max(1) as f64
    );

    step("port mapping: the outside connects to 10.99.0.2:8080, which is db:80");
    let (t, seen) = traffic::tcp_fetch(
        db_ns.name(),
        db,
        80,
        outside_ns.name(),
        SocketAddr::from((Ipv4Addr::new(10, 99, 0, 2), 8080)),
        5 * 1024 * 1024,
    )?;
    println!(
        "  byte-exact: {}; db saw the real client {seen}  {}",
        t.exact,
        check(t.exact && seen.ip() == outside)
    );

    step("per-port counters");
    print!("{}", report::ports(switch.dataplane()));
    step("per-network counters");
    print!("{}", report::networks(switch.dataplane()));
    print!("{}", report::nat(switch.dataplane()));
    print!("{}", report::uplinks(switch.dataplane()));
    step("learned MAC table");
    let rows = switch.dataplane().fdb();
    print!("{}", report::fdb(switch.dataplane(), &rows));

    let reports = switch.stop();
    let leaked: usize = reports.iter().map(|r| r.leaked).sum();
    drop((web_ns, db_ns, other_ns, outside_ns));
    step("cleanup");
    println!(
        "  switch stopped (buffers leaked: {leaked}); TAPs and namespaces removed  {}",
        check(leaked == 0)
    );
    if failures > 0 {
        bail!("{failures} demo check(s) failed");
    }
    println!("\ndemo passed");
    Ok(())
}
