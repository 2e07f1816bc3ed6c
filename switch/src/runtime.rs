//! The running daemon as the control socket sees it: the switch, the
//! config in force and the file it came from. Run-time changes (endpoints,
//! mappings, reload) are applied here, one at a time, between bursts of
//! the PMD threads; queries read the switch under the same lock.
//!
//! Two sources make the config in force: the file, and what `ctl` added
//! (endpoints and mappings a runtime plugin attached). A reload replaces
//! the file's part and diffs it against what runs; the `ctl` part stays
//! until `ctl` removes it.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use pmd::wire::MacAddr;

use crate::config::{
    self, Attach, Config, EndpointCfg, NetworkCfg, NetworkMode, PortMappingCfg, Protocol,
};
use crate::control::protocol::{EndpointAdd, EndpointInfo, MappingSpec, NetworkAdd, ReloadSummary};
use crate::daemon::Switch;
use crate::persist::{self, Saved};

/// What `Runtime::restore` attached again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Networks created again.
    pub networks: usize,
    /// Endpoints attached again.
    pub endpoints: usize,
    /// Mappings published again.
    pub mappings: usize,
    /// What was left out (each also logged with its reason).
    pub skipped: Vec<String>,
}

/// The request that creates `n` again.
fn network_request(n: &NetworkCfg) -> NetworkAdd {
    NetworkAdd {
        name: n.name.clone(),
        mode: Some(n.mode.as_str().to_string()),
        vni: n.vni,
        subnet: n.subnet.to_string(),
        gateway: n.gateway,
        uplink: n.uplink.clone(),
        endpoint_link: Some(n.endpoint_link.as_str().to_string()),
    }
}

/// The request that publishes `m` again.
fn mapping_request(m: &PortMappingCfg) -> MappingSpec {
    MappingSpec {
        endpoint: m.endpoint.clone(),
        protocol: m.protocol.as_str().to_string(),
        host_port: m.host_port,
        port: m.port,
    }
}

/// The daemon's state behind the control socket.
pub struct Runtime {
    state: Mutex<State>,
}

struct State {
    switch: Switch,
    /// The file's config, as applied (a `ctl endpoint del` of one of its
    /// endpoints removes it here until the next reload).
    file: Config,
    /// Endpoints `ctl` attached, with their interface names.
    added: Vec<(EndpointCfg, String)>,
    /// Mappings `ctl` added.
    mappings: Vec<PortMappingCfg>,
    /// Networks `ctl` added.
    networks: Vec<NetworkCfg>,
    /// `file` plus what `ctl` added: the config in force.
    effective: Config,
    path: PathBuf,
    /// Where what `ctl` added is kept for the next start (`persist`);
    /// `None` while a restore replays it, and for a runtime in a test.
    state_file: Option<PathBuf>,
}

/// Why a reload was refused; the running config stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new file does not pass `check` (FILE:LINE:COL lines).
    #[error("{0}")]
    Invalid(String),
    /// The new file changes what a running switch cannot change.
    #[error("{0}; the running config stays (restart podswitch to apply it)")]
    NeedsRestart(String),
    /// The new file is valid but could not be applied.
    #[error("{0:#}")]
    Apply(anyhow::Error),
}

impl State {
    /// Publishes the overlay endpoints in force to the cluster store; a
    /// store that is down gets them with the next change (the data plane
    /// is already right).
    fn publish(&self) {
        if let Err(e) = self.switch.republish(&self.effective) {
            tracing::warn!("{e:#}");
        }
    }

    /// What `ctl` added, as the requests that add it again.
    fn saved(&self) -> Saved {
        let endpoints = self
            .added
            .iter()
            .filter_map(|(e, ifname)| {
                // A TAP handed to Docker went into a namespace podswitch
                // never learnt; only Docker could attach it again.
                let Attach::Netns(netns) = &e.attach else {
                    return None;
                };
                Some(EndpointAdd {
                    name: e.name.clone(),
                    network: e.network.clone(),
                    netns: netns.clone(),
                    ip: Some(e.ip),
                    mac: Some(e.mac.to_string()),
                    ifname: Some(ifname.clone()),
                    allow_spoofing: e.allow_spoofing,
                })
            })
            .collect();
        Saved {
            networks: self.networks.iter().map(network_request).collect(),
            endpoints,
            mappings: self.mappings.iter().map(mapping_request).collect(),
        }
    }

    /// Writes what `ctl` added to the state file. A failure is logged, not
    /// returned: the change itself is in force.
    fn persist(&self) {
        let Some(path) = &self.state_file else { return };
        if let Err(e) = persist::save(path, &self.saved()) {
            tracing::warn!("run-time changes will not survive a restart: {e:#}");
        }
    }

    fn refresh(&mut self) {
        let mut eff = self.file.clone();
        eff.networks.extend(self.networks.iter().cloned());
        eff.endpoints
            .extend(self.added.iter().map(|(e, _)| e.clone()));
        eff.port_mappings.extend(self.mappings.iter().cloned());
        self.effective = eff;
    }
}

