//! The overlay networks of podswitch: VXLAN (RFC 7348) over IPv4, as pure
//! packet logic.
//!
//! What it does: encapsulates an inner Ethernet frame into the headroom of
//! its pool frame and decapsulates a received VXLAN packet to a verdict
//! ([`vxlan`]); keeps the tables a VTEP needs, networks by VNI, peer VTEPs,
//! static remote endpoints, learned inner MACs, and answers ARP for remote
//! endpoints in place ([`vtep`]); checks inner frames against the overlay
//! MTU and builds ICMP fragmentation-needed ([`mtu`]); counts it all
//! ([`counters`]).
//!
//! What it does not: no threads, sockets, ports or clocks (callers pass
//! `now_ns`); no underlay routing or ARP for the next hop (the switch
//! resolves the outer destination MAC with the NAT issue's neighbour code);
//! no cloning for head-end replication (it returns the list of VTEPs, the
//! switch clones); no IPv6 underlay. The etcd client that shares overlay endpoints
//! between hosts is the `cluster` crate.
//!
//! Who calls it: `switch`'s pipeline, per frame on an overlay network or
//! per VXLAN packet received on the uplink; `bench` for microbenchmarks.
//! Every function takes bytes or a `pmd` frame and returns a verdict, in
//! the style of boringtun's `noise` core (STYLE.md), so all of it is tested
//! with byte arrays.

pub mod counters;
pub mod mtu;
pub mod train;
pub mod vtep;
pub mod vxlan;

pub use counters::OverlayCounters;
pub use mtu::{build_frag_needed, check_mtu, frag_needed_in_place, inner_mtu, MtuVerdict};
pub use vtep::{
    Destination, GatewayAddr, LearnedMacs, OverlayNetwork, RemoteEndpoint, VtepConfigError,
    VtepTables,
};
pub use vxlan::{
    decapsulate, decapsulate_frame, encapsulate, encapsulate_into, receive, source_port, Decap,
    DecapDrop, Encap, EncapError, Vni, VxlanHeader, OUTER_LEN, VXLAN_PORT,
};
