//! Overlay counters: one set per PMD thread (single writer, relaxed
//! load + store, as `pmd::counters`), summed by the control side.

use pmd::counters::Counter;

use crate::vxlan::DecapDrop;

/// What the overlay did, per PMD thread, on its own cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct OverlayCounters {
    /// Frames encapsulated (one per copy for head-end replication).
    pub encapsulated: Counter,
    /// Encapsulations refused (no headroom, too large, GSO not segmented).
    pub encap_errors: Counter,
    /// VXLAN packets accepted and decapsulated.
    pub decapsulated: Counter,
    /// Inner source MACs learned or moved to another VTEP.
    pub learned: Counter,
    /// ARP requests for remote endpoints answered locally.
    pub arp_suppressed: Counter,
    /// ICMP fragmentation-needed messages sent back to a sender.
    pub frag_needed: Counter,
    /// Oversized inner frames dropped without an ICMP error (no DF, not
    /// IPv4, or an ICMP error must not be sent about them).
    pub too_big: Counter,
    /// Received packets dropped, by [`DecapDrop`] reason.
    pub decap_drops: [Counter; DecapDrop::COUNT],
}

impl OverlayCounters {
    /// Counts one dropped received packet.
    #[inline]
    pub fn count_decap_drop(&self, reason: DecapDrop) {
        self.decap_drops[reason as usize].add(1);
    }

    /// Drops for one reason.
    pub fn decap_drops_of(&self, reason: DecapDrop) -> u64 {
        self.decap_drops[reason as usize].get()
    }

    /// Drops over all reasons.
    pub fn total_decap_drops(&self) -> u64 {
        self.decap_drops.iter().map(Counter::get).sum()
    }
}