impl Runtime {
    /// Wraps a started switch and the config (read from `path`) it runs.
    pub fn new(switch: Switch, config: Config, path: &Path) -> Runtime {
        Runtime {
            state: Mutex::new(State {
                switch,
                effective: config.clone(),
                file: config,
                added: Vec::new(),
                mappings: Vec::new(),
                networks: Vec::new(),
                path: path.to_path_buf(),
                state_file: None,
            }),
        }
    }

    /// Attaches again what `ctl` had added before podswitch last stopped,
    /// as saved in `state` (see `persist`), and keeps saving there from now
    /// on. What no longer fits (a namespace that went away with its
    /// container, a network the file lost) is left out with a warning.
    pub fn restore(&self, state: &Path) -> RestoreReport {
        let mut report = RestoreReport::default();
        let saved = match persist::load(state) {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => {
                tracing::warn!("{e:#}; starting without run-time changes");
                Saved::default()
            }
        };
        let skip = |report: &mut RestoreReport, what: String, e: anyhow::Error| {
            tracing::warn!("not restored: {what}: {e:#}");
            report.skipped.push(what);
        };
        for n in &saved.networks {
            match self.network_add(n) {
                Ok(_) => report.networks += 1,
                Err(e) => skip(&mut report, format!("network {}", n.name), e),
            }
        }
        for e in &saved.endpoints {
            match self.endpoint_add(e) {
                Ok(_) => report.endpoints += 1,
                Err(err) => skip(&mut report, format!("endpoint {}", e.name), err),
            }
        }
        for m in &saved.mappings {
            match self.mapping_add(m) {
                Ok(()) => report.mappings += 1,
                Err(e) => skip(
                    &mut report,
                    format!("mapping {} {}:{}", m.endpoint, m.protocol, m.host_port),
                    e,
                ),
            }
        }
        let mut st = self.lock();
        st.state_file = Some(state.to_path_buf());
        st.persist();
        report
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the switch and the config in force.
    pub fn with_switch<R>(&self, f: impl FnOnce(&Switch, &Config) -> R) -> R {
        let st = self.lock();
        f(&st.switch, &st.effective)
    }

    /// Attaches an endpoint: IPAM from its network when no address is
    /// given, a MAC from the address when none is given.
    pub fn endpoint_add(&self, req: &EndpointAdd) -> Result<EndpointInfo> {
        if req.netns.trim().is_empty() {
            bail!("endpoint {}: netns is empty", req.name);
        }
        self.add_endpoint(req, Attach::Netns(req.netns.clone()))
    }

    /// Attaches an endpoint whose TAP `req.ifname` is made in podswitch's
    /// own namespace and left unconfigured, for a runtime that moves it
    /// into its container itself (Docker); `req.netns` is not used.
    pub fn endpoint_add_host_tap(&self, req: &EndpointAdd) -> Result<EndpointInfo> {
        let Some(ifname) = req.ifname.clone() else {
            bail!(
                "endpoint {}: a TAP handed to a runtime needs its name",
                req.name
            );
        };
        self.add_endpoint(req, Attach::HostTap(ifname))
    }

    fn add_endpoint(&self, req: &EndpointAdd, attach: Attach) -> Result<EndpointInfo> {
        let mut st = self.lock();
        let ifname = req.ifname.clone().unwrap_or_else(|| "eth0".to_string());
        check_ifname(&ifname)?;
        let e = new_endpoint(&st.effective, req, attach)?;
        let mut eff = st.effective.clone();
        eff.endpoints.push(e.clone());
        let got = st.switch.attach(&eff, &e, &ifname)?;
        st.added.push((e.clone(), ifname.clone()));
        st.refresh();
        st.publish();
        st.persist();
        tracing::info!("endpoint {} attached ({} as {ifname})", e.name, e.ip);
        Ok(EndpointInfo {
            name: e.name,
            network: e.network,
            netns: req.netns.clone(),
            ifname,
            ip: e.ip,
            prefix: got.prefix,
            mac: e.mac.to_string(),
            gateway: got.gateway,
            mtu: got.mtu,
        })
    }

    /// Detaches an endpoint and withdraws its mappings; `Ok(false)` when
    /// there was none of that name (a second delete succeeds).
    pub fn endpoint_del(&self, name: &str) -> Result<bool> {
        let mut st = self.lock();
        let Some(e) = st.effective.endpoint(name).cloned() else {
            return Ok(false);
        };
        st.switch.detach(&e)?;
        st.added.retain(|(a, _)| a.name != name);
        st.file.endpoints.retain(|a| a.name != name);
        st.mappings.retain(|m| m.endpoint != name);
        st.file.port_mappings.retain(|m| m.endpoint != name);
        st.refresh();
        st.publish();
        st.persist();
        let eff = st.effective.clone();
        st.switch.apply_nat(&eff);
        tracing::info!("endpoint {name} detached");
        Ok(true)
    }

    /// Publishes `m.host_port` on the endpoint's uplink.
    pub fn mapping_add(&self, m: &MappingSpec) -> Result<()> {
        let mut st = self.lock();
        let cfg = new_mapping(&st.effective, m)?;
        st.mappings.push(cfg);
        st.refresh();
        st.persist();
        let eff = st.effective.clone();
        st.switch.apply_nat(&eff);
        Ok(())
    }

    /// Withdraws a mapping (its connections end); `Ok(false)` when there
    /// was none.
    pub fn mapping_del(&self, m: &MappingSpec) -> Result<bool> {
        let mut st = self.lock();
        let proto = protocol(&m.protocol)?;
        let same = |c: &PortMappingCfg| {
            c.endpoint == m.endpoint
                && c.protocol == proto
                && c.host_port == m.host_port
                && c.port == m.port
        };
        let before = st.mappings.len() + st.file.port_mappings.len();
        st.mappings.retain(|c| !same(c));
        st.file.port_mappings.retain(|c| !same(c));
        if st.mappings.len() + st.file.port_mappings.len() == before {
            return Ok(false);
        }
        st.refresh();
        st.persist();
        let eff = st.effective.clone();
        st.switch.apply_nat(&eff);
        Ok(true)
    }

    /// Creates a network: a `nat` network on an uplink that already runs
    /// a NAT, or a network without uplink.
    pub fn network_add(&self, req: &NetworkAdd) -> Result<NetworkCfg> {
        let mut st = self.lock();
        let n = new_network(&st.effective, req)?;
        st.switch
            .add_network(&n)
            .map_err(|e| anyhow::anyhow!("network {}: {e}", n.name))?;
        st.networks.push(n.clone());
        st.refresh();
        st.persist();
        let eff = st.effective.clone();
        st.switch.apply_nat(&eff);
        if n.mode == NetworkMode::Overlay {
            st.switch.apply_overlay(&eff)?;
        }
        tracing::info!("network {} ({}) added", n.name, n.subnet);
        Ok(n)
    }

    /// Removes a network without endpoints; `Ok(false)` when there was
    /// none of that name.
    pub fn network_del(&self, name: &str) -> Result<bool> {
        let mut st = self.lock();
        if st.effective.network(name).is_none() {
            return Ok(false);
        }
        let on: Vec<&str> = st
            .effective
            .endpoints_of(name)
            .map(|e| e.name.as_str())
            .collect();
        if !on.is_empty() {
            bail!(
                "network {name} has endpoints ({}); detach them first",
                on.join(", ")
            );
        }
        let overlay = st
            .effective
            .network(name)
            .is_some_and(|n| n.mode == NetworkMode::Overlay);
        st.switch.remove_network(name);
        st.networks.retain(|n| n.name != name);
        st.file.networks.retain(|n| n.name != name);
        st.mappings.retain(|m| m.network != name);
        st.file.port_mappings.retain(|m| m.network != name);
        st.refresh();
        st.persist();
        let eff = st.effective.clone();
        st.switch.apply_nat(&eff);
        if overlay {
            st.switch.apply_overlay(&eff)?;
        }
        tracing::info!("network {name} removed");
        Ok(true)
    }

    /// Re-reads the config file and applies the difference: endpoints
    /// added, removed or changed, mappings, NAT settings and static
    /// overlay peers. Everything else keeps running untouched.
    pub fn reload(&self) -> Result<ReloadSummary, ReloadError> {
        let path = self.lock().path.clone();
        let mut new = config::load(&path).map_err(|e| ReloadError::Invalid(e.to_string()))?;
        let mut st = self.lock();
        needs_restart(&st.file, &new).map_err(ReloadError::NeedsRestart)?;
        for n in &new.networks {
            if st.networks.iter().any(|a| a.name == n.name) {
                return Err(ReloadError::NeedsRestart(format!(
                    "network {} of the file has the name of a network `ctl` added",
                    n.name
                )));
            }
        }
        for e in &new.endpoints {
            if st.added.iter().any(|(a, _)| a.name == e.name) {
                return Err(ReloadError::NeedsRestart(format!(
                    "endpoint {} of the file has the name of an endpoint `ctl` attached",
                    e.name
                )));
            }
        }
        let mut summary = ReloadSummary::default();
        // Networks: removed, added, or changed (removed and added again,
        // with their endpoints).
        let net_gone: Vec<String> = st
            .file
            .networks
            .iter()
            .filter(|n| new.network(&n.name) != Some(n))
            .map(|n| n.name.clone())
            .collect();
        let net_come: Vec<crate::config::NetworkCfg> = new
            .networks
            .iter()
            .filter(|n| st.file.network(&n.name) != Some(n))
            .cloned()
            .collect();
        for name in &net_gone {
            if let Some((e, _)) = st.added.iter().find(|(e, _)| &e.network == name) {
                return Err(ReloadError::NeedsRestart(format!(
                    "network {name} changes but endpoint {} that `ctl` attached is on it; detach it first",
                    e.name
                )));
            }
        }
        for n in &net_come {
            st.switch
                .placement(n)
                .map_err(|e| ReloadError::NeedsRestart(e.to_string()))?;
        }
        for name in &net_gone {
            let line = format!("network {name}");
            if new.network(name).is_some() {
                summary.changed.push(line);
            } else {
                summary.removed.push(line);
            }
        }
        for n in net_come
            .iter()
            .filter(|n| st.file.network(&n.name).is_none())
        {
            summary.added.push(format!("network {}", n.name));
        }
        let added: Vec<EndpointCfg> = st.added.iter().map(|(e, _)| e.clone()).collect();
        keep_addresses(&st.file, &added, &mut new).map_err(ReloadError::Invalid)?;
        let old: HashMap<&str, &EndpointCfg> = st
            .file
            .endpoints
            .iter()
            .map(|e| (e.name.as_str(), e))
            .collect();
        let now: HashMap<&str, &EndpointCfg> =
            new.endpoints.iter().map(|e| (e.name.as_str(), e)).collect();
        let gone: Vec<EndpointCfg> = st
            .file
            .endpoints
            .iter()
            .filter(|e| now.get(e.name.as_str()) != Some(e) || net_gone.contains(&e.network))
            .cloned()
            .collect();
        let come: Vec<EndpointCfg> = new
            .endpoints
            .iter()
            .filter(|e| old.get(e.name.as_str()) != Some(e) || net_gone.contains(&e.network))
            .cloned()
            .collect();
        for e in &gone {
            let line = format!("endpoint {}", e.name);
            if now.get(e.name.as_str()) == Some(&e) {
                // Unchanged itself: it moves with its network.
            } else if now.contains_key(e.name.as_str()) {
                summary.changed.push(line);
            } else {
                summary.removed.push(line);
            }
        }
        for e in &come {
            if !old.contains_key(e.name.as_str()) {
                summary.added.push(format!("endpoint {}", e.name));
            }
        }
        // Nothing is touched until every new endpoint's namespace is
        // there: a reload fails whole or applies whole, as far as the
        // kernel lets it.
        for e in &come {
            if let Attach::Netns(ns) = &e.attach {
                if !pmd::netns::netns_path(ns).exists() {
                    return Err(ReloadError::Apply(anyhow::anyhow!(
                        "endpoint {}: network namespace {ns} does not exist",
                        e.name
                    )));
                }
            }
        }
        let mut applied = st.file.clone();
        let mut eff = st.effective.clone();
        let result = (|| -> Result<()> {
            for e in &gone {
                st.switch.detach(e)?;
                applied.endpoints.retain(|a| a.name != e.name);
                eff.endpoints.retain(|a| a.name != e.name);
            }
            for name in &net_gone {
                st.switch.remove_network(name);
                applied.networks.retain(|n| &n.name != name);
                eff.networks.retain(|n| &n.name != name);
            }
            for n in &net_come {
                st.switch.add_network(n)?;
                applied.networks.push(n.clone());
                eff.networks.push(n.clone());
            }
            st.switch.apply_nat(&eff);
            for e in &come {
                eff.endpoints.push(e.clone());
                st.switch
                    .attach(&eff, e, "eth0")
                    .with_context(|| format!("endpoint {}", e.name))?;
                applied.endpoints.push(e.clone());
            }
            Ok(())
        })();
        if let Err(e) = result {
            st.file = applied;
            st.refresh();
            st.publish();
            let eff = st.effective.clone();
            st.switch.apply_nat(&eff);
            return Err(ReloadError::Apply(e));
        }
        diff_lines(
            &mut summary,
            "port mapping",
            &st.file.port_mappings,
            &new.port_mappings,
            |m| {
                format!(
                    "{}/{} -> {}:{}",
                    m.protocol.as_str(),
                    m.host_port,
                    m.endpoint,
                    m.port
                )
            },
        );
        diff_lines(
            &mut summary,
            "remote endpoint",
            &st.file.remote_endpoints,
            &new.remote_endpoints,
            |r| format!("{} ({}) via {}", r.ip, r.network, r.vtep),
        );
        if st.file.nat != new.nat {
            summary.changed.push("[nat]".to_string());
        }
        diff_lines(
            &mut summary,
            "endpoint",
            &st.file.endpoint_modes,
            &new.endpoint_modes,
            |m| m.name.clone(),
        );
        for m in &new.endpoint_modes {
            if let crate::config::EndpointMode::None(ns) = &m.mode {
                crate::endpoint::loopback_only(&m.name, ns).map_err(ReloadError::Apply)?;
            }
        }
        let overlays = |c: &Config| -> Vec<NetworkCfg> {
            c.networks
                .iter()
                .filter(|n| n.mode == NetworkMode::Overlay)
                .cloned()
                .collect()
        };
        let peers_changed = st.file.remote_endpoints != new.remote_endpoints
            || overlays(&st.file) != overlays(&new);
        if st.file.switch.log != new.switch.log {
            summary.changed.push("[switch] log".to_string());
            crate::logging::apply_config(new.switch.log);
        }
        st.file = new;
        st.refresh();
        st.publish();
        st.persist();
        let eff = st.effective.clone();
        st.switch.apply_nat(&eff);
        if peers_changed {
            st.switch.apply_overlay(&eff).map_err(ReloadError::Apply)?;
        }
        tracing::info!(
            "reloaded {}: added {:?}, removed {:?}, changed {:?}",
            path.display(),
            summary.added,
            summary.removed,
            summary.changed
        );
        Ok(summary)
    }

    /// Stops the switch (leaves the cluster, closes ports).
    pub fn stop(self) -> Vec<pmd::thread::ThreadReport> {
        let st = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        st.switch.stop()
    }
}

/// Adds "KIND ITEM added/removed" lines for the items of `old` and `new`
/// that differ.
fn diff_lines<T: PartialEq>(
    summary: &mut ReloadSummary,
    kind: &str,
    old: &[T],
    new: &[T],
    show: impl Fn(&T) -> String,
) {
    for o in old.iter().filter(|o| !new.contains(o)) {
        summary.removed.push(format!("{kind} {}", show(o)));
    }
    for n in new.iter().filter(|n| !old.contains(n)) {
        summary.added.push(format!("{kind} {}", show(n)));
    }
}

/// What a running switch cannot take on: ports, networks, the `[switch]`
/// settings and the cluster (they decide threads, pools, uplinks and NAT
/// placement), and static peers while a cluster store owns the tables.
fn needs_restart(old: &Config, new: &Config) -> Result<(), String> {
    // The log level is the one [switch] key a reload applies.
    let mut switch = old.switch.clone();
    switch.log = new.switch.log;
    if switch != new.switch {
        return Err("[switch] changed".into());
    }
    if old.ports != new.ports {
        return Err("a [[port]] was added, removed or changed".into());
    }
    if old.cluster != new.cluster {
        return Err("[cluster] changed".into());
    }
    if old.cluster.is_some() && old.remote_endpoints != new.remote_endpoints {
        return Err("[[remote_endpoint]] changed while [cluster] owns the overlay tables".into());
    }
    // An L2 network sits on its uplink's socket filter, built at start;
    // its endpoints' run-time changes go through `ctl`, which keeps that
    // filter in step (`Switch::attach`).
    let l2 = |c: &Config| -> Vec<(NetworkCfg, Vec<EndpointCfg>)> {
        c.networks
            .iter()
            .filter(|n| n.mode.is_l2())
            .map(|n| (n.clone(), c.endpoints_of(&n.name).cloned().collect()))
            .collect()
    };
    let (was, now) = (l2(old), l2(new));
    if was != now {
        let name = was
            .iter()
            .chain(&now)
            .find(|x| !was.contains(x) || !now.contains(x))
            .map_or("", |(n, _)| n.name.as_str());
        return Err(format!(
            "network {name} (transparent, l2bridge or l2tunnel) or its endpoints changed; \
             a reload cannot change them (restart, or ctl endpoint add/del)"
        ));
    }
    Ok(())
}

/// An endpoint whose address IPAM chose keeps the address it runs with
/// (a new endpoint earlier in the file must not renumber the others);
/// other IPAM-chosen addresses move out of the way, also of the endpoints
/// `ctl` attached (`added`), which the file does not know. An address the
/// file gives that an `added` endpoint holds is an error.
fn keep_addresses(old: &Config, added: &[EndpointCfg], new: &mut Config) -> Result<(), String> {
    for e in new.endpoints.iter().filter(|e| e.ip_given || e.mac_given) {
        let holder = added.iter().find(|a| {
            a.network == e.network
                && ((e.ip_given && a.ip == e.ip) || (e.mac_given && a.mac == e.mac))
        });
        if let Some(a) = holder {
            return Err(format!(
                "endpoint {}: its address is held by endpoint {}, which `ctl` attached",
                e.name, a.name
            ));
        }
    }
    let running: HashMap<(&str, &str), (Ipv4Addr, MacAddr)> = old
        .endpoints
        .iter()
        .map(|e| ((e.name.as_str(), e.network.as_str()), (e.ip, e.mac)))
        .collect();
    let mut pinned: Vec<bool> = vec![false; new.endpoints.len()];
    for (i, e) in new.endpoints.iter_mut().enumerate() {
        if e.ip_given {
            continue;
        }
        let Some(&(ip, mac)) = running.get(&(e.name.as_str(), e.network.as_str())) else {
            continue;
        };
        e.ip = ip;
        if !e.mac_given {
            e.mac = mac;
        }
        pinned[i] = true;
    }
    let movable: Vec<usize> = (0..new.endpoints.len())
        .filter(|i| !new.endpoints[*i].ip_given && !pinned[*i])
        .collect();
    for i in movable {
        let (net, ip) = (new.endpoints[i].network.clone(), new.endpoints[i].ip);
        let mac = new.endpoints[i].mac;
        let clash = new
            .endpoints
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && o.network == net && (o.ip == ip || o.mac == mac))
            || added
                .iter()
                .any(|a| a.network == net && (a.ip == ip || a.mac == mac));
        let Some(n) = new.network(&net).filter(|_| clash) else {
            continue;
        };
        let mut ipam = config::ipam::Ipam::for_network(n);
        for (j, o) in new.endpoints.iter().enumerate() {
            if o.network == net {
                ipam.reserve(o.ip);
                if j != i {
                    ipam.reserve_mac(o.mac);
                }
            }
        }
        for a in added.iter().filter(|a| a.network == net) {
            ipam.reserve(a.ip);
            ipam.reserve_mac(a.mac);
        }
        if let Some(free) = ipam.allocate() {
            let mac = ipam.allocate_mac(free);
            let e = &mut new.endpoints[i];
            if !e.mac_given {
                e.mac = mac.unwrap_or(e.mac);
            }
            e.ip = free;
        }
    }
    Ok(())
}

