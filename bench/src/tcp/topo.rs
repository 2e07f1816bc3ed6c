//! The paths the matrix measures, and a built topology: namespaces, the
//! podswitch daemons in them, and where iperf3's server and client go.
//!
//! Addresses are the same on both sides of a pair (each side lives in
//! namespaces of its own), so only the switch differs:
//! containers 172.30.0.10/.11 on a nat network (gateway .1), the outside
//! 10.99.0.1 behind the uplink 10.99.0.2, overlay hosts 10.99.0.2 and
//! 10.99.0.3 with containers 10.200.0.10 and 10.200.0.11 in VNI 42.

use anyhow::{bail, Context, Result};
use pmd::netns::NetnsGuard;

use super::child::Podswitch;

/// One row of the matrix: a path through a switch, and its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Path {
    /// Container -> outside through NAT (masquerade).
    NatUp,
    /// Outside -> container through NAT: the container pulls (`iperf3 -R`)
    /// over a connection it opened.
    NatDown,
    /// Container -> container on one network.
    Lan,
    /// Container -> container on another host over VXLAN: podswitch on
    /// both hosts, against kernel vxlan + bridge on both.
    Overlay,
    /// The same with podswitch on the sending host and kernel vxlan +
    /// bridge on the receiving one, against kernel on both.
    OverlayKernel,
}

impl Path {
    pub const ALL: [Path; 5] = [
        Path::NatUp,
        Path::NatDown,
        Path::Lan,
        Path::Overlay,
        Path::OverlayKernel,
    ];

    /// The name on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Path::NatUp => "nat-up",
            Path::NatDown => "nat-down",
            Path::Lan => "lan",
            Path::Overlay => "overlay",
            Path::OverlayKernel => "overlay-kernel",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Path::NatUp => "container -> outside through NAT",
            Path::NatDown => "outside -> container through NAT (client pulls, -R)",
            Path::Lan => "container -> container, one network",
            Path::Overlay => "container -> container over VXLAN, podswitch on both hosts",
            Path::OverlayKernel => {
                "container -> container over VXLAN, podswitch -> kernel vxlan host"
            }
        }
    }

    /// What podswitch is measured against on this path.
    pub fn peer(self) -> &'static str {
        match self {
            Path::NatUp | Path::NatDown => "Linux bridge + router + nftables masquerade",
            Path::Lan => "Linux bridge",
            Path::Overlay | Path::OverlayKernel => "kernel vxlan + bridge on both hosts",
        }
    }

    pub fn reverse(self) -> bool {
        self == Path::NatDown
    }
}

/// The two sides of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Peer,
    Podswitch,
}

/// A topology ready for traffic. Dropping it stops the daemons first (they
/// remove their TAPs), then deletes the namespaces with their links.
pub struct Topo {
    pub daemons: Vec<Podswitch>,
    pub ns: Vec<NetnsGuard>,
    pub server: usize,
    pub client: usize,
    pub server_ip: &'static str,
}

impl Topo {
    pub fn daemon_pids(&self) -> Vec<i32> {
        self.daemons.iter().map(Podswitch::pid).collect()
    }

    /// Stops the daemons, an error unless each exits cleanly.
    pub fn finish(mut self) -> Result<()> {
        for d in self.daemons.drain(..) {
            d.stop()?;
        }
        Ok(())
    }
}

/// A namespace of the run.
pub fn netns(prefix: &str) -> Result<NetnsGuard> {
    NetnsGuard::new(prefix).with_context(|| format!("creating a namespace {prefix}..."))
}

/// `ip ARGS` inside a namespace.
pub fn ip(ns: &NetnsGuard, args: &[&str]) -> Result<()> {
    ns.exec("ip", args)
        .with_context(|| format!("in {}: ip {}", ns.name(), args.join(" ")))
}

