//! The matrix as a markdown table or JSON: per side the median of each
//! column over its runs, and podswitch's throughput over the peer's.

use serde_json::{json, Value};

use super::{Matrix, Row, SideRuns, TcpOpts, Trial};

/// Medians of one side's runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub gbps: f64,
    pub retransmits: f64,
    /// Whole-machine busy CPU-seconds per Gbit moved.
    pub machine_per_gbit: f64,
    /// iperf3 + switch processes + softirq threads, per Gbit.
    pub own_per_gbit: f64,
    /// The podswitch daemons' own CPU-seconds per Gbit.
    pub switch_per_gbit: f64,
    /// Softirq CPU-seconds per Gbit (where the kernel's switch works).
    pub softirq_per_gbit: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// CPU-seconds per Gbit of one run (NaN when nothing moved).
fn per_gbit(t: &Trial, cpu_s: f64) -> f64 {
    if t.transfer_gbit > 0.0 {
        cpu_s / t.transfer_gbit
    } else {
        f64::NAN
    }
}

/// None when the side has no run.
pub fn summary(runs: &SideRuns) -> Option<Summary> {
    let t = &runs.trials;
    if t.is_empty() {
        return None;
    }
    let col = |f: &dyn Fn(&Trial) -> f64| median(t.iter().map(f).collect());
    Some(Summary {
        gbps: col(&|t| t.gbps),
        retransmits: col(&|t| t.retransmits as f64),
        machine_per_gbit: col(&|t| per_gbit(t, t.cpu.machine_s)),
        own_per_gbit: col(&|t| per_gbit(t, t.cpu.own_s())),
        switch_per_gbit: col(&|t| per_gbit(t, t.cpu.switch_s)),
        softirq_per_gbit: col(&|t| per_gbit(t, t.cpu.softirq_s)),
    })
}

/// podswitch's median throughput over the peer's.
pub fn ratio(row: &Row) -> Option<f64> {
    let (p, s) = (summary(&row.peer)?, summary(&row.podswitch)?);
    (p.gbps > 0.0).then(|| s.gbps / p.gbps)
}

fn cell(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "-".to_string(),
    }
}

/// A markdown table, one line per row, then the machine's load and the
/// errors.
pub fn table(m: &Matrix) -> String {
    let rows = &m.rows;
    let mut s = String::from(
        "| path | streams | peer Gbit/s | podswitch Gbit/s | ratio \
         | peer CPU-s/Gbit machine / own | podswitch CPU-s/Gbit machine / own / process \
         | peer retransmits | podswitch retransmits |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let p = summary(&row.peer);
        let o = summary(&row.podswitch);
        s += &format!(
            "| {} | {} | {} | {} | {} | {} / {} | {} / {} / {} | {} | {} |\n",
            row.path.name(),
            row.streams,
            cell(p.map(|x| x.gbps), 2),
            cell(o.map(|x| x.gbps), 2),
            cell(ratio(row), 2),
            cell(p.map(|x| x.machine_per_gbit), 3),
            cell(p.map(|x| x.own_per_gbit), 3),
            cell(o.map(|x| x.machine_per_gbit), 3),
            cell(o.map(|x| x.own_per_gbit), 3),
            cell(o.map(|x| x.switch_per_gbit), 3),
            cell(p.map(|x| x.retransmits), 0),
            cell(o.map(|x| x.retransmits), 0),
        );
    }
    s += &format!(
        "\nload average (1 min) before / after: {} / {}\n",
        cell(m.load[0], 2),
        cell(m.load[1], 2)
    );
    for row in rows {
        for (side, runs) in [("peer", &row.peer), ("podswitch", &row.podswitch)] {
            if let Some(e) = &runs.error {
                s += &format!(
                    "\n{} P{} {side} failed: {}\n",
                    row.path.name(),
                    row.streams,
                    first_lines(e, 6)
                );
            }
        }
    }
    s
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join("\n")
}

