//! How a PMD thread spends its time, as OVS's `pmd-perf-show` reports it:
//! loop iterations, the share of wall time spent in iterations that moved
//! frames, and how often and how long the thread slept.
//!
//! The thread keeps the numbers in plain locals ([`PerfRecorder`]) and
//! publishes them with relaxed stores into its own [`ThreadPerf`], at most
//! once per loop iteration (after an iteration that moved frames, every
//! 32 idle iterations, after a sleep). The control side reads them
//! whenever it likes; a reading may lag the thread by one such step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One thread's published numbers. Aligned so no other thread's data
/// shares its cache lines (one writer, the thread itself).
#[derive(Debug)]
#[repr(align(128))]
pub struct ThreadPerf {
    started: Instant,
    iterations: AtomicU64,
    busy_iterations: AtomicU64,
    frames: AtomicU64,
    busy_ns: AtomicU64,
    sleeps: AtomicU64,
    sleep_ns: AtomicU64,
}

/// Plain values of a [`ThreadPerf`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerfSnapshot {
    /// Nanoseconds since the thread's engine started.
    pub wall_ns: u64,
    /// Loop iterations (polls of every port).
    pub iterations: u64,
    /// Iterations that received at least one frame.
    pub busy_iterations: u64,
    /// Frames received.
    pub frames: u64,
    /// Time spent in busy iterations, from their first received burst to
    /// the start of the next iteration (processing and transmit).
    pub busy_ns: u64,
    /// Times the thread slept on its ports' readiness (adaptive mode).
    pub sleeps: u64,
    /// Time spent asleep.
    pub sleep_ns: u64,
}

impl PerfSnapshot {
    /// Busy time over wall time, 0 to 1.
    pub fn busy_share(&self) -> f64 {
        if self.wall_ns == 0 {
            return 0.0;
        }
        (self.busy_ns as f64 / self.wall_ns as f64).min(1.0)
    }
}

impl ThreadPerf {
    /// Zeroed numbers of a thread starting now.
    pub fn new() -> ThreadPerf {
        ThreadPerf {
            started: Instant::now(),
            iterations: AtomicU64::new(0),
            busy_iterations: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            sleeps: AtomicU64::new(0),
            sleep_ns: AtomicU64::new(0),
        }
    }

    /// The values as last published.
    pub fn snapshot(&self) -> PerfSnapshot {
        PerfSnapshot {
            wall_ns: self.started.elapsed().as_nanos() as u64,
            iterations: self.iterations.load(Ordering::Relaxed),
            busy_iterations: self.busy_iterations.load(Ordering::Relaxed),
            frames: self.frames.load(Ordering::Relaxed),
            busy_ns: self.busy_ns.load(Ordering::Relaxed),
            sleeps: self.sleeps.load(Ordering::Relaxed),
            sleep_ns: self.sleep_ns.load(Ordering::Relaxed),
        }
    }
}

impl Default for ThreadPerf {
    fn default() -> Self {
        ThreadPerf::new()
    }
}

/// The thread's side: counts in locals, publishes now and then.
#[derive(Debug)]
pub struct PerfRecorder {
    shared: Arc<ThreadPerf>,
    local: PerfSnapshot,
    busy_since: Option<Instant>,
}

impl PerfRecorder {
    /// A recorder publishing into `shared`.
    pub fn new(shared: Arc<ThreadPerf>) -> PerfRecorder {
        PerfRecorder {
            shared,
            local: PerfSnapshot::default(),
            busy_since: None,
        }
    }

    /// `n` frames arrived in this iteration (`n > 0`); the first burst of
    /// an iteration starts its busy time.
    #[inline]
    pub fn received(&mut self, n: usize) {
        self.local.frames += n as u64;
        if self.busy_since.is_none() {
            self.busy_since = Some(Instant::now());
        }
    }

    /// A new iteration starts at `now` (read fresh whenever the previous
    /// iteration was busy); `publish` asks for a store of the numbers even
    /// after an idle iteration.
    #[inline]
    pub fn iteration(&mut self, now: Instant, publish: bool) {
        self.local.iterations += 1;
        if let Some(since) = self.busy_since.take() {
            self.local.busy_iterations += 1;
            self.local.busy_ns += now.saturating_duration_since(since).as_nanos() as u64;
            self.publish();
        } else if publish {
            self.publish();
        }
    }

    /// The thread slept from `from` to `to`.
    #[inline]
    pub fn slept(&mut self, from: Instant, to: Instant) {
        self.local.sleeps += 1;
        self.local.sleep_ns += to.saturating_duration_since(from).as_nanos() as u64;
        self.publish();
    }

    fn publish(&self) {
        let s = &self.shared;
        let l = &self.local;
        s.iterations.store(l.iterations, Ordering::Relaxed);
        s.busy_iterations
            .store(l.busy_iterations, Ordering::Relaxed);
        s.frames.store(l.frames, Ordering::Relaxed);
        s.busy_ns.store(l.busy_ns, Ordering::Relaxed);
        s.sleeps.store(l.sleeps, Ordering::Relaxed);
        s.sleep_ns.store(l.sleep_ns, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn busy_and_sleep_time_are_published_and_idle_iterations_only_on_request() {
        let shared = Arc::new(ThreadPerf::new());
        let mut r = PerfRecorder::new(shared.clone());
        let t0 = Instant::now();
        r.iteration(t0, false);
        assert_eq!(shared.snapshot().iterations, 0, "an idle iteration waits");
        r.received(5);
        r.received(3);
        r.iteration(t0 + Duration::from_secs(3600), false);
        let s = shared.snapshot();
        assert_eq!((s.iterations, s.busy_iterations, s.frames), (2, 1, 8));
        assert!(s.busy_ns > 0);
        r.slept(t0, t0 + Duration::from_millis(7));
        let s = shared.snapshot();
        assert_eq!((s.sleeps, s.sleep_ns), (1, 7_000_000));
        assert!(s.busy_share() <= 1.0);
    }
}