/// A veth `here` in `ns` whose other end is `there` in `far`, both up.
/// Both ends keep the offloads the kernel gives a veth.
pub fn veth(ns: &NetnsGuard, here: &str, far: &NetnsGuard, there: &str) -> Result<()> {
    ip(
        ns,
        &[
            "link",
            "add",
            here,
            "type",
            "veth",
            "peer",
            "name",
            there,
            "netns",
            far.name(),
        ],
    )?;
    ip(ns, &["link", "set", here, "up"])?;
    ip(far, &["link", "set", there, "up"])
}

/// An error unless `dev` in `ns` still checksums by offload, veth's
/// default: the peers a user has keep their defaults here too.
pub fn keeps_defaults(ns: &NetnsGuard, dev: &str) -> Result<()> {
    let out = ns
        .command("ethtool")
        .args(["-k", dev])
        .output()
        .with_context(|| format!("in {}: ethtool -k {dev}", ns.name()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("tx-checksumming: on") {
        bail!("{dev} in {} lost its default offloads:\n{text}", ns.name());
    }
    Ok(())
}

/// A Linux bridge `br0` in `ns`, up.
pub fn bridge(ns: &NetnsGuard) -> Result<()> {
    ip(ns, &["link", "add", "br0", "type", "bridge"])?;
    ip(ns, &["link", "set", "br0", "up"])
}

/// A kernel container: a veth `port` on `br0` in `host`, whose other end
/// is `eth0` in `c` with `cidr` (and a default route via `gateway`).
pub fn bridged_container(
    host: &NetnsGuard,
    port: &str,
    c: &NetnsGuard,
    cidr: &str,
    gateway: Option<&str>,
) -> Result<()> {
    veth(host, port, c, "eth0")?;
    ip(host, &["link", "set", port, "master", "br0"])?;
    ip(c, &["addr", "add", cidr, "dev", "eth0"])?;
    if let Some(gw) = gateway {
        ip(c, &["route", "add", "default", "via", gw])?;
    }
    Ok(())
}

/// What the podswitch side's uplink `[[port]]` is (`kind = ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UplinkKind {
    Afxdp,
    Packet,
}

impl UplinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UplinkKind::Afxdp => "afxdp",
            UplinkKind::Packet => "packet",
        }
    }
}

/// What podswitch's containers are attached by (`endpoint_link`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EndpointLink {
    Tap,
    Veth,
}

impl EndpointLink {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointLink::Tap => "tap",
            EndpointLink::Veth => "veth",
        }
    }
}

/// How podswitch is started.
#[derive(Debug, Clone)]
pub struct SwitchOpts {
    /// The `podswitch` binary.
    pub bin: std::path::PathBuf,
    pub uplink: UplinkKind,
    pub endpoint_link: EndpointLink,
    /// `[switch] offload`.
    pub offload: bool,
    /// `[switch] cores` (empty: podswitch's default).
    pub cores: Vec<usize>,
}

impl SwitchOpts {
    /// The start of a config: the switch's own control socket, and the
    /// uplink `up0` (the interface of that name) with `cidr`.
    pub fn config_head(&self, uplink_cidr: Option<&str>) -> String {
        let mut s = format!(
            "[switch]\ncontrol = \"{{control}}\"\noffload = {}\n",
            self.offload
        );
        if !self.cores.is_empty() {
            s += &format!("cores = {:?}\n", self.cores);
        }
        if let Some(cidr) = uplink_cidr {
            s += &format!(
                "\n[[port]]\nname = \"up0\"\niface = \"up0\"\nkind = \"{}\"\nip = \"{cidr}\"\n",
                self.uplink.as_str()
            );
        }
        s
    }

    /// The `[[network]]` line that attaches its containers as chosen.
    pub fn network_link(&self) -> String {
        format!("endpoint_link = \"{}\"\n", self.endpoint_link.as_str())
    }

    /// Starts podswitch in `ns` with `head` + `body`.
    pub fn start(&self, ns: &NetnsGuard, head: &str, body: &str) -> Result<Podswitch> {
        Podswitch::start(&self.bin, ns, &format!("{head}{body}"))
    }
}
