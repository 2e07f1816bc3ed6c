//! Per-network counters of the switching stages, one set per PMD thread
//! (single writer each), summed by the control side; and per-uplink
//! counters, written by the uplink's thread only.

use pmd::counters::Counter;

/// Counters of one network on one PMD thread.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct NetCounters {
    /// Frames switched to a known port.
    pub unicast: Counter,
    /// Frames flooded (broadcast, multicast, unknown unicast).
    pub flooded: Counter,
    /// New or moved MAC entries.
    pub learned: Counter,
    /// Sources not learned because the table was full.
    pub fdb_full: Counter,
    /// ARP replies the gateway sent.
    pub arp_replies: Counter,
    /// ICMP echo replies the gateway sent.
    pub echo_replies: Counter,
}

/// Plain values of a network's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetSnapshot {
    /// See [`NetCounters::unicast`].
    pub unicast: u64,
    /// See [`NetCounters::flooded`].
    pub flooded: u64,
    /// See [`NetCounters::learned`].
    pub learned: u64,
    /// See [`NetCounters::fdb_full`].
    pub fdb_full: u64,
    /// See [`NetCounters::arp_replies`].
    pub arp_replies: u64,
    /// See [`NetCounters::echo_replies`].
    pub echo_replies: u64,
}

impl NetCounters {
    /// Adds this thread's values into `into`.
    pub fn add_to(&self, into: &mut NetSnapshot) {
        into.unicast += self.unicast.get();
        into.flooded += self.flooded.get();
        into.learned += self.learned.get();
        into.fdb_full += self.fdb_full.get();
        into.arp_replies += self.arp_replies.get();
        into.echo_replies += self.echo_replies.get();
    }
}

/// Counters of one uplink, written only by the PMD thread that polls it.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct UplinkCounters {
    /// ICMP echo replies sent from the port's `ip`.
    pub echo_replies: Counter,
    /// Echo requests to the port's `ip` left unanswered: over the rate
    /// limit ([`crate::echo::ECHO_RATE`] a second).
    pub echo_limited: Counter,
}

impl UplinkCounters {
    /// Adds these counters to `into` (an uplink polled by several PMD
    /// threads, each with its own).
    pub fn add_to(&self, into: &UplinkCounters) {
        into.echo_replies.add(self.echo_replies.get());
        into.echo_limited.add(self.echo_limited.get());
    }
}

/// Flow-offload counters of one PMD thread (`flows`), written only by it.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct OffloadCounters {
    /// Entries put in the kernel's table.
    pub installed: Counter,
    /// Entries taken out (flow ended, aged, idle, flushed).
    pub removed: Counter,
    /// Entries in the table now (set at every sweep).
    pub active: Counter,
    /// Entries refused because the table was full.
    pub table_full: Counter,
    /// Entries refused for another reason.
    pub errors: Counter,
}

/// Plain values of the offload counters, summed over threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OffloadSnapshot {
    pub installed: u64,
    pub removed: u64,
    pub active: u64,
    pub table_full: u64,
    pub errors: u64,
}

impl OffloadCounters {
    /// Adds this thread's values into `into`.
    pub fn add_to(&self, into: &mut OffloadSnapshot) {
        into.installed += self.installed.get();
        into.removed += self.removed.get();
        into.active += self.active.get();
        into.table_full += self.table_full.get();
        into.errors += self.errors.get();
    }
}
