//! Where the kernel flow offload (issue 9) learns which ports it may
//! redirect between: veth endpoints (`endpoint_link = "veth"`) and
//! `kind = "packet"` uplinks, by their interface index in podswitch's
//! namespace. The switch calls [`Switch::offload_port_changed`] once when
//! such a port starts being polled and once before it goes.

use pmd::PortId;

use crate::daemon::Switch;

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
    /// HOOK (issue 9, the lead's): attach the tc program to an offload
    /// port that appeared, flush the flows through one that goes. Called
    /// at start for every offload port once the PMD threads run, and by
    /// `attach`/`detach` for veth endpoints. Nothing yet.
    pub(crate) fn offload_port_changed(&mut self, change: OffloadPortChange) {
        tracing::debug!(?change, "offload port");
    }
}
