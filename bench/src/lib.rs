//! Benchmarks of podswitch: the switching pipeline over memory ports
//! ([`pipeline`], for criterion and callgrind), NAT translate ([`nat`]) and
//! VXLAN encap/decap ([`vxlan`]) and the partial-checksum check ([`csum`])
//! without criterion (for callgrind), and iperf3 TCP through podswitch
//! next to the kernel's bridge, router, masquerade and vxlan for the same
//! path ([`tcp`]); how fast `podswitch lab up` and `lab down` are
//! ([`lab`]).
//!
//! It measures; it does not configure anything outside the namespaces it
//! creates. The `podbench` binary and `benches/pipeline.rs` call it; the
//! side-by-side rig is `bench/rig.sh` over `../shared/rig`.

pub mod csum;
pub mod lab;
pub mod nat;
pub mod pipeline;
pub mod tcp;
pub mod vxlan;
