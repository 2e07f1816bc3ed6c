//! Building and running a switch from a config: check what exists, create
//! ports and endpoints, start the PMD threads, and take everything down
//! again. A config that fails a check creates nothing; an error halfway
//! drops what was created (TAPs close, XDP links detach).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use pmd::afpacket::ArpDelivery;
use pmd::afpacket::{Binding, Bridged, FilterHandle, PacketFilter, PacketPort};
use pmd::afxdp::{self, AfXdpPort, L4Ports, XdpFilter};
use pmd::netdev;
use pmd::tap::TapPort;
use pmd::thread::{PollMode, ThreadReport};
use pmd::wire::MacAddr;
use pmd::{Pool, PoolConfig, Port, PortId};

use crate::cluster::ClusterSync;
use crate::config::{Attach, Config, EndpointMode, NetworkMode, PollCfg, PortKind, Protocol};
use crate::dataplane::{Dataplane, ThreadSpec, UplinkNat};
use crate::endpoint::{self, EndpointPlan};
use crate::offload_ports::{OffloadPortChange, OffloadPortKind};
use crate::pipeline::SwitchSettings;
use crate::resolv::ResolvConf;
use crate::spread::{self, GroupSteer, Replica};
use crate::topology::{L2Mode, NetId, Topology, UplinkId};
use nat::{InternalNet, NatConfig, PortMapping, Proto, Timeouts};

/// A running switch.
pub struct Switch {
    pub(crate) dataplane: Dataplane,
    pub(crate) cluster: Option<ClusterSync>,
    pub(crate) live: Live,
    /// Endpoints that sit behind a `[[port]]`, by name: the port they use
    /// (an endpoint of its own TAP is a port of the topology by its name).
    behind_port: HashMap<String, PortId>,
}

/// What run-time changes need to know about the running switch
/// (`crate::attach`).
pub(crate) struct Live {
    /// The topology in force (the data plane holds a shared copy).
    pub topo: Topology,
    /// The PMD thread of each network, by `NetId`.
    pub net_thread: Vec<usize>,
    /// The steering of each network spread over several PMD threads (its
    /// threads start at `net_thread`), by `NetId`.
    pub net_spread: Vec<Option<Arc<GroupSteer>>>,
    /// The PMD thread of each uplink, by `UplinkId`.
    pub uplink_thread: Vec<usize>,
    /// The steering of each uplink spread over several PMD threads, by
    /// `UplinkId`.
    pub uplink_spread: Vec<Option<Arc<GroupSteer>>>,
    /// Endpoints the switch created a TAP or veth for: name, port, thread.
    pub taps: HashMap<String, (PortId, usize)>,
    /// The veth endpoints among them: port, the host end's interface index
    /// (for the flow offload).
    pub veths: HashMap<PortId, u32>,
    /// The MTU of each uplink, by port name.
    pub uplink_mtu: HashMap<String, u32>,
    /// Port ids of endpoints that left, for the next ones.
    pub free_ids: Vec<PortId>,
    /// Sequence number for the next TAP's name.
    pub next_tap: usize,
    /// The NAT config each uplink runs, by `UplinkId`.
    pub nat: Vec<Option<UplinkNat>>,
    /// The socket filter of each `packet` uplink, by `UplinkId`: the MACs
    /// and addresses of its L2 network's endpoints and of the endpoints
    /// with OutBoundNAT exceptions behind it, changed as they come and go.
    /// One handle per thread that polls the uplink.
    pub uplink_filters: HashMap<UplinkId, Vec<FilterHandle>>,
    /// The name server files written for endpoints, by endpoint name;
    /// each is removed with its entry.
    pub resolv: HashMap<String, ResolvConf>,
    /// The kernel flow offload, when it runs (`crate::offload_ports`).
    pub offload: Option<crate::offload_ports::OffloadState>,
}

/// The name server files of `cfg`'s endpoints that are attached by an
/// `ip netns` name, on networks with `dns`.
fn resolv_confs(cfg: &Config) -> Result<HashMap<String, ResolvConf>> {
    let mut out = HashMap::new();
    for e in &cfg.endpoints {
        let (Attach::Netns(ns), Some(net)) = (&e.attach, cfg.network(&e.network)) else {
            continue;
        };
        if let Some(r) = ResolvConf::write(ns, &net.dns)
            .with_context(|| format!("endpoint {}: its name servers", e.name))?
        {
            out.insert(e.name.clone(), r);
        }
    }
    Ok(out)
}

