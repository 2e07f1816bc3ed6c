//! Benchmarks of podswitch: the switching pipeline over memory ports
//! ([`pipeline`], for criterion and callgrind), NAT translate ([`nat`]) and
//! VXLAN encap/decap ([`vxlan`]) and the partial-checksum check ([`csum`])
//! without criterion (for callgrind), and TCP
//! between two namespaces through podswitch next to a Linux bridge
//! ([`tcp`]).
//!
//! It measures; it does not configure anything outside the namespaces it
//! creates. The `podbench` binary and `benches/pipeline.rs` call it; the
//! side-by-side rig is `bench/rig.sh` over `../shared/rig`.

pub mod csum;
pub mod nat;
pub mod pipeline;
pub mod tcp;
pub mod vxlan;
