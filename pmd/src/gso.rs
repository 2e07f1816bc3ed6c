//! Software checksum completion and segmentation for frames that leave
//! through a port without offloads (see notes/datapath-probes.md, probe 2).

use crate::counters::PortCounters;
use crate::frame::Frame;
use crate::pool::Pool;

/// Finishes every frame of `frames` that carries offload work: pending
/// checksums are filled in, GSO segments are cut into MTU-sized frames.
/// Frames that cannot be finished are dropped and counted on `counters`.
pub fn complete_burst(pool: &mut Pool, frames: &mut Vec<Frame>, counters: &PortCounters) {
    let _ = (pool, frames, counters);
    // TODO(tap): implemented with the TAP port.
}
