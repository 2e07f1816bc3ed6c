//! Byte offsets of the header fields the hot path reads or rewrites in
//! place (Ethernet from the frame start, the others from their header's
//! start), written once for `gso`, `gro` and `partial_csum`.

/// EtherType of an untagged frame.
pub const ETHERTYPE: usize = 12;
/// EtherType behind one 802.1Q tag.
pub const VLAN_ETHERTYPE: usize = 16;

pub const IPV4_TOT_LEN: usize = 2;
pub const IPV4_ID: usize = 4;
/// Flags and fragment offset (16 bits); see [`IPV4_MF`].
pub const IPV4_FRAG: usize = 6;
/// "More fragments" in the flags/offset word.
pub const IPV4_MF: u16 = 0x2000;
pub const IPV4_PROTO: usize = 9;
pub const IPV4_CHECK: usize = 10;
pub const IPV4_SRC: usize = 12;
pub const IPV4_DST: usize = 16;

pub const IPV6_PAYLOAD_LEN: usize = 4;
pub const IPV6_NEXT_HDR: usize = 6;
pub const IPV6_SRC: usize = 8;
pub const IPV6_DST: usize = 24;
/// The fixed IPv6 header.
pub const IPV6_HDR: usize = 40;

pub const TCP_SEQ: usize = 4;
pub const TCP_DOFF: usize = 12;
pub const TCP_FLAGS: usize = 13;
pub const TCP_CHECK: usize = 16;
pub const TCP_MIN_HDR: usize = 20;

/// TCP flag bits in the byte at [`TCP_FLAGS`].
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;
pub const TCP_ECE: u8 = 0x40;
pub const TCP_CWR: u8 = 0x80;

pub const UDP_CHECK: usize = 6;
