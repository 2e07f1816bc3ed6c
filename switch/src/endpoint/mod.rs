//! Endpoints: a container's interface (`eth0` for config endpoints). For an
//! endpoint with `netns`, the switch creates a TAP (or, on a network with
//! `endpoint_link = "veth"`, a veth pair: see [`veth`]) inside the
//! container's namespace under the interface name and sets MAC, MTU,
//! address, default route and link up through route netlink (no `ip` or
//! `nsenter` process). The TAP is non-persistent: it disappears when the
//! switch closes it, and also when the switch is killed, so nothing is
//! left behind.

pub mod veth;

use std::fs::File;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use pmd::netlink::{LinkChange, Rtnl};
use pmd::netns::{self, netns_path};
use pmd::tap::TapPort;
use pmd::wire::MacAddr;
use pmd::{Port, PortId};

use crate::config::EndpointLink;
pub use veth::VethPort;

/// Docker's `none`: endpoint `name`'s namespace `ns` keeps loopback only,
/// up. Nothing else is made in it.
pub fn loopback_only(name: &str, ns: &str) -> Result<()> {
    Rtnl::open_at(&netns_path(ns))
        .and_then(|mut r| r.loopback_up())
        .with_context(|| format!("endpoint {name} (network none): loopback up in netns {ns}"))
}

/// Everything needed to set up one endpoint's interface.
#[derive(Debug, Clone)]
pub struct EndpointPlan {
    /// Endpoint name (for messages).
    pub name: String,
    /// `ip netns` name or absolute path of the namespace.
    pub netns: String,
    /// The interface's name inside the namespace (`eth0` for config
    /// endpoints).
    pub ifname: String,
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
    /// Routes besides the default one (HNS `ROUTE`): destination, next hop.
    pub routes: Vec<(ipnet::Ipv4Net, Ipv4Addr)>,
    /// A TAP or a veth pair (the network's `endpoint_link`).
    pub link: EndpointLink,
    /// On a network spread over several PMD threads: a queue per thread,
    /// steered by the group's program (`crate::spread`).
    pub queues: Option<crate::spread::Queues>,
}

/// An endpoint's port as created.
pub enum EndpointPort {
    Tap(TapPort),
    // Boxed: the AF_PACKET port's receive state is large, and the port
    // is boxed for its thread anyway.
    Veth(Box<VethPort>),
    /// An endpoint of a spread network: its first queue, and the queues of
    /// the other threads in order.
    Spread(Box<EndpointPort>, Vec<Box<dyn Port>>),
}

impl std::fmt::Debug for EndpointPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointPort::Tap(t) => write!(f, "TAP {}", t.name()),
            EndpointPort::Veth(v) => write!(f, "veth {}", v.host_name()),
            EndpointPort::Spread(first, more) => write!(f, "{first:?} + {} queues", more.len()),
        }
    }
}

impl EndpointPort {
    /// The host end's interface index when it is a veth: a port the
    /// kernel flow offload can redirect to.
    pub fn host_ifindex(&self) -> Option<u32> {
        match self {
            EndpointPort::Tap(_) => None,
            EndpointPort::Veth(v) => Some(v.host_ifindex()),
            EndpointPort::Spread(first, _) => first.host_ifindex(),
        }
    }

    /// The ports for the PMD threads, in the order of the threads of the
    /// endpoint's group (one unless its network is spread).
    pub fn into_ports(self) -> Vec<Box<dyn Port>> {
        match self {
            EndpointPort::Tap(t) => vec![Box::new(t)],
            EndpointPort::Veth(v) => vec![v],
            EndpointPort::Spread(first, more) => {
                let mut all = first.into_ports();
                all.extend(more);
                all
            }
        }
    }
}

/// The routes endpoint `e` of `net` gets besides its default route: a
/// route without a next hop goes via the network's gateway (`check` made
/// sure there is one).
pub fn routes_of(
    e: &crate::config::EndpointCfg,
    net: &crate::config::NetworkCfg,
) -> Vec<(ipnet::Ipv4Net, Ipv4Addr)> {
    e.policy
        .routes
        .iter()
        .filter_map(|r| Some((r.destination, r.next_hop.or(net.gateway)?)))
        .collect()
}

/// Endpoints set up at once by [`create_many`]. Every step takes the
/// kernel's rtnl lock, so more workers than this only queue on it; a few
/// keep it busy while others open namespaces and TAPs.
const WORKERS: usize = 8;

/// Opens the endpoint's namespace file, with an error that says what to do.
fn open_netns(plan: &EndpointPlan) -> Result<File> {
    let path = netns_path(&plan.netns);
    File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!(
            "endpoint {}: network namespace {} does not exist (create it, or use `podswitch lab up`)",
            plan.name,
            plan.netns
        ),
        _ => anyhow::anyhow!(
            "endpoint {}: opening network namespace {}: {e}",
            plan.name,
            path.display()
        ),
    })
}

