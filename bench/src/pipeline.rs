//! The switching pipeline driven burst by burst on the calling thread, over
//! in-memory ports: no PMD threads, no kernel. Shared by the criterion
//! benchmark (`benches/pipeline.rs`) and `podbench pipeline` (which runs
//! under callgrind to count instructions per packet).
//!
//! One burst is what a PMD thread does for one port: the peer offers 32
//! frames on port 0, `rx_burst` copies them into pool frames, the pipeline
//! switches them, the frames queued for port 1 go out through the PMD
//! thread's `prepare_tx` (software GRO: port 1 takes offloads, as a TAP
//! with vnet headers does) and `tx_burst` (copied out of the pool, as a TAP
//! would), and the peer collects them.
//! The peer's work (filling and collecting byte vectors) is inside the
//! measurement too; it stands in for the kernel side of a real port.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use crossbeam::channel::{self, Sender};
use pmd::gro::Gro;
use pmd::memport::{mem_link, MemPeer, MemPort};
use pmd::mirror::Direction;
use pmd::thread::{prepare_tx, Ctx, Pipeline, TxQueues};
use pmd::wire::{self, checksum, MacAddr};
use pmd::{Frame, Pool, PoolConfig, Port, PortId, MAX_BURST};
use switch::pipeline::{Control, SwitchPipeline, SwitchSettings};
use switch::stats::NetCounters;
use switch::topology::Topology;

/// Frames per burst.
pub const BURST: usize = MAX_BURST;
/// Frame length without FCS: 64 bytes on the wire.
pub const FRAME_LEN: usize = 60;

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SRC_IP: [u8; 4] = [172, 30, 0, 10];

/// The pipeline, two memory ports and their peers, driven synchronously.
pub struct PipelineBench {
    pool: Pool,
    tx: TxQueues,
    pipeline: SwitchPipeline,
    ports: [MemPort; 2],
    peers: [MemPeer; 2],
    /// Frames offered on port 0, one per destination MAC, used in turn.
    templates: Vec<[u8; FRAME_LEN]>,
    next: usize,
    burst: Vec<Frame>,
    out: Vec<Frame>,
    gro: Gro,
    epoch: Instant,
    /// Keeps the control channel open (the pipeline reads it only in
    /// housekeeping, which this loop does not call).
    _control: Sender<Control>,
}

/// Destination MAC number `i` (locally administered, unicast).
fn dst_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0x01, (i >> 8) as u8, i as u8]
}

/// A 60-byte Ethernet/IPv4/UDP frame with an 18-byte payload and a valid
/// IPv4 header checksum.
fn udp_frame(dst: [u8; 6], src: [u8; 6], ip_src: [u8; 4], ip_dst: [u8; 4]) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&wire::ETHERTYPE_IPV4.to_be_bytes());
    let ip = &mut f[wire::ETH_HDR..];
    let total = (FRAME_LEN - wire::ETH_HDR) as u16;
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = wire::IPPROTO_UDP;
    ip[12..16].copy_from_slice(&ip_src);
    ip[16..20].copy_from_slice(&ip_dst);
    let csum = checksum::checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    let udp = &mut ip[20..];
    udp[0..2].copy_from_slice(&1000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&2000u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(total - 20).to_be_bytes());
    // UDP checksum 0: none (RFC 768), fine for a switch that never reads it.
    f
}

fn dst_ip(i: usize) -> [u8; 4] {
    [172, 30, 1 + (i / 250) as u8, 1 + (i % 250) as u8]
}

impl PipelineBench {
    /// Sets up one network with ports 0 and 1 and teaches the switch `macs`
    /// destination MACs behind port 1 (and the source behind port 0), so
    /// every measured frame is unicast from port 0 to port 1.
    pub fn new(macs: usize) -> PipelineBench {
        PipelineBench::with_guard(macs, false)
    }

