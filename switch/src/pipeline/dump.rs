//! Answers to the control side's questions about a thread's learned
//! state (conntrack, neighbours, overlay peers), built between bursts from
//! the tables the thread owns.

use std::net::Ipv4Addr;

use crate::inspect::{ConntrackRow, FlowEnds, NeighborRow, OverlayView, PeerRow, RemoteRow};

use super::SwitchPipeline;

impl SwitchPipeline {
    /// Up to `limit` live connections of the NATs this thread runs, of
    /// network `network` only when given.
    pub(super) fn dump_conntrack(
        &self,
        network: Option<&str>,
        limit: usize,
        now_ns: u64,
    ) -> Vec<ConntrackRow> {
        let mut rows = Vec::new();
        for (u, nat) in self.nats.iter().enumerate() {
            let Some(nat) = nat else { continue };
            let uplink = &self.topo.uplinks[u].name;
            let net_name = |i: Option<usize>| {
                i.and_then(|i| self.nat_nets[u].get(i))
                    .map(|id| self.topo.network(*id).name.as_str())
            };
            let wanted = nat
                .connections(now_ns)
                .filter(|c| network.is_none() || net_name(c.network) == network)
                .take(limit.saturating_sub(rows.len()));
            for c in wanted {
                rows.push(ConntrackRow {
                    uplink: uplink.clone(),
                    network: net_name(c.network).unwrap_or("-").to_string(),
                    proto: c.proto_name.to_string(),
                    state: c.state.to_string(),
                    orig: FlowEnds::from(c.orig),
                    reply: FlowEnds::from(c.reply),
                    expires_in_s: c.expires_in_s,
                    snat: c.snat,
                    dnat: c.dnat,
                    hairpin: c.hairpin,
                });
            }
        }
        rows
    }

    /// Every uplink's neighbour cache.
    pub(super) fn dump_neighbors(&self, now_ns: u64) -> Vec<NeighborRow> {
        let mut rows = Vec::new();
        for (u, cache) in self.neighbors.iter().enumerate() {
            let uplink = &self.topo.uplinks[u].name;
            rows.extend(cache.entries(now_ns).map(|n| NeighborRow {
                uplink: uplink.clone(),
                ip: n.ip,
                mac: n.mac.map(|m| m.to_string()),
                state: n.state.to_string(),
                age_secs: n.age_ns.map(|a| a as f64 / 1e9),
            }));
        }
        rows
    }

    /// The overlay tables in force (static and from the cluster store).
    pub(super) fn dump_overlay(&self) -> OverlayView {
        let mut view = OverlayView::default();
        for (u, tables) in self.vteps.iter().enumerate() {
            let Some(tables) = tables else { continue };
            let up = &self.topo.uplinks[u];
            let name_of = |vni: u32| {
                up.overlay_nets.iter().find(|(v, _)| *v == vni).map_or_else(
                    || format!("vni {vni}"),
                    |(_, id)| self.topo.network(*id).name.clone(),
                )
            };
            for net in tables.networks() {
                view.peers
                    .extend(net.peers().iter().map(|vtep: &Ipv4Addr| PeerRow {
                        uplink: up.name.clone(),
                        network: name_of(net.vni),
                        vni: net.vni,
                        vtep: *vtep,
                    }));
            }
            view.remote_endpoints
                .extend(tables.remote_endpoints().map(|r| RemoteRow {
                    network: name_of(r.vni),
                    ip: r.ip,
                    mac: r.mac.to_string(),
                    vtep: r.vtep,
                }));
        }
        view
    }
}
