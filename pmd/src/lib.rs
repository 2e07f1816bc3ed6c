//! The poll-mode engine of podswitch.
//!
//! It owns frames and their buffer pools, the [`Port`] abstraction with burst
//! receive and transmit (AF_XDP, AF_PACKET, TAP and in-memory ports), the pinned PMD
//! threads that poll them, and the packet views and checksum helpers every
//! crate shares ([`wire`], [`meta`]). It knows nothing of networks, NAT or
//! VXLAN: `switch` composes those on top through [`thread::Pipeline`].

pub mod afpacket;
pub mod afxdp;
pub mod counters;
pub mod frame;
pub mod gro;
pub mod gso;
pub mod memport;
pub mod meta;
pub mod mirror;
pub mod netdev;
pub mod netlink;
pub mod netns;
pub mod offload;
pub mod partial_csum;
pub mod perf;
pub mod pool;
pub mod port;
pub mod spill;
pub mod steer;
pub mod tap;
pub mod thread;
pub mod wire;

pub use counters::{DropReason, PortCounters};
pub use frame::{Frame, Offload};
pub use pool::{Pool, PoolConfig, PoolError};
pub use port::{Port, PortId, MAX_BURST};
