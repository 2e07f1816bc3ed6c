//! Pinned poll-mode threads.
//!
//! A PMD thread owns a pool, a set of ports and a pipeline. Its loop:
//! receive a burst from each port, hand it to the pipeline, transmit what
//! the pipeline queued per output port, recycle buffers. Frames for a port
//! owned by another thread go through a bounded lock-free ring
//! (crossbeam's `ArrayQueue`) and are copied into that thread's pool there.
//!
//! Poll modes: `Busy` spins forever (benchmarks); `Adaptive` (the default)
//! spins while traffic flows and, after `idle_us` without a frame, sleeps on
//! the ports' readiness (mio) for at most `max_sleep_ms`, as VPP's adaptive
//! mode and OVS's pmd-sleep-max do, so an idle switch does not own a core.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::counters::{DropReason, PortCounters};
use crate::frame::Frame;
use crate::gso;
use crate::pool::{Pool, PoolReader};
use crate::port::{Port, PortId, MAX_BURST};

/// How a PMD thread waits for work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// Poll without sleeping: lowest latency, one core at 100% always.
    /// An empty poll yields the core (sched_yield), so kernel work on the
    /// same core (the NAPI of our own veths) is not starved.
    Busy,
    /// Spin while traffic flows; sleep on readiness when idle.
    Adaptive {
        /// Microseconds without any received frame before sleeping.
        idle_us: u32,
        /// Longest sleep, so housekeeping (MAC aging) still runs.
        max_sleep_ms: u32,
    },
}

impl Default for PollMode {
    fn default() -> Self {
        PollMode::Adaptive {
            idle_us: 200,
            max_sleep_ms: 50,
        }
    }
}

/// What a pipeline stage sees besides the frames: the thread's pool, the
/// transmit queues and a coarse clock.
pub struct Ctx<'a> {
    /// The thread's pool: every frame not queued for transmit goes back here.
    pub pool: &'a mut Pool,
    /// Per-port transmit queues of this burst.
    pub tx: &'a mut TxQueues,
    /// Nanoseconds since the engine started, read once per burst.
    pub now_ns: u64,
    /// Index of this PMD thread.
    pub thread: usize,
}

impl Ctx<'_> {
    /// Queues `frame` for transmit on `port`.
    #[inline]
    pub fn send(&mut self, port: PortId, frame: Frame) {
        self.tx.push(port, frame);
    }

    /// Drops `frame`, counting `reason` on the port it came in on.
    #[inline]
    pub fn drop_frame(&mut self, frame: Frame, reason: DropReason) {
        self.tx.count_drop(frame.in_port, reason);
        self.pool.free(frame);
    }
}