fn check_ifname(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace())
    {
        bail!("interface name {name:?}: 1 to 15 characters, no '/', no whitespace");
    }
    Ok(())
}

fn protocol(s: &str) -> Result<Protocol> {
    match s {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        other => bail!("protocol {other:?}: tcp or udp"),
    }
}

/// The endpoint `req` asks for, checked against the config in force as
/// `check` would check it in a file.
fn new_endpoint(cfg: &Config, req: &EndpointAdd, attach: Attach) -> Result<EndpointCfg> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 64 {
        bail!("endpoint name {:?}: 1 to 64 characters", req.name);
    }
    let moded = cfg.endpoint_modes.iter().any(|m| m.name == name);
    if cfg.endpoint(name).is_some() || cfg.port(name).is_some() || moded {
        bail!("endpoint {name} exists already (names are unique among endpoints and ports)");
    }
    let Some(net) = cfg.network(&req.network) else {
        let known: Vec<&str> = cfg.networks.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "unknown network {:?} (networks: {})",
            req.network,
            known.join(", ")
        );
    };
    let mut ipam = config::ipam::Ipam::for_network(net);
    let mut holders: HashMap<Ipv4Addr, String> = HashMap::new();
    // An L2 network's subnet is its uplink's segment: the uplink's own
    // address there is taken.
    let uplink_ip = cfg
        .uplink_of(&net.name)
        .filter(|_| net.mode.is_l2())
        .and_then(|p| Some((p.name.as_str(), p.ip?.addr())))
        .filter(|(_, a)| net.subnet.contains(a));
    if let Some((port, a)) = uplink_ip {
        ipam.reserve(a);
        holders.insert(a, format!("uplink {port}"));
    }
    for e in cfg.endpoints.iter().filter(|e| e.network == net.name) {
        ipam.reserve(e.ip);
        ipam.reserve_mac(e.mac);
        holders.insert(e.ip, format!("endpoint {}", e.name));
    }
    for r in cfg
        .remote_endpoints
        .iter()
        .filter(|r| r.network == net.name)
    {
        ipam.reserve(r.ip);
        holders.insert(r.ip, format!("a remote endpoint via {}", r.vtep));
    }
    let ip = match req.ip {
        Some(ip) => {
            if !net.subnet.contains(&ip) || !ipam.is_host(ip) {
                bail!(
                    "address {ip} is not a host address of network {} ({})",
                    net.name,
                    net.subnet
                );
            }
            if net.gateway == Some(ip) {
                bail!("address {ip} is the gateway of network {}", net.name);
            }
            if let Some(h) = holders.get(&ip) {
                bail!("address {ip} is in use in network {} by {h}", net.name);
            }
            if ipam.is_reserved(ip) {
                bail!("address {ip} is reserved in network {}", net.name);
            }
            ip
        }
        None => ipam.allocate().with_context(|| {
            format!(
                "network {} ({}) has no free address left",
                net.name, net.subnet
            )
        })?,
    };
    let mac = match &req.mac {
        Some(m) => {
            let mac: MacAddr = m.parse().map_err(|_| {
                anyhow::anyhow!("mac {m:?} is not a MAC address (aa:bb:cc:dd:ee:ff)")
            })?;
            if mac.0[0] & 1 == 1 || mac.0 == [0; 6] {
                bail!("mac {mac} is not a unicast address");
            }
            mac
        }
        None => ipam.allocate_mac(ip).with_context(|| {
            format!("the mac_pool of network {} has no free MAC left", net.name)
        })?,
    };
    let same_mac = cfg
        .endpoints
        .iter()
        .filter(|e| e.network == net.name)
        .map(|e| (e.mac, format!("endpoint {}", e.name)))
        .chain(
            cfg.remote_endpoints
                .iter()
                .filter(|r| r.network == net.name)
                .map(|r| (r.mac, format!("a remote endpoint ({})", r.ip))),
        )
        .find(|(m, _)| *m == mac);
    if let Some((_, holder)) = same_mac {
        bail!("mac {mac} is in use in network {} by {holder}", net.name);
    }
    Ok(EndpointCfg {
        name: name.to_string(),
        network: net.name.clone(),
        attach,
        ip,
        mac,
        ip_given: req.ip.is_some(),
        mac_given: req.mac.is_some(),
        allow_spoofing: req.allow_spoofing,
        policy: Default::default(),
    })
}

