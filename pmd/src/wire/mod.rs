//! Packet constants, MAC addresses and checksum helpers shared by every
//! crate (written once here). Header views for building and answering
//! packets come from `smoltcp::wire` and `etherparse`; the hot-path parse
//! into a metadata record is [`crate::meta`].

pub mod checksum;
pub mod field;
mod mac;

pub use mac::MacAddr;

/// Ethernet header length.
pub const ETH_HDR: usize = 14;
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
