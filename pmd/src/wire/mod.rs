//! Packet views, MAC addresses and checksum helpers shared by every crate,
//! written once here.
//!
//! One view per protocol, shaped like smoltcp's `wire`: a view over
//! `T: AsRef<[u8]>` reads, setters exist for `T: AsMut<[u8]>`, field
//! offsets are named ranges in each module's private `mod field`.
//! `new_checked` validates the length once at the edge (an [`Error`],
//! never a panic); `new_unchecked` is for the hot path after
//! [`crate::meta::parse`] validated the lengths. smoltcp's own views are
//! used in tests, to check these against an independent reading.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod ipv4;
pub mod ipv6;
mod mac;
pub mod tcp;
pub mod udp;

pub use arp::{ArpPacket, ArpRepr};
pub use ethernet::{EthernetFrame, EthernetRepr};
pub use icmpv4::Icmpv4Packet;
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::Ipv6Packet;
pub use mac::MacAddr;
pub use tcp::TcpPacket;
pub use udp::UdpPacket;

/// Ethernet header length.
pub const ETH_HDR: usize = ethernet::HEADER_LEN;
/// IPv4 EtherType.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// ARP EtherType.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// IPv6 EtherType.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q VLAN tag EtherType.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// IP protocol numbers.
pub const IPPROTO_ICMP: u8 = 1;
/// TCP.
pub const IPPROTO_TCP: u8 = 6;
/// UDP.
pub const IPPROTO_UDP: u8 = 17;
/// ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// Smallest Ethernet frame without FCS; shorter frames are padded on send.
pub const ETH_MIN_FRAME: usize = 60;

/// Why a buffer is not the header it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the header does (or before the length the
    /// header gives itself).
    #[error("buffer too short for the header")]
    Truncated,
    /// A header length field below the fixed header's length, or ARP
    /// that is not Ethernet/IPv4.
    #[error("header fields inconsistent with the protocol")]
    Malformed,
}

/// A field's byte range inside its header.
type Field = core::ops::Range<usize>;
/// From a byte to the end of the buffer.
type Rest = core::ops::RangeFrom<usize>;

/// The length check of a header that states its own length (IPv4 IHL,
/// TCP data offset): the fixed part is there, the stated length is at
/// least the fixed part and fits the buffer. `header_len` is read only
/// once the fixed part is known to be there.
#[inline(always)]
fn check_header(len: usize, fixed: usize, header_len: impl FnOnce() -> usize) -> Result<(), Error> {
    if len < fixed {
        return Err(Error::Truncated);
    }
    let h = header_len();
    if h < fixed {
        return Err(Error::Malformed);
    }
    if h > len {
        return Err(Error::Truncated);
    }
    Ok(())
}

#[inline(always)]
fn get16(b: &[u8], f: Field) -> u16 {
    let s = &b[f];
    u16::from_be_bytes([s[0], s[1]])
}

#[inline(always)]
fn set16(b: &mut [u8], f: Field, v: u16) {
    b[f].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
fn get32(b: &[u8], f: Field) -> u32 {
    let s = &b[f];
    u32::from_be_bytes([s[0], s[1], s[2], s[3]])
}

/// An IPv4 address field, as the octets `Ipv4Addr` stores (no byte swap).
#[inline(always)]
fn get_addr(b: &[u8], f: Field) -> std::net::Ipv4Addr {
    let s = &b[f];
    std::net::Ipv4Addr::new(s[0], s[1], s[2], s[3])
}

#[inline(always)]
fn set_addr(b: &mut [u8], f: Field, a: std::net::Ipv4Addr) {
    b[f].copy_from_slice(&a.octets());
}

#[inline(always)]
fn set32(b: &mut [u8], f: Field, v: u32) {
    b[f].copy_from_slice(&v.to_be_bytes());
}
