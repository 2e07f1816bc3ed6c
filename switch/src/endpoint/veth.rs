//! Veth endpoints (`endpoint_link = "veth"`): the container's interface is
//! one end of a veth pair, the other end (`psv` + 12 hex digits) stays in
//! podswitch's namespace and the switch reads it with an AF_PACKET socket.
//! Unlike a TAP, a veth is a device the kernel can redirect a flow's skbs
//! to, whole segments and offloads intact (issue 9's flow offload), and the
//! container's end keeps the default offloads of a veth.
//!
//! A veth is not tied to an fd as a TAP is: a killed podswitch leaves its
//! host ends (and so the containers' interfaces) behind. Their names are a
//! hash of namespace and endpoint name, so the next start finds each stale
//! one and deletes it before it makes the endpoint again; deleting the
//! container's namespace (`lab down`) removes the pair too.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use pmd::afpacket::{Binding, PacketFilter, PacketPort};
use pmd::netlink::{LinkChange, Rtnl};
use pmd::{Frame, Pool, Port, PortCounters, PortId};

use super::{EndpointPlan, EndpointPort};
use pmd::afpacket::ArpDelivery;

/// Where podswitch's own namespace is, for the steps that must run there
/// from threads that moved into containers' namespaces.
#[derive(Clone)]
pub struct HostNs(Arc<File>);

impl HostNs {
    /// The namespace of the calling thread.
    pub fn here() -> Result<HostNs> {
        File::open("/proc/thread-self/ns/net")
            .map(|f| HostNs(Arc::new(f)))
            .context("opening podswitch's own network namespace")
    }

    /// Moves the calling thread into it.
    pub fn enter(&self) -> Result<()> {
        pmd::netns::enter(&self.0).context("entering podswitch's own network namespace")
    }

    /// True when the calling thread is in it.
    fn is_current(&self) -> bool {
        let here = std::fs::metadata("/proc/thread-self/ns/net");
        match (self.0.metadata(), here) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        }
    }

    /// A route netlink socket in it, from any thread.
    fn rtnl(&self) -> std::io::Result<Rtnl> {
        if self.is_current() {
            Rtnl::open()
        } else {
            Rtnl::open_in(&self.0)
        }
    }
}

