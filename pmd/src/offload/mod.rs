//! Kernel flow offload: a tc ingress program (`bpf/pd_tc.c`) that carries
//! the TCP flows the switch has already decided, skb and all, so 64 KB
//! segments cross from container to container or to the uplink without
//! being copied into podswitch and out again.
//!
//! The switch stays the control plane of every flow: the first packets,
//! every SYN, FIN and RST, and anything the program does not find in its
//! table go the ordinary way, through the PMD thread. When a PMD thread
//! has sent a TCP frame of an established flow from one offload port to
//! another, it writes what it did to that frame (MACs, addresses, ports,
//! TTL, where it went) into the table under the frame's ingress headers;
//! from then on the kernel does the same to the flow's frames in the
//! ingress hook of the receiving device (`bpf_redirect_peer` into a
//! container, `bpf_redirect` out of the uplink).
//!
//! Overlay flows too: a container's flow to a remote VTEP is encapsulated
//! in VXLAN by the program ([`FLOW_ENCAP`]: `bpf_skb_adjust_room` marks the
//! skb a UDP tunnel, so a 64 KB segment stays one skb to the peer or is
//! segmented at the inner MSS), and one VXLAN datagram of a flow arriving
//! on the uplink is decapsulated ([`FLOW_DECAP`], keyed by the inner
//! headers and the VNI). A UDP GSO train of many datagrams, as podswitch's
//! own sender emits before its flow is installed, is left to the switch.
//!
//! The layouts here are the C structs of `pd_tc.c`, field for field.

/// A flow as it enters: the receiving device and the frame's headers, as
/// the switch saw them at its ingress. Addresses and ports are in network
/// byte order, as they are on the wire.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// ifindex of the device the frame arrives on (in podswitch's
    /// namespace).
    pub ifindex: u32,
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub src_port: [u8; 2],
    pub dst_port: [u8; 2],
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// IP protocol (6: only TCP is offloaded).
    pub proto: u8,
    /// Zero, or for the inner headers of a VXLAN datagram its VNI as on
    /// the wire (24 bits, big-endian; VNI 0 is never configured).
    pub pad: [u8; 3],
}

/// `FlowAction::flags`: deliver into the peer of `out_ifindex` (the
/// container end of a veth) with `bpf_redirect_peer`; without it the frame
/// leaves through `out_ifindex` itself (`bpf_redirect`, egress).
pub const FLOW_TO_PEER: u32 = 1;

/// `FlowAction::flags`: after the rewrite, the frame is encapsulated in
/// VXLAN under [`Tunnel::outer`] (its lengths and IPv4 checksum filled in
/// per skb) and leaves through `out_ifindex`.
pub const FLOW_ENCAP: u32 = 2;

/// `FlowAction::flags`: the key is the inner headers of a VXLAN datagram
/// (the VNI in [`FlowKey::pad`]); the program checks the outer addresses
/// and UDP destination port against [`Tunnel::outer`], takes the outer
/// headers off and rewrites and delivers the inner frame.
pub const FLOW_DECAP: u32 = 4;

/// Length of the VXLAN outer headers (Ethernet, IPv4 without options, UDP,
/// VXLAN).
pub const OUTER_LEN: usize = 50;

/// The VXLAN side of a [`FlowAction`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    /// [`FLOW_ENCAP`]: the outer headers as the switch sends them, with
    /// the IPv4 total length and UDP length 0 and the IPv4 checksum over
    /// that. [`FLOW_DECAP`]: the outer headers the flow arrives with (the
    /// program compares the IPv4 addresses and the UDP destination port).
    pub outer: [u8; OUTER_LEN],
    /// [`FLOW_ENCAP`]: the largest inner IPv4 packet (or GSO segment) the
    /// underlay carries, host order; bigger ones go to the switch.
    pub inner_mtu: u16,
    pub pad: [u8; 4],
}

impl Default for Tunnel {
    fn default() -> Self {
        Tunnel {
            outer: [0; OUTER_LEN],
            inner_mtu: 0,
            pad: [0; 4],
        }
    }
}

/// What the switch did to the flow's frames: the headers they leave with,
/// and where. The program writes every field (a field the switch did not
/// change is written with its old value), fixing checksums for what moved.
/// For a VXLAN flow ([`FLOW_ENCAP`], [`FLOW_DECAP`]) the first 40 bytes
/// are about the inner frame and [`Tunnel`] about the outer headers.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowAction {
    pub out_ifindex: u32,
    /// [`FLOW_TO_PEER`] or 0.
    pub flags: u32,
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub src_port: [u8; 2],
    pub dst_port: [u8; 2],
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// How much the TTL goes down (0 switched, 1 routed).
    pub ttl_dec: u8,
    pub pad: [u8; 7],
    pub tunnel: Tunnel,
}

/// What the program counted for one flow since it was installed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Frames (skbs: a 64 KB segment counts once).
    pub packets: u64,
    /// Bytes, Ethernet header included.
    pub bytes: u64,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) of the last frame; 0 for none.
    pub last_used_ns: u64,
}

const _: () = assert!(std::mem::size_of::<FlowKey>() == 32);
const _: () = assert!(std::mem::size_of::<FlowAction>() == 96);
const _: () = assert!(std::mem::offset_of!(FlowAction, tunnel) == 40);
const _: () = assert!(std::mem::offset_of!(FlowAction, tunnel.inner_mtu) == 90);

mod error;
mod program;
mod table;

pub use error::OffloadError;
pub use program::{tcx_ingress_programs, FlowOffload, TcLink, DEFAULT_CAPACITY, PROG_NAME};
pub use table::FlowTable;
