//! In-memory ports: a pair of bounded rings, for tests and benchmarks that
//! run the pipeline without the kernel.
//!
//! The far end ([`MemPeer`]) injects and collects plain byte vectors; the
//! port side copies them into and out of pool frames like a TAP does, so a
//! benchmark over memory ports measures the same per-frame work.

use std::os::fd::RawFd;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use crate::counters::{DropReason, PortCounters};
use crate::frame::Frame;
use crate::pool::Pool;
use crate::port::{Port, PortId};

/// The switch side of an in-memory link.
pub struct MemPort {
    name: String,
    id: PortId,
    to_switch: Arc<ArrayQueue<Vec<u8>>>,
    from_switch: Arc<ArrayQueue<Vec<u8>>>,
    spare: Arc<ArrayQueue<Vec<u8>>>,
    counters: Arc<PortCounters>,
    offload: bool,
}

/// The outside end of an in-memory link: what a "cable" would carry.
#[derive(Clone)]
pub struct MemPeer {
    to_switch: Arc<ArrayQueue<Vec<u8>>>,
    from_switch: Arc<ArrayQueue<Vec<u8>>>,
    /// Byte vectors handed back and forth so a steady benchmark allocates
    /// nothing: the port returns received vectors here and takes its
    /// transmit vectors from here.
    spare: Arc<ArrayQueue<Vec<u8>>>,
}

/// Creates a linked port and peer with rings of `depth` frames.
pub fn mem_link(name: &str, id: PortId, depth: usize) -> (MemPort, MemPeer) {
    let to_switch = Arc::new(ArrayQueue::new(depth));
    let from_switch = Arc::new(ArrayQueue::new(depth));
    let spare = Arc::new(ArrayQueue::new(depth * 2));
    (
        MemPort {
            name: name.to_string(),
            id,
            to_switch: to_switch.clone(),
            from_switch: from_switch.clone(),
            spare: spare.clone(),
            counters: Arc::default(),
            offload: false,
        },
        MemPeer {
            to_switch,
            from_switch,
            spare,
        },
    )
}

impl MemPeer {
    /// Offers a frame to the switch; false when the ring is full.
    pub fn send(&self, frame: Vec<u8>) -> bool {
        self.to_switch.push(frame).is_ok()
    }

    /// Takes the next frame the switch sent out of this port.
    pub fn recv(&self) -> Option<Vec<u8>> {
        self.from_switch.pop()
    }

    /// Takes every frame the switch sent so far.
    pub fn drain(&self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.from_switch.pop()).collect()
    }

    /// Gives a vector back for reuse (after `recv`), or takes a spare one
    /// to fill for `send`.
    pub fn recycle(&self, buf: Vec<u8>) {
        let _ = self.spare.push(buf);
    }

    /// A spare vector (cleared), or a new one.
    pub fn spare(&self) -> Vec<u8> {
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        v
    }

    /// Frames waiting to enter the switch.
    pub fn pending(&self) -> usize {
        self.to_switch.len()
    }
}

impl MemPort {
    /// Makes the port take frames with pending checksums and GSO segments,
    /// as a TAP with vnet headers does (see [`Port::accepts_offload`]).
    pub fn with_offload(mut self) -> MemPort {
        self.offload = true;
        self
    }
}

impl Port for MemPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Vec<Frame>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(bytes) = self.to_switch.pop() else {
                break;
            };
            match pool.alloc_copy(&bytes) {
                Some(mut frame) => {
                    frame.in_port = self.id;
                    self.counters.rx_packets.add(1);
                    self.counters.rx_bytes.add(bytes.len() as u64);
                    out.push(frame);
                    n += 1;
                }
                None => self.counters.count_drop(DropReason::NoBuffer),
            }
            let _ = self.spare.push(bytes);
        }
        n
    }

    fn tx_burst(&mut self, pool: &mut Pool, frames: &mut Vec<Frame>) {
        for frame in frames.drain(..) {
            let mut bytes = self.spare.pop().unwrap_or_default();
            bytes.clear();
            bytes.extend_from_slice(pool.data(&frame));
            let len = bytes.len() as u64;
            pool.free(frame);
            if self.from_switch.push(bytes).is_ok() {
                self.counters.tx_packets.add(1);
                self.counters.tx_bytes.add(len);
            } else {
                self.counters.count_drop(DropReason::TxFull);
            }
        }
    }

    fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }

    fn rx_fds(&self) -> Vec<RawFd> {
        Vec::new()
    }

    fn accepts_offload(&self) -> bool {
        self.offload
    }
}