    /// As [`PipelineBench::new`], with port 0 guarded by anti-spoofing
    /// (`switch::spoof`) when `guard` is set.
    pub fn with_guard(macs: usize, guard: bool) -> PipelineBench {
        assert!((1..=65_536).contains(&macs), "macs must be 1..=65536");
        let mut topo = Topology::default();
        let net = topo.add_network(
            "bench",
            "172.30.0.0/16".parse().expect("subnet"),
            Some(Ipv4Addr::new(172, 30, 0, 1)),
        );
        let id0 = topo.add_port("p0", Some(net));
        let id1 = topo.add_port("p1", Some(net));
        if guard {
            topo.guard_port(
                id0,
                Some(switch::spoof::Guard {
                    mac: Some(MacAddr(SRC_MAC)),
                    ip: Ipv4Addr::from(SRC_IP),
                }),
            );
        }
        let (port0, peer0) = mem_link("p0", id0, 256);
        let (port1, peer1) = mem_link("p1", id1, 256);
        let port1 = port1.with_offload();
        let topo = Arc::new(topo);
        let settings = SwitchSettings {
            mac_aging_secs: 300,
            fdb_size: 65_536.max(macs as u32),
        };
        let counters: Vec<Arc<NetCounters>> =
            topo.networks.iter().map(|_| Arc::default()).collect();
        let (control_tx, control_rx) = channel::unbounded();
        let no_nat = topo.uplinks.iter().map(|_| None).collect();
        let pipeline = SwitchPipeline::new(
            topo,
            settings,
            counters,
            control_rx,
            no_nat,
            Vec::new(),
            Vec::new(),
        );
        let tx = TxQueues::new(&[
            (id0, port0.counters().clone()),
            (id1, port1.counters().clone()),
        ]);
        let pool = Pool::new(PoolConfig {
            chunks: 1024,
            large: 1,
            umem: false,
        })
        .expect("heap pool");
        let templates = (0..macs)
            .map(|i| udp_frame(dst_mac(i), SRC_MAC, SRC_IP, dst_ip(i)))
            .collect();
        let mut b = PipelineBench {
            pool,
            tx,
            pipeline,
            ports: [port0, port1],
            peers: [peer0, peer1],
            templates,
            next: 0,
            burst: Vec::with_capacity(BURST),
            out: Vec::with_capacity(BURST * 4),
            gro: Gro::new(),
            epoch: Instant::now(),
            _control: control_tx,
        };
        b.learn(macs);
        b
    }

    /// Teaches the FDB: the source behind port 0 (one flooded frame), then
    /// every destination behind port 1 (frames from port 1 to the source,
    /// unicast back to port 0).
    fn learn(&mut self, macs: usize) {
        let first = self.templates[0];
        self.offer(0, &first);
        self.step(0);
        self.step(1);
        let mut i = 0;
        while i < macs {
            let n = BURST.min(macs - i);
            for k in i..i + n {
                let f = udp_frame(SRC_MAC, dst_mac(k), dst_ip(k), SRC_IP);
                self.offer(1, &f);
            }
            self.step(1);
            self.step(0);
            i += n;
        }
        for p in 0..2 {
            while let Some(v) = self.peers[p].recv() {
                self.peers[p].recycle(v);
            }
        }
        // A few bursts so every spare vector and queue has its capacity.
        for _ in 0..16 {
            self.burst();
        }
        let got = self.burst();
        assert_eq!(got, BURST, "every frame of a burst is forwarded to port 1");
        assert!(
            self.peers[0].recv().is_none(),
            "unicast: nothing comes back out of port 0"
        );
    }

    /// Offers one frame on a port's peer.
    fn offer(&self, port: usize, bytes: &[u8]) {
        let mut v = self.peers[port].spare();
        v.extend_from_slice(bytes);
        assert!(self.peers[port].send(v), "memory ring full");
    }

    /// Receives and processes one burst on `port` and transmits everything
    /// queued, on every port (used for setup, where frames may flood).
    fn step(&mut self, port: usize) {
        let now_ns = self.epoch.elapsed().as_nanos() as u64;
        self.ports[port].rx_burst(&mut self.pool, &mut self.burst, BURST);
        let mut ctx = Ctx {
            pool: &mut self.pool,
            tx: &mut self.tx,
            now_ns,
            thread: 0,
        };
        self.pipeline.process(&mut ctx, &mut self.burst);
        for p in 0..2 {
            self.tx.take_into(PortId(p as u16), &mut self.out);
            self.send(p);
        }
    }