/// Checks, before anything is created, that the endpoint can be set up:
/// the namespace exists and has no interface of that name yet.
pub fn preflight(plan: &EndpointPlan) -> Result<()> {
    let name = &plan.ifname;
    if name.is_empty()
        || name.len() > 15
        || name.contains(['/', ':'])
        || name.contains(char::is_whitespace)
    {
        bail!(
            "endpoint {}: {name:?} is not an interface name (1 to 15 characters, no '/', ':' or space)",
            plan.name
        );
    }
    if plan.link == EndpointLink::Veth {
        veth::remove_stale(plan)?;
    }
    let ns = open_netns(plan)?;
    let mut there = Rtnl::open_in(&ns)
        .with_context(|| format!("endpoint {}: entering netns {}", plan.name, plan.netns))?;
    if there
        .link_index(name)
        .with_context(|| format!("endpoint {}: looking into netns {}", plan.name, plan.netns))?
        .is_some()
    {
        bail!(
            "endpoint {}: namespace {} already has an interface {name}",
            plan.name,
            plan.netns
        );
    }
    Ok(())
}

/// Creates the endpoint's TAP (or veth pair) as port `id`, inside the
/// namespace under its interface name, and configures it. On error the
/// TAP is closed (the veth deleted), which removes it. `tap_label` names
/// the TAP in messages only: it is never an interface name (see
/// [`create_here`]). Must run on a thread in podswitch's namespace.
pub fn create(plan: &EndpointPlan, id: PortId, tap_label: &str) -> Result<EndpointPort> {
    let ns = open_netns(plan)?;
    let veth = match plan.link {
        EndpointLink::Tap => None,
        EndpointLink::Veth => Some(veth::create_host_side(
            plan,
            id,
            &ns,
            &veth::HostNs::here()?,
        )?),
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            netns::enter(&ns).with_context(|| {
                format!("endpoint {}: entering netns {}", plan.name, plan.netns)
            })?;
            match veth {
                None => create_here(plan, id, tap_label),
                Some(v) => {
                    configure_here(plan)?;
                    Ok(v)
                }
            }
        })
        .join()
        .map_err(|_| anyhow::anyhow!("endpoint {}: setup thread panicked", plan.name))?
    })
}

/// [`create`] on a thread that is in the endpoint's namespace already.
///
/// The TAP is opened here, so the kernel makes it in this namespace under
/// its final name: moving a TAP made in podswitch's namespace costs an RCU
/// grace period under the kernel's rtnl lock (14 ms per endpoint measured
/// on the development VM, serialised across threads), the largest part of
/// a lab's start; a rename costs another. The TAP's fd keeps working from
/// the PMD thread in podswitch's namespace; it also holds the namespace
/// while podswitch runs.
fn create_here(plan: &EndpointPlan, id: PortId, tap_label: &str) -> Result<EndpointPort> {
    let what = || {
        format!(
            "endpoint {}: creating its TAP ({tap_label}) as {}",
            plan.name, plan.ifname
        )
    };
    let port = match &plan.queues {
        None => EndpointPort::Tap(TapPort::create(&plan.ifname, id).with_context(what)?),
        Some(q) => {
            let mut taps =
                TapPort::create_queues(&plan.ifname, id, q.threads).with_context(what)?;
            let first = taps.remove(0);
            first
                .set_steering(q.steer.fd())
                .with_context(|| format!("endpoint {}: steering its TAP's queues", plan.name))?;
            let more = taps
                .into_iter()
                .map(|t| Box::new(t) as Box<dyn Port>)
                .collect();
            EndpointPort::Spread(Box::new(EndpointPort::Tap(first)), more)
        }
    };
    configure_here(plan)?;
    Ok(port)
}

/// Configures the endpoint's interface, which exists in this thread's
/// namespace: IPv6 off, MAC, MTU, up, address and routes.
fn configure_here(plan: &EndpointPlan) -> Result<()> {
    let configure = || -> Result<()> {
        let index = pmd::netdev::ifindex(&plan.ifname)
            .with_context(|| format!("{} vanished after its creation", plan.ifname))?;
        no_ipv6(&plan.ifname)?;
        let mut nl = Rtnl::open()?;
        nl.set_link(
            index,
            &LinkChange {
                mac: Some(plan.mac),
                mtu: Some(plan.mtu),
                up: true,
                ..LinkChange::default()
            },
        )?;
        nl.add_ipv4(index, plan.ip, plan.prefix)?;
        if let Some(gw) = plan.gateway {
            nl.replace_default_route(gw)?;
        }
        for (dst, hop) in &plan.routes {
            nl.replace_route(dst.network(), dst.prefix_len(), *hop)?;
        }
        Ok(())
    };
    configure().with_context(|| {
        format!(
            "endpoint {}: configuring {} in netns {}",
            plan.name, plan.ifname, plan.netns
        )
    })
}

