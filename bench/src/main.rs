//! `podbench`: benchmarks of podswitch (see bench/README.md).

use anyhow::{ensure, Result};
use clap::{Parser, Subcommand};

use std::path::PathBuf;

use bench::pipeline::{self, PipelineBench};
use bench::{csum, lab, nat, tcp, vxlan};

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
        /// Guard port 0 with anti-spoofing, as an endpoint's TAP is (the
        /// sender's own MAC and IP: every frame passes the check).
        #[arg(long)]
        guard: bool,
    },
    /// NAT translate of established UDP flows (outbound, SNAT) with N flows
    /// in the table: one hot flow, or (--random) 4,096 flows spread over
    /// the table in turn; or (--new-flows) new-flow setup in an empty table.
    /// The same work as `cargo bench -p nat --bench translate`.
    Nat {
        /// Flows established before the run (ignored with --new-flows).
        #[arg(long, default_value_t = 1)]
        flows: u32,
        /// Packets to translate.
        #[arg(long, default_value_t = 10_000_000)]
        packets: u64,
        /// 4,096 flows spread over the table instead of one hot flow.
        #[arg(long)]
        random: bool,
        /// Set up `packets` new flows instead (distinct destinations).
        #[arg(long, conflicts_with_all = ["flows", "random"])]
        new_flows: bool,
    },
    /// VXLAN encapsulation or decapsulation (`overlay::receive`) of one
    /// UDP inner frame, over and over. The same work as `cargo bench -p
    /// overlay --bench vxlan` (encap/L, decap/L).
    Vxlan {
        /// Inner Ethernet frame length in bytes (at least 42).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(42..=9000))]
        inner_len: u16,
        /// Packets to encapsulate or decapsulate.
        #[arg(long, default_value_t = 10_000_000)]
        packets: u64,
        #[arg(long, value_enum, default_value_t = VxlanMode::Encap)]
        mode: VxlanMode,
    },
    /// The partial-checksum check on a 1514-byte TCP frame from a port that
    /// lost the checksum state (AF_XDP): parse only, parse and check (a
    /// partial or a complete checksum), or check and software completion.
    /// The same work as `cargo bench -p bench --bench partial_csum`.
    Csum {
        /// Packets to process.
        #[arg(long, default_value_t = 10_000_000)]
        packets: u64,
        #[arg(long, value_enum, default_value_t = CsumArg::ResolvePartial)]
        mode: CsumArg,
    },
    /// iperf3 TCP through podswitch next to the kernel's own switch for
    /// the same path, back to back: through NAT both ways, container to
    /// container, over VXLAN between two hosts. Prints one markdown table
    /// (medians of --runs runs, podswitch over peer, CPU-s per Gbit).
    /// Needs root, iperf3 and nft.
    Tcp {
        /// The podswitch binary.
        #[arg(long, default_value = "target/release/podswitch")]
        podswitch: PathBuf,
        /// Seconds per iperf3 run.
        #[arg(long, default_value_t = 5)]
        secs: u32,
        /// Runs per side of each row; each column is their median.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Parallel TCP streams; every path is measured at each count.
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        streams: Vec<u32>,
        /// Paths to measure (default: all).
        #[arg(long, value_enum, value_delimiter = ',')]
        path: Vec<tcp::Path>,
        /// `kind` of podswitch's uplink `[[port]]`.
        #[arg(long, value_enum, default_value_t = tcp::UplinkKind::Packet)]
        uplink_kind: tcp::UplinkKind,
        /// `endpoint_link` of podswitch's networks: containers on veths
        /// (flow offload on) or on TAPs.
        #[arg(long, value_enum, default_value_t = tcp::EndpointLink::Veth)]
        endpoint_link: tcp::EndpointLink,
        /// Run podswitch with `[switch] offload = false` (every frame
        /// through the PMD thread), to measure what the offload gives.
        #[arg(long)]
        no_offload: bool,
        /// `[switch] cores` of podswitch (e.g. `0,1`: a nat network spread
        /// over two PMD threads); default: podswitch's own (the last
        /// core). The overlay paths keep one core per host.
        #[arg(long, value_delimiter = ',')]
        cores: Vec<usize>,
        /// Print JSON (every run, and the medians) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// `podswitch lab up` of a lab config: seconds to its `ready` line and
    /// until every container pinged its gateway, and `lab down` (SIGTERM
    /// to exit), checking that nothing is left. Several --podswitch
    /// binaries run in turn; medians of --runs. Needs root.
    Lab {
        /// podswitch binaries to compare (e.g. before and after a change).
        #[arg(long, required = true)]
        podswitch: Vec<PathBuf>,
        /// The lab config (scripts/lab-gen.sh writes them).
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CsumArg {
    Parse,
    ResolvePartial,
    ResolveComplete,
    Finish,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum VxlanMode {
    Encap,
    Decap,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Pipeline {
            macs,
            packets,
            guard,
        } => {
            let mut b = PipelineBench::with_guard(macs, guard);
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
        Cmd::Nat {
            flows,
            packets,
            random,
            new_flows,
        } => {
            ensure!(new_flows || flows > 0, "--flows must be at least 1");
            let (case, r) = if new_flows {
                ("new-flows".to_string(), nat::run_new_flows(packets))
            } else {
                let mut table = nat::filled(flows);
                let frames = if random {
                    nat::picks(flows)
                } else {
                    vec![nat::hot(flows)]
                };
                let case = format!("flows={flows} {}", if random { "random" } else { "hot" });
                (case, nat::run_established(&mut table, &frames, packets))
            };
            ensure!(
                r.ok == r.packets,
                "only {} of {} packets were translated",
                r.ok,
                r.packets
            );
            println!(
                "nat {case} packets={} elapsed={:.3}s ns/packet={:.1}",
                r.packets,
                r.elapsed.as_secs_f64(),
                r.ns_per_packet()
            );
        }
        Cmd::Vxlan {
            inner_len,
            packets,
            mode,
        } => {
            let len = usize::from(inner_len);
            let (name, r) = match mode {
                VxlanMode::Encap => ("encap", vxlan::run_encap(len, packets)),
                VxlanMode::Decap => ("decap", vxlan::run_decap(len, packets)),
            };
            ensure!(
                r.ok == r.packets,
                "only {} of {} packets succeeded",
                r.ok,
                r.packets
            );
            println!(
                "vxlan mode={name} inner-len={len} packets={} elapsed={:.3}s ns/packet={:.1}",
                r.packets,
                r.elapsed.as_secs_f64(),
                r.ns_per_packet()
            );
        }
        Cmd::Csum { packets, mode } => {
            let (name, mode) = match mode {
                CsumArg::Parse => ("parse", csum::CsumMode::Parse),
                CsumArg::ResolvePartial => ("resolve-partial", csum::CsumMode::ResolvePartial),
                CsumArg::ResolveComplete => ("resolve-complete", csum::CsumMode::ResolveComplete),
                CsumArg::Finish => ("finish", csum::CsumMode::Finish),
            };
            let r = csum::run(mode, packets);
            let expect = match mode {
                csum::CsumMode::ResolvePartial | csum::CsumMode::Finish => r.packets,
                _ => 0,
            };
            ensure!(
                r.marked == expect,
                "{} of {} packets marked partial, expected {expect}",
                r.marked,
                r.packets
            );
            println!(
                "csum mode={name} packets={} elapsed={:.3}s ns/packet={:.1}",
                r.packets,
                r.elapsed.as_secs_f64(),
                r.elapsed.as_nanos() as f64 / r.packets.max(1) as f64
            );
        }
        Cmd::Tcp {
            podswitch,
            secs,
            runs,
            streams,
            path,
            uplink_kind,
            endpoint_link,
            no_offload,
            cores,
            json,
        } => {
            let opts = tcp::TcpOpts {
                switch: tcp::SwitchOpts {
                    bin: podswitch,
                    uplink: uplink_kind,
                    endpoint_link,
                    offload: !no_offload,
                    cores,
                },
                secs,
                runs,
                streams,
                paths: if path.is_empty() {
                    tcp::Path::ALL.to_vec()
                } else {
                    path
                },
            };
            let m = tcp::run(&opts, |line| eprintln!("{line}"))?;
            if json {
                println!("{:#}", tcp::json(&opts, &m));
            } else {
                print!("{}", tcp::table(&m));
            }
            let failed = m.rows.iter().filter(|r| r.failed()).count();
            ensure!(
                failed == 0,
                "{failed} of {} rows had a failed side",
                m.rows.len()
            );
        }
        Cmd::Lab {
            podswitch,
            config,
            runs,
        } => {
            ensure!(pmd::netns::is_root(), "podbench lab needs root");
            print!("{}", lab::run(&podswitch, &config, runs)?);
        }
    }
    Ok(())
}