fn num(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

fn side_json(name: &str, runs: &SideRuns) -> Value {
    let s = summary(runs);
    json!({
        "switch": name,
        "gbps": s.map_or(Value::Null, |s| num(s.gbps)),
        "retransmits": s.map_or(Value::Null, |s| num(s.retransmits)),
        "cpu_s_per_gbit": {
            "machine": s.map_or(Value::Null, |s| num(s.machine_per_gbit)),
            "own": s.map_or(Value::Null, |s| num(s.own_per_gbit)),
            "switch_process": s.map_or(Value::Null, |s| num(s.switch_per_gbit)),
            "softirq": s.map_or(Value::Null, |s| num(s.softirq_per_gbit)),
        },
        "runs": runs.trials.iter().map(|t| json!({
            "gbps": num(t.gbps),
            "gbit": num(t.transfer_gbit),
            "retransmits": t.retransmits,
            "cpu_s": {
                "machine": num(t.cpu.machine_s),
                "softirq": num(t.cpu.softirq_s),
                "switch_process": num(t.cpu.switch_s),
                "iperf3": num(t.cpu.iperf_s),
                "softirq_threads": num(t.cpu.kthread_s),
            },
        })).collect::<Vec<_>>(),
        "error": runs.error,
    })
}

/// The same as [`table`], with every run, as JSON.
pub fn json(opts: &TcpOpts, m: &Matrix) -> Value {
    let rows = &m.rows;
    json!({
        "secs": opts.secs,
        "loadavg_before": m.load[0].map_or(Value::Null, num),
        "loadavg_after": m.load[1].map_or(Value::Null, num),
        "runs": opts.runs,
        "uplink_kind": opts.switch.uplink.as_str(),
        "endpoint_link": opts.switch.endpoint_link.as_str(),
        "offload": opts.switch.offload,
        "rows": rows.iter().map(|r| json!({
            "path": r.path.name(),
            "description": r.path.describe(),
            "streams": r.streams,
            "ratio": ratio(r).map_or(Value::Null, num),
            "peer": side_json(r.path.peer(), &r.peer),
            "podswitch": side_json("podswitch", &r.podswitch),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::cpu::CpuUse;
    use super::super::Path;
    use super::*;

    fn trial(gbps: f64, machine_s: f64) -> Trial {
        Trial {
            gbps,
            transfer_gbit: gbps * 5.0,
            retransmits: 3,
            cpu: CpuUse {
                machine_s,
                ..CpuUse::default()
            },
        }
    }

    fn runs(t: Vec<Trial>) -> SideRuns {
        SideRuns {
            trials: t,
            error: None,
        }
    }

    #[test]
    fn each_column_is_the_median_of_the_runs() {
        let s = summary(&runs(vec![
            trial(9.0, 10.0),
            trial(1.0, 10.0),
            trial(5.0, 10.0),
        ]))
        .unwrap();
        assert_eq!(s.gbps, 5.0);
        // 10 CPU-s over 45, 5 and 25 Gbit.
        assert_eq!(s.machine_per_gbit, 10.0 / 25.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn the_ratio_is_podswitch_over_the_peer_and_a_failed_side_shows_a_dash() {
        let row = Row {
            path: Path::NatUp,
            streams: 1,
            peer: runs(vec![trial(10.0, 1.0)]),
            podswitch: runs(vec![trial(12.0, 1.0)]),
        };
        assert_eq!(ratio(&row), Some(1.2));
        let failed = Row {
            podswitch: SideRuns {
                trials: vec![],
                error: Some("podswitch run: exited before \"ready\"".into()),
            },
            ..row.clone()
        };
        assert_eq!(ratio(&failed), None);
        let t = table(&Matrix {
            rows: vec![row, failed],
            load: [Some(1.5), None],
        });
        assert!(t.contains("| nat-up | 1 | 10.00 | 12.00 | 1.20 |"), "{t}");
        assert!(t.contains("| nat-up | 1 | 10.00 | - | - |"), "{t}");
        assert!(
            t.contains("nat-up P1 podswitch failed: podswitch run"),
            "{t}"
        );
    }
}