/// What a port will be, decided before anything is created.
enum PortPlan {
    /// A TAP that becomes an endpoint's eth0.
    Endpoint(EndpointPlan),
    /// A `[[port]]` on an existing interface, with endpoints behind it.
    Iface { iface: String, kind: PortKind },
    /// A `[[port]]` that is the uplink of NAT networks: the XDP filter hands
    /// the switch only frames for its address.
    Uplink {
        iface: String,
        kind: PortKind,
        /// The switch's address there (none on an L2 network's uplink
        /// without `ip`).
        ip: Option<std::net::Ipv4Addr>,
        /// The switch's own MAC there.
        mac: Option<MacAddr>,
        /// The frames of the L2 network on its segment.
        bridged: Bridged,
    },
}

/// The data path's name for an L2 network mode.
fn l2_mode(mode: NetworkMode) -> L2Mode {
    match mode {
        NetworkMode::L2Bridge => L2Mode::Bridge,
        NetworkMode::L2Tunnel => L2Mode::Tunnel,
        _ => L2Mode::Transparent,
    }
}

/// The cores PMD threads run on: the configured ones, or the last core.
fn pmd_cores(cfg: &Config) -> Vec<usize> {
    if !cfg.switch.cores.is_empty() {
        return cfg.switch.cores.clone();
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    vec![n - 1]
}

/// The switch's own MAC on an uplink: the configured one, else for an
/// AF_XDP uplink the interface's (its XDP filter steals the switch's frames
/// before the kernel sees them, so sharing the MAC is harmless), else
/// `02:50:` and the address. An AF_PACKET uplink must not share the
/// interface's MAC: the kernel sees the frames too, and only a foreign
/// destination MAC makes it drop them (as `PACKET_OTHERHOST`) instead of
/// routing or forwarding them.
fn uplink_mac(p: &crate::config::PortCfg, ip: std::net::Ipv4Addr) -> Result<MacAddr> {
    let own = || {
        netdev::mac(&p.iface)
            .with_context(|| format!("port {}: reading the MAC of {}", p.name, p.iface))
    };
    match (p.kind, p.mac) {
        (PortKind::Packet, Some(m)) if m == own()? => bail!(
            "port {}: mac {m} is {}'s own; a kind = \"packet\" uplink needs a MAC of its own \
             (the kernel would also act on the switch's frames); leave mac out for 02:50 and the address",
            p.name,
            p.iface
        ),
        (_, Some(m)) => Ok(m),
        (PortKind::AfXdp, None) => own(),
        (_, None) => Ok(crate::topology::gateway_mac(ip)),
    }
}

/// A short TAP name unique to this process.
pub(crate) fn tap_name(idx: usize) -> String {
    let mut s = format!("pst{}e{idx}", std::process::id() % 100_000);
    s.truncate(15);
    s
}

impl Switch {
    /// Checks that every namespace and interface exists, then creates the
    /// ports and endpoints and starts the PMD threads.
    pub fn start(cfg: &Config) -> Result<Switch> {
        // 1. Plan, and check everything before touching anything.
        let mut topo = Topology::default();
        let mut net_ids: HashMap<&str, NetId> = HashMap::new();
        for n in &cfg.networks {
            // An L2 network's gateway is the physical network's router:
            // the switch does not answer for it.
            let owned_gateway = n.gateway.filter(|_| !n.mode.is_l2());
            let id = topo.add_network(&n.name, n.subnet, owned_gateway);
            if let Some(mac) = n.gateway_mac {
                topo.set_gateway_mac(id, mac);
            }
            net_ids.insert(&n.name, id);
        }
        // Each plan carries a group: the ports of one network (and its
        // uplink) share a PMD thread, so its NAT state and FDB have one
        // owner and its traffic never crosses threads.
        let mut plans: Vec<(PortId, PortPlan, usize)> = Vec::new();
        // Networks that share an uplink share its thread (its NAT, VTEP
        // tables and next hops have one owner).
        let uplink_group: HashMap<&str, usize> = cfg
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), 1_000_000 + i))
            .collect();
        let net_group: Vec<usize> = cfg
            .networks
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.uplink
                    .as_deref()
                    .and_then(|u| uplink_group.get(u).copied())
                    .unwrap_or(i)
            })
            .collect();
        let group_of = |net: NetId| net_group[net.0 as usize];
        let mut uplink_mtu: HashMap<&str, u32> = HashMap::new();
        let mut port_ids: HashMap<&str, PortId> = HashMap::new();
        for p in &cfg.ports {
            if netdev::ifindex(&p.iface).is_none() && p.kind != PortKind::Tap {
                bail!(
                    "port {}: interface {} does not exist in this network namespace",
                    p.name,
                    p.iface
                );
            }
            let uplinked: Vec<&str> = cfg
                .networks
                .iter()
                .filter(|n| n.uplink.as_deref() == Some(p.name.as_str()))
                .map(|n| n.name.as_str())
                .collect();
            let l2 = cfg
                .networks
                .iter()
                .find(|n| n.mode.is_l2() && n.uplink.as_deref() == Some(p.name.as_str()));
            // A port with an address and no network yet is an uplink too:
            // `ctl network add` (a runtime's CreateNetwork) puts nat
            // networks on it later. One that only L2 networks use needs no
            // address: the switch owns none there.
            if p.ip.is_some() || l2.is_some() {
                let ip = p.ip.map(|n| n.addr());
                let mac = match (ip, p.mac) {
                    (None, None) => None,
                    (a, _) => Some(uplink_mac(p, a.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED))?),
                };
                let mtu = netdev::mtu(&p.iface).unwrap_or(1500);
                uplink_mtu.insert(&p.name, mtu);
                let (addr, subnet) = match p.ip {
                    Some(n) => (n.addr(), n.trunc()),
                    None => (std::net::Ipv4Addr::UNSPECIFIED, ipnet::Ipv4Net::default()),
                };
                let uid = topo.add_uplink(
                    &p.name,
                    addr,
                    subnet,
                    p.gateway,
                    mac.unwrap_or(MacAddr::ZERO),
                );
                topo.uplinks[uid.0 as usize].static_neighbors = p.neighbors.clone();
                topo.uplinks[uid.0 as usize].mtu = mtu;
                topo.uplinks[uid.0 as usize].udp_gso = p.kind == PortKind::Packet;
                for n in &uplinked {
                    topo.set_uplink(net_ids[n], uid);
                }
                let mut bridged = Bridged::default();
                if let Some(n) = l2 {
                    topo.set_l2(net_ids[n.name.as_str()], uid, l2_mode(n.mode));
                    for e in cfg.endpoints_of(&n.name) {
                        if n.mode == NetworkMode::Transparent {
                            bridged.macs.push(e.mac);
                        }
                        bridged.ips.push(e.ip);
                    }
                }
                // Replies from an endpoint's OutBoundNAT exceptions come
                // back to its own address, routed to the switch's MAC by a
                // network that knows where the container subnet lives.
                for n in &uplinked {
                    bridged.ips.extend(
                        cfg.endpoints_of(n)
                            .filter(|e| !e.policy.nat_exceptions.is_empty())
                            .map(|e| e.ip),
                    );
                }
                build_overlay(cfg, &mut topo, uid, &net_ids)?;
                let id = topo.uplink(uid).port;
                plans.push((
                    id,
                    PortPlan::Uplink {
                        iface: p.iface.clone(),
                        kind: p.kind,
                        ip,
                        mac,
                        bridged,
                    },
                    match uplinked.first() {
                        Some(first) => group_of(net_ids[first]),
                        None => uplink_group[p.name.as_str()],
                    },
                ));
                continue;
            }
            // A port switches in the network of the endpoints behind it.
            let nets: Vec<&str> = cfg
                .endpoints
                .iter()
                .filter(|e| matches!(&e.attach, Attach::Port(name) if *name == p.name))
                .map(|e| e.network.as_str())
                .collect();
            let Some(first) = nets.first() else {
                tracing::warn!(
                    "port {} ({}) has no endpoints and is no uplink; not opened",
                    p.name,
                    p.iface
                );
                continue;
            };
            if nets.iter().any(|n| n != first) {
                bail!(
                    "port {}: endpoints behind one port must share a network",
                    p.name
                );
            }
            let net = net_ids[first];
            let id = topo.add_port(&p.name, Some(net));
            port_ids.insert(&p.name, id);
            plans.push((
                id,
                PortPlan::Iface {
                    iface: p.iface.clone(),
                    kind: p.kind,
                },
                group_of(net),
            ));
        }
        let mut behind_port = HashMap::new();
        for e in &cfg.endpoints {
            let net_id = net_ids[e.network.as_str()];
            let port_id = match &e.attach {
                Attach::Port(name) => {
                    let id = port_ids.get(name.as_str()).copied();
                    if let Some(id) = id {
                        behind_port.insert(e.name.clone(), id);
                    }
                    id
                }
                Attach::HostTap(_) => bail!(
                    "endpoint {}: a TAP handed to a runtime is attached at run time only",
                    e.name
                ),
                Attach::Netns(ns) => {
                    let net = cfg.network(&e.network).context("endpoint network")?;
                    let uplink = net.uplink.as_deref().and_then(|u| uplink_mtu.get(u));
                    let mtu = match uplink {
                        Some(m) => net.endpoint_mtu(*m),
                        None => net.mtu.unwrap_or(1500),
                    };
                    let plan = EndpointPlan {
                        name: e.name.clone(),
                        netns: ns.clone(),
                        ifname: "eth0".to_string(),
                        mac: e.mac,
                        ip: e.ip,
                        prefix: net.subnet.prefix_len(),
                        gateway: net.gateway,
                        mtu,
                        routes: endpoint::routes_of(e, net),
                        link: net.endpoint_link,
                        // Set below, once the threads are planned.
                        queues: None,
                    };
                    endpoint::preflight(&plan)?;
                    let id = topo.add_port(&e.name, Some(net_id));
                    plans.push((id, PortPlan::Endpoint(plan), group_of(net_id)));
                    Some(id)
                }
            };
            if let Some(port) = port_id {
                topo.add_endpoint_addr(net_id, e.ip, e.mac, port);
                topo.guard_port(port, e.guard());
                topo.set_port_policy(net_id, port, &e.policy);
            }
        }

        for m in &cfg.endpoint_modes {
            if let EndpointMode::None(ns) = &m.mode {
                endpoint::loopback_only(&m.name, ns)?;
            }
        }

        // 2. Remove what a killed run of ours left on our interfaces.
        for p in &cfg.ports {
            // An AF_PACKET port checks too: a stale XDP program would still
            // turn the peer's TSO off.
            if p.kind != PortKind::Tap && netdev::ifindex(&p.iface).is_some() {
                match afxdp::remove_stale_program(&p.iface) {
                    Ok(found) => {
                        for o in found {
                            match o {
                                afxdp::StaleOutcome::Removed { id, .. } => tracing::info!(
                                    "removed stale XDP program {id} (a killed run's) from {}",
                                    p.iface
                                ),
                                afxdp::StaleOutcome::Busy { id, .. } => bail!(
                                    "interface {} is in use by another live podswitch (XDP link, program {id})",
                                    p.iface
                                ),
                                afxdp::StaleOutcome::Foreign { .. } => {}
                            }
                        }
                    }
                    Err(e) => tracing::warn!("checking {} for a stale XDP program: {e}", p.iface),
                }
            }
        }

        // 3. Threads, pools, ports.
        let cores = pmd_cores(cfg);
        let mode = match cfg.switch.poll {
            PollCfg::Busy => PollMode::Busy,
            PollCfg::Adaptive => PollMode::default(),
        };
        let mut groups: Vec<usize> = plans.iter().map(|(_, _, g)| *g).collect();
        groups.sort_unstable();
        groups.dedup();
        let nats = nat_configs(cfg, &topo);
        let spreadable: Vec<bool> = groups
            .iter()
            .map(|g| can_spread(cfg, &net_group, &plans, *g))
            .collect();
        let ranges = spread::thread_ranges(cores.len(), &spreadable);
        let threads = spread::thread_count(&ranges);
        let range_of = |g: usize| {
            let i = groups.iter().position(|x| *x == g).unwrap_or(0);
            ranges.get(i).cloned().unwrap_or(0..1)
        };
        let thread_of = |g: usize| range_of(g).start;
        let mut steers: HashMap<usize, Arc<GroupSteer>> = HashMap::new();
        for g in &groups {
            let n = range_of(*g).len();
            if n > 1 {
                let steer = group_steer(cfg, &topo, &nats, &net_group, &plans, *g, n)?;
                tracing::info!(
                    "networks {}: spread over {n} PMD threads (cores {:?})",
                    steer.networks.join(", "),
                    &cores[range_of(*g)]
                );
                steers.insert(*g, Arc::new(steer));
            }
        }
        for (_, plan, g) in plans.iter_mut() {
            if let (PortPlan::Endpoint(ep), Some(s)) = (plan, steers.get(g)) {
                ep.queues = Some(s.inside_queues());
            }
        }
        let offload = crate::offload_ports::OffloadState::for_config(cfg)?;
        let mut specs = Vec::with_capacity(threads);
        for (t, core) in cores.iter().copied().enumerate().take(threads) {
            let umem = plans.iter().any(|(_, p, g)| {
                range_of(*g).contains(&t)
                    && matches!(
                        p,
                        PortPlan::Iface {
                            kind: PortKind::AfXdp,
                            ..
                        } | PortPlan::Uplink {
                            kind: PortKind::AfXdp,
                            ..
                        }
                    )
            });
            let pool = Pool::new(PoolConfig {
                umem,
                ..PoolConfig::default()
            })
            .with_context(|| format!("PMD thread {t}: buffer pool"))?;
            let replica = ranges
                .iter()
                .find(|r| r.len() > 1 && r.contains(&t))
                .map_or_else(Replica::default, |r| Replica {
                    index: (t - r.start) as u16,
                    of: r.len() as u16,
                });
            specs.push(ThreadSpec {
                core: Some(core),
                mode,
                pool,
                ports: Vec::new(),
                flows: match &offload {
                    Some(o) => Some(o.table()?),
                    None => None,
                },
                replica,
            });
        }
        // Endpoints first, in parallel: they are most of a lab's start.
        let endpoint_plans: Vec<(EndpointPlan, PortId, String)> = plans
            .iter()
            .enumerate()
            .filter_map(|(i, (id, plan, _))| match plan {
                PortPlan::Endpoint(ep) => Some((ep.clone(), *id, tap_name(i))),
                _ => None,
            })
            .collect();
        let mut endpoint_taps = endpoint::create_many(&endpoint_plans)?.into_iter();
        let mut uplink_filters = HashMap::new();
        let mut veths = HashMap::new();
        let mut offload_uplinks = Vec::new();
        for (id, plan, group) in plans.iter() {
            let first = thread_of(*group);
            let steer = steers.get(group);
            let spec = &mut specs[first];
            let ports: Vec<Box<dyn Port>> = match plan {
                PortPlan::Endpoint(_) => {
                    let made = endpoint_taps
                        .next()
                        .context("an endpoint's TAP is missing")?;
                    if let Some(ifindex) = made.host_ifindex() {
                        veths.insert(*id, ifindex);
                    }
                    made.into_ports()
                }
                PortPlan::Iface {
                    iface,
                    kind: PortKind::Packet,
                } if steer.is_some() => {
                    let s = steer.context("a spread group's steering")?;
                    PacketPort::open_spread(
                        iface,
                        *id,
                        PacketFilter::All,
                        s.threads,
                        s.inside.fd(),
                        ArpDelivery::Steered,
                    )
                    .with_context(|| format!("opening AF_PACKET port on {iface}"))?
                    .into_iter()
                    .map(|p| Box::new(p) as Box<dyn Port>)
                    .collect()
                }
                PortPlan::Iface {
                    iface,
                    kind: PortKind::AfXdp,
                } => vec![Box::new(
                    AfXdpPort::open(iface, *id, &mut spec.pool, XdpFilter::All)
                        .with_context(|| format!("opening AF_XDP port on {iface}"))?,
                )],
                PortPlan::Uplink {
                    iface,
                    kind: PortKind::AfXdp,
                    ip,
                    ..
                } => {
                    let filter = XdpFilter::Switch {
                        macs: Vec::new(),
                        ips: ip.iter().copied().collect(),
                        shared_ips: Vec::new(),
                        l4: L4Ports::default(),
                    };
                    vec![Box::new(
                        AfXdpPort::open(iface, *id, &mut spec.pool, filter)
                            .with_context(|| format!("opening AF_XDP uplink on {iface}"))?,
                    )]
                }
                PortPlan::Iface {
                    iface,
                    kind: PortKind::Packet,
                } => vec![Box::new(
                    PacketPort::open(iface, *id, PacketFilter::All)
                        .with_context(|| format!("opening AF_PACKET port on {iface}"))?,
                )],
                PortPlan::Uplink {
                    iface,
                    kind: PortKind::Packet,
                    ip,
                    mac,
                    bridged,
                } => {
                    let mut vxlan_ports: Vec<u16> = cfg
                        .networks
                        .iter()
                        .filter(|n| {
                            n.mode == NetworkMode::Overlay
                                && n.uplink
                                    .as_deref()
                                    .and_then(|u| cfg.port(u))
                                    .is_some_and(|p| p.iface == *iface)
                        })
                        .map(|n| n.vxlan_port)
                        .collect();
                    vxlan_ports.sort_unstable();
                    vxlan_ports.dedup();
                    let filter = PacketFilter::Owned {
                        ip: *ip,
                        mac: *mac,
                        vxlan_ports,
                        bridged: bridged.clone(),
                    };
                    // Behind the offload program, the socket takes only
                    // what the program leaves (pmd::afpacket::Binding).
                    let binding = if offload.is_some() {
                        Binding::AfterTc
                    } else {
                        Binding::AllFrames
                    };
                    // Spread: a socket per thread in a fan-out group, and
                    // every thread sees every ARP frame (each resolves its
                    // own next hops).
                    let what = || format!("opening AF_PACKET uplink on {iface}");
                    let queues = match steer {
                        None => vec![PacketPort::open_bound(iface, *id, filter, binding)
                            .with_context(what)?],
                        Some(s) => {
                            let out = s.outside.as_ref().context("a spread uplink's steering")?;
                            PacketPort::open_spread(
                                iface,
                                *id,
                                filter,
                                s.threads,
                                out.fd(),
                                ArpDelivery::Every,
                            )
                            .with_context(what)?
                        }
                    };
                    let mut ports = Vec::with_capacity(queues.len());
                    let mut handles = Vec::with_capacity(queues.len());
                    for port in queues {
                        // Endpoints attached at run time join the filter.
                        handles.push(port.filter_handle()?.context("an uplink has a filter")?);
                        ports.push(Box::new(port) as Box<dyn Port>);
                    }
                    if let Some(ifindex) = netdev::ifindex(iface) {
                        offload_uplinks.push((*id, ifindex, first));
                    }
                    if let Some(up) = topo.uplinks.iter().position(|u| u.port == *id) {
                        uplink_filters.insert(UplinkId(up as u16), handles);
                    }
                    ports
                }
                PortPlan::Iface {
                    iface,
                    kind: PortKind::Tap,
                }
                | PortPlan::Uplink {
                    iface,
                    kind: PortKind::Tap,
                    ..
                } => vec![Box::new(
                    TapPort::create(iface, *id)
                        .with_context(|| format!("creating TAP port {iface}"))?,
                )],
            };
            for (i, port) in ports.into_iter().enumerate() {
                specs[first + i].ports.push((*id, port));
            }
        }
        let settings = SwitchSettings {
            mac_aging_secs: cfg.switch.mac_aging_secs,
            fdb_size: cfg.switch.fdb_size,
        };
        let net_thread: Vec<usize> = (0..topo.networks.len())
            .map(|n| thread_of(group_of(NetId(n as u16))))
            .collect();
        let taps: HashMap<String, (PortId, usize)> = plans
            .iter()
            .filter_map(|(id, plan, g)| match plan {
                PortPlan::Endpoint(ep) => Some((ep.name.clone(), (*id, thread_of(*g)))),
                _ => None,
            })
            .collect();
        let uplink_group: Vec<Option<usize>> = topo
            .uplinks
            .iter()
            .map(|u| {
                plans
                    .iter()
                    .find(|(id, _, _)| *id == u.port)
                    .map(|(_, _, g)| *g)
            })
            .collect();
        let uplink_thread: Vec<usize> = uplink_group
            .iter()
            .map(|g| g.map_or(0, thread_of))
            .collect();
        let uplink_spread: Vec<Option<Arc<GroupSteer>>> = uplink_group
            .iter()
            .map(|g| g.and_then(|g| steers.get(&g).cloned()))
            .collect();
        let net_spread: Vec<Option<Arc<GroupSteer>>> = (0..topo.networks.len())
            .map(|n| steers.get(&group_of(NetId(n as u16))).cloned())
            .collect();
        let live = Live {
            topo: topo.clone(),
            net_thread,
            net_spread,
            uplink_thread,
            uplink_spread,
            taps,
            veths,
            uplink_mtu: uplink_mtu
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            free_ids: Vec::new(),
            next_tap: plans.len(),
            nat: nats.clone(),
            uplink_filters,
            resolv: resolv_confs(cfg)?,
            offload,
        };
        let dataplane = Dataplane::start_with_nat(topo, settings, specs, nats)
            .context("starting PMD threads")?;
        let cluster = match &cfg.cluster {
            Some(c) => Some(ClusterSync::start(
                cfg,
                c,
                dataplane.topology(),
                dataplane.control_handle(),
            )?),
            None => None,
        };
        let mut switch = Switch {
            dataplane,
            cluster,
            behind_port,
            live,
        };
        let mut appeared: Vec<OffloadPortChange> = offload_uplinks
            .into_iter()
            .map(|(port, ifindex, thread)| OffloadPortChange::Appeared {
                port,
                ifindex,
                thread,
                kind: OffloadPortKind::PacketUplink,
            })
            .collect();
        for (port, ifindex) in &switch.live.veths {
            let thread = switch.live.taps.values().find(|(p, _)| p == port);
            appeared.push(OffloadPortChange::Appeared {
                port: *port,
                ifindex: *ifindex,
                thread: thread.map_or(0, |(_, t)| *t),
                kind: OffloadPortKind::VethEndpoint,
            });
        }
        switch.offload_ports_appeared(appeared);
        Ok(switch)
    }

    /// The port a `[[port]]` or endpoint name means (for capture and
    /// trace): an endpoint behind a `[[port]]` means that port.
    pub fn port_named(&self, name: &str) -> Option<PortId> {
        let topo = self.dataplane.topology();
        // A removed port keeps its id with an empty name.
        match topo
            .ports
            .iter()
            .position(|p| !name.is_empty() && p.name == name)
        {
            Some(i) => Some(PortId(i as u16)),
            None => self.behind_port.get(name).copied(),
        }
    }

    /// The PMD threads that run network `name` (several when it is
    /// spread); empty for one the switch does not run.
    pub fn threads_of(&self, name: &str) -> Vec<usize> {
        let Some(id) = self.live.topo.network_id(name) else {
            return Vec::new();
        };
        let i = id.0 as usize;
        let (Some(first), spread) = (self.live.net_thread.get(i), self.live.net_spread.get(i))
        else {
            return Vec::new();
        };
        let n = spread.and_then(Option::as_ref).map_or(1, |s| s.threads);
        (*first..first + n).collect()
    }

    /// The running data plane (counters, FDB).
    pub fn dataplane(&self) -> &Dataplane {
        &self.dataplane
    }

    /// Leaves the cluster (other hosts drop this host's endpoints at
    /// once), then stops the threads; ports close (TAPs vanish, XDP links
    /// detach).
    pub fn stop(self) -> Vec<ThreadReport> {
        if let Some(c) = self.cluster {
            c.stop();
        }
        self.dataplane.stop()
    }
}

