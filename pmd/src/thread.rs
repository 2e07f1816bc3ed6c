//! Pinned poll-mode threads.
//!
//! A PMD thread owns a pool, a set of ports and a pipeline. Its loop:
//! receive a burst from each port, hand it to the pipeline, transmit what
//! the pipeline queued per output port, recycle buffers.
//!
//! Frames never cross threads. A thread's transmit queues exist only for
//! the ports it polls; a frame queued for any other port is dropped and
//! counted (`NoRoute`) on the port it came in on. `switch` places a
//! network, its uplink and every network sharing that uplink on one thread
//! (and refuses a plan that splits them), so no switched frame needs
//! another thread. In return a pool is touched by its own thread alone and
//! lives exactly as long as that thread: a stop, or a panic that unwinds
//! one thread, leaves no other thread holding a pointer into its buffers,
//! and no thread waits for, wakes or counts on behalf of another. (An
//! earlier design copied frames between threads' pools through rings; it
//! served no placement the switch makes and could not be made sound at
//! shutdown.)
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

use crossbeam::channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::counters::{DropReason, PortCounters};
use crate::frame::Frame;
use crate::gro::Gro;
use crate::gso;
use crate::mirror::Direction;
use crate::perf::{PerfRecorder, PerfSnapshot, ThreadPerf};
use crate::pool::Pool;
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
    /// Queues `frame` for transmit on `port`; a port this thread does not
    /// poll drops it (`NoRoute`, counted on its input port).
    #[inline]
    pub fn send(&mut self, port: PortId, frame: Frame) {
        if let Err(frame) = self.tx.push(port, frame) {
            self.not_ours(frame);
        }
    }

    // Out of line, so `send` stays small enough to inline into pipelines
    // (measured: 22 instructions a packet when it was not).
    #[cold]
    #[inline(never)]
    fn not_ours(&mut self, frame: Frame) {
        self.drop_frame(frame, DropReason::NoRoute);
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

/// Transmit queues of one thread: one for each port the thread polls, and
/// none for any other port (frames never cross threads; see the module doc).
pub struct TxQueues {
    /// Index into `queues` by switch-wide port id; `NOT_OURS` for a port
    /// another thread polls.
    slot: Vec<u16>,
    queues: Vec<Vec<Frame>>,
    counters: Vec<Arc<PortCounters>>,
    /// Queues with frames in this burst, by index.
    dirty: Vec<u16>,
    /// Drops that belong to no port of this thread (see
    /// [`ThreadReport::unowned_drops`]).
    unowned_drops: u64,
}

const NOT_OURS: u16 = u16::MAX;

impl TxQueues {
    /// Queues for the ports a thread polls, in its polling order, each with
    /// its counters.
    pub fn new(ports: &[(PortId, Arc<PortCounters>)]) -> TxQueues {
        let ids = ports.iter().map(|(id, _)| id.0 as usize + 1);
        let mut slot = vec![NOT_OURS; ids.max().unwrap_or(0)];
        for (i, (id, _)) in ports.iter().enumerate() {
            slot[id.0 as usize] = i as u16;
        }
        TxQueues {
            slot,
            queues: ports
                .iter()
                .map(|_| Vec::with_capacity(MAX_BURST * 4))
                .collect(),
            counters: ports.iter().map(|(_, c)| c.clone()).collect(),
            dirty: Vec::with_capacity(ports.len()),
            unowned_drops: 0,
        }
    }

    /// The queue of `port`, when this thread polls it.
    #[inline]
    fn queue_of(&self, port: PortId) -> Option<usize> {
        match self.slot.get(port.0 as usize) {
            Some(&i) if i != NOT_OURS => Some(i as usize),
            _ => None,
        }
    }

    /// Queues a frame for one of this thread's ports; gives it back when
    /// the port is another thread's.
    #[inline(always)]
    pub fn push(&mut self, port: PortId, frame: Frame) -> Result<(), Frame> {
        let Some(i) = self.queue_of(port) else {
            return Err(frame);
        };
        let q = &mut self.queues[i];
        if q.is_empty() {
            self.dirty.push(i as u16);
        }
        q.push(frame);
        Ok(())
    }

    /// Counts a drop on one of this thread's ports (on no port, in
    /// `unowned_drops`, for another thread's: its counters have one writer).
    #[inline]
    pub fn count_drop(&mut self, port: PortId, reason: DropReason) {
        match self.queue_of(port) {
            Some(i) => self.counters[i].count_drop(reason),
            None => self.unowned_drops += 1,
        }
    }

    /// True when this thread polls `port`.
    pub fn owns(&self, port: PortId) -> bool {
        self.queue_of(port).is_some()
    }

    /// The frames queued for `port` in this burst so far (a trace reads
    /// what one frame added); empty for another thread's port.
    pub fn queued(&self, port: PortId) -> &[Frame] {
        self.queue_of(port).map_or(&[], |i| &self.queues[i])
    }

    /// Drops counted on `port` so far, by reason in [`DropReason::ALL`]
    /// order (a trace reads what one frame added); `None` for another
    /// thread's port.
    pub fn drops_of(&self, port: PortId) -> Option<[u64; DropReason::COUNT]> {
        let c = &self.counters[self.queue_of(port)?];
        Some(DropReason::ALL.map(|r| c.drops[r as usize].get()))
    }

    /// The counters of `port`; `None` for another thread's port.
    pub fn counters_of(&self, port: PortId) -> Option<&Arc<PortCounters>> {
        Some(&self.counters[self.queue_of(port)?])
    }

    /// Drops that belong to no port of this thread, so far.
    pub fn unowned_drops(&self) -> u64 {
        self.unowned_drops
    }

    /// Takes the frames queued for `port`, for tests of a pipeline alone.
    pub fn take(&mut self, port: PortId) -> Vec<Frame> {
        let mut out = Vec::new();
        self.take_into(port, &mut out);
        out
    }

    /// Moves the frames queued for `port` to the end of `out`, keeping the
    /// queue's capacity: `take` without an allocation per burst, for
    /// benchmarks that drive a pipeline on one thread.
    pub fn take_into(&mut self, port: PortId, out: &mut Vec<Frame>) {
        if let Some(i) = self.queue_of(port) {
            self.dirty.retain(|d| *d as usize != i);
            out.append(&mut self.queues[i]);
        }
    }
}

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
    perf: Vec<Arc<ThreadPerf>>,
    handles: Vec<JoinHandle<ThreadReport>>,
    ports: Vec<Sender<PortCommand>>,
}