/// The switching logic run on each burst (`switch` implements it).
pub trait Pipeline: Send {
    /// Takes every frame of `burst` (received on one port): queue it with
    /// `ctx.send`, or give it back with `ctx.drop_frame`.
    fn process(&mut self, ctx: &mut Ctx<'_>, burst: &mut Vec<Frame>);

    /// Called between bursts at least every `max_sleep_ms`: aging, control
    /// messages. It may queue frames too.
    fn housekeeping(&mut self, _ctx: &mut Ctx<'_>) {}

    /// Gives back every frame the pipeline holds (frames waiting for ARP),
    /// before the thread ends.
    fn release(&mut self, _pool: &mut Pool) {}
}

/// Transmit queues of one thread, one per port of the whole switch.
pub struct TxQueues {
    queues: Vec<Vec<Frame>>,
    /// Ports with frames queued in this burst.
    dirty: Vec<PortId>,
    counters: Vec<Arc<PortCounters>>,
}

impl TxQueues {
    /// Queues for `counters.len()` ports.
    pub fn new(counters: Vec<Arc<PortCounters>>) -> TxQueues {
        TxQueues {
            queues: (0..counters.len())
                .map(|_| Vec::with_capacity(MAX_BURST * 4))
                .collect(),
            dirty: Vec::with_capacity(counters.len()),
            counters,
        }
    }

    /// Queues a frame for a port.
    #[inline]
    pub fn push(&mut self, port: PortId, frame: Frame) {
        let q = &mut self.queues[port.0 as usize];
        if q.is_empty() {
            self.dirty.push(port);
        }
        q.push(frame);
    }

    /// Counts a drop on a port.
    #[inline]
    pub fn count_drop(&self, port: PortId, reason: DropReason) {
        if let Some(c) = self.counters.get(port.0 as usize) {
            c.count_drop(reason);
        }
    }

    /// Takes the frames queued for `port`, for tests of a pipeline alone.
    pub fn take(&mut self, port: PortId) -> Vec<Frame> {
        self.dirty.retain(|p| *p != port);
        std::mem::take(&mut self.queues[port.0 as usize])
    }

    /// Moves the frames queued for `port` to the end of `out`, keeping the
    /// queue's capacity: `take` without an allocation per burst, for
    /// benchmarks that drive a pipeline on one thread.
    pub fn take_into(&mut self, port: PortId, out: &mut Vec<Frame>) {
        self.dirty.retain(|p| *p != port);
        out.append(&mut self.queues[port.0 as usize]);
    }

    /// Number of ports.
    pub fn ports(&self) -> usize {
        self.queues.len()
    }
}

/// A frame crossing to the thread that owns its output port.
struct Crossing {
    port: PortId,
    frame: Frame,
    from: usize,
}

/// Rings between threads: `inbox[t]` holds frames for thread t; `returns[t]`
/// gives thread t back the frames it sent away once they were copied.
struct CrossRings {
    inbox: Vec<ArrayQueue<Crossing>>,
    returns: Vec<ArrayQueue<Frame>>,
    readers: Vec<PoolReader>,
}

/// Depth of each cross-thread ring: a few bursts.
const CROSS_DEPTH: usize = 1024;

/// One PMD thread before it starts: its pool, ports and pipeline.
pub struct PmdThread {
    /// Core to pin to, if any.
    pub core: Option<usize>,
    /// Poll mode.
    pub mode: PollMode,
    /// The thread's pool.
    pub pool: Pool,
    /// The ports this thread polls, each with its switch-wide id.
    pub ports: Vec<(PortId, Box<dyn Port>)>,
    /// The switching logic.
    pub pipeline: Box<dyn Pipeline>,
}

/// Running PMD threads.
pub struct Engine {
    stop: Arc<AtomicBool>,
    wakers: Vec<Arc<Waker>>,
    handles: Vec<JoinHandle<ThreadReport>>,
}

/// What a thread reports when it ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadReport {
    /// Frames still out of the pool after every port released its frames:
    /// non-zero means a leak.
    pub leaked: usize,
    /// Loop iterations.
    pub loops: u64,
    /// Times the thread went to sleep.
    pub sleeps: u64,
    /// The thread panicked (a bug: bad input must never panic).
    pub panicked: bool,
}

impl Engine {
    /// Starts the threads. `counters` has every port's counters by id.
    pub fn start(
        threads: Vec<PmdThread>,
        counters: Vec<Arc<PortCounters>>,
    ) -> std::io::Result<Engine> {
        let stop = Arc::new(AtomicBool::new(false));
        let n = threads.len();
        let mut owner = vec![usize::MAX; counters.len()];
        for (t, th) in threads.iter().enumerate() {
            for (id, _) in &th.ports {
                owner[id.0 as usize] = t;
            }
        }
        let rings = Arc::new(CrossRings {
            inbox: (0..n).map(|_| ArrayQueue::new(CROSS_DEPTH)).collect(),
            returns: (0..n).map(|_| ArrayQueue::new(CROSS_DEPTH * n)).collect(),
            readers: threads.iter().map(|t| t.pool.reader()).collect(),
        });
        let owner = Arc::new(owner);
        let mut wakers = Vec::new();
        let mut handles = Vec::new();
        let epoch = Instant::now();
        for (t, th) in threads.into_iter().enumerate() {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKE_TOKEN)?);
            wakers.push(waker.clone());
            let run = Runner {
                id: t,
                th,
                poll,
                stop: stop.clone(),
                owner: owner.clone(),
                rings: rings.clone(),
                tx: TxQueues::new(counters.clone()),
                epoch,
            };
            handles.push(
                std::thread::Builder::new()
                    .name(format!("pmd{t}"))
                    .spawn(move || run.run())?,
            );
        }
        Ok(Engine {
            stop,
            wakers,
            handles,
        })
    }

    /// Wakes sleeping threads (after a control change).
    pub fn wake(&self) {
        for w in &self.wakers {
            let _ = w.wake();
        }
    }

    /// Stops every thread, waits for them, and returns their reports.
    pub fn stop(self) -> Vec<ThreadReport> {
        self.stop.store(true, Ordering::Release);
        self.wake();
        self.handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or(ThreadReport {
                    panicked: true,
                    ..ThreadReport::default()
                })
            })
            .collect()
    }
}