/// The NAT of each uplink with `nat` networks, by `UplinkId`: one
/// address, port range, table and mapping table for all of them.
pub(crate) fn nat_configs(cfg: &Config, topo: &Topology) -> Vec<Option<UplinkNat>> {
    let n = &cfg.nat;
    let timeouts = Timeouts {
        tcp_syn_sent: n.tcp_syn_sent,
        tcp_established: n.tcp_established,
        tcp_fin_wait: n.tcp_fin_wait,
        tcp_time_wait: n.tcp_time_wait,
        tcp_close: n.tcp_close,
        udp: n.udp,
        udp_stream: n.udp_stream,
        icmp: n.icmp,
        ..Timeouts::default()
    };
    topo.uplinks
        .iter()
        .enumerate()
        .map(|(u, up)| {
            let mut networks = Vec::new();
            let mut internal = Vec::new();
            // By name: networks added at run time come after the others
            // in the topology, wherever the file lists them.
            for (i, net) in topo.networks.iter().enumerate() {
                let ours = net.uplink.is_some_and(|x| x.0 as usize == u);
                let Some(ncfg) = cfg.network(&net.name).filter(|_| ours && !net.removed) else {
                    continue;
                };
                if let (NetworkMode::Nat, Some(gw)) = (ncfg.mode, net.gateway) {
                    networks.push(NetId(i as u16));
                    internal.push(InternalNet {
                        subnet: net.subnet,
                        gateway: gw.ip,
                    });
                }
            }
            // An uplink no network uses yet gets an empty NAT, ready for
            // nat networks added at run time.
            let unused = !topo
                .networks
                .iter()
                .any(|n| n.uplink.is_some_and(|x| x.0 as usize == u));
            if networks.is_empty() && !unused {
                return None;
            }
            let names: Vec<&str> = networks
                .iter()
                .map(|id| topo.network(*id).name.as_str())
                .collect();
            let mappings = cfg
                .port_mappings
                .iter()
                .filter(|m| names.contains(&m.network.as_str()))
                .filter_map(|m| {
                    let ep = cfg.endpoint(&m.endpoint)?;
                    Some(PortMapping {
                        proto: match m.protocol {
                            Protocol::Tcp => Proto::Tcp,
                            Protocol::Udp => Proto::Udp,
                        },
                        host_port: m.host_port,
                        internal_ip: ep.ip,
                        internal_port: m.port,
                    })
                })
                .collect();
            Some(UplinkNat {
                config: NatConfig {
                    external_ip: up.ip,
                    networks: internal,
                    port_range: n.port_range,
                    max_entries: n.max_entries,
                    timeouts,
                    mappings,
                },
                networks,
            })
        })
        .collect()
}

