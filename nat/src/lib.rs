//! NAT for podswitch's `nat` networks (Docker bridge, HNS NAT): SNAT
//! masquerade of TCP, UDP and ICMP echo to the uplink's address with
//! endpoint-independent port mapping, DNAT port mappings with hairpin,
//! connection tracking with per-state timeouts, ICMP error translation and
//! IPv4 fragment following, all as in-place rewrites of Ethernet frames
//! with incremental checksums.
//!
//! It is pure packet logic over byte slices, in the shape of boringtun's
//! core: [`Nat::outbound`], [`Nat::inbound`] and [`Nat::hairpin_reply`]
//! take a frame and its [`pmd::meta::PacketMeta`], rewrite IPv4 addresses
//! and ports in place and return a [`Verdict`] that tells the switch where
//! the frame goes. It knows nothing of threads, ports, MAC addresses, ARP
//! or the config file; it does not reassemble fragments, answer pings or
//! translate IPv6. One [`Nat`] per NAT network, owned by the PMD thread
//! that polls the network's endpoints and uplink, so nothing is locked.
//!
//! Called by `switch` (its pipeline hands it the frames that cross the
//! network's gateway); tested and benchmarked without I/O.
//!
//! Behaviour in brief (the modules quote the RFC sections they implement):
//! - mappings are endpoint-independent (RFC 4787 REQ-1), filtering is
//!   address-and-port-dependent (only mapped ports accept new flows from
//!   outside), ports are never overloaded (REQ-4);
//! - a TCP flow is created only by a plain SYN;
//! - the table is bounded; when full, new flows are dropped
//!   (`TableFull`), live ones are never evicted; expiry is lazy (an
//!   expired entry found by a lookup is removed) plus an incremental
//!   sweep with a per-call budget ([`Nat::sweep`]), never a full scan;
//! - later fragments follow their first fragment through a small table,
//!   or are dropped as `FragmentUnknown` ([`frag`](crate) module docs).

mod config;
mod conntrack;
mod frag;
mod icmp_error;
mod nat;
mod packet;
mod ports;
mod rewrite;
pub mod state;
mod verdict;

pub use config::{Ipv4Net, NatConfig, PortMapping, Proto, Timeouts};
pub use conntrack::Tuple;
pub use nat::Nat;
pub use rewrite::L4Csum;
pub use verdict::{NatCounters, NatDrop, Verdict};

/// Bytes of one connection entry in the slab (the index adds about 10
/// more per connection; [`Nat::bytes_per_connection`] measures the total).
pub const ENTRY_BYTES: usize = core::mem::size_of::<conntrack::Entry>();

#[cfg(test)]
mod tests;
