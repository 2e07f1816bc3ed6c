//! Changes to a running switch, between bursts of its PMD threads:
//! endpoints attached and detached, NAT configs (port mappings) and static
//! overlay peers replaced. Every other endpoint, and the learned state
//! behind it (FDB entries, conntrack, NAT mappings, next hops), is left
//! alone: the PMD threads swap in the new topology and keep their tables.

use anyhow::{bail, Context, Result};

use crate::config::{Attach, Config, EndpointCfg};
use crate::daemon::{nat_configs, tap_name, Switch};
use crate::endpoint::{self, EndpointPlan};
use crate::offload_ports::{OffloadPortChange, OffloadPortKind};
use crate::pipeline::Control;
use crate::resolv::ResolvConf;
use crate::topology::{L2Mode, NetId, UplinkId};

/// Why a network could not be added or removed at run time.
#[derive(Debug, thiserror::Error)]
pub enum NetworkChange {
    /// Only a restart can make this change.
    #[error("{0}")]
    NeedsRestart(String),
}

/// What an attached endpoint got.
#[derive(Debug, Clone, PartialEq)]
pub struct Attached {
    /// Interface MTU inside the namespace.
    pub mtu: u32,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// Default route via this gateway.
    pub gateway: Option<std::net::Ipv4Addr>,
}

impl Switch {
    /// Attaches endpoint `e` of config `cfg` (which must already hold it
    /// and pass `check`): for a netns endpoint a TAP becomes its
    /// `ifname`; for a `HostTap` one, a TAP `ifname` is left unconfigured
    /// in podswitch's namespace for its runtime; for one behind a
    /// `[[port]]`, only its address is learned.
    pub fn attach(&mut self, cfg: &Config, e: &EndpointCfg, ifname: &str) -> Result<Attached> {
        let net = cfg
            .network(&e.network)
            .with_context(|| format!("endpoint {}: no network {:?}", e.name, e.network))?;
        let Some(net_id) = self.live.topo.network_id(&e.network) else {
            bail!(
                "endpoint {}: network {} was added after the start; restart to use it",
                e.name,
                e.network
            );
        };
        let uplink_mtu = net
            .uplink
            .as_deref()
            .and_then(|u| self.live.uplink_mtu.get(u));
        let mtu = match uplink_mtu {
            Some(m) => net.endpoint_mtu(*m),
            None => net.mtu.unwrap_or(1500),
        };
        let attached = Attached {
            mtu,
            prefix: net.subnet.prefix_len(),
            gateway: net.gateway,
        };
        // An L2 network's uplink takes the endpoint's frames before any
        // frame can come from it.
        self.uplink_filter(net_id, e, true)?;
        let attached_or = self.attach_to(net, net_id, e, ifname, attached);
        if attached_or.is_err() {
            let _ = self.uplink_filter(net_id, e, false);
        }
        attached_or
    }