/// Builds the VTEP tables of uplink `uid` from the overlay networks that
/// use it and their static remote endpoints.
pub(crate) fn build_overlay(
    cfg: &Config,
    topo: &mut Topology,
    uid: crate::topology::UplinkId,
    net_ids: &HashMap<&str, NetId>,
) -> Result<()> {
    let up = topo.uplink(uid).clone();
    let mut tables = overlay::VtepTables::new(up.ip);
    let mut nets = Vec::new();
    for n in &cfg.networks {
        if n.mode != NetworkMode::Overlay || n.uplink.as_deref() != Some(up.name.as_str()) {
            continue;
        }
        let vni = n.vni.context("overlay network without vni")?;
        let id = net_ids[n.name.as_str()];
        topo.set_vxlan(id, vni, n.vxlan_port);
        let gw = topo.network(id).gateway.map(|g| overlay::GatewayAddr {
            ip: g.ip,
            mac: g.mac,
        });
        tables
            .add_network(vni, n.vxlan_port, gw)
            .with_context(|| format!("network {}", n.name))?;
        for r in cfg.remote_endpoints.iter().filter(|r| r.network == n.name) {
            tables
                .add_remote_endpoint(overlay::RemoteEndpoint {
                    vni,
                    ip: r.ip,
                    mac: r.mac,
                    vtep: r.vtep,
                })
                .with_context(|| format!("remote endpoint {} of network {}", r.ip, n.name))?;
        }
        nets.push((vni, id));
    }
    // An uplink whose last overlay network went keeps empty tables.
    if !nets.is_empty() || up.vteps.is_some() {
        let u = &mut topo.uplinks[uid.0 as usize];
        u.vteps = Some(std::sync::Arc::new(tables));
        u.overlay_nets = nets;
    }
    Ok(())
}

