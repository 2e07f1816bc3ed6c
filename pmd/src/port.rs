//! The `Port` trait: burst receive and burst transmit.

use std::os::fd::RawFd;
use std::sync::Arc;

use crate::counters::PortCounters;
use crate::frame::Frame;
use crate::pool::Pool;

/// Frames moved per receive call; DPDK and OVS use 32, which keeps a burst
/// inside L1 while amortising the per-burst costs (ring index updates, the
/// TX kick).
pub const MAX_BURST: usize = 32;

/// A port's index in the switch, the same on every PMD thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// A source and sink of frames polled by one PMD thread.
///
/// Frames come from and go back to the thread's pool: `rx_burst` fills the
/// caller's vector with frames of `pool`; `tx_burst` takes every frame out of
/// the caller's vector, either into the port's transmit path or back to the
/// pool with a drop counted. No frame is ever lost.
pub trait Port: Send {
    /// The port's name (interface name or a test label).
    fn name(&self) -> &str;

    /// Receives up to `max` frames, appended to `out`; returns how many.
    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Vec<Frame>, max: usize) -> usize;

    /// Transmits every frame in `frames` (leaving it empty).
    fn tx_burst(&mut self, pool: &mut Pool, frames: &mut Vec<Frame>);

    /// Once per loop iteration: refill receive rings, reap transmit
    /// completions. Ports without kernel rings do nothing.
    fn maintain(&mut self, _pool: &mut Pool) {}

    /// Per-port counters, written only by the owning thread.
    fn counters(&self) -> &Arc<PortCounters>;

    /// File descriptors that become readable when frames wait, for the
    /// adaptive poll mode to sleep on (an AF_XDP port has one per receive
    /// queue); empty when the port has none (the thread then naps in short
    /// steps instead of sleeping on readiness). Asked once, at thread start.
    fn rx_fds(&self) -> Vec<RawFd>;

    /// True when looking for frames costs a system call (a TAP's read, an
    /// AF_PACKET socket's recvmmsg), so the thread reads the port only when
    /// its fds reported readiness or its last read found frames, instead of
    /// a failing call per idle port per poll. Ports with rings in memory
    /// (AF_XDP) answer false: looking at a ring is cheaper than asking.
    fn rx_costs_syscall(&self) -> bool {
        false
    }

    /// True when the port takes frames with pending checksums and GSO
    /// segments as they are (a TAP with vnet headers); false when the
    /// switch must finish them in software first (see [`crate::gso`]).
    fn accepts_offload(&self) -> bool {
        false
    }

    /// Returns every frame the port holds (kernel rings, queues) to the
    /// pool; called before the port is dropped.
    fn release(&mut self, _pool: &mut Pool) {}
}
