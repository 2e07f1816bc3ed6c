//! Endpoints: a container's `eth0`. For an endpoint with `netns`, the
//! switch creates a TAP in its own namespace, moves it into the container's
//! namespace, renames it `eth0` and sets MAC, address, MTU, default route
//! and link up. The TAP is non-persistent: it disappears when the switch
//! closes it, and also when the switch is killed, so nothing is left behind.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{bail, Context, Result};
use pmd::netns::netns_path;
use pmd::tap::TapPort;
use pmd::wire::MacAddr;
use pmd::PortId;

/// Everything needed to set up one endpoint's interface.
#[derive(Debug, Clone)]
pub struct EndpointPlan {
    /// Endpoint name (for messages).
    pub name: String,
    /// `ip netns` name or absolute path of the namespace.
    pub netns: String,
    /// The interface MAC.
    pub mac: MacAddr,
    /// The address.
    pub ip: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// Default route via this gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Interface MTU.
    pub mtu: u32,
}

/// Runs `ip` inside a namespace (name or path), via nsenter so that paths
/// such as /proc/PID/ns/net work as well as names.
fn ip_in(netns: &str, args: &[&str]) -> Result<()> {
    let path = netns_path(netns);
    let out = Command::new("nsenter")
        .arg(format!("--net={}", path.display()))
        .arg("ip")
        .args(args)
        .output()
        .context("running nsenter (util-linux)")?;
    if !out.status.success() {
        bail!(
            "ip {} in netns {netns}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Checks, before anything is created, that the endpoint can be set up:
/// the namespace exists and has no `eth0` yet.
pub fn preflight(plan: &EndpointPlan) -> Result<()> {
    let path = netns_path(&plan.netns);
    if !path.exists() {
        bail!(
            "endpoint {}: network namespace {} does not exist (create it, or use `podswitch lab up`)",
            plan.name,
            plan.netns
        );
    }
    if ip_in(&plan.netns, &["link", "show", "eth0"]).is_ok() {
        bail!(
            "endpoint {}: namespace {} already has an eth0",
            plan.name,
            plan.netns
        );
    }
    Ok(())
}

/// Creates the endpoint's TAP as port `id` and configures it inside the
/// namespace. On error the TAP is closed, which removes it.
pub fn create(plan: &EndpointPlan, id: PortId, tap_name: &str) -> Result<TapPort> {
    let tap = TapPort::create(tap_name, id)
        .with_context(|| format!("endpoint {}: creating its TAP", plan.name))?;
    // iproute2 takes a namespace name or, when it has a '/', a path.
    pmd::netns::ip(&["link", "set", "dev", tap_name, "netns", &plan.netns])
        .with_context(|| format!("endpoint {}: moving its TAP into {}", plan.name, plan.netns))?;
    let addr = format!("{}/{}", plan.ip, plan.prefix);
    let mac = plan.mac.to_string();
    let mtu = plan.mtu.to_string();
    let ns = &plan.netns;
    let setup = || -> Result<()> {
        ip_in(ns, &["link", "set", "dev", tap_name, "name", "eth0"])?;
        ip_in(ns, &["link", "set", "dev", "eth0", "address", &mac])?;
        ip_in(ns, &["link", "set", "dev", "eth0", "mtu", &mtu])?;
        ip_in(ns, &["addr", "add", &addr, "dev", "eth0"])?;
        ip_in(ns, &["link", "set", "dev", "eth0", "up"])?;
        ip_in(ns, &["link", "set", "dev", "lo", "up"])?;
        if let Some(gw) = plan.gateway {
            ip_in(ns, &["route", "replace", "default", "via", &gw.to_string()])?;
        }
        Ok(())
    };
    setup().with_context(|| format!("endpoint {}: configuring eth0", plan.name))?;
    Ok(tap)
}