/// True when group `g` can run on several PMD threads (`crate::spread`):
/// it has networks, all of them `nat`, and every port of it is one the
/// kernel steers between queues (an endpoint's TAP or veth, an AF_PACKET
/// port).
fn can_spread(
    cfg: &Config,
    net_group: &[usize],
    plans: &[(PortId, PortPlan, usize)],
    g: usize,
) -> bool {
    let nets: Vec<_> = networks_of_group(cfg, net_group, g).collect();
    if nets.is_empty() || nets.iter().any(|n| n.mode != NetworkMode::Nat) {
        return false;
    }
    // What the steering program holds: past that the group keeps one
    // thread rather than steer some flows to a thread without their state.
    let names: Vec<&str> = nets.iter().map(|n| n.name.as_str()).collect();
    let mappings = cfg
        .port_mappings
        .iter()
        .filter(|m| names.contains(&m.network.as_str()))
        .count();
    if names.len() > pmd::steer::MAX_SUBNETS || mappings > pmd::steer::MAX_MAPPED {
        tracing::warn!(
            "networks {}: more than {} networks or {} port mappings on one uplink; they stay on one PMD thread",
            names.join(", "),
            pmd::steer::MAX_SUBNETS,
            pmd::steer::MAX_MAPPED
        );
        return false;
    }
    plans.iter().filter(|(_, _, pg)| *pg == g).all(|(_, p, _)| {
        matches!(
            p,
            PortPlan::Endpoint(_)
                | PortPlan::Iface {
                    kind: PortKind::Packet,
                    ..
                }
                | PortPlan::Uplink {
                    kind: PortKind::Packet,
                    ..
                }
        )
    })
}

