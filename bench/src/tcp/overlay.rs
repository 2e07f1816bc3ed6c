//! Over VXLAN between two hosts: namespaces A (VTEP 10.99.0.2) and B
//! (10.99.0.3) joined by a veth `up0` <-> `up0`, a container on each
//! (10.200.0.10 on A, 10.200.0.11 on B, VNI 42, UDP 4789); the client is
//! on A, the server on B.
//!
//! A kernel host: the VTEP address on up0, a vxlan device toward the other
//! host on a bridge with the container's veth (MTU 1450, as Docker's and
//! flannel's overlays give it). A podswitch host: `podswitch run` with up0
//! as its uplink and an `overlay` network, the other host's container as a
//! static remote endpoint. Each container's MAC is the one podswitch
//! derives from its address, so neither side needs to be told the other's.

use std::net::Ipv4Addr;

use anyhow::Result;
use pmd::netns::NetnsGuard;
use pmd::wire::MacAddr;

use super::child::Podswitch;
use super::topo::{
    bridge, bridged_container, ip, keeps_defaults, netns, veth, Side, SwitchOpts, Topo,
};

const VTEP: [&str; 2] = ["10.99.0.2", "10.99.0.3"];
const CONTAINER: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 200, 0, 10), Ipv4Addr::new(10, 200, 0, 11)];

/// Host A runs `a`, host B runs `b`.
pub fn build(sw: &SwitchOpts, a: Side, b: Side) -> Result<Topo> {
    let ha = netns("pbha")?;
    let hb = netns("pbhb")?;
    let ca = netns("pbca")?;
    let cb = netns("pbcb")?;
    veth(&ha, "up0", &hb, "up0")?;
    let mut daemons = Vec::new();
    for (i, (side, host, c)) in [(a, &ha, &ca), (b, &hb, &cb)].into_iter().enumerate() {
        match side {
            Side::Peer => kernel_host(i, host, c)?,
            Side::Podswitch => daemons.push(podswitch_host(sw, i, host, c)?),
        }
    }
    Ok(Topo {
        daemons,
        ns: vec![ha, hb, ca, cb],
        server: 3,
        client: 2,
        server_ip: "10.200.0.11",
    })
}

fn kernel_host(i: usize, host: &NetnsGuard, c: &NetnsGuard) -> Result<()> {
    ip(
        host,
        &["addr", "add", &format!("{}/24", VTEP[i]), "dev", "up0"],
    )?;
    ip(
        host,
        &[
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            "42",
            "local",
            VTEP[i],
            "remote",
            VTEP[1 - i],
            "dstport",
            "4789",
            "dev",
            "up0",
        ],
    )?;
    bridge(host)?;
    ip(host, &["link", "set", "vx0", "master", "br0", "up"])?;
    bridged_container(host, "p0", c, &format!("{}/24", CONTAINER[i]), None)?;
    let mac = MacAddr::from_ipv4(CONTAINER[i]).to_string();
    ip(c, &["link", "set", "eth0", "address", &mac, "mtu", "1450"])?;
    // A kernel host next to podswitch is its peer: it keeps its defaults.
    keeps_defaults(host, "up0")
}

fn podswitch_host(
    sw: &SwitchOpts,
    i: usize,
    host: &NetnsGuard,
    c: &NetnsGuard,
) -> Result<Podswitch> {
    let body = format!(
        r#"
[[network]]
name = "ov"
mode = "overlay"
{link}subnet = "10.200.0.0/24"
uplink = "up0"
vni = 42

[[endpoint]]
name = "c"
network = "ov"
netns = "{c}"
ip = "{me}"

[[remote_endpoint]]
network = "ov"
ip = "{them}"
vtep = "{vtep}"
"#,
        c = c.name(),
        me = CONTAINER[i],
        them = CONTAINER[1 - i],
        vtep = VTEP[1 - i],
        link = sw.network_link(),
    );
    // Two hosts have a core each: the two daemons' PMD threads on one
    // core would share it as no two hosts do.
    let one_core = SwitchOpts {
        cores: Vec::new(),
        ..sw.clone()
    };
    let head = one_core
        .config_head(Some(&format!("{}/24", VTEP[i])))
        .replacen("[switch]\n", &format!("[switch]\ncores = [{i}]\n"), 1);
    sw.start(host, &head, &body)
}