/// A change to the set of ports a running thread polls, applied between
/// bursts.
enum PortCommand {
    /// Start polling this port.
    Add(PortId, Box<dyn Port>),
    /// Stop polling this port and hand it back (closing a TAP can take
    /// milliseconds in the kernel: that happens on the caller's thread,
    /// not in the PMD loop).
    Remove(PortId, Sender<Option<Box<dyn Port>>>),
}

/// Why a run-time port change failed.
#[derive(Debug, thiserror::Error)]
pub enum PortChangeError {
    /// No such PMD thread.
    #[error("no PMD thread {0}")]
    NoThread(usize),
    /// The thread ended (stopped or panicked).
    #[error("PMD thread {0} is not running")]
    Gone(usize),
    /// The thread did not answer in time.
    #[error("PMD thread {0} did not answer within 5 s")]
    Timeout(usize),
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
    /// Frames the pipeline sent to (or counted a drop on) a port another
    /// thread polls, when the frame's input port was not this thread's
    /// either, so no port of this thread could count them. Non-zero means
    /// the pipeline or the thread plan has a bug.
    pub unowned_drops: u64,
}

impl Engine {
    /// Starts the threads. Each thread owns its pool, ports and pipeline
    /// until it ends; nothing of one thread is shared with another.
    pub fn start(threads: Vec<PmdThread>) -> std::io::Result<Engine> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut wakers = Vec::new();
        let mut handles = Vec::new();
        let mut perf = Vec::new();
        let mut port_senders = Vec::new();
        let epoch = Instant::now();
        for (t, th) in threads.into_iter().enumerate() {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKE_TOKEN)?);
            wakers.push(waker.clone());
            let shared = Arc::new(ThreadPerf::new());
            perf.push(shared.clone());
            let ports: Vec<(PortId, Arc<PortCounters>)> = th
                .ports
                .iter()
                .map(|(id, p)| (*id, p.counters().clone()))
                .collect();
            let (port_tx, port_rx) = crossbeam::channel::unbounded();
            port_senders.push(port_tx);
            let run = Runner {
                id: t,
                th,
                poll,
                stop: stop.clone(),
                tx: TxQueues::new(&ports),
                gro: Gro::new(),
                epoch,
                perf: PerfRecorder::new(shared),
                commands: port_rx,
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
            perf,
            handles,
            ports: port_senders,
        })
    }

    /// How each thread spends its time, by thread index.
    pub fn perf(&self) -> Vec<PerfSnapshot> {
        self.perf.iter().map(|p| p.snapshot()).collect()
    }

    /// Makes thread `thread` poll `port` as `id` from its next burst on.
    pub fn add_port(
        &self,
        thread: usize,
        id: PortId,
        port: Box<dyn Port>,
    ) -> Result<(), PortChangeError> {
        self.command(thread, PortCommand::Add(id, port))
    }

    /// Hands `cmd` to thread `thread` and wakes it.
    fn command(&self, thread: usize, cmd: PortCommand) -> Result<(), PortChangeError> {
        let tx = self
            .ports
            .get(thread)
            .ok_or(PortChangeError::NoThread(thread))?;
        tx.send(cmd).map_err(|_| PortChangeError::Gone(thread))?;
        self.wakers[thread].wake().ok();
        Ok(())
    }

    /// Stops thread `thread` polling port `id` and returns the port, with
    /// every buffer it held back in the thread's pool; `None` when the
    /// thread had no such port.
    pub fn remove_port(
        &self,
        thread: usize,
        id: PortId,
    ) -> Result<Option<Box<dyn Port>>, PortChangeError> {
        let (reply, answer) = crossbeam::channel::bounded(1);
        self.command(thread, PortCommand::Remove(id, reply))?;
        match answer.recv_timeout(Duration::from_secs(5)) {
            Ok(port) => Ok(port),
            Err(crossbeam::channel::RecvTimeoutError::Timeout) => {
                Err(PortChangeError::Timeout(thread))
            }
            Err(crossbeam::channel::RecvTimeoutError::Disconnected) => {
                Err(PortChangeError::Gone(thread))
            }
        }
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

/// Threads that close a stopping thread's ports together.
const CLOSERS: usize = 16;

/// Closes ports on a few threads at once. Closing a TAP unregisters its
/// interface, and the kernel ends each unregistration with an RCU barrier
/// (16 ms per TAP measured on the development VM); barriers of concurrent
/// closes are shared, so 100 TAPs close in 0.2 s instead of 1.6 s.
fn close_ports(ports: Vec<(PortId, Box<dyn Port>)>) {
    let mut sets: Vec<Vec<(PortId, Box<dyn Port>)>> = (0..CLOSERS).map(|_| Vec::new()).collect();
    for (i, p) in ports.into_iter().enumerate() {
        sets[i % CLOSERS].push(p);
    }
    std::thread::scope(|s| {
        for set in sets.into_iter().filter(|s| !s.is_empty()) {
            s.spawn(move || drop(set));
        }
    });
}

/// Marks the ports whose fds reported readiness (a port's token is its
/// index).
fn mark_ready(events: &Events, ready: &mut [bool]) {
    for e in events.iter() {
        if let Some(r) = ready.get_mut(e.token().0) {
            *r = true;
        }
    }
}

/// Consecutive empty polls before a busy thread yields the core.
const YIELD_AFTER: u32 = 8;

struct Runner {
    id: usize,
    th: PmdThread,
    poll: Poll,
    stop: Arc<AtomicBool>,
    tx: TxQueues,
    gro: Gro,
    epoch: Instant,
    perf: PerfRecorder,
    commands: Receiver<PortCommand>,
}

/// How a thread polls its ports: which are read only when their fds are
/// ready, and which are ready now. Rebuilt when a port comes or goes.
struct PollPlan {
    by_readiness: Vec<bool>,
    any_by_readiness: bool,
    all_have_fds: bool,
    ready: Vec<bool>,
}

/// Readies a burst for `port`'s `tx_burst`: a port with offloads gets TCP
/// frames merged into segments (software GRO), a port without gets
/// pending checksums and segments finished in software (GSO). Failures are
/// counted on `counters`, the port's own.
#[inline]
pub fn prepare_tx(
    port: &dyn Port,
    pool: &mut Pool,
    frames: &mut Vec<Frame>,
    counters: &PortCounters,
    gro: &mut Gro,
) {
    if port.accepts_offload() {
        gro.merge_burst(pool, frames, counters);
    } else {
        gso::complete_burst(pool, frames, counters);
    }
}

impl Runner {
    fn run(mut self) -> ThreadReport {
        if let Some(core) = self.th.core {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                tracing::warn!(core, "could not pin PMD thread {} to core", self.id);
            }
        }
        let mut plan = self.watch();
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
            let fresh = got > 0 || report.loops & 31 == 0;
            if fresh {
                now = Instant::now();
            }
            self.perf.iteration(now, fresh);
            let now_ns = (now - self.epoch).as_nanos() as u64;
            got = 0;
            if plan.any_by_readiness {
                // One epoll_wait instead of a failing read per idle port.
                let _ = self.poll.poll(&mut events, Some(Duration::ZERO));
                mark_ready(&events, &mut plan.ready);
            }
            for i in 0..self.th.ports.len() {
                let (_, port) = &mut self.th.ports[i];
                port.maintain(&mut self.th.pool);
                if plan.by_readiness[i] && !plan.ready[i] {
                    continue;
                }
                let n = port.rx_burst(&mut self.th.pool, &mut burst, MAX_BURST);
                // The fds are edge-triggered: a port that gave frames is read
                // again until a read finds none; then the next arrival
                // reports it.
                plan.ready[i] = n > 0;
                if n == 0 {
                    continue;
                }
                got += n;
                self.tx.counters[i]
                    .mirror
                    .tap(Direction::Rx, &self.th.pool, &burst);
                self.perf.received(n);
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
                if !self.commands.is_empty() {
                    self.unwatch();
                    self.apply_port_commands();
                    plan = self.watch();
                }
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
                    let timeout = if plan.all_have_fds {
                        Duration::from_millis(max_sleep_ms as u64)
                    } else {
                        Duration::from_micros(200)
                    };
                    let asleep = Instant::now();
                    let _ = self.poll.poll(&mut events, Some(timeout));
                    mark_ready(&events, &mut plan.ready);
                    // After a sleep the cached clock is old: read it again.
                    now = Instant::now();
                    self.perf.slept(asleep, now);
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
        report.leaked = self.th.pool.in_flight();
        report.unowned_drops = self.tx.unowned_drops;
        close_ports(std::mem::take(&mut self.th.ports));
        report
    }

    /// Registers every port's fds (token: the port's index) and says how
    /// each port is polled. Every port starts ready, so nothing queued
    /// before it was watched waits for the next arrival.
    fn watch(&self) -> PollPlan {
        let fds: Vec<Vec<RawFd>> = self.th.ports.iter().map(|(_, p)| p.rx_fds()).collect();
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
        // Ports read only when ready (see `Port::rx_costs_syscall`).
        let by_readiness: Vec<bool> = self
            .th
            .ports
            .iter()
            .zip(&fds)
            .map(|((_, p), f)| p.rx_costs_syscall() && !f.is_empty())
            .collect();
        PollPlan {
            any_by_readiness: by_readiness.iter().any(|b| *b),
            all_have_fds: fds.iter().all(|f| !f.is_empty()),
            ready: vec![true; by_readiness.len()],
            by_readiness,
        }
    }

    /// Deregisters every port's fds (before the port indices change).
    fn unwatch(&self) {
        for (_, p) in &self.th.ports {
            for fd in p.rx_fds() {
                let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
            }
        }
    }

    /// Adds and removes ports, between bursts (every transmit queue is
    /// empty: `flush` ran), and rebuilds the transmit queues.
    fn apply_port_commands(&mut self) {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                PortCommand::Add(id, port) => self.th.ports.push((id, port)),
                PortCommand::Remove(id, reply) => {
                    let port = self
                        .th
                        .ports
                        .iter()
                        .position(|(p, _)| *p == id)
                        .map(|i| self.th.ports.remove(i).1);
                    let port = port.map(|mut p| {
                        p.release(&mut self.th.pool);
                        p
                    });
                    let _ = reply.send(port);
                }
            }
        }
        let ports: Vec<(PortId, Arc<PortCounters>)> = self
            .th
            .ports
            .iter()
            .map(|(id, p)| (*id, p.counters().clone()))
            .collect();
        let unowned = self.tx.unowned_drops;
        self.tx = TxQueues::new(&ports);
        self.tx.unowned_drops = unowned;
    }

    /// Transmits every queued frame, after [`prepare_tx`]. Queue `i` is
    /// port `i` of this thread.
    fn flush(&mut self) {
        let mut dirty = std::mem::take(&mut self.tx.dirty);
        for i in dirty.iter().map(|i| *i as usize) {
            let mut frames = std::mem::take(&mut self.tx.queues[i]);
            let port = &mut self.th.ports[i].1;
            prepare_tx(
                port.as_ref(),
                &mut self.th.pool,
                &mut frames,
                &self.tx.counters[i],
                &mut self.gro,
            );
            // After GRO/GSO: the frames as the port gets them.
            self.tx.counters[i]
                .mirror
                .tap(Direction::Tx, &self.th.pool, &frames);
            port.tx_burst(&mut self.th.pool, &mut frames);
            self.tx.queues[i] = frames;
        }
        dirty.clear();
        self.tx.dirty = dirty;
    }
}
