//! Where the kernel flow offload (issue 9) learns which ports it may
//! redirect between: veth endpoints (`endpoint_link = "veth"`) and
//! `kind = "packet"` uplinks, by their interface index in podswitch's
//! namespace. The switch calls [`Switch::offload_port_changed`] once when
//! such a port starts being polled and once before it goes.

use std::collections::HashMap;

use anyhow::{Context, Result};
use pmd::offload::{FlowOffload, TcLink, DEFAULT_CAPACITY};
use pmd::PortId;

use crate::config::{Config, EndpointLink};
use crate::daemon::Switch;
use crate::flows::KernelFlowTable;
use crate::topology::{OffloadTarget, Topology};

/// The loaded offload program and its links, one per offload port.
pub struct OffloadState {
    program: FlowOffload,
    links: HashMap<PortId, TcLink>,
}

impl OffloadState {
    /// The offload `cfg` asks for: it runs when `[switch] offload` is on
    /// (the default) and a network attaches its endpoints by veth, the one
    /// link a kernel program can deliver into (`bpf_redirect_peer`).
    pub fn for_config(cfg: &Config) -> Result<Option<OffloadState>> {
        let wanted = cfg.switch.offload
            && cfg
                .networks
                .iter()
                .any(|n| n.endpoint_link == EndpointLink::Veth);
        if !wanted {
            return Ok(None);
        }
        let program = FlowOffload::load(DEFAULT_CAPACITY)
            .context("loading the flow offload (set [switch] offload = false to run without it)")?;
        Ok(Some(OffloadState {
            program,
            links: HashMap::new(),
        }))
    }

    /// A handle on the flow table for one PMD thread.
    pub fn table(&self) -> Result<Box<dyn KernelFlowTable>> {
        let t = self
            .program
            .table()
            .context("opening the flow offload's table")?;
        Ok(Box::new(t))
    }
}

/// A port the flow offload can use, appearing or going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadPortChange {
    /// Polled from now on by PMD thread `thread`.
    Appeared {
        port: PortId,
        ifindex: u32,
        thread: usize,
        kind: OffloadPortKind,
    },
    /// About to stop being polled; its interface is deleted next.
    Went { port: PortId, ifindex: u32 },
}

/// What an offload port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadPortKind {
    /// A veth endpoint's host end (redirect into it with
    /// `bpf_redirect_peer`).
    VethEndpoint,
    /// A `kind = "packet"` uplink (redirect out of it with `bpf_redirect`).
    PacketUplink,
}

impl Switch {
    /// [`offload_port_changed`](Self::offload_port_changed) for the
    /// offload ports a switch starts with, in one topology change.
    pub(crate) fn offload_ports_appeared(&mut self, changes: Vec<OffloadPortChange>) {
        if self.live.offload.is_none() {
            return;
        }
        let mut topo = self.live.topo.clone();
        for c in changes {
            self.offload_port_changed(&mut topo, c);
        }
        self.live.topo = topo.clone();
        self.dataplane.set_topology(topo);
    }

    /// Attaches the offload program to a port that appeared and marks it
    /// in `topo` (which the caller puts in force); detaches it from one
    /// that goes (its topology entry went with the port). Called at start
    /// for every offload port once the PMD threads run, and by
    /// `attach`/`detach` for veth endpoints. A port the program cannot be
    /// attached to still switches, through the PMD thread only.
    pub(crate) fn offload_port_changed(&mut self, topo: &mut Topology, change: OffloadPortChange) {
        let Some(state) = self.live.offload.as_mut() else {
            return;
        };
        match change {
            OffloadPortChange::Appeared {
                port,
                ifindex,
                kind,
                ..
            } => match state.program.attach(ifindex) {
                Ok(link) => {
                    state.links.insert(port, link);
                    topo.set_port_offload(
                        port,
                        Some(OffloadTarget {
                            ifindex,
                            to_peer: kind == OffloadPortKind::VethEndpoint,
                        }),
                    );
                }
                Err(e) => tracing::warn!(
                    port = %topo.ports.get(port.0 as usize).map_or("?", |p| p.name.as_str()),
                    "flow offload: {e}; the port's flows stay on the switch's path"
                ),
            },
            OffloadPortChange::Went { port, .. } => {
                topo.set_port_offload(port, None);
                state.links.remove(&port);
            }
        }
    }
}