/// Turns IPv6 off on the interface `ifname` of this thread's namespace,
/// before it goes up. podswitch networks are IPv4 only: an IPv6 link-local
/// address would only send multicast (duplicate address detection, router
/// solicitations, MLD reports) that the switch floods to every endpoint of
/// the network, 250 x 250 frames in a 1,000-container lab, which delayed
/// the first ARP and ping by seconds. A kernel without IPv6 has nothing
/// to turn off.
pub(crate) fn no_ipv6(ifname: &str) -> Result<()> {
    // /proc/sys/net shows the namespace of the thread that opens it.
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    match std::fs::write(&path, "1") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.with_context(|| format!("writing {path}")),
    }
}

/// Creates many endpoints at once (each `(plan, port, TAP label)`), on a
/// few worker threads that enter each endpoint's namespace in turn, and
/// returns their ports in the order given. On any error every port already
/// created is closed (which removes its interface) and the first error in
/// that order is returned. Must run on a thread in podswitch's namespace.
pub fn create_many(items: &[(EndpointPlan, PortId, String)]) -> Result<Vec<EndpointPort>> {
    // A veth's host end is made in podswitch's namespace, which workers
    // enter again after each container's.
    let host = match items.iter().any(|(p, _, _)| p.link == EndpointLink::Veth) {
        true => Some(veth::HostNs::here()?),
        false => None,
    };
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<EndpointPort>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    let workers = WORKERS.min(items.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            // Each worker is a thread of its own that ends with the scope,
            // so the namespaces it enters never leak into other work.
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((plan, id, label)) = items.get(i) else {
                    return;
                };
                let made = open_netns(plan).and_then(|ns| {
                    let veth = match (plan.link, &host) {
                        (EndpointLink::Veth, Some(host)) => {
                            host.enter()?;
                            Some(veth::create_host_side(plan, *id, &ns, host)?)
                        }
                        _ => None,
                    };
                    netns::enter(&ns).with_context(|| {
                        format!("endpoint {}: entering netns {}", plan.name, plan.netns)
                    })?;
                    match veth {
                        None => create_here(plan, *id, label),
                        Some(v) => {
                            configure_here(plan)?;
                            Ok(v)
                        }
                    }
                });
                let failed = made.is_err();
                slots.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(made);
                if failed {
                    // Stop handing out work: everything is undone.
                    next.store(items.len(), Ordering::Relaxed);
                    return;
                }
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut taps = Vec::with_capacity(items.len());
    for slot in slots {
        match slot {
            Some(Ok(port)) => taps.push(port),
            Some(Err(e)) => return Err(e),
            // Skipped after another endpoint failed; that error follows.
            None => continue,
        }
    }
    if taps.len() != items.len() {
        bail!("setting up {} endpoints stopped early", items.len());
    }
    Ok(taps)
}

/// Creates the TAP `ifname` as port `id` in podswitch's own namespace with
/// only its MAC and MTU set: down, no address, no route. For a runtime
/// that moves the interface into its container and configures it there
/// (Docker's remote driver, at Join). The TAP's fd keeps working after
/// the move, and closing it removes the interface wherever it is then.
///
/// Must run on a thread in podswitch's namespace (any thread but the
/// scoped ones [`create`] starts).
pub fn create_unconfigured(
    endpoint: &str,
    ifname: &str,
    mac: MacAddr,
    mtu: u32,
    id: PortId,
) -> Result<TapPort> {
    let mut nl = Rtnl::open()?;
    // TUNSETIFF on the name of a persistent TAP would attach to it, not
    // fail: a name in use is refused before that.
    if nl.link_index(ifname)?.is_some() {
        bail!("endpoint {endpoint}: podswitch's namespace already has an interface {ifname}");
    }
    let tap = TapPort::create(ifname, id)
        .with_context(|| format!("endpoint {endpoint}: creating its TAP {ifname}"))?;
    let index = nl
        .link_index(ifname)?
        .with_context(|| format!("{ifname} vanished after its creation"))?;
    nl.set_link(
        index,
        &LinkChange {
            mac: Some(mac),
            mtu: Some(mtu),
            ..LinkChange::default()
        },
    )
    .with_context(|| format!("endpoint {endpoint}: setting MAC and MTU of {ifname}"))?;
    Ok(tap)
}
