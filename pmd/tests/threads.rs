//! PMD threads started and stopped while frames flow, over in-memory ports
//! (no kernel needed): each thread owns its pool and ports, nothing of one
//! thread is reachable from another, and a stop gives every frame back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pmd::memport::{mem_link, MemPeer};
use pmd::thread::{Ctx, Engine, Pipeline, PmdThread, PollMode, ThreadReport};
use pmd::{DropReason, Frame, Pool, PoolConfig, Port, PortCounters, PortId};

/// Frames a pipeline holds back between bursts, so a stop finds frames
/// inside the pipeline as well as in the ports.
const HOLD: usize = 4;

/// Wires port 2k to port 2k+1 and back. The last frame of each burst is
/// held until the next burst (or housekeeping), as frames waiting for ARP
/// are in the switch.
#[derive(Default)]
struct Wires {
    held: Vec<Frame>,
}

fn partner(port: PortId) -> PortId {
    PortId(port.0 ^ 1)
}

impl Wires {
    fn send_held(&mut self, ctx: &mut Ctx<'_>) {
        for f in self.held.drain(..) {
            ctx.send(partner(f.in_port), f);
        }
    }
}

impl Pipeline for Wires {
    fn process(&mut self, ctx: &mut Ctx<'_>, burst: &mut Vec<Frame>) {
        self.send_held(ctx);
        let keep = burst.pop();
        for f in burst.drain(..) {
            ctx.send(partner(f.in_port), f);
        }
        self.held.extend(keep);
        assert!(self.held.len() <= HOLD);
    }

    fn housekeeping(&mut self, ctx: &mut Ctx<'_>) {
        self.send_held(ctx);
    }

    fn release(&mut self, pool: &mut Pool) {
        for f in self.held.drain(..) {
            pool.free(f);
        }
    }
}

/// Sends every frame to one port, whichever thread polls it.
struct SendTo(PortId);

impl Pipeline for SendTo {
    fn process(&mut self, ctx: &mut Ctx<'_>, burst: &mut Vec<Frame>) {
        for f in burst.drain(..) {
            ctx.send(self.0, f);
        }
    }
}

/// A pipeline with a bug: it panics on the first frame.
struct Panics;

impl Pipeline for Panics {
    fn process(&mut self, _ctx: &mut Ctx<'_>, _burst: &mut Vec<Frame>) {
        panic!("a pipeline bug (this panic is the test's)");
    }
}

/// Two threads: thread t polls ports 2t and 2t+1, with its own small pool.
struct Pair {
    threads: Vec<PmdThread>,
    peers: Vec<MemPeer>,
    counters: Vec<Arc<PortCounters>>,
}

fn two_threads(mode: PollMode, pipelines: [Box<dyn Pipeline>; 2]) -> Pair {
    let mut peers = Vec::new();
    let mut counters = Vec::new();
    let mut threads = Vec::new();
    for (t, pipeline) in pipelines.into_iter().enumerate() {
        let mut ports: Vec<(PortId, Box<dyn Port>)> = Vec::new();
        for p in [2 * t, 2 * t + 1] {
            let id = PortId(p as u16);
            let (port, peer) = mem_link(&format!("m{p}"), id, 64);
            counters.push(port.counters().clone());
            peers.push(peer);
            ports.push((id, Box::new(port)));
        }
        threads.push(PmdThread {
            core: None,
            mode,
            pool: Pool::new(PoolConfig {
                chunks: 256,
                large: 1,
                umem: false,
            })
            .expect("heap pool"),
            ports,
            pipeline,
        });
    }
    Pair {
        threads,
        peers,
        counters,
    }
}

/// A frame offered on port `port`: its first byte names the port.
fn frame_from(port: usize) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0] = port as u8;
    f
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn assert_clean(reports: &[ThreadReport], round: usize) {
    for (t, r) in reports.iter().enumerate() {
        assert!(!r.panicked, "round {round}: PMD thread {t} panicked");
        assert_eq!(r.leaked, 0, "round {round}: thread {t} leaked frames");
        assert_eq!(r.unowned_drops, 0, "round {round}: thread {t} misrouted");
    }
}

