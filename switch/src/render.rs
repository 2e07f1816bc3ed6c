//! `podswitch ctl`'s human output: aligned tables of the control socket's
//! replies (as `ovs-appctl` and `ip -s link` print theirs). Formatting
//! only; the data comes from `crate::inspect`.

use std::collections::BTreeMap;
use std::fmt::{Display, Write};

use crate::control::protocol::{EndpointInfo, ReloadSummary};
use crate::inspect::{ConntrackRow, FdbEntry, FlowEnds, NeighborRow, Show, Stats};
use crate::trace::TraceReport;

/// A table whose columns are as wide as their widest cell. A header that
/// starts with `>` is a right-aligned (numeric) column.
struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let names: Vec<&str> = self
            .headers
            .iter()
            .map(|h| h.trim_start_matches('>'))
            .collect();
        let mut widths: Vec<usize> = names.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[&str], out: &mut String| {
            let mut l = String::from(" ");
            for (i, c) in cells.iter().enumerate() {
                let w = widths[i];
                if self.headers[i].starts_with('>') {
                    let _ = write!(l, " {c:>w$}");
                } else {
                    let _ = write!(l, " {c:<w$}");
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(&names, out);
        for r in &self.rows {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            line(&cells, out);
        }
    }
}

fn opt<T: Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn drops(d: &BTreeMap<String, u64>) -> String {
    if d.is_empty() {
        return "-".into();
    }
    d.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn section(out: &mut String, title: &str, t: &Table) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(title);
    out.push_str(":\n");
    t.render(out);
}

/// `ctl show`.
pub fn show(s: &Show) -> String {
    let mut out = String::new();
    let mut t = Table::new(&[
        "name",
        "mode",
        "subnet",
        "gateway",
        "uplink",
        ">vni",
        "pmd threads",
    ]);
    for n in &s.networks {
        let threads: Vec<String> = n.threads.iter().map(usize::to_string).collect();
        t.row(vec![
            n.name.clone(),
            n.mode.clone(),
            n.subnet.clone(),
            opt(&n.gateway),
            opt(&n.uplink),
            opt(&n.vni),
            threads.join(","),
        ]);
    }
    section(&mut out, "networks", &t);
    let mut t = Table::new(&["name", "network", "ip", "mac", "port", "netns"]);
    for e in &s.endpoints {
        t.row(vec![
            e.name.clone(),
            e.network.clone(),
            e.ip.to_string(),
            e.mac.clone(),
            e.port.clone(),
            opt(&e.netns),
        ]);
    }
    section(&mut out, "endpoints", &t);
    let mut t = Table::new(&["name", "kind", "iface", "ip", "network"]);
    for p in &s.ports {
        t.row(vec![
            p.name.clone(),
            p.kind.clone(),
            p.iface.clone(),
            opt(&p.ip),
            opt(&p.network),
        ]);
    }
    section(&mut out, "ports", &t);
    if !s.mappings.is_empty() {
        let mut t = Table::new(&["network", "proto", "host", "endpoint"]);
        for m in &s.mappings {
            t.row(vec![
                m.network.clone(),
                m.protocol.clone(),
                format!("{}:{}", opt(&m.host_ip), m.host_port),
                format!("{}:{}", m.endpoint, m.port),
            ]);
        }
        section(&mut out, "port mappings", &t);
    }
    if !s.overlay.peers.is_empty() {
        let mut t = Table::new(&["network", ">vni", "uplink", "peer vtep"]);
        for p in &s.overlay.peers {
            t.row(vec![
                p.network.clone(),
                p.vni.to_string(),
                p.uplink.clone(),
                p.vtep.to_string(),
            ]);
        }
        section(&mut out, "overlay peers", &t);
    }
    if !s.overlay.remote_endpoints.is_empty() {
        let mut t = Table::new(&["network", "ip", "mac", "vtep"]);
        for r in &s.overlay.remote_endpoints {
            t.row(vec![
                r.network.clone(),
                r.ip.to_string(),
                r.mac.clone(),
                r.vtep.to_string(),
            ]);
        }
        section(&mut out, "remote endpoints", &t);
    }
    out
}

/// `ctl stats`.
pub fn stats(s: &Stats) -> String {
    let mut out = String::new();
    let mut t = Table::new(&[
        "port",
        "network",
        ">rx pkts",
        ">rx bytes",
        ">tx pkts",
        ">tx bytes",
        "drops",
    ]);
    for p in &s.ports {
        t.row(vec![
            p.port.clone(),
            opt(&p.network),
            p.rx_packets.to_string(),
            p.rx_bytes.to_string(),
            p.tx_packets.to_string(),
            p.tx_bytes.to_string(),
            drops(&p.drops),
        ]);
    }
    section(&mut out, "ports", &t);
    let mut t = Table::new(&[
        "network",
        ">unicast",
        ">flooded",
        ">learned",
        ">fdb_full",
        ">arp_replies",
        ">echo_replies",
    ]);
    for n in &s.networks {
        t.row(vec![
            n.network.clone(),
            n.counters.unicast.to_string(),
            n.counters.flooded.to_string(),
            n.counters.learned.to_string(),
            n.counters.fdb_full.to_string(),
            n.counters.arp_replies.to_string(),
            n.counters.echo_replies.to_string(),
        ]);
    }
    section(&mut out, "networks", &t);
    if !s.nat.is_empty() {
        let mut t = Table::new(&[
            "uplink",
            "networks",
            ">out",
            ">in",
            ">hairpin",
            ">icmp_err",
            ">conns",
            ">max",
            "drops",
        ]);
        for n in &s.nat {
            t.row(vec![
                n.uplink.clone(),
                n.networks.join(","),
                n.translated_out.to_string(),
                n.translated_in.to_string(),
                n.hairpin.to_string(),
                n.icmp_errors.to_string(),
                n.connections.to_string(),
                n.max_connections.to_string(),
                drops(&n.drops),
            ]);
        }
        section(&mut out, "nat", &t);
    }
    if let Some(o) = &s.offload {
        let mut t = Table::new(&["port", ">kernel pkts", ">kernel bytes", ">share of rx"]);
        for p in s.ports.iter().filter(|p| p.offloaded_packets > 0) {
            t.row(vec![
                p.port.clone(),
                p.offloaded_packets.to_string(),
                p.offloaded_bytes.to_string(),
                format!(
                    "{:.1}%",
                    100.0 * p.offloaded_bytes as f64 / p.rx_bytes.max(1) as f64
                ),
            ]);
        }
        t.row(vec![
            format!(
                "flows {} (installed {}, removed {}, table_full {}, errors {})",
                o.active, o.installed, o.removed, o.table_full, o.errors
            ),
            String::new(),
            String::new(),
            String::new(),
        ]);
        section(&mut out, "flow offload", &t);
    }
    let mut t = Table::new(&[
        "thread",
        ">busy",
        ">iterations",
        ">busy iters",
        ">frames",
        ">frames/iter",
        ">sleeps",
        ">slept (s)",
        ">up (s)",
    ]);
    for th in &s.threads {
        let per_iter = th.frames as f64 / th.busy_iterations.max(1) as f64;
        t.row(vec![
            format!("pmd{}", th.thread),
            format!("{:.1}%", th.busy_share * 100.0),
            th.iterations.to_string(),
            th.busy_iterations.to_string(),
            th.frames.to_string(),
            format!("{per_iter:.1}"),
            th.sleeps.to_string(),
            format!("{:.1}", th.sleep_secs),
            format!("{:.1}", th.wall_secs),
        ]);
    }
    section(&mut out, "pmd threads", &t);
    out
}

/// `ctl fdb`.
pub fn fdb(rows: &[FdbEntry]) -> String {
    let mut t = Table::new(&["network", "mac", "port", ">age (s)"]);
    for r in rows {
        t.row(vec![
            r.network.clone(),
            r.mac.clone(),
            r.port.clone(),
            format!("{:.1}", r.age_secs),
        ]);
    }
    let mut out = String::new();
    t.render(&mut out);
    out
}

fn ends(e: &FlowEnds) -> String {
    format!("{}:{} -> {}:{}", e.src, e.sport, e.dst, e.dport)
}

/// `ctl conntrack`.
pub fn conntrack(rows: &[ConntrackRow]) -> String {
    let mut t = Table::new(&[
        "network",
        "proto",
        "state",
        "original",
        "reply",
        ">expires (s)",
        "flags",
    ]);
    for r in rows {
        let flags: Vec<&str> = [(r.snat, "snat"), (r.dnat, "dnat"), (r.hairpin, "hairpin")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        t.row(vec![
            r.network.clone(),
            r.proto.clone(),
            r.state.clone(),
            ends(&r.orig),
            ends(&r.reply),
            r.expires_in_s.to_string(),
            if flags.is_empty() {
                "-".into()
            } else {
                flags.join(",")
            },
        ]);
    }
    let mut out = String::new();
    t.render(&mut out);
    out
}

/// `ctl neighbors`.
pub fn neighbors(rows: &[NeighborRow]) -> String {
    let mut t = Table::new(&["uplink", "ip", "mac", "state", ">age (s)"]);
    for r in rows {
        t.row(vec![
            r.uplink.clone(),
            r.ip.to_string(),
            opt(&r.mac),
            r.state.clone(),
            r.age_secs.map_or_else(|| "-".into(), |a| format!("{a:.1}")),
        ]);
    }
    let mut out = String::new();
    t.render(&mut out);
    out
}

/// `ctl endpoint add`.
pub fn endpoint(e: &EndpointInfo) -> String {
    format!(
        "endpoint {} on {}: {} {}/{} mac {} gateway {} mtu {} (netns {})\n",
        e.name,
        e.network,
        e.ifname,
        e.ip,
        e.prefix,
        e.mac,
        opt(&e.gateway),
        e.mtu,
        e.netns
    )
}

/// `ctl reload`.
pub fn reload(r: &ReloadSummary) -> String {
    let mut out = String::new();
    for (what, items) in [
        ("added", &r.added),
        ("removed", &r.removed),
        ("changed", &r.changed),
    ] {
        for i in items {
            let _ = writeln!(out, "{what}: {i}");
        }
    }
    if out.is_empty() {
        out.push_str("reloaded: nothing changed\n");
    }
    out
}

/// `ctl trace`.
pub fn trace(r: &TraceReport) -> String {
    let mut out = format!("in_port {}\n", r.in_port);
    for (i, s) in r.stages.iter().enumerate() {
        let _ = writeln!(out, "  {:>2}. {s}", i + 1);
    }
    let _ = writeln!(out, "verdict: {}", r.verdict);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_numbers_align_right() {
        let mut t = Table::new(&["name", ">count"]);
        t.row(vec!["a".into(), "5".into()]);
        t.row(vec!["longer".into(), "12345".into()]);
        let mut out = String::new();
        t.render(&mut out);
        assert_eq!(out, "  name   count\n  a          5\n  longer 12345\n");
    }
}
