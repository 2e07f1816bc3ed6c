//! `podbench`: benchmarks of podswitch (see bench/README.md).

use anyhow::{ensure, Result};
use clap::{Parser, Subcommand};

use std::path::PathBuf;

use bench::pipeline::{self, PipelineBench};
use bench::tcp;

#[derive(Parser)]
#[command(name = "podbench", about = "Benchmarks of podswitch")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The switching pipeline over memory ports on this thread (no PMD
    /// threads): bursts of 32 64-byte UDP frames, unicast port 0 -> 1.
    Pipeline {
        /// Distinct destination MACs, learned before the run.
        #[arg(long, default_value_t = 1)]
        macs: usize,
        /// Packets to send (rounded up to whole bursts).
        #[arg(long, default_value_t = 10_000_000)]
        packets: u64,
    },
    /// iperf3 TCP between two namespaces through podswitch (`podswitch
    /// run`, a nat network) and through a Linux bridge; prints both and the
    /// ratio. Needs root and iperf3.
    Tcp {
        /// The podswitch binary.
        #[arg(long, default_value = "target/release/podswitch")]
        podswitch: PathBuf,
        /// Seconds per iperf3 run.
        #[arg(long, default_value_t = 5)]
        secs: u32,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Pipeline { macs, packets } => {
            let mut b = PipelineBench::new(macs);
            let r = pipeline::run(&mut b, packets);
            ensure!(
                r.forwarded == r.packets,
                "only {} of {} packets were forwarded",
                r.forwarded,
                r.packets
            );
            ensure!(b.in_flight() == 0, "{} frames leaked", b.in_flight());
            println!(
                "pipeline macs={macs} packets={} elapsed={:.3}s ns/packet={:.1} Mpps={:.2}",
                r.packets,
                r.elapsed.as_secs_f64(),
                r.ns_per_packet(),
                r.mpps()
            );
        }
        Cmd::Tcp { podswitch, secs } => {
            let r = tcp::run(&tcp::TcpOpts { podswitch, secs })?;
            println!(
                "tcp podswitch={:.2}Gbit/s bridge={:.2}Gbit/s ratio={:.2}",
                r.podswitch_bps / 1e9,
                r.bridge_bps / 1e9,
                r.podswitch_bps / r.bridge_bps
            );
        }
    }
    Ok(())
}
