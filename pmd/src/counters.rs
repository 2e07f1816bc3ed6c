//! Per-port counters and drop reasons.
//!
//! Each counter has one writer, the PMD thread that owns the port, which
//! adds with a relaxed load and store (no locked instruction); the control
//! side reads them whenever it likes. A port's counters sit in their own
//! cache lines, so two threads never write the same line.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::mirror::Mirror;

/// Why a frame was dropped. Every drop in podswitch has one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// The pool had no free buffer for a received frame.
    NoBuffer,
    /// The transmit ring or socket was full.
    TxFull,
    /// The kernel refused the frame on transmit.
    TxError,
    /// Shorter than an Ethernet header (14 bytes).
    Runt,
    /// An EtherType below 0x0600 (an 802.3 length field) or one the switch
    /// does not carry.
    BadEtherType,
    /// An L3/L4 header shorter than it claims, or a total length beyond the
    /// frame.
    Truncated,
    /// A header with impossible values (IPv4 version, IHL, ARP lengths).
    Malformed,
    /// A source MAC that is multicast or zero.
    BadSourceMac,
    /// The destination is on another network, or the frame would go back
    /// out of the port it came in on.
    Filtered,
    /// Larger than the output port's MTU, and not segmentable.
    TooBig,
    /// No route or neighbour for the destination.
    NoRoute,
    /// A frame for the gateway that it does not answer (not ARP or echo).
    NotForUs,
    /// The frame could not be segmented or checksummed in software.
    OffloadError,
    /// An IPv4 TTL ran out at the switch's router (gateway -> uplink).
    TtlExceeded,
    /// Dropped by NAT; the uplink's NAT counters say why.
    Nat,
    /// The next hop did not answer ARP, or too many frames waited for it.
    Unresolved,
    /// VXLAN the overlay refused; the overlay counters say why.
    Overlay,
    /// Over a rate limit (echo requests to a port's address).
    RateLimited,
    /// An endpoint spoke for another: a source MAC, IPv4 source or ARP
    /// sender that is not its own (anti-spoofing, `switch::spoof`).
    Spoofed,
    /// Blocked by an ACL rule of the endpoint (HNS `ACL` policy).
    Acl,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 20;
    /// Every reason, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::NoBuffer,
        DropReason::TxFull,
        DropReason::TxError,
        DropReason::Runt,
        DropReason::BadEtherType,
        DropReason::Truncated,
        DropReason::Malformed,
        DropReason::BadSourceMac,
        DropReason::Filtered,
        DropReason::TooBig,
        DropReason::NoRoute,
        DropReason::NotForUs,
        DropReason::OffloadError,
        DropReason::TtlExceeded,
        DropReason::Nat,
        DropReason::Unresolved,
        DropReason::Overlay,
        DropReason::RateLimited,
        DropReason::Spoofed,
        DropReason::Acl,
    ];

    /// A short name for stats output.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::NoBuffer => "no_buffer",
            DropReason::TxFull => "tx_full",
            DropReason::TxError => "tx_error",
            DropReason::Runt => "runt",
            DropReason::BadEtherType => "bad_ethertype",
            DropReason::Truncated => "truncated",
            DropReason::Malformed => "malformed",
            DropReason::BadSourceMac => "bad_source_mac",
            DropReason::Filtered => "filtered",
            DropReason::TooBig => "too_big",
            DropReason::NoRoute => "no_route",
            DropReason::NotForUs => "not_for_us",
            DropReason::OffloadError => "offload_error",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::Nat => "nat",
            DropReason::Unresolved => "unresolved",
            DropReason::Overlay => "overlay",
            DropReason::RateLimited => "rate_limited",
            DropReason::Spoofed => "spoofed",
            DropReason::Acl => "acl",
        }
    }
}

/// A counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning thread calls this.
    #[inline]
    pub fn add(&self, n: u64) {
        // One writer: load + store is exact and avoids a locked add.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Sets a gauge. Only the owning thread calls this.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters of one port, on their own cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct PortCounters {
    /// Frames received.
    pub rx_packets: Counter,
    /// Bytes received.
    pub rx_bytes: Counter,
    /// Frames transmitted.
    pub tx_packets: Counter,
    /// Bytes transmitted.
    pub tx_bytes: Counter,
    /// Frames dropped, by reason (received here or meant to leave here).
    pub drops: [Counter; DropReason::COUNT],
    /// Frames that left merged into larger TCP segments (software GRO,
    /// [`crate::gro`]).
    pub gro_merged: Counter,
    /// The segments software GRO built out of them.
    pub gro_segments: Counter,
    /// Frames that left unmerged because no large buffer was free.
    pub gro_no_buffer: Counter,
    /// Frames the kernel carried from this port's device without podswitch
    /// (flow offload, [`crate::offload`]): counted in `rx_packets` too,
    /// and in `tx_packets` of the port they left by.
    pub offloaded_packets: Counter,
    /// Their bytes.
    pub offloaded_bytes: Counter,
    /// Where `ctl capture` taps the port (here because every port has
    /// counters, including ports added at run time).
    pub mirror: Mirror,
}

impl PortCounters {
    /// Counts one dropped frame.
    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        self.drops[reason as usize].add(1);
    }

    /// Total drops over all reasons.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }

    /// A snapshot for reporting.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            rx_packets: self.rx_packets.get(),
            rx_bytes: self.rx_bytes.get(),
            tx_packets: self.tx_packets.get(),
            tx_bytes: self.tx_bytes.get(),
            drops: DropReason::ALL.map(|r| self.drops[r as usize].get()),
            gro_merged: self.gro_merged.get(),
            gro_segments: self.gro_segments.get(),
            gro_no_buffer: self.gro_no_buffer.get(),
            offloaded_packets: self.offloaded_packets.get(),
            offloaded_bytes: self.offloaded_bytes.get(),
        }
    }
}

/// Plain values of a port's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Drops by reason, in [`DropReason::ALL`] order.
    pub drops: [u64; DropReason::COUNT],
    /// Frames merged by software GRO.
    pub gro_merged: u64,
    /// Segments built by software GRO.
    pub gro_segments: u64,
    /// Frames left unmerged for want of a large buffer.
    pub gro_no_buffer: u64,
    /// Received frames the kernel carried (flow offload).
    pub offloaded_packets: u64,
    /// Their bytes.
    pub offloaded_bytes: u64,
}

impl CounterSnapshot {
    /// Drops for one reason.
    pub fn drops_of(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Total drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

impl std::ops::AddAssign<&CounterSnapshot> for CounterSnapshot {
    /// Sums the counters of one port's queues on several PMD threads.
    fn add_assign(&mut self, o: &CounterSnapshot) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        for (a, b) in self.drops.iter_mut().zip(o.drops) {
            *a += b;
        }
        self.gro_merged += o.gro_merged;
        self.gro_segments += o.gro_segments;
        self.gro_no_buffer += o.gro_no_buffer;
        self.offloaded_packets += o.offloaded_packets;
        self.offloaded_bytes += o.offloaded_bytes;
    }
}