/// What the feeder saw across all rounds.
#[derive(Default)]
struct Fed {
    sent: AtomicU64,
    received: AtomicU64,
    /// Frames that came out of a port that is not their input's partner.
    misdelivered: AtomicU64,
}

/// Keeps offering frames on every port of the current round's links and
/// collecting what comes out, until `done`; rounds swap the links under it.
fn feed(links: &Mutex<Option<Arc<Vec<MemPeer>>>>, done: &AtomicBool, fed: &Fed) {
    while !done.load(Ordering::Acquire) {
        let peers = links.lock().expect("links lock").clone();
        if let Some(peers) = peers {
            for (p, peer) in peers.iter().enumerate() {
                for _ in 0..8 {
                    let mut v = peer.spare();
                    v.extend_from_slice(&frame_from(p));
                    if !peer.send(v) {
                        break;
                    }
                    fed.sent.fetch_add(1, Ordering::Relaxed);
                }
                while let Some(v) = peer.recv() {
                    if v.first() != Some(&((p ^ 1) as u8)) {
                        fed.misdelivered.fetch_add(1, Ordering::Relaxed);
                    }
                    fed.received.fetch_add(1, Ordering::Relaxed);
                    peer.recycle(v);
                }
            }
        }
        std::thread::yield_now();
    }
}

#[test]
fn two_pmd_threads_stopped_and_started_200_times_while_frames_flow_lose_nothing() {
    const ROUNDS: usize = 200;
    let links: Arc<Mutex<Option<Arc<Vec<MemPeer>>>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let fed = Arc::new(Fed::default());
    let feeder = {
        let (links, done, fed) = (links.clone(), done.clone(), fed.clone());
        std::thread::spawn(move || feed(&links, &done, &fed))
    };
    let started = Instant::now();
    for round in 0..ROUNDS {
        // Both poll modes: adaptive naps between polls of memory ports,
        // busy yields; a stop must find either at any point of its loop.
        let mode = if round % 2 == 0 {
            PollMode::default()
        } else {
            PollMode::Busy
        };
        let pair = two_threads(mode, [Box::<Wires>::default(), Box::<Wires>::default()]);
        *links.lock().unwrap() = Some(Arc::new(pair.peers));
        let engine = Engine::start(pair.threads).expect("starting the engine");
        let counters = pair.counters;
        wait_until(&format!("round {round}: every port forwards"), || {
            counters.iter().all(|c| c.tx_packets.get() >= 16)
        });
        // Stop while the feeder keeps offering frames.
        let reports = engine.stop();
        assert_clean(&reports, round);
        for (p, c) in counters.iter().enumerate() {
            // A full memory ring (the feeder is late) is the only drop.
            let c = c.snapshot();
            assert_eq!(
                c.total_drops() - c.drops_of(DropReason::TxFull),
                0,
                "round {round}: port {p} dropped frames: {c:?}"
            );
        }
    }
    done.store(true, Ordering::Release);
    feeder.join().expect("feeder");
    let elapsed = started.elapsed();
    println!(
        "{ROUNDS} rounds in {elapsed:?}: {} frames offered, {} came back",
        fed.sent.load(Ordering::Relaxed),
        fed.received.load(Ordering::Relaxed)
    );
    assert_eq!(fed.misdelivered.load(Ordering::Relaxed), 0);
    assert!(fed.received.load(Ordering::Relaxed) >= (ROUNDS * 4 * 16) as u64);
}

