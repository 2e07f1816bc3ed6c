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
//! translate IPv6. One [`Nat`] per uplink, shared by every NAT network
//! behind it (one address, port range, connection table and mapping table,
//! as Docker masquerades all its bridge networks through one NIC), owned
//! by the PMD thread that polls the uplink and those networks' endpoints,
//! so nothing is locked. The networks stay isolated from each other: a
//! frame is translated only for the network it came from, and nothing
//! crosses from one to another except through a port mapping.
//!
//! Called by `switch`; tested and benchmarked without I/O. What the
//! switch does around it, per uplink with NAT networks:
//! - build a [`NatConfig`] from `[nat]`, the uplink's NAT networks (subnet
//!   and gateway each, by index) and their `[[port_mapping]]`s (mapped
//!   endpoints resolved to addresses) and keep one [`Nat`] on the PMD
//!   thread that owns the uplink and those networks;
//! - after `pmd::meta::parse` (and padding trim), hand to
//!   [`Nat::outbound`], with the index of the network it came from, every
//!   IPv4 frame from an endpoint addressed to the gateway MAC that the
//!   gateway itself does not answer (ARP, echo to the gateway address):
//!   destinations outside the subnet, the external address (hairpin), and
//!   the gateway address (replies of a container that reached its own
//!   mapped port, or that another network's container reached through a
//!   mapping);
//! - hand to [`Nat::inbound`] every IPv4 frame from the uplink addressed
//!   to the external address that is not the switch's own (ARP, echo
//!   requests to the uplink address, VXLAN);
//! - while [`Nat::has_hairpin_flows`], offer IPv4 frames between two
//!   endpoints of one network to [`Nat::hairpin_reply`] before switching
//!   them (`None`: switch as usual);
//! - pass `L4Csum::from_offload(&frame.offload)`: a TAP frame with
//!   `needs_csum` carries a pseudo-header seed, not a checksum
//!   ([`L4Csum`] states the rule), and keeps `needs_csum` afterwards;
//! - act on the [`Verdict`]: `ToUplink` gets the uplink MAC as source and
//!   the next hop's MAC (ARP on the uplink); `ToInternal { dst, net }` goes
//!   into network `net` with its gateway MAC as source and `dst`'s MAC;
//!   `Drop` is already counted in [`NatCounters`] (read through
//!   [`Nat::counters`]);
//! - call [`Nat::sweep`] from housekeeping with a small budget.
//!
//! Behaviour in brief (the modules quote the RFC sections they implement):
//! - mappings are endpoint-independent (RFC 4787 REQ-1), filtering is
//!   address-and-port-dependent (only mapped ports accept new flows from
//!   outside), ports are never overloaded (REQ-4);
//! - a TCP flow is created only by a plain SYN;
//! - a port mapped into another network of the uplink is reached with
//!   the target network's gateway as the client (and the client's SNAT
//!   port), as Docker's proxy does; any other frame from one network to an
//!   address of another is dropped (`Isolated`);
//! - the table is bounded; when full, new flows are dropped
//!   (`TableFull`), live ones are never evicted; expiry is lazy (an
//!   expired entry found by a lookup is removed) plus an incremental
//!   sweep with a per-call budget ([`Nat::sweep`]), never a full scan;
//! - later fragments follow their first fragment through a small table,
//!   or are dropped as `FragmentUnknown` when that table has no entry
//!   (out of order, evicted, or older than 30 s): no reassembly, no queue.

mod config;
mod conntrack;
mod dump;
mod frag;
mod icmp_error;
mod nat;
mod packet;
mod ports;
mod rewrite;
pub mod state;
mod verdict;

pub use config::{InternalNet, Ipv4Net, NatConfig, PortMapping, Proto, Timeouts};
pub use conntrack::Tuple;
pub use dump::{Connection, Endpoints};
pub use nat::Nat;
pub use rewrite::L4Csum;
pub use verdict::{NatCounters, NatDrop, Verdict};

/// Bytes of one connection entry in the slab (the index adds about 10
/// more per connection; [`Nat::bytes_per_connection`] measures the total).
pub const ENTRY_BYTES: usize = core::mem::size_of::<conntrack::Entry>();

#[cfg(test)]
mod tests;
