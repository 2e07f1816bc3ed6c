//! Human-readable tables of a running switch: per-port counters, per-network
//! counters and the learned MAC table (used by the demo and `ctl`).

use std::fmt::Write;

use pmd::counters::CounterSnapshot;
use pmd::DropReason;

use crate::dataplane::Dataplane;
use crate::pipeline::FdbRow;
use crate::topology::UplinkId;

/// Drops by reason as `reason=n, ...`, or `-`.
fn drops(s: &CounterSnapshot) -> String {
    let parts: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| s.drops_of(**r) > 0)
        .map(|r| format!("{}={}", r.name(), s.drops_of(*r)))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// Software GRO's counters as `  gro_merged=n gro_segments=n
/// gro_no_buffer=n`, or nothing for a port where it never merged.
fn gro(s: &CounterSnapshot) -> String {
    if s.gro_merged == 0 && s.gro_no_buffer == 0 {
        return String::new();
    }
    format!(
        "  gro_merged={} gro_segments={} gro_no_buffer={}",
        s.gro_merged, s.gro_segments, s.gro_no_buffer
    )
}

/// The per-port counter table.
pub fn ports(dp: &Dataplane) -> String {
    let topo = dp.topology();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<12} {:<10} {:>10} {:>14} {:>10} {:>14}  drops",
        "port", "network", "rx pkts", "rx bytes", "tx pkts", "tx bytes"
    );
    for (i, s) in dp.port_stats().iter().enumerate() {
        let p = &topo.ports[i];
        let net = p.network.map_or("-", |n| topo.network(n).name.as_str());
        let _ = writeln!(
            out,
            "  {:<12} {:<10} {:>10} {:>14} {:>10} {:>14}  {}{}",
            p.name,
            net,
            s.rx_packets,
            s.rx_bytes,
            s.tx_packets,
            s.tx_bytes,
            drops(s),
            gro(s),
        );
        if s.offloaded_packets > 0 {
            let _ = writeln!(
                out,
                "  {:<12} of which the kernel carried {} frames, {} bytes (flow offload)",
                "", s.offloaded_packets, s.offloaded_bytes
            );
        }
    }
    out
}

/// The flow offload's counters, or nothing when it does not run.
pub fn offload(dp: &Dataplane) -> String {
    let Some(s) = dp.offload_stats() else {
        return String::new();
    };
    format!(
        "  offload  flows {} installed {} removed {} table_full {} errors {}\n",
        s.active, s.installed, s.removed, s.table_full, s.errors
    )
}

/// The per-network counter table.
pub fn networks(dp: &Dataplane) -> String {
    let topo = dp.topology();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<10} {:>9} {:>9} {:>8} {:>9} {:>11} {:>12}",
        "network", "unicast", "flooded", "learned", "fdb_full", "arp_replies", "echo_replies"
    );
    for (i, s) in dp.net_stats().iter().enumerate() {
        if topo.networks[i].removed {
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<10} {:>9} {:>9} {:>8} {:>9} {:>11} {:>12}",
            topo.networks[i].name,
            s.unicast,
            s.flooded,
            s.learned,
            s.fdb_full,
            s.arp_replies,
            s.echo_replies
        );
    }
    out
}

/// The NAT of every uplink with `nat` networks, named after the uplink
/// and the networks that share it (`nat up0 (front, back)`):
/// translations, table occupancy, drops by reason.
pub fn nat(dp: &Dataplane) -> String {
    let topo = dp.topology();
    let mut out = String::new();
    for (u, c) in dp.nat_stats().iter().enumerate() {
        let Some(c) = c else { continue };
        let nets: Vec<&str> = dp
            .nat_networks(UplinkId(u as u16))
            .iter()
            .map(|n| topo.network(*n).name.as_str())
            .collect();
        let drops: Vec<String> = nat::NatDrop::ALL
            .iter()
            .filter(|r| c.drops_of(**r) > 0)
            .map(|r| format!("{}={}", r.name(), c.drops_of(*r)))
            .collect();
        let _ = writeln!(
            out,
            "  nat {} ({})  out {:>9} in {:>9} hairpin {:>6} icmp_err {:>5} frags {:>5} flows {:>7}  drops {}",
            topo.uplinks[u].name,
            nets.join(", "),
            c.translated_out.get(),
            c.translated_in.get(),
            c.hairpin.get(),
            c.icmp_errors.get(),
            c.fragments.get(),
            c.occupancy(),
            if drops.is_empty() { "-".to_string() } else { drops.join(", ") }
        );
    }
    out
}

/// What every uplink's address answered itself: ping replies, and
/// requests over the rate limit.
pub fn uplinks(dp: &Dataplane) -> String {
    let topo = dp.topology();
    let mut out = String::new();
    for (u, c) in dp.uplink_stats().iter().enumerate() {
        let up = &topo.uplinks[u];
        let _ = writeln!(
            out,
            "  uplink {:<8} {:<15} echo_replies {:>7} echo_limited {:>7}",
            up.name,
            up.ip.to_string(),
            c.echo_replies.get(),
            c.echo_limited.get()
        );
    }
    out
}

/// Overlay counters of every uplink that carries overlay networks.
pub fn overlay(dp: &Dataplane) -> String {
    let topo = dp.topology();
    let mut out = String::new();
    for (i, c) in dp.overlay_stats().iter().enumerate() {
        if topo.uplinks[i].vteps.is_none() {
            continue;
        }
        let drops: Vec<String> = overlay::DecapDrop::ALL
            .iter()
            .filter(|r| c.decap_drops_of(**r) > 0)
            .map(|r| format!("{}={}", r.name(), c.decap_drops_of(*r)))
            .collect();
        let _ = writeln!(
            out,
            "  vxlan {:<8} encap {:>9} decap {:>9} learned {:>5} arp_suppressed {:>5} frag_needed {:>5} too_big {:>5}  drops {}",
            topo.uplinks[i].name,
            c.encapsulated.get(),
            c.decapsulated.get(),
            c.learned.get(),
            c.arp_suppressed.get(),
            c.frag_needed.get(),
            c.too_big.get(),
            if drops.is_empty() { "-".to_string() } else { drops.join(", ") }
        );
    }
    out
}

/// The learned MAC table.
pub fn fdb(dp: &Dataplane, rows: &[FdbRow]) -> String {
    let topo = dp.topology();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<10} {:<18} {:<12} {:>8}",
        "network", "mac", "port", "age (s)"
    );
    for r in rows {
        let port = topo
            .ports
            .get(r.port.0 as usize)
            .map_or("?", |p| p.name.as_str());
        let _ = writeln!(
            out,
            "  {:<10} {:<18} {:<12} {:>8.1}",
            r.network,
            r.mac.to_string(),
            port,
            r.age_secs
        );
    }
    out
}