/// The networks of group `g` (`net_group` is each network's group).
fn networks_of_group<'a>(
    cfg: &'a Config,
    net_group: &'a [usize],
    g: usize,
) -> impl Iterator<Item = &'a crate::config::NetworkCfg> {
    cfg.networks
        .iter()
        .zip(net_group)
        .filter(move |(_, ng)| **ng == g)
        .map(|(n, _)| n)
}

/// Loads the steering programs of group `g`, spread over `threads`.
fn group_steer(
    cfg: &Config,
    topo: &Topology,
    nats: &[Option<UplinkNat>],
    net_group: &[usize],
    plans: &[(PortId, PortPlan, usize)],
    g: usize,
    threads: usize,
) -> Result<GroupSteer> {
    let networks = networks_of_group(cfg, net_group, g)
        .map(|n| (n.name.clone(), n.subnet, n.gateway))
        .collect();
    let uplink = plans
        .iter()
        .find(|(_, p, pg)| *pg == g && matches!(p, PortPlan::Uplink { .. }))
        .map(|(id, _, _)| *id);
    let nat = uplink
        .and_then(|port| topo.uplinks.iter().position(|u| u.port == port))
        .and_then(|u| nats.get(u)?.as_ref())
        .map(|un| &un.config);
    GroupSteer::load(threads, networks, uplink.is_some(), nat)
}