    /// `attach` once the uplink filter is set.
    fn attach_to(
        &mut self,
        net: &crate::config::NetworkCfg,
        net_id: NetId,
        e: &EndpointCfg,
        ifname: &str,
        attached: Attached,
    ) -> Result<Attached> {
        let mtu = attached.mtu;
        let mut topo = self.live.topo.clone();
        match &e.attach {
            Attach::Port(name) => {
                let Some(port) = topo.ports.iter().position(|p| p.name == *name) else {
                    bail!("endpoint {}: port {name} is not open", e.name);
                };
                let port = pmd::PortId(port as u16);
                topo.add_endpoint_addr(net_id, e.ip, e.mac, port);
                topo.guard_port(port, e.guard());
                topo.set_port_policy(net_id, port, &e.policy);
                self.live.topo = topo.clone();
                self.dataplane.set_topology(topo);
            }
            Attach::Netns(_) | Attach::HostTap(_) => {
                if self.live.taps.contains_key(&e.name) {
                    bail!("endpoint {} is already attached", e.name);
                }
                let plan = match &e.attach {
                    Attach::Netns(ns) => {
                        let plan = EndpointPlan {
                            name: e.name.clone(),
                            netns: ns.clone(),
                            ifname: ifname.to_string(),
                            mac: e.mac,
                            ip: e.ip,
                            prefix: attached.prefix,
                            gateway: attached.gateway,
                            mtu,
                            routes: endpoint::routes_of(e, net),
                            link: net.endpoint_link,
                            queues: self.live.net_spread[net_id.0 as usize]
                                .as_ref()
                                .map(|s| s.inside_queues()),
                        };
                        endpoint::preflight(&plan)?;
                        Some(plan)
                    }
                    _ => None,
                };
                let reuse = self.live.free_ids.pop();
                let id = topo.add_port_as(reuse, &e.name, Some(net_id));
                let made = match &plan {
                    Some(plan) => endpoint::create(plan, id, &tap_name(self.live.next_tap)),
                    None => endpoint::create_unconfigured(&e.name, ifname, e.mac, mtu, id)
                        .map(endpoint::EndpointPort::Tap),
                };
                let tap = match made {
                    Ok(t) => t,
                    Err(err) => {
                        self.live.free_ids.extend(reuse);
                        return Err(err);
                    }
                };
                self.live.next_tap += 1;
                topo.add_endpoint_addr(net_id, e.ip, e.mac, id);
                topo.guard_port(id, e.guard());
                topo.set_port_policy(net_id, id, &e.policy);
                let thread = self.live.net_thread[net_id.0 as usize];
                let veth = tap.host_ifindex();
                // The port first, then the topology that leads to it: a
                // frame for it never finds a port that is not there yet.
                // On a spread network, queue i goes to the group's thread i.
                for (i, port) in tap.into_ports().into_iter().enumerate() {
                    self.dataplane
                        .add_port(thread + i, id, port)
                        .with_context(|| {
                            format!("endpoint {}: starting to poll its port", e.name)
                        })?;
                }
                self.live.taps.insert(e.name.clone(), (id, thread));
                if let Some(ifindex) = veth {
                    self.live.veths.insert(id, ifindex);
                    self.offload_port_changed(
                        &mut topo,
                        OffloadPortChange::Appeared {
                            port: id,
                            ifindex,
                            thread,
                            kind: OffloadPortKind::VethEndpoint,
                        },
                    );
                }
                if let Attach::Netns(ns) = &e.attach {
                    if let Some(r) = ResolvConf::write(ns, &net.dns)? {
                        self.live.resolv.insert(e.name.clone(), r);
                    }
                }
                self.live.topo = topo.clone();
                self.dataplane.set_topology(topo);
                self.dataplane.settle();
            }
        }
        Ok(attached)
    }

    /// Detaches endpoint `e`: its TAP is closed (it vanishes from the
    /// container), its address and learned MAC are forgotten and its NAT
    /// connections dropped. Returns false when it was not attached.
    pub fn detach(&mut self, e: &EndpointCfg) -> Result<bool> {
        let Some(net_id) = self.live.topo.network_id(&e.network) else {
            return Ok(false);
        };
        let mut topo = self.live.topo.clone();
        let tap = self.live.taps.remove(&e.name);
        self.live.resolv.remove(&e.name);
        match tap {
            Some((id, _)) => topo.remove_port(id),
            None => topo.remove_endpoint_addr(net_id, e.ip),
        }
        // The topology first: once every thread has it, nothing is sent
        // to the port any more.
        self.live.topo = topo.clone();
        self.dataplane.set_topology(topo);
        if let Some((id, thread)) = tap {
            if let Some(ifindex) = self.live.veths.remove(&id) {
                // The port's topology entry went above; this detaches.
                let mut topo = self.live.topo.clone();
                self.offload_port_changed(&mut topo, OffloadPortChange::Went { port: id, ifindex });
            }
            let queues = self.live.net_spread[net_id.0 as usize]
                .as_ref()
                .map_or(1, |s| s.threads);
            for t in thread..thread + queues {
                let port = self
                    .dataplane
                    .remove_port(t, id)
                    .with_context(|| format!("endpoint {}: removing its port", e.name))?;
                // Closing the TAP here, on the control thread: the kernel
                // may take milliseconds to unregister it.
                drop(port);
            }
            self.live.free_ids.push(id);
        }
        if let Some(up) = self.live.topo.network(net_id).uplink {
            self.dataplane.control(|| Control::ForgetAddress(up, e.ip));
        }
        self.uplink_filter(net_id, e, false)?;
        Ok(tap.is_some() || matches!(e.attach, Attach::Port(_)))
    }

