//! Container -> container on one network: two namespaces on a Linux bridge
//! (veths), or on one podswitch `nat` network (TAPs with virtio-net
//! headers), without an uplink.

use anyhow::Result;

use super::topo::{bridge, bridged_container, netns, SwitchOpts, Topo};

pub fn kernel() -> Result<Topo> {
    let br = netns("pbkbr")?;
    let a = netns("pbka")?;
    let b = netns("pbkb")?;
    bridge(&br)?;
    bridged_container(&br, "p0", &a, "172.30.0.10/24", None)?;
    bridged_container(&br, "p1", &b, "172.30.0.11/24", None)?;
    Ok(Topo {
        daemons: Vec::new(),
        ns: vec![br, a, b],
        server: 2,
        client: 1,
        server_ip: "172.30.0.11",
    })
}

pub fn podswitch(sw: &SwitchOpts) -> Result<Topo> {
    let h = netns("pbph")?;
    let a = netns("pbpa")?;
    let b = netns("pbpb")?;
    let body = format!(
        r#"
[[network]]
name = "lan"
mode = "nat"
{link}subnet = "172.30.0.0/24"
gateway = "172.30.0.1"

[[endpoint]]
name = "a"
network = "lan"
netns = "{a}"
ip = "172.30.0.10"

[[endpoint]]
name = "b"
network = "lan"
netns = "{b}"
ip = "172.30.0.11"
"#,
        a = a.name(),
        b = b.name(),
        link = sw.network_link()
    );
    let d = sw.start(&h, &sw.config_head(None), &body)?;
    Ok(Topo {
        daemons: vec![d],
        ns: vec![h, a, b],
        server: 2,
        client: 1,
        server_ip: "172.30.0.11",
    })
}
