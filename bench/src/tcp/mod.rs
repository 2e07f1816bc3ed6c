//! `podbench tcp`: iperf3 TCP through podswitch next to the kernel's own
//! switch for the same path, in one run: through NAT both ways, between
//! two containers on one network, and over VXLAN between two hosts (see
//! [`Path`]), with the CPU each spent per gigabit moved.
//!
//! The machine is small and shared, so a row is a ratio: both sides run
//! back to back, alternating which goes first, and each column is the
//! median of N runs. Every run builds its topology afresh and tears it
//! down: namespaces, links, daemons and iperf3 are removed by guards on
//! drop, also when a step fails. Traffic stays inside the namespaces it
//! creates.

pub mod child;
pub mod cpu;
mod iperf;
mod lan;
mod nat;
mod overlay;
mod report;
pub mod topo;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

pub use report::{json, table};
pub use topo::{EndpointLink, Path, Side, SwitchOpts, UplinkKind};

use iperf::{Load, Transfer};
use topo::Topo;

/// What to run.
#[derive(Debug, Clone)]
pub struct TcpOpts {
    pub switch: SwitchOpts,
    /// Seconds per iperf3 run.
    pub secs: u32,
    /// Runs per side of each row.
    pub runs: u32,
    /// Stream counts; each path is measured at each.
    pub streams: Vec<u32>,
    pub paths: Vec<Path>,
}

/// One run of one side.
#[derive(Debug, Clone, Copy)]
pub struct Trial {
    pub gbps: f64,
    pub transfer_gbit: f64,
    pub retransmits: u64,
    pub cpu: cpu::CpuUse,
}

impl From<Transfer> for Trial {
    fn from(t: Transfer) -> Trial {
        Trial {
            gbps: t.bps / 1e9,
            transfer_gbit: t.gbit(),
            retransmits: t.retransmits,
            cpu: t.cpu,
        }
    }
}

/// The runs of one side of a row; a side stops at its first error.
#[derive(Debug, Clone, Default)]
pub struct SideRuns {
    pub trials: Vec<Trial>,
    pub error: Option<String>,
}

/// One row: a path at a stream count, both sides.
#[derive(Debug, Clone)]
pub struct Row {
    pub path: Path,
    pub streams: u32,
    pub peer: SideRuns,
    pub podswitch: SideRuns,
}

/// Every row, and the machine's load average before and after them.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub rows: Vec<Row>,
    pub load: [Option<f64>; 2],
}

impl Row {
    pub fn failed(&self) -> bool {
        self.peer.error.is_some() || self.podswitch.error.is_some()
    }
}

/// Runs the matrix; `progress` gets a line per run.
pub fn run(opts: &TcpOpts, mut progress: impl FnMut(&str)) -> Result<Matrix> {
    if !pmd::netns::is_root() {
        bail!("podbench tcp needs root (namespaces, TAPs, XDP)");
    }
    if opts.runs == 0 || opts.secs == 0 || opts.streams.contains(&0) {
        bail!("--runs, --secs and every --streams value must be at least 1");
    }
    // Ctrl-C or SIGTERM ends the run between two runs, through the
    // guards, instead of killing podbench with namespaces and daemons
    // left behind (the terminal's SIGINT also ends the iperf3 and
    // podswitch of the current run, which then fails quickly).
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing a signal handler")?;
    }
    let load_before = cpu::loadavg();
    let mut rows = Vec::new();
    for &path in &opts.paths {
        for &streams in &opts.streams {
            rows.push(measure_row(opts, path, streams, &stop, &mut progress)?);
        }
    }
    Ok(Matrix {
        rows,
        load: [load_before, cpu::loadavg()],
    })
}

/// Both sides of one row, `opts.runs` times each; an error only when
/// `stop` was raised.
fn measure_row(
    opts: &TcpOpts,
    path: Path,
    streams: u32,
    stop: &AtomicBool,
    progress: &mut impl FnMut(&str),
) -> Result<Row> {
    let mut row = Row {
        path,
        streams,
        peer: SideRuns::default(),
        podswitch: SideRuns::default(),
    };
    for i in 0..opts.runs {
        // Alternate which side goes first, so a drift in the machine's
        // load does not favour one side.
        let order = if i % 2 == 0 {
            [Side::Peer, Side::Podswitch]
        } else {
            [Side::Podswitch, Side::Peer]
        };
        for side in order {
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted; everything the run created is removed");
            }
            let runs = match side {
                Side::Peer => &mut row.peer,
                Side::Podswitch => &mut row.podswitch,
            };
            if runs.error.is_some() {
                continue;
            }
            let label = format!(
                "{} P{streams} run {}/{} {side:?}",
                path.name(),
                i + 1,
                opts.runs
            );
            match one(opts, path, side, streams) {
                Ok(t) => {
                    progress(&format!(
                        "{label}: {:.2} Gbit/s, {} retransmits, machine {:.2} CPU-s, switch process {:.2} CPU-s",
                        t.gbps, t.retransmits, t.cpu.machine_s, t.cpu.switch_s
                    ));
                    runs.trials.push(t);
                }
                Err(e) => {
                    progress(&format!("{label}: failed: {e:#}"));
                    runs.error = Some(format!("{e:#}"));
                }
            }
        }
    }
    Ok(row)
}

/// Builds one side's topology, moves data, tears it down.
fn one(opts: &TcpOpts, path: Path, side: Side, streams: u32) -> Result<Trial> {
    let topo = build(&opts.switch, path, side)?;
    let load = Load {
        secs: opts.secs,
        streams,
        reverse: path.reverse(),
    };
    let t = iperf::transfer(
        &topo.ns[topo.server],
        &topo.ns[topo.client],
        topo.server_ip,
        load,
        &topo.daemon_pids(),
    )?;
    topo.finish()?;
    Ok(t.into())
}

fn build(sw: &SwitchOpts, path: Path, side: Side) -> Result<Topo> {
    match (path, side) {
        (Path::NatUp | Path::NatDown, Side::Peer) => nat::kernel(),
        (Path::NatUp | Path::NatDown, Side::Podswitch) => nat::podswitch(sw),
        (Path::Lan, Side::Peer) => lan::kernel(),
        (Path::Lan, Side::Podswitch) => lan::podswitch(sw),
        (Path::Overlay | Path::OverlayKernel, Side::Peer) => {
            overlay::build(sw, Side::Peer, Side::Peer)
        }
        (Path::Overlay, Side::Podswitch) => overlay::build(sw, Side::Podswitch, Side::Podswitch),
        (Path::OverlayKernel, Side::Podswitch) => overlay::build(sw, Side::Podswitch, Side::Peer),
    }
}