    /// Adds endpoint `e` of network `net` to (or takes it out of) its
    /// uplink's socket filter, when the uplink must take frames for it:
    /// in an L2 network its address, and in transparent its MAC; in a nat
    /// network its address when it has OutBoundNAT exceptions (their
    /// replies come back to it untranslated).
    fn uplink_filter(&mut self, net: NetId, e: &EndpointCfg, add: bool) -> Result<()> {
        let network = self.live.topo.network(net);
        let (l2, up) = (network.l2, network.uplink);
        let Some(handles) = up.and_then(|u| self.live.uplink_filters.get_mut(&u)) else {
            return Ok(());
        };
        let Some(handle) = handles.first() else {
            return Ok(());
        };
        let takes_ip = l2.is_some() || !e.policy.nat_exceptions.is_empty();
        let mut b = handle.bridged().clone();
        let before = b.clone();
        b.ips.retain(|ip| *ip != e.ip);
        b.macs.retain(|m| *m != e.mac);
        if add && takes_ip {
            b.ips.push(e.ip);
        }
        if add && l2 == Some(L2Mode::Transparent) {
            b.macs.push(e.mac);
        }
        if b == before {
            return Ok(());
        }
        // Each thread's sockets have a filter of their own.
        for handle in handles.iter_mut() {
            handle
                .set_bridged(b.clone())
                .with_context(|| format!("endpoint {}: the uplink's filter", e.name))?;
        }
        Ok(())
    }

    /// Adds network `n` of `cfg`: a `nat` network on an uplink that
    /// already runs a NAT, or a network without uplink. (An overlay, or a
    /// NAT on a new uplink, needs ports, filters and a NAT placed at
    /// start: `Err(NeedsRestart)`.)
    pub fn add_network(&mut self, n: &crate::config::NetworkCfg) -> Result<(), NetworkChange> {
        let (uplink, thread) = self.placement(n)?;
        let mut topo = self.live.topo.clone();
        let id = topo.add_network(&n.name, n.subnet, n.gateway);
        if let Some(mac) = n.gateway_mac {
            topo.set_gateway_mac(id, mac);
        }
        if let Some(u) = uplink {
            topo.set_uplink(id, u);
        }
        self.live.net_thread.push(thread);
        let spread = uplink.and_then(|u| self.live.uplink_spread[u.0 as usize].clone());
        if let Some(s) = &spread {
            // Its containers' east-west traffic is steered symmetrically,
            // and hairpins answered to its gateway by their NAT port's
            // slice, only once the program knows the network.
            if let Err(err) = s.add_network(n.subnet, n.gateway) {
                tracing::warn!("network {}: {err:#}", n.name);
            }
        }
        self.live.net_spread.push(spread);
        self.live.topo = topo.clone();
        self.dataplane.set_topology(topo);
        Ok(())
    }

    /// Where network `n` would run if added now: its uplink and PMD thread,
    /// or why it cannot be added without a restart.
    pub fn placement(
        &self,
        n: &crate::config::NetworkCfg,
    ) -> Result<(Option<UplinkId>, usize), NetworkChange> {
        use crate::config::NetworkMode;
        let restart = |why: String| Err(NetworkChange::NeedsRestart(why));
        let uplink = match n.uplink.as_deref() {
            None => None,
            Some(name) => match self.live.topo.uplinks.iter().position(|u| u.name == name) {
                Some(u) => Some(UplinkId(u as u16)),
                None => {
                    return restart(format!(
                        "network {}: port {name} was no uplink at start",
                        n.name
                    ))
                }
            },
        };
        match (n.mode, uplink) {
            (NetworkMode::Nat, Some(u)) if self.live.nat[u.0 as usize].is_some() => {}
            (NetworkMode::Nat, None) => {}
            (NetworkMode::Nat, Some(_)) => {
                return restart(format!(
                    "network {}: its uplink had no nat network at start",
                    n.name
                ))
            }
            (NetworkMode::Overlay, Some(_)) if n.vni.is_some() => {}
            (mode, _) => {
                return restart(format!(
                "network {}: a {mode} network without an uplink and a vni is added only at start",
                n.name
            ))
            }
        }
        let thread = match uplink {
            Some(u) => self.live.uplink_thread[u.0 as usize],
            None => 0,
        };
        Ok((uplink, thread))
    }

