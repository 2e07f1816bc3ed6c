//! Through NAT: a container behind a switch whose uplink `up0` is a veth
//! into an "outside" namespace (10.99.0.1/24, veth defaults). The switch's
//! outside address is 10.99.0.2; the iperf3 server is the outside.
//!
//! Peer: the kernel's own router. A router namespace holds a bridge with
//! the container (172.30.0.1 on br0), forwards, and masquerades what
//! leaves up0 (nftables), as Docker's bridge network does.
//! podswitch: `podswitch run` in a host namespace, a `nat` network with
//! the container as a netns endpoint.

use anyhow::Result;

use super::topo::{bridge, bridged_container, ip, keeps_defaults, netns, veth, SwitchOpts, Topo};

const OUTSIDE: &str = "10.99.0.1";

pub fn kernel() -> Result<Topo> {
    let r = netns("pbkr")?;
    let o = netns("pbko")?;
    let c = netns("pbkc")?;
    bridge(&r)?;
    ip(&r, &["addr", "add", "172.30.0.1/24", "dev", "br0"])?;
    bridged_container(&r, "p0", &c, "172.30.0.10/24", Some("172.30.0.1"))?;
    veth(&r, "up0", &o, "out0")?;
    ip(&r, &["addr", "add", "10.99.0.2/24", "dev", "up0"])?;
    ip(&o, &["addr", "add", "10.99.0.1/24", "dev", "out0"])?;
    r.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
    r.exec(
        "nft",
        &["add table ip pbnat; \
             add chain ip pbnat post { type nat hook postrouting priority srcnat; }; \
             add rule ip pbnat post oifname \"up0\" masquerade"],
    )?;
    keeps_defaults(&o, "out0")?;
    Ok(Topo {
        daemons: Vec::new(),
        ns: vec![r, o, c],
        server: 1,
        client: 2,
        server_ip: OUTSIDE,
    })
}

pub fn podswitch(sw: &SwitchOpts) -> Result<Topo> {
    let h = netns("pbph")?;
    let o = netns("pbpo")?;
    let c = netns("pbpc")?;
    veth(&h, "up0", &o, "out0")?;
    ip(&o, &["addr", "add", "10.99.0.1/24", "dev", "out0"])?;
    let body = format!(
        r#"
[[network]]
name = "front"
mode = "nat"
{link}subnet = "172.30.0.0/24"
gateway = "172.30.0.1"
uplink = "up0"

[[endpoint]]
name = "c"
network = "front"
netns = "{c}"
ip = "172.30.0.10"
"#,
        c = c.name(),
        link = sw.network_link()
    );
    let d = sw.start(&h, &sw.config_head(Some("10.99.0.2/24")), &body)?;
    keeps_defaults(&o, "out0")?;
    Ok(Topo {
        daemons: vec![d],
        ns: vec![h, o, c],
        server: 1,
        client: 2,
        server_ip: OUTSIDE,
    })
}
