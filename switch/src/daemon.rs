//! Building and running a switch from a config: check what exists, create
//! ports and endpoints, start the PMD threads, and take everything down
//! again. A config that fails a check creates nothing; an error halfway
//! drops what was created (TAPs close, XDP links detach).

use std::collections::HashMap;
use std::ffi::CString;

use anyhow::{bail, Context, Result};
use pmd::afxdp::{self, AfXdpPort, XdpFilter};
use pmd::tap::TapPort;
use pmd::thread::{PollMode, ThreadReport};
use pmd::{Pool, PoolConfig, Port, PortId};

use crate::config::{Attach, Config, PollCfg, PortKind};
use crate::dataplane::{Dataplane, ThreadSpec};
use crate::endpoint::{self, EndpointPlan};
use crate::pipeline::SwitchSettings;
use crate::topology::{NetId, Topology};

/// A running switch.
pub struct Switch {
    dataplane: Dataplane,
}

/// What a port will be, decided before anything is created.
enum PortPlan {
    /// A TAP that becomes an endpoint's eth0.
    Endpoint(EndpointPlan),
    /// A `[[port]]` on an existing interface.
    Iface { iface: String, kind: PortKind },
}

/// Index of an interface in the namespace podswitch runs in, if it exists.
fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// The cores PMD threads run on: the configured ones, or the last core.
fn pmd_cores(cfg: &Config) -> Vec<usize> {
    if !cfg.switch.cores.is_empty() {
        return cfg.switch.cores.clone();
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    vec![n - 1]
}

/// A short TAP name unique to this process.
fn tap_name(idx: usize) -> String {
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
            net_ids.insert(&n.name, topo.add_network(&n.name, n.subnet, n.gateway));
        }
        let mut plans: Vec<(PortId, PortPlan)> = Vec::new();
        let mut port_ids: HashMap<&str, PortId> = HashMap::new();
        for p in &cfg.ports {
            if ifindex(&p.iface).is_none() && p.kind == PortKind::AfXdp {
                bail!(
                    "port {}: interface {} does not exist in this network namespace",
                    p.name,
                    p.iface
                );
            }
            // A port switches in the network of the endpoints behind it.
            let nets: Vec<&str> = cfg
                .endpoints
                .iter()
                .filter(|e| matches!(&e.attach, Attach::Port(name) if *name == p.name))
                .map(|e| e.network.as_str())
                .collect();
            if let Some(first) = nets.first() {
                if nets.iter().any(|n| n != first) {
                    bail!(
                        "port {}: endpoints behind one port must share a network",
                        p.name
                    );
                }
            } else {
                tracing::warn!(
                    "port {} ({}) has no endpoints behind it; as an uplink it is used once NAT and overlay land",
                    p.name,
                    p.iface
                );
                continue;
            }
            let id = topo.add_port(&p.name, nets.first().map(|n| net_ids[n]));
            port_ids.insert(&p.name, id);
            plans.push((
                id,
                PortPlan::Iface {
                    iface: p.iface.clone(),
                    kind: p.kind,
                },
            ));
        }
        for e in &cfg.endpoints {
            let Attach::Netns(ns) = &e.attach else {
                continue;
            };
            let net = cfg.network(&e.network).context("endpoint network")?;
            let mtu = net.mtu.unwrap_or(1500);
            let plan = EndpointPlan {
                name: e.name.clone(),
                netns: ns.clone(),
                mac: e.mac,
                ip: e.ip,
                prefix: net.subnet.prefix_len(),
                gateway: net.gateway,
                mtu,
            };
            endpoint::preflight(&plan)?;
            let id = topo.add_port(&e.name, Some(net_ids[e.network.as_str()]));
            plans.push((id, PortPlan::Endpoint(plan)));
        }

        // 2. Remove what a killed run of ours left on our interfaces.
        for p in &cfg.ports {
            if p.kind == PortKind::AfXdp && ifindex(&p.iface).is_some() {
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
        let threads = cores.len().min(plans.len()).max(1);
        let needs_umem: Vec<bool> = (0..threads)
            .map(|t| {
                plans.iter().enumerate().any(|(i, (_, p))| {
                    i % threads == t
                        && matches!(
                            p,
                            PortPlan::Iface {
                                kind: PortKind::AfXdp,
                                ..
                            }
                        )
                })
            })
            .collect();
        let mut specs = Vec::with_capacity(threads);
        for (t, umem) in needs_umem.iter().enumerate() {
            let pool = Pool::new(PoolConfig {
                umem: *umem,
                ..PoolConfig::default()
            })
            .with_context(|| format!("PMD thread {t}: buffer pool"))?;
            specs.push(ThreadSpec {
                core: Some(cores[t]),
                mode,
                pool,
                ports: Vec::new(),
            });
        }
        for (i, (id, plan)) in plans.iter().enumerate() {
            let spec = &mut specs[i % threads];
            let port: Box<dyn Port> = match plan {
                PortPlan::Endpoint(ep) => Box::new(endpoint::create(ep, *id, &tap_name(i))?),
                PortPlan::Iface {
                    iface,
                    kind: PortKind::AfXdp,
                } => Box::new(
                    AfXdpPort::open(iface, *id, &mut spec.pool, XdpFilter::All)
                        .with_context(|| format!("opening AF_XDP port on {iface}"))?,
                ),
                PortPlan::Iface {
                    iface,
                    kind: PortKind::Tap,
                } => Box::new(
                    TapPort::create(iface, *id)
                        .with_context(|| format!("creating TAP port {iface}"))?,
                ),
            };
            spec.ports.push((*id, port));
        }
        let settings = SwitchSettings {
            mac_aging_secs: cfg.switch.mac_aging_secs,
            fdb_size: cfg.switch.fdb_size,
        };
        let dataplane = Dataplane::start(topo, settings, specs).context("starting PMD threads")?;
        Ok(Switch { dataplane })
    }

    /// The running data plane (counters, FDB).
    pub fn dataplane(&self) -> &Dataplane {
        &self.dataplane
    }

    /// Stops the threads; ports close (TAPs vanish, XDP links detach).
    pub fn stop(self) -> Vec<ThreadReport> {
        self.dataplane.stop()
    }
}