    /// Retires network `name` (its endpoints detached first by the
    /// caller); its NAT flows go with the next `apply_nat`, its overlay
    /// tables with the next `apply_overlay`.
    pub fn remove_network(&mut self, name: &str) {
        let Some(id) = self.live.topo.network_id(name) else {
            return;
        };
        let mut topo = self.live.topo.clone();
        topo.retire_network(id);
        self.live.topo = topo.clone();
        self.dataplane.set_topology(topo);
    }

    /// Applies the NAT configs `cfg` implies (mappings, timeouts) to the
    /// uplinks whose config changed; their other connections stay.
    pub fn apply_nat(&mut self, cfg: &Config) -> Vec<UplinkId> {
        let wanted = nat_configs(cfg, &self.live.topo);
        let mut changed = Vec::new();
        for (u, (now, want)) in self.live.nat.iter_mut().zip(wanted).enumerate() {
            if *now == want {
                continue;
            }
            let (c, nets) = match (&want, &*now) {
                (Some(w), _) => (w.config.clone(), w.networks.clone()),
                // Its last NAT network went: no network, no mapping, so
                // every connection goes too.
                (None, Some(n)) => {
                    let mut c = n.config.clone();
                    c.networks.clear();
                    c.mappings.clear();
                    (c, Vec::new())
                }
                (None, None) => continue,
            };
            let up = UplinkId(u as u16);
            // A spread uplink's programs steer by the port range and the
            // mappings: they learn them before the threads do.
            if let Some(Some(steer)) = self.live.uplink_spread.get(u) {
                if let Err(err) = steer.set_nat(Some(&c)) {
                    tracing::warn!("uplink {}: {err:#}", self.live.topo.uplinks[u].name);
                }
            }
            self.dataplane
                .control(|| Control::Nat(up, Box::new(c.clone()), nets.clone()));
            self.dataplane.set_nat_networks(up, nets);
            changed.push(up);
            *now = want;
        }
        changed
    }
}

impl Switch {
    /// Tells the cluster store which overlay endpoints this host has now.
    pub fn republish(&self, cfg: &Config) -> Result<()> {
        match &self.cluster {
            Some(c) => c.republish(cfg, &self.live.topo),
            None => Ok(()),
        }
    }

    /// Rebuilds the VTEP tables of every overlay uplink from `cfg`'s static
    /// remote endpoints and hands them to the PMD threads (learned inner
    /// MACs and next hops stay).
    pub fn apply_overlay(&mut self, cfg: &Config) -> Result<()> {
        let mut topo = self.live.topo.clone();
        let names: Vec<(String, crate::topology::NetId)> = topo
            .networks
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), crate::topology::NetId(i as u16)))
            .collect();
        let net_ids: std::collections::HashMap<&str, crate::topology::NetId> =
            names.iter().map(|(n, id)| (n.as_str(), *id)).collect();
        for u in 0..topo.uplinks.len() {
            let uid = UplinkId(u as u16);
            let name = topo.uplink(uid).name.clone();
            let carries_overlay = cfg.networks.iter().any(|n| {
                n.mode == crate::config::NetworkMode::Overlay && n.uplink.as_deref() == Some(&name)
            });
            if topo.uplink(uid).vteps.is_none() && !carries_overlay {
                continue;
            }
            crate::daemon::build_overlay(cfg, &mut topo, uid, &net_ids)?;
            if let Some(tables) = topo.uplink(uid).vteps.clone() {
                self.dataplane
                    .control(|| Control::OverlayTables(uid, tables.clone()));
            }
        }
        self.live.topo = topo.clone();
        self.dataplane.set_topology(topo);
        if let Some(c) = &self.cluster {
            c.set_overlay(&self.live.topo);
        }
        Ok(())
    }
}