#[test]
fn a_frame_sent_to_a_port_of_another_thread_is_dropped_and_counted_on_its_input_port() {
    // Thread 0's pipeline sends everything to port 2, which thread 1 polls.
    let pair = two_threads(
        PollMode::default(),
        [Box::new(SendTo(PortId(2))), Box::<Wires>::default()],
    );
    let (peers, counters) = (pair.peers, pair.counters);
    let engine = Engine::start(pair.threads).expect("starting the engine");
    for _ in 0..10 {
        assert!(peers[0].send(frame_from(0).to_vec()));
    }
    wait_until("thread 0 has dropped all 10 frames", || {
        counters[0].snapshot().drops_of(DropReason::NoRoute) == 10
    });
    // Thread 1 still forwards its own traffic.
    assert!(peers[3].send(frame_from(3).to_vec()));
    wait_until("thread 1 forwards port 3 to port 2", || {
        counters[2].tx_packets.get() == 1
    });
    let reports = engine.stop();
    assert_eq!(peers[2].drain(), vec![frame_from(3).to_vec()]);
    assert_eq!(counters[2].snapshot().total_drops(), 0);
    assert_clean(&reports, 0);
}

#[test]
fn a_panicking_pmd_thread_is_reported_and_the_other_thread_keeps_forwarding() {
    let pair = two_threads(
        PollMode::default(),
        [Box::<Wires>::default(), Box::new(Panics)],
    );
    let (peers, counters) = (pair.peers, pair.counters);
    let engine = Engine::start(pair.threads).expect("starting the engine");
    assert!(peers[2].send(frame_from(2).to_vec()));
    // Received means handed to the pipeline in the same loop turn.
    wait_until("thread 1 took the frame", || peers[2].pending() == 0);
    for _ in 0..HOLD * 8 {
        assert!(peers[0].send(frame_from(0).to_vec()));
    }
    wait_until("thread 0 forwards port 0 to port 1", || {
        counters[1].tx_packets.get() == (HOLD * 8) as u64
    });
    let reports = engine.stop();
    assert!(reports[1].panicked, "the panic is reported");
    assert!(!reports[0].panicked);
    assert_eq!(reports[0].leaked, 0);
    assert_eq!(peers[1].drain().len(), HOLD * 8);
}

#[test]
fn a_port_added_to_a_running_thread_forwards_and_a_removed_one_comes_back_holding_no_buffer() {
    // One thread polls ports 0 and 1; ports 2 and 3 (a wired pair) join at
    // run time while 0 and 1 keep forwarding, then leave again.
    let pair = two_threads(
        PollMode::default(),
        [Box::<Wires>::default(), Box::<Wires>::default()],
    );
    let mut threads = pair.threads;
    threads.truncate(1);
    let (peers, counters) = (pair.peers, pair.counters);
    let engine = Engine::start(threads).expect("starting the engine");
    let (p2, peer2) = mem_link("m2", PortId(2), 64);
    let (p3, peer3) = mem_link("m3", PortId(3), 64);
    let (c2, c3) = (p2.counters().clone(), p3.counters().clone());
    engine.add_port(0, PortId(2), Box::new(p2)).expect("add 2");
    engine.add_port(0, PortId(3), Box::new(p3)).expect("add 3");
    for _ in 0..10 {
        assert!(peer2.send(frame_from(2).to_vec()));
        assert!(peers[0].send(frame_from(0).to_vec()));
    }
    wait_until("the added port 3 sent the 10 frames of port 2", || {
        c3.tx_packets.get() == 10
    });
    wait_until("port 1 still forwards port 0's frames", || {
        counters[1].tx_packets.get() == 10
    });
    assert_eq!(peer3.drain().len(), 10);
    let back = engine.remove_port(0, PortId(3)).expect("remove 3");
    assert_eq!(back.map(|p| p.name().to_string()), Some("m3".to_string()));
    assert!(
        engine
            .remove_port(0, PortId(3))
            .expect("remove 3 again")
            .is_none(),
        "a port removed twice is not there the second time"
    );
    // Frames to the removed port now drop (no route), counted on port 2.
    assert!(peer2.send(frame_from(2).to_vec()));
    wait_until("a frame for the removed port is dropped", || {
        c2.snapshot().drops_of(DropReason::NoRoute) == 1
    });
    assert!(peers[1].send(frame_from(1).to_vec()));
    wait_until("port 0 still forwards port 1's frames", || {
        counters[0].tx_packets.get() == 1
    });
    let reports = engine.stop();
    assert_clean(&reports, 0);
}