/// The network `req` asks for, checked against the config in force as
/// `check` would check it in a file.
fn new_network(cfg: &Config, req: &NetworkAdd) -> Result<NetworkCfg> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 64 {
        bail!("network name {:?}: 1 to 64 characters", req.name);
    }
    if cfg.network(name).is_some() {
        bail!("network {name} exists already");
    }
    let mode = match req.mode.as_deref().unwrap_or("nat") {
        "nat" => NetworkMode::Nat,
        "overlay" => NetworkMode::Overlay,
        other if NetworkMode::from_name(other).is_some_and(NetworkMode::is_l2) => bail!(
            "mode {other:?}: transparent, l2bridge and l2tunnel networks are set up at start \
             only (from the file); nat and overlay networks are created at run time"
        ),
        other => bail!("mode {other:?}: nat and overlay networks are created at run time"),
    };
    let vni = match (mode, req.vni) {
        (NetworkMode::Overlay, None) => bail!("an overlay network needs a vni"),
        (NetworkMode::Overlay, Some(v)) if v == 0 || v > 0x00ff_ffff => {
            bail!("vni {v}: 1 to 16777215 (24 bits, RFC 7348)")
        }
        (NetworkMode::Overlay, Some(v)) => {
            if let Some(o) = cfg.networks.iter().find(|o| o.vni == Some(v)) {
                bail!("vni {v} is network {}'s", o.name);
            }
            Some(v)
        }
        (_, Some(_)) => bail!("vni is for overlay networks"),
        (_, None) => None,
    };
    let subnet: ipnet::Ipv4Net = req.subnet.parse().map_err(|_| {
        anyhow::anyhow!(
            "subnet {:?} is not an IPv4 prefix (172.27.0.0/24)",
            req.subnet
        )
    })?;
    if subnet.prefix_len() > 30 {
        bail!("subnet {subnet}: a /30 or wider leaves room for a gateway and endpoints");
    }
    let subnet = subnet.trunc();
    if let Some(o) = cfg
        .networks
        .iter()
        .find(|o| o.subnet.contains(&subnet.network()) || subnet.contains(&o.subnet.network()))
    {
        bail!(
            "subnet {subnet} overlaps subnet {} of network {}",
            o.subnet,
            o.name
        );
    }
    let ipam = config::ipam::Ipam::new(subnet);
    let gateway = match req.gateway {
        Some(g) if ipam.is_host(g) => g,
        Some(g) => bail!("gateway {g} is not a host address of {subnet}"),
        None => Ipv4Addr::from(u32::from(subnet.network()) + 1),
    };
    let with_ip: Vec<&str> = cfg
        .ports
        .iter()
        .filter(|p| p.ip.is_some())
        .map(|p| p.name.as_str())
        .collect();
    let uplink = match &req.uplink {
        Some(u) if with_ip.contains(&u.as_str()) => Some(u.clone()),
        Some(u) => bail!(
            "uplink {u:?} is no [[port]] with an ip (ports with one: {})",
            with_ip.join(", ")
        ),
        None if with_ip.len() == 1 => Some(with_ip[0].to_string()),
        None if with_ip.is_empty() => None,
        None => bail!(
            "several ports have an ip ({}); say which is the uplink",
            with_ip.join(", ")
        ),
    };
    if mode == NetworkMode::Overlay && uplink.is_none() {
        bail!("an overlay network needs an uplink (its address is the VTEP)");
    }
    let endpoint_link = match req.endpoint_link.as_deref() {
        None => config::EndpointLink::default(),
        Some(l) => config::EndpointLink::from_name(l)
            .with_context(|| format!("endpoint link {l:?}: \"tap\" or \"veth\""))?,
    };
    Ok(NetworkCfg {
        name: name.to_string(),
        mode,
        subnet,
        gateway: Some(gateway),
        uplink,
        vni,
        mtu: None,
        vxlan_port: 4789,
        gateway_mac: None,
        reserved: Vec::new(),
        mac_pool: None,
        dns: Vec::new(),
        endpoint_link,
    })
}