    /// One measured burst: offer 32 frames on port 0, receive, switch,
    /// transmit on port 1, collect at the peer. Returns the frames that
    /// came out of port 1.
    #[inline]
    pub fn burst(&mut self) -> usize {
        self.inject();
        self.rx();
        self.process();
        self.tx();
        self.collect()
    }

    // The steps are separate, never-inlined functions so that callgrind's
    // inclusive costs split a burst into its parts.

    #[inline(never)]
    fn inject(&mut self) {
        let peer = &self.peers[0];
        for _ in 0..BURST {
            let mut v = peer.spare();
            v.extend_from_slice(&self.templates[self.next]);
            self.next += 1;
            if self.next == self.templates.len() {
                self.next = 0;
            }
            let _ = peer.send(v);
        }
    }

    #[inline(never)]
    fn rx(&mut self) {
        self.ports[0].rx_burst(&mut self.pool, &mut self.burst, BURST);
        // The capture check the PMD loop makes per received burst.
        let counters = self.ports[0].counters();
        counters.mirror.tap(Direction::Rx, &self.pool, &self.burst);
    }

    #[inline(never)]
    fn process(&mut self) {
        // Read once per burst, as the PMD loop does.
        let now_ns = self.epoch.elapsed().as_nanos() as u64;
        let mut ctx = Ctx {
            pool: &mut self.pool,
            tx: &mut self.tx,
            now_ns,
            thread: 0,
        };
        self.pipeline.process(&mut ctx, &mut self.burst);
    }

    #[inline(never)]
    fn tx(&mut self) {
        self.tx.take_into(PortId(1), &mut self.out);
        self.send(1);
    }

    /// What a PMD thread does with a port's queue: `prepare_tx`, then
    /// `tx_burst`.
    #[inline]
    fn send(&mut self, p: usize) {
        let port = &self.ports[p];
        prepare_tx(
            port,
            &mut self.pool,
            &mut self.out,
            port.counters(),
            &mut self.gro,
        );
        port.counters()
            .mirror
            .tap(Direction::Tx, &self.pool, &self.out);
        self.ports[p].tx_burst(&mut self.pool, &mut self.out);
    }

    #[inline(never)]
    fn collect(&mut self) -> usize {
        let peer = &self.peers[1];
        let mut n = 0;
        while let Some(v) = peer.recv() {
            n += 1;
            peer.recycle(v);
        }
        n
    }

    /// Frames out of the pool (0 between bursts, or a leak).
    pub fn in_flight(&self) -> usize {
        self.pool.in_flight()
    }
}

/// What `run` measured.
#[derive(Debug, Clone, Copy)]
pub struct RunReport {
    /// Frames offered.
    pub packets: u64,
    /// Frames that came out of port 1.
    pub forwarded: u64,
    /// Wall time of the loop.
    pub elapsed: std::time::Duration,
}

impl RunReport {
    /// Nanoseconds per offered packet.
    pub fn ns_per_packet(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.packets as f64
    }

    /// Million packets per second.
    pub fn mpps(&self) -> f64 {
        self.packets as f64 / self.elapsed.as_secs_f64() / 1e6
    }
}

/// Runs at least `packets` packets (whole bursts) through `b`.
pub fn run(b: &mut PipelineBench, packets: u64) -> RunReport {
    let bursts = packets.div_ceil(BURST as u64);
    let start = Instant::now();
    let mut forwarded = 0u64;
    for _ in 0..bursts {
        forwarded += b.burst() as u64;
    }
    RunReport {
        packets: bursts * BURST as u64,
        forwarded,
        elapsed: start.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offered_frame_is_forwarded_unicast_and_none_leaks() {
        for macs in [1, 1000] {
            let mut b = PipelineBench::new(macs);
            let r = run(&mut b, 10 * BURST as u64);
            assert_eq!(r.forwarded, r.packets);
            assert_eq!(b.in_flight(), 0, "frames leaked from the pool");
        }
    }
}