/// The host end's name: `psv` and 48 bits of an FNV-1a hash of the
/// namespace and endpoint name, the same in every run, so a restart finds
/// what a killed run left.
pub fn host_name(netns: &str, endpoint: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in netns.bytes().chain([0]).chain(endpoint.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("psv{:012x}", h & 0xffff_ffff_ffff)
}

/// Deletes the host end a killed run left for this endpoint, which also
/// takes the container's end out of its namespace. One that an open
/// AF_PACKET socket still holds promiscuous belongs to a live podswitch
/// (or someone's capture) and is refused instead. Runs in podswitch's
/// namespace.
pub fn remove_stale(plan: &EndpointPlan) -> Result<()> {
    let name = host_name(&plan.netns, &plan.name);
    let mut nl = Rtnl::open()?;
    match nl.link_promiscuity(&name)? {
        None => Ok(()),
        Some(0) => {
            tracing::info!(
                "endpoint {}: deleting {name}, a veth a killed run left",
                plan.name
            );
            nl.del_link(&name)
                .with_context(|| format!("endpoint {}: deleting the stale veth {name}", plan.name))
        }
        Some(_) => bail!(
            "endpoint {}: its veth {name} is in use (by another live podswitch, or a capture)",
            plan.name
        ),
    }
}

/// The host end of a veth pair; dropping it deletes the pair.
struct HostEnd {
    name: String,
    ifindex: u32,
    ns: HostNs,
}

impl Drop for HostEnd {
    fn drop(&mut self) {
        // The container's end goes with it. A namespace deleted first
        // took the pair already.
        let gone = self
            .ns
            .rtnl()
            .and_then(|mut nl| nl.del_link_index(self.ifindex));
        match gone {
            Err(e) if e.raw_os_error() != Some(libc::ENODEV) => {
                tracing::warn!("deleting veth {}: {e}", self.name)
            }
            _ => {}
        }
    }
}

/// An endpoint's veth as a switch port: an AF_PACKET socket on the host
/// end. Dropping it deletes the pair.
pub struct VethPort {
    // Before `host`: the socket closes before the link goes.
    port: PacketPort,
    host: HostEnd,
}

impl VethPort {
    /// The host end's interface index, in podswitch's namespace.
    pub fn host_ifindex(&self) -> u32 {
        self.host.ifindex
    }

    /// The host end's name.
    pub fn host_name(&self) -> &str {
        &self.host.name
    }
}

/// The socket on a host end. Promiscuous: frames to the gateway's and the
/// other containers' MACs are OTHERHOST to the host end. Bound per
/// protocol, after tc ingress, so that what the flow offload's program
/// carries never reaches the switch (`pmd::afpacket::Binding`); the
/// frames it gives up are ethertypes other than IPv4, ARP and IPv6.
fn open_socket(host: &str, id: PortId) -> Result<PacketPort> {
    PacketPort::open_bound(host, id, PacketFilter::All, Binding::AfterTc)
        .with_context(|| format!("opening an AF_PACKET socket on {host}"))
}

/// Creates the pair for `plan` from a thread in podswitch's namespace
/// (`host`): the container's end directly in `ns` under its interface name
/// with its MAC and MTU (no move, no rename), the host end here, set up
/// with IPv6 off and no ARP (the kernel must not answer for addresses on
/// the containers' side), and the socket on it. The container's end is
/// left for [`super::configure_here`] in its namespace.
pub fn create_host_side(
    plan: &EndpointPlan,
    id: PortId,
    ns: &File,
    host: &HostNs,
) -> Result<EndpointPort> {
    let name = host_name(&plan.netns, &plan.name);
    let mut nl = Rtnl::open()?;
    let ifindex = nl
        .add_veth_into(
            &name,
            plan.mtu,
            &LinkChange {
                netns: Some(ns),
                name: Some(&plan.ifname),
                mac: Some(plan.mac),
                mtu: Some(plan.mtu),
                ..LinkChange::default()
            },
        )
        .with_context(|| {
            format!(
                "endpoint {}: creating its veth ({name}, {} in netns {})",
                plan.name, plan.ifname, plan.netns
            )
        })?;
    let end = HostEnd {
        name: name.clone(),
        ifindex,
        ns: host.clone(),
    };
    super::no_ipv6(&name)?;
    nl.set_link(
        ifindex,
        &LinkChange {
            up: true,
            noarp: true,
            ..LinkChange::default()
        },
    )
    .with_context(|| format!("endpoint {}: setting {name} up", plan.name))?;
    let Some(q) = &plan.queues else {
        let port = open_socket(&name, id).with_context(|| format!("endpoint {}", plan.name))?;
        return Ok(EndpointPort::Veth(Box::new(VethPort { port, host: end })));
    };
    // One socket per thread in a fan-out group; ARP goes to the first
    // thread alone, which answers for the gateway.
    let mut ports = PacketPort::open_spread(
        &name,
        id,
        PacketFilter::All,
        q.threads,
        q.steer.fd(),
        ArpDelivery::Steered,
    )
    .with_context(|| {
        format!(
            "endpoint {}: opening AF_PACKET sockets on {name}",
            plan.name
        )
    })?;
    let port = ports.remove(0);
    let more = ports
        .into_iter()
        .map(|p| Box::new(p) as Box<dyn Port>)
        .collect();
    Ok(EndpointPort::Spread(
        Box::new(EndpointPort::Veth(Box::new(VethPort { port, host: end }))),
        more,
    ))
}

impl Port for VethPort {
    fn name(&self) -> &str {
        self.port.name()
    }

    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Vec<Frame>, max: usize) -> usize {
        self.port.rx_burst(pool, out, max)
    }

    fn tx_burst(&mut self, pool: &mut Pool, frames: &mut Vec<Frame>) {
        self.port.tx_burst(pool, frames)
    }

    fn maintain(&mut self, pool: &mut Pool) {
        self.port.maintain(pool)
    }

    fn counters(&self) -> &Arc<PortCounters> {
        self.port.counters()
    }

    fn rx_fds(&self) -> Vec<std::os::fd::RawFd> {
        self.port.rx_fds()
    }

    fn rx_costs_syscall(&self) -> bool {
        self.port.rx_costs_syscall()
    }

    fn accepts_offload(&self) -> bool {
        self.port.accepts_offload()
    }

    fn release(&mut self, pool: &mut Pool) {
        self.port.release(pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_end_name_is_stable_short_and_differs_per_endpoint() {
        let a = host_name("psc-1", "c1");
        assert_eq!(a, host_name("psc-1", "c1"));
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("psv"));
        assert_ne!(a, host_name("psc-1", "c2"));
        // The separator keeps "ab"+"c" apart from "a"+"bc".
        assert_ne!(host_name("ab", "c"), host_name("a", "bc"));
    }
}
