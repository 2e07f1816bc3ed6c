//! Port mirroring for `ctl capture`: every port has a [`Mirror`] (in its
//! [`PortCounters`](crate::PortCounters), so ports added at run time have
//! one too). While a capture is armed on it, the PMD thread offers each
//! burst it received on the port, and each burst it is about to transmit
//! there, to the capture's sink; unarmed, the thread reads one flag per
//! burst and does nothing else.
//!
//! The sink runs on the PMD thread and must not block: it copies what it
//! wants and drops (and counts) what it cannot queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::frame::Frame;
use crate::pool::Pool;

/// Which way a mirrored frame was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received by the port.
    Rx,
    /// Queued for transmit on the port.
    Tx,
}

/// Where mirrored frames go (a capture).
pub trait MirrorSink: Send + Sync {
    /// Takes one frame's bytes on the PMD thread: copy or ignore, never
    /// block.
    fn offer(&self, dir: Direction, frame: &[u8]);
}

/// The mirror of one port: off, or armed with one sink.
#[derive(Default)]
pub struct Mirror {
    armed: AtomicBool,
    sink: Mutex<Option<Arc<dyn MirrorSink>>>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("armed", &self.is_armed())
            .finish()
    }
}

/// A port takes one capture at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a capture is already running on this port")]
pub struct MirrorBusy;

impl Mirror {
    /// True while a capture is armed: the one check the PMD thread makes
    /// per burst.
    #[inline]
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }

    /// Offers `frames` when a capture is armed; otherwise one relaxed
    /// load and a branch. What the PMD loop calls once per burst.
    #[inline]
    pub fn tap(&self, dir: Direction, pool: &Pool, frames: &[Frame]) {
        if self.is_armed() {
            self.offer_burst(dir, pool, frames);
        }
    }

    /// Starts mirroring into `sink`.
    pub fn arm(&self, sink: Arc<dyn MirrorSink>) -> Result<(), MirrorBusy> {
        let mut slot = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Err(MirrorBusy);
        }
        *slot = Some(sink);
        // Release: a thread that sees the flag finds the sink in place.
        self.armed.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops mirroring; frames already offered stay with the sink.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Release);
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Offers every frame of `frames` to the sink. Called by the PMD
    /// thread after [`is_armed`](Self::is_armed) said yes; out of line so
    /// the unarmed loop stays as it was.
    #[cold]
    #[inline(never)]
    pub fn offer_burst(&self, dir: Direction, pool: &Pool, frames: &[Frame]) {
        // The control side holds the lock only to swap the sink: when it
        // does, the capture is starting or ending, and this burst is not
        // part of it.
        let sink = match self.sink.try_lock() {
            Ok(s) => s.clone(),
            Err(_) => return,
        };
        if let Some(sink) = sink {
            for f in frames {
                sink.offer(dir, pool.data(f));
            }
        }
    }
}
