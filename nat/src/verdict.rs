//! What the switch does with a frame after NAT, why NAT dropped one, and
//! the counters it keeps.

use std::net::Ipv4Addr;

use pmd::counters::Counter;

/// The outcome of [`Nat::outbound`](crate::Nat::outbound),
/// [`Nat::inbound`](crate::Nat::inbound) and
/// [`Nat::hairpin_reply`](crate::Nat::hairpin_reply). IP addresses and
/// ports are rewritten already; MAC addresses are the switch's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send out of the uplink; the switch resolves the next hop for the
    /// (translated) destination address.
    ToUplink,
    /// Deliver to the endpoint that owns `dst` in internal network `net`
    /// (a DNAT target, a hairpin target, or the internal side of a
    /// reply); the switch sets that network's gateway MAC as source and
    /// the endpoint's MAC as destination.
    ToInternal {
        /// The endpoint address (the rewritten IPv4 destination).
        dst: Ipv4Addr,
        /// The index of `dst`'s network in `NatConfig::networks`.
        net: usize,
    },
    /// Drop, counted under the reason.
    Drop(NatDrop),
}

/// Why NAT dropped a frame. Every NAT drop has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NatDrop {
    /// The connection table is at `max_entries` and nothing expired could
    /// be reclaimed: a new flow is refused.
    TableFull,
    /// No free external port (or ICMP id) for a new internal endpoint.
    PortsExhausted,
    /// Inbound to the external address with no connection and no port
    /// mapping (also an outbound frame to the external address on an
    /// unmapped port, or an ICMP error for an unknown flow).
    NoMapping,
    /// Impossible header values (IPv4 version, IHL, an ICMP error quoting
    /// a non-IPv4 packet), or not an IPv4 frame.
    Malformed,
    /// A header or quoted header shorter than it must be.
    Truncated,
    /// A later IPv4 fragment whose first fragment was not seen (or whose
    /// translation was evicted from the small fragment table).
    FragmentUnknown,
    /// A TCP segment that cannot start a connection (a new flow that is
    /// not a plain SYN).
    InvalidState,
    /// An IP protocol or ICMP type NAT does not translate (only TCP, UDP,
    /// ICMP echo and ICMP errors are).
    Unsupported,
    /// An outbound frame whose source is not an address of the network it
    /// came from, or an inbound one whose source is an internal address
    /// (spoofed).
    BadSource,
    /// The translated tuple of a new flow is already a live connection's.
    TupleInUse,
    /// A destination no NAT forwards: 0.0.0.0/8, 127.0.0.0/8, multicast,
    /// reserved or broadcast (224.0.0.0/3).
    BadDestination,
    /// From one internal network to an address of another: the networks
    /// of an uplink stay isolated from each other; only a port mapping
    /// (through the external address) crosses.
    Isolated,
}

impl NatDrop {
    /// Number of reasons.
    pub const COUNT: usize = 12;
    /// Every reason, in counter order.
    pub const ALL: [NatDrop; Self::COUNT] = [
        NatDrop::TableFull,
        NatDrop::PortsExhausted,
        NatDrop::NoMapping,
        NatDrop::Malformed,
        NatDrop::Truncated,
        NatDrop::FragmentUnknown,
        NatDrop::InvalidState,
        NatDrop::Unsupported,
        NatDrop::BadSource,
        NatDrop::TupleInUse,
        NatDrop::BadDestination,
        NatDrop::Isolated,
    ];

    /// A short name for stats output.
    pub fn name(self) -> &'static str {
        match self {
            NatDrop::TableFull => "table_full",
            NatDrop::PortsExhausted => "ports_exhausted",
            NatDrop::NoMapping => "no_mapping",
            NatDrop::Malformed => "malformed",
            NatDrop::Truncated => "truncated",
            NatDrop::FragmentUnknown => "fragment_unknown",
            NatDrop::InvalidState => "invalid_state",
            NatDrop::Unsupported => "unsupported",
            NatDrop::BadSource => "bad_source",
            NatDrop::TupleInUse => "tuple_in_use",
            NatDrop::BadDestination => "bad_destination",
            NatDrop::Isolated => "isolated",
        }
    }
}

/// Counters of one uplink's NAT (all its networks). One writer (the PMD thread that owns the
/// [`Nat`](crate::Nat)); the control side reads them through the `Arc`
/// from [`Nat::counters`](crate::Nat::counters).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct NatCounters {
    /// Frames translated from the internal network (to the uplink, or
    /// hairpinned).
    pub translated_out: Counter,
    /// Frames translated from the uplink to the internal network.
    pub translated_in: Counter,
    /// Of those, frames that went container to external address to
    /// container (both directions).
    pub hairpin: Counter,
    /// ICMP errors translated with their quoted header (RFC 5508).
    pub icmp_errors: Counter,
    /// Later IPv4 fragments translated by following their first fragment.
    pub fragments: Counter,
    /// Connections created.
    pub flows_created: Counter,
    /// Connections removed (expired or reclaimed).
    pub flows_removed: Counter,
    /// Drops, by reason, in [`NatDrop::ALL`] order.
    pub drops: [Counter; NatDrop::COUNT],
}

impl NatCounters {
    /// Counts one drop.
    #[inline]
    pub fn count_drop(&self, reason: NatDrop) {
        self.drops[reason as usize].add(1);
    }

    /// Drops for one reason.
    pub fn drops_of(&self, reason: NatDrop) -> u64 {
        self.drops[reason as usize].get()
    }

    /// Adds these counters to `into` (the NAT of one uplink spread over
    /// several PMD threads, each with its own).
    pub fn add_to(&self, into: &NatCounters) {
        into.translated_out.add(self.translated_out.get());
        into.translated_in.add(self.translated_in.get());
        into.hairpin.add(self.hairpin.get());
        into.icmp_errors.add(self.icmp_errors.get());
        into.fragments.add(self.fragments.get());
        into.flows_created.add(self.flows_created.get());
        into.flows_removed.add(self.flows_removed.get());
        for (a, b) in into.drops.iter().zip(&self.drops) {
            a.add(b.get());
        }
    }

    /// Connections in the table now (live or expired but not yet swept).
    pub fn occupancy(&self) -> u64 {
        self.flows_created
            .get()
            .saturating_sub(self.flows_removed.get())
    }
}