/// The mapping `m` asks for, checked against the config in force.
fn new_mapping(cfg: &Config, m: &MappingSpec) -> Result<PortMappingCfg> {
    let proto = protocol(&m.protocol)?;
    let Some(ep) = cfg.endpoint(&m.endpoint) else {
        bail!("unknown endpoint {:?}", m.endpoint);
    };
    let net = cfg.network(&ep.network).context("endpoint's network")?;
    let Some(uplink) = net
        .uplink
        .as_deref()
        .filter(|_| net.mode == NetworkMode::Nat)
    else {
        bail!(
            "endpoint {}: network {} is not a nat network with an uplink; nothing to map from",
            ep.name,
            net.name
        );
    };
    if m.host_port == 0 || m.port == 0 {
        bail!("ports must be 1-65535");
    }
    let taken = cfg.port_mappings.iter().find(|x| {
        x.protocol == proto
            && x.host_port == m.host_port
            && cfg.network(&x.network).and_then(|n| n.uplink.as_deref()) == Some(uplink)
    });
    if let Some(x) = taken {
        bail!(
            "{}/{} on uplink {uplink} is mapped already (to {}:{})",
            m.protocol,
            m.host_port,
            x.endpoint,
            x.port
        );
    }
    Ok(PortMappingCfg {
        network: ep.network.clone(),
        protocol: proto,
        host_port: m.host_port,
        endpoint: ep.name.clone(),
        port: m.port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(endpoints: &[&str]) -> Config {
        let mut text = String::from(
            "[[network]]\nname = \"front\"\nmode = \"nat\"\nsubnet = \"172.30.0.0/24\"\n",
        );
        for e in endpoints {
            text.push_str(&format!(
                "[[endpoint]]\nname = \"{e}\"\nnetwork = \"front\"\nnetns = \"ns-{e}\"\n"
            ));
        }
        config::parse(&text, "test.toml").expect("a valid config")
    }

    fn addr(c: &Config, name: &str) -> (Ipv4Addr, MacAddr) {
        let e = c.endpoint(name).unwrap();
        (e.ip, e.mac)
    }

    #[test]
    fn a_new_endpoint_earlier_in_the_file_renumbers_no_running_endpoint() {
        let old = cfg(&["web", "db"]);
        let mut new = cfg(&["cache", "web", "db"]);
        // IPAM alone would give cache web's address and shift the others.
        assert_eq!(addr(&new, "cache"), addr(&old, "web"));
        keep_addresses(&old, &[], &mut new).unwrap();
        assert_eq!(addr(&new, "web"), addr(&old, "web"));
        assert_eq!(addr(&new, "db"), addr(&old, "db"));
        let (ip, mac) = addr(&new, "cache");
        assert!(
            ip != addr(&old, "web").0 && ip != addr(&old, "db").0,
            "the newcomer moved out of the way: {ip}"
        );
        assert_eq!(
            mac,
            MacAddr::from_ipv4(ip),
            "with a MAC from its new address"
        );
    }

    fn add_req(name: &str, ip: Option<&str>) -> EndpointAdd {
        EndpointAdd {
            name: name.into(),
            network: "front".into(),
            netns: format!("ns-{name}"),
            ip: ip.map(|i| i.parse().unwrap()),
            mac: None,
            ifname: None,
            allow_spoofing: false,
        }
    }

    fn attach(c: &mut Config, req: &EndpointAdd) -> Result<EndpointCfg> {
        let e = new_endpoint(c, req, Attach::Netns(req.netns.clone()))?;
        c.endpoints.push(e.clone());
        Ok(e)
    }

    #[test]
    fn a_deleted_endpoints_address_goes_back_to_the_pool_and_none_is_handed_out_twice() {
        let mut c = cfg(&["web"]);
        c.networks[0].reserved =
            vec![("172.30.0.3".parse().unwrap(), "172.30.0.4".parse().unwrap())];
        let x = attach(&mut c, &add_req("x", None)).unwrap();
        assert_eq!(
            x.ip.to_string(),
            "172.30.0.5",
            "past web (.2) and the reserved .3-.4"
        );
        let y = attach(&mut c, &add_req("y", None)).unwrap();
        assert_eq!(y.ip.to_string(), "172.30.0.6");
        for (ip, why) in [
            ("172.30.0.2", "in use"),
            ("172.30.0.4", "reserved"),
            ("172.30.0.1", "gateway"),
        ] {
            let err = new_endpoint(&c, &add_req("z", Some(ip)), Attach::Netns("z".into()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{ip}: {err}");
        }
        c.endpoints.retain(|e| e.name != "x");
        let z = attach(&mut c, &add_req("z", None)).unwrap();
        assert_eq!((z.ip, z.mac), (x.ip, x.mac), "x's address is free again");
    }

    #[test]
    fn reload_moves_a_new_file_endpoint_out_of_the_way_of_one_ctl_attached() {
        let old = cfg(&["web"]);
        let mut running = old.clone();
        let added = attach(&mut running, &add_req("x", None)).unwrap();
        let mut new = cfg(&["web", "db"]);
        assert_eq!(
            addr(&new, "db").0,
            added.ip,
            "IPAM alone would give db x's address"
        );
        keep_addresses(&old, std::slice::from_ref(&added), &mut new).unwrap();
        let (ip, mac) = addr(&new, "db");
        assert!(ip != added.ip && mac != added.mac, "db moved: {ip} {mac}");

        let mut text = String::from("[[network]]\nname = \"front\"\nsubnet = \"172.30.0.0/24\"\n");
        text.push_str(&format!(
            "[[endpoint]]\nname = \"db\"\nnetwork = \"front\"\nnetns = \"db\"\nip = \"{}\"\n",
            added.ip
        ));
        let mut given = config::parse(&text, "t.toml").unwrap();
        let err = keep_addresses(&old, &[added], &mut given).unwrap_err();
        assert!(err.contains("which `ctl` attached"), "{err}");
    }
}