const WAKE_TOKEN: Token = Token(usize::MAX);

/// Consecutive empty polls before a busy thread yields the core.
const YIELD_AFTER: u32 = 8;

struct Runner {
    id: usize,
    th: PmdThread,
    poll: Poll,
    stop: Arc<AtomicBool>,
    owner: Arc<Vec<usize>>,
    rings: Arc<CrossRings>,
    tx: TxQueues,
    epoch: Instant,
}

impl Runner {
    fn run(mut self) -> ThreadReport {
        if let Some(core) = self.th.core {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                tracing::warn!(core, "could not pin PMD thread {} to core", self.id);
            }
        }
        let fds: Vec<Vec<RawFd>> = self.th.ports.iter().map(|(_, p)| p.rx_fds()).collect();
        let all_have_fds = fds.iter().all(|f| !f.is_empty());
        for (i, port_fds) in fds.iter().enumerate() {
            for fd in port_fds {
                if let Err(e) =
                    self.poll
                        .registry()
                        .register(&mut SourceFd(fd), Token(i), Interest::READABLE)
                {
                    tracing::warn!("cannot watch port {}: {e}", self.th.ports[i].1.name());
                }
            }
        }
        let mut events = Events::with_capacity(64);
        let mut burst: Vec<Frame> = Vec::with_capacity(MAX_BURST);
        let mut report = ThreadReport::default();
        let mut last_rx = Instant::now();
        let mut last_housekeeping = Instant::now();
        let mut now = Instant::now();
        let mut got = 0;
        let mut empty_polls = 0u32;
        while !self.stop.load(Ordering::Acquire) {
            report.loops += 1;
            // The clock costs a vDSO call: read it after traffic, and every
            // 32 empty polls (measured: 17% of an idle spin was the clock).
            if got > 0 || report.loops & 31 == 0 {
                now = Instant::now();
            }
            let now_ns = (now - self.epoch).as_nanos() as u64;
            got = 0;
            for i in 0..self.th.ports.len() {
                let (_, port) = &mut self.th.ports[i];
                port.maintain(&mut self.th.pool);
                let n = port.rx_burst(&mut self.th.pool, &mut burst, MAX_BURST);
                if n == 0 {
                    continue;
                }
                got += n;
                let mut ctx = Ctx {
                    pool: &mut self.th.pool,
                    tx: &mut self.tx,
                    now_ns,
                    thread: self.id,
                };
                self.th.pipeline.process(&mut ctx, &mut burst);
                // A pipeline must take every frame; anything left is freed.
                for f in burst.drain(..) {
                    self.th.pool.free(f);
                }
                self.flush();
            }
            got += self.take_crossings();
            self.take_returns();
            if now.duration_since(last_housekeeping) >= Duration::from_millis(1) {
                last_housekeeping = now;
                let mut ctx = Ctx {
                    pool: &mut self.th.pool,
                    tx: &mut self.tx,
                    now_ns,
                    thread: self.id,
                };
                self.th.pipeline.housekeeping(&mut ctx);
                self.flush();
            }
            if got > 0 {
                last_rx = now;
                empty_polls = 0;
                continue;
            }
            if let PollMode::Adaptive {
                idle_us,
                max_sleep_ms,
            } = self.th.mode
            {
                if now.duration_since(last_rx) >= Duration::from_micros(idle_us as u64) {
                    report.sleeps += 1;
                    // Without an fd for every port, nap briefly instead of
                    // sleeping on readiness, so memory ports are still served.
                    let timeout = if all_have_fds {
                        Duration::from_millis(max_sleep_ms as u64)
                    } else {
                        Duration::from_micros(200)
                    };
                    let _ = self.poll.poll(&mut events, Some(timeout));
                    // After a sleep the cached clock is old: read it again.
                    now = Instant::now();
                    if !events.is_empty() {
                        last_rx = now;
                    }
                } else {
                    // Spinning while traffic may still come: as in busy
                    // mode, let whoever shares the core run in between.
                    std::thread::yield_now();
                }
            } else {
                // Empty polls: give the core to whoever shares it (the
                // kernel's receive work for our own ports, when NAPI runs on
                // this core) instead of spinning through its time slice.
                empty_polls += 1;
                if empty_polls >= YIELD_AFTER {
                    empty_polls = 0;
                    std::thread::yield_now();
                }
            }
        }
        // Give every frame back before the pool goes away.
        self.th.pipeline.release(&mut self.th.pool);
        for (_, port) in &mut self.th.ports {
            port.release(&mut self.th.pool);
        }
        while let Some(c) = self.rings.inbox[self.id].pop() {
            let _ = self.rings.returns[c.from].push(c.frame);
        }
        self.take_returns();
        report.leaked = self.th.pool.in_flight();
        report
    }

    /// Transmits every queued frame: local ports directly (after software
    /// offload completion where the port needs it), remote ports through
    /// their thread's inbox.
    fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.tx.dirty);
        for port_id in dirty.iter().copied() {
            let idx = port_id.0 as usize;
            let owner = self.owner[idx];
            let mut frames = std::mem::take(&mut self.tx.queues[idx]);
            if owner == self.id {
                let local = self.th.ports.iter_mut().find(|(id, _)| *id == port_id);
                match local {
                    Some((_, port)) => {
                        if !port.accepts_offload() {
                            gso::complete_burst(
                                &mut self.th.pool,
                                &mut frames,
                                &self.tx.counters[idx],
                            );
                        }
                        port.tx_burst(&mut self.th.pool, &mut frames);
                    }
                    None => {
                        for f in frames.drain(..) {
                            self.tx.counters[idx].count_drop(DropReason::NoRoute);
                            self.th.pool.free(f);
                        }
                    }
                }
            } else if owner < self.rings.inbox.len() {
                for f in frames.drain(..) {
                    let c = Crossing {
                        port: port_id,
                        frame: f,
                        from: self.id,
                    };
                    if let Err(c) = self.rings.inbox[owner].push(c) {
                        self.tx.counters[idx].count_drop(DropReason::TxFull);
                        self.th.pool.free(c.frame);
                    }
                }
            } else {
                for f in frames.drain(..) {
                    self.tx.counters[idx].count_drop(DropReason::NoRoute);
                    self.th.pool.free(f);
                }
            }
            self.tx.queues[idx] = frames;
        }
        self.tx.dirty = dirty;
        self.tx.dirty.clear();
    }

    /// Copies frames other threads sent here into this pool and queues them.
    fn take_crossings(&mut self) -> usize {
        let mut n = 0;
        while let Some(c) = self.rings.inbox[self.id].pop() {
            // SAFETY: the sending thread keeps the frame's buffer untouched
            // until it gets the frame back on its return ring below.
            let bytes = unsafe { self.rings.readers[c.from].data(&c.frame) };
            match self.th.pool.alloc_copy(bytes) {
                Some(mut copy) => {
                    copy.in_port = c.frame.in_port;
                    copy.offload = c.frame.offload;
                    self.tx.push(c.port, copy);
                }
                None => self.tx.count_drop(c.port, DropReason::NoBuffer),
            }
            if self.rings.returns[c.from].push(c.frame).is_err() {
                // Each return ring is as deep as all inboxes together, so it
                // cannot be full while this frame was outstanding.
                tracing::error!("cross-thread return ring full");
            }
            n += 1;
        }
        if n > 0 {
            self.flush();
        }
        n
    }

    fn take_returns(&mut self) {
        while let Some(f) = self.rings.returns[self.id].pop() {
            self.th.pool.free(f);
        }
    }
}
