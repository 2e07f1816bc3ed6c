//! A frame: one packet owned by the PMD thread that holds it.
//!
//! A `Frame` is a handle into its thread's [`Pool`](crate::Pool); the bytes
//! live in the pool, so moving a frame between ports of one thread moves a
//! descriptor, not bytes. A frame is not `Clone`: there is exactly one owner,
//! and every frame goes back to its pool (sent or dropped). A frame carries
//! its pool's id, and a pool refuses (panics on) a frame of another pool.

use crate::port::PortId;

/// Where a frame's bytes live inside its pool.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Buf {
    /// A small chunk (a UMEM frame when the pool has a UMEM), by index.
    Chunk(u32),
    /// One of the pool's large buffers (64 KB GSO segments from TAP ports).
    Large(u32),
}

/// Checksum and segmentation offload state carried with a frame, as the
/// virtio-net header describes it (TAP ports with IFF_VNET_HDR).
///
/// A frame with `needs_csum` has an L4 checksum field that holds only the
/// pseudo-header seed; a frame with `gso_size > 0` is a TCP (or UDP) segment
/// larger than the MTU that a port without offloads must cut up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offload {
    /// VIRTIO_NET_HDR_F_NEEDS_CSUM: finish the checksum at
    /// `csum_start + csum_offset` before the frame leaves through a port
    /// without checksum offload.
    pub needs_csum: bool,
    /// VIRTIO_NET_HDR_F_DATA_VALID: the checksum was already verified.
    pub data_valid: bool,
    /// VIRTIO_NET_HDR_GSO_* (0 = none, 1 = TCPv4, 4 = TCPv6, 5 = UDP_L4),
    /// with 0x80 for ECN.
    pub gso_type: u8,
    /// Header length hint from the sender.
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS).
    pub gso_size: u16,
    /// Where checksumming starts, from the start of the Ethernet frame.
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
    /// The port lost the sender's checksum state: AF_XDP on a veth hands
    /// over frames whose TCP/UDP checksum the sender left to offload
    /// (CHECKSUM_PARTIAL) without saying so. Until
    /// [`partial_csum::resolve`](crate::partial_csum::resolve) looks, the
    /// checksum field may hold only the pseudo-header seed (of this frame,
    /// or of a frame encapsulated in it).
    pub csum_lost: bool,
}

impl Offload {
    /// True when this frame needs no work from a port without offloads.
    pub fn is_plain(&self) -> bool {
        !self.needs_csum && self.gso_type == 0
    }
}

/// One packet. Created by a pool, filled by a port or a test, and returned
/// to the pool by a port's transmit or by [`Pool::free`](crate::Pool::free).
#[derive(Debug)]
pub struct Frame {
    pub(crate) buf: Buf,
    /// Id of the pool that made the frame; `buf` means nothing elsewhere.
    pub(crate) pool: u32,
    /// Offset of the first packet byte inside the buffer.
    pub(crate) head: u32,
    /// Packet length in bytes.
    pub(crate) len: u32,
    /// The port the frame arrived on.
    pub in_port: PortId,
    /// Offload state from the receiving port.
    pub offload: Offload,
}

impl Frame {
    /// Packet length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True for a frame with no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes free in front of the packet (for encapsulation in place).
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head as usize
    }

    /// True for a frame in the large (64 KB) pool.
    #[inline]
    pub fn is_large(&self) -> bool {
        matches!(self.buf, Buf::Large(_))
    }
}
