//! Overlay state shared through etcd: this host's overlay endpoints are
//! published by `cluster::ClusterClient`, and every view of the
//! other hosts' endpoints is turned into new VTEP tables (the static ones
//! from the config plus the remote endpoints of the view) that the PMD
//! threads swap in between bursts. When etcd is unreachable no view comes,
//! so the last tables stay and traffic keeps flowing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use cluster::{ClusterClient, ClusterSettings, ClusterView, Published};
use overlay::VtepTables;

use crate::config::{ClusterCfg, Config, NetworkMode};
use crate::dataplane::ControlHandle;
use crate::pipeline::Control;
use crate::topology::{Topology, UplinkId};

/// The running cluster sync: the etcd client and the thread that applies
/// its views.
pub struct ClusterSync {
    client: Option<ClusterClient>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Mutex<Shared>>,
}

/// What the view thread and run-time changes share: each overlay uplink's
/// base, and the newest view (applied again when the bases change).
struct Shared {
    bases: Vec<UplinkBase>,
    last: Option<ClusterView>,
    control: ControlHandle,
}

/// An uplink's static tables and the overlay networks (name, VNI) on it.
struct UplinkBase {
    id: UplinkId,
    tables: Arc<VtepTables>,
    networks: Vec<(String, u32)>,
}

impl ClusterSync {
    /// Publishes this host's overlay endpoints and starts applying views.
    pub fn start(
        cfg: &Config,
        cluster: &ClusterCfg,
        topo: &Topology,
        control: ControlHandle,
    ) -> Result<ClusterSync> {
        let bases = bases_of(topo);
        let local = local_endpoints(cfg, topo);
        let host_id = bases
            .first()
            .map(|b| format!("vtep-{}", b.tables.local_vtep()))
            .unwrap_or_else(|| format!("pid-{}", std::process::id()));
        let has_overlay = cfg.networks.iter().any(|n| n.mode == NetworkMode::Overlay);
        if !has_overlay {
            tracing::warn!("[cluster] is set but no overlay network uses it");
        }
        let client = ClusterClient::start(
            ClusterSettings {
                endpoints: cluster.etcd.clone(),
                prefix: cluster.prefix.clone(),
                lease_secs: cluster.lease_secs,
                host_id,
            },
            local,
        )
        .context("starting the etcd cluster client")?;
        let views = client.views().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let shared = Arc::new(Mutex::new(Shared {
            bases,
            last: None,
            control,
        }));
        let shared2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("cluster".into())
            .spawn(move || {
                while !stop2.load(Ordering::Acquire) {
                    let Ok(mut view) = views.recv_timeout(Duration::from_millis(100)) else {
                        continue;
                    };
                    // Views are full snapshots: only the newest matters.
                    while let Ok(newer) = views.try_recv() {
                        view = newer;
                    }
                    let mut sh = shared2.lock().unwrap_or_else(|e| e.into_inner());
                    apply(&sh.bases, &view, &sh.control);
                    sh.last = Some(view);
                }
            })?;
        Ok(ClusterSync {
            client: Some(client),
            stop,
            thread: Some(thread),
            shared,
        })
    }

    /// Takes the overlay networks of `topo` as the bases (an overlay
    /// network added or removed at run time) and applies the newest view
    /// to them at once.
    pub fn set_overlay(&self, topo: &Topology) {
        let mut sh = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        sh.bases = bases_of(topo);
        if let Some(view) = &sh.last {
            apply(&sh.bases, view, &sh.control);
        }
    }

    /// Publishes this host's overlay endpoints anew (after endpoints were
    /// attached or detached at run time).
    pub fn republish(&self, cfg: &Config, topo: &Topology) -> Result<()> {
        if let Some(c) = &self.client {
            c.update_local(local_endpoints(cfg, topo))
                .context("publishing this host's endpoints to etcd")?;
        }
        Ok(())
    }

    /// Withdraws this host's endpoints (revokes the lease) and stops.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(c) = self.client.take() {
            if let Err(e) = c.stop() {
                tracing::warn!("leaving the cluster: {e}");
            }
        }
    }
}

impl Drop for ClusterSync {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Each overlay uplink's static tables and its overlay networks.
fn bases_of(topo: &Topology) -> Vec<UplinkBase> {
    let mut bases = Vec::new();
    for (i, up) in topo.uplinks.iter().enumerate() {
        let Some(tables) = up.vteps.clone() else {
            continue;
        };
        let networks: Vec<(String, u32)> = up
            .overlay_nets
            .iter()
            .map(|(vni, id)| (topo.network(*id).name.clone(), *vni))
            .collect();
        bases.push(UplinkBase {
            id: UplinkId(i as u16),
            tables,
            networks,
        });
    }
    bases
}

/// This host's endpoints on overlay networks, as the cluster store holds
/// them.
fn local_endpoints(cfg: &Config, topo: &Topology) -> Vec<Published> {
    let mut local = Vec::new();
    for up in topo.uplinks.iter().filter(|u| u.vteps.is_some()) {
        for (vni, id) in &up.overlay_nets {
            let name = &topo.network(*id).name;
            for e in cfg.endpoints.iter().filter(|e| &e.network == name) {
                local.push(Published {
                    network: name.clone(),
                    vni: *vni,
                    ip: e.ip,
                    mac: e.mac,
                    vtep: up.ip,
                });
            }
        }
    }
    local
}

/// Builds each uplink's tables from its static base plus the view's
/// endpoints of its networks, and hands them to the PMD threads.
fn apply(bases: &[UplinkBase], view: &ClusterView, control: &ControlHandle) {
    for b in bases {
        let mut t = (*b.tables).clone();
        let mut added = 0;
        for r in &view.endpoints {
            if !b
                .networks
                .iter()
                .any(|(n, vni)| *n == r.network && *vni == r.vni)
            {
                continue;
            }
            match t.add_remote_endpoint(r.to_remote_endpoint()) {
                Ok(()) => added += 1,
                Err(e) => tracing::warn!("cluster endpoint {} of {}: {e}", r.ip, r.network),
            }
        }
        tracing::info!(revision = view.revision, added, "applying cluster view");
        let t = Arc::new(t);
        control.send_all(|| Control::OverlayTables(b.id, t.clone()));
    }
}
