//! IPv4 (RFC 791): the header view, a small `Repr` for the headers the
//! switch builds, and the RFC 1624 in-place updates NAT and routing make.

use std::net::Ipv4Addr;

use super::checksum::{self, update16, Delta};
use super::{check_header, get16, get32, get_addr, set16, set32, set_addr, Error, Field};

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    /// TTL and protocol: one 16-bit word of the header checksum.
    pub const TTL_PROTOCOL: Field = 8..10;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// "Don't fragment" in the flags/fragment-offset word.
const DF: u16 = 0x4000;
/// "More fragments".
const MF: u16 = 0x2000;
/// The fragment offset, in 8-byte units.
const OFFSET: u16 = 0x1fff;

/// A view of an IPv4 header and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer whose header length a parse already checked (the
    /// hot path after `pmd::meta::parse`); accessors panic otherwise.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer that holds the whole header its IHL claims (at
    /// least 20 bytes); after this no accessor can panic. The version
    /// and the total length are values for the caller to judge.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Ipv4Packet { buffer };
        check_header(p.buffer.as_ref().len(), HEADER_LEN, || p.header_len())?;
        Ok(p)
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4 for IPv4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize * 4
    }

    /// DSCP and ECN (the old TOS byte).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length: header and data.
    #[inline]
    pub fn total_len(&self) -> u16 {
        get16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        get16(self.buffer.as_ref(), field::IDENT)
    }

    /// The DF flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        get16(self.buffer.as_ref(), field::FLG_OFF) & DF != 0
    }

    /// The MF flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        get16(self.buffer.as_ref(), field::FLG_OFF) & MF != 0
    }

    /// The fragment offset in bytes; not zero for every fragment but the
    /// first.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (get16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET) << 3
    }

    /// A fragment of a larger datagram: MF set or an offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        get16(self.buffer.as_ref(), field::FLG_OFF) & (MF | OFFSET) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the data (`wire::IPPROTO_*`).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// The header checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// The header, options included.
    #[inline(always)]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// True when the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.header()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4).
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | (header_len / 4) as u8;
    }

    /// Sets DSCP and ECN.
    #[inline]
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        set16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, id: u16) {
        set16(self.buffer.as_mut(), field::IDENT, id);
    }

    /// Sets DF, clears MF and the offset: one whole datagram.
    #[inline]
    pub fn set_unfragmented(&mut self, dont_frag: bool) {
        let w = if dont_frag { DF } else { 0 };
        set16(self.buffer.as_mut(), field::FLG_OFF, w);
    }

    /// Sets the TTL (the checksum is not updated; see [`Self::replace_ttl`]).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, proto: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = proto;
    }

    /// Stores a header checksum.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        set16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        set_addr(self.buffer.as_mut(), field::SRC_ADDR, a);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        set_addr(self.buffer.as_mut(), field::DST_ADDR, a);
    }

    /// Computes and stores the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }

    /// Sets the TTL and updates the header checksum for the one word that
    /// changed (RFC 1624 eqn. 3), as a router does per hop.
    #[inline]
    pub fn replace_ttl(&mut self, ttl: u8) {
        let b = self.buffer.as_mut();
        let old = get16(b, field::TTL_PROTOCOL);
        let new = u16::from_be_bytes([ttl, b[field::PROTOCOL]]);
        let c = update16(get16(b, field::CHECKSUM), old, new);
        b[field::TTL] = ttl;
        set16(b, field::CHECKSUM, c);
    }

    /// Sets both addresses and updates the header checksum incrementally
    /// (RFC 1624). Returns the address terms, which a TCP/UDP checksum
    /// (its pseudo-header) needs too.
    #[inline]
    pub fn replace_addrs(&mut self, src: u32, dst: u32) -> Delta {
        let b = self.buffer.as_mut();
        let mut d = Delta::default();
        d.add32(get32(b, field::SRC_ADDR), src);
        d.add32(get32(b, field::DST_ADDR), dst);
        set32(b, field::SRC_ADDR, src);
        set32(b, field::DST_ADDR, dst);
        let c = get16(b, field::CHECKSUM);
        set16(b, field::CHECKSUM, d.apply(c));
        d
    }
}

/// An IPv4 header without options, as the switch builds one (ICMP errors,
/// VXLAN outer headers): identification 0, never a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: u8,
    /// Length of the payload (total length minus 20).
    pub payload_len: usize,
    /// TTL.
    pub ttl: u8,
    /// DSCP and ECN.
    pub dscp_ecn: u8,
    /// DF.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Reads the fields of a header.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Ipv4Repr {
        Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: (p.total_len() as usize).saturating_sub(p.header_len()),
            ttl: p.ttl(),
            dscp_ecn: p.dscp_ecn(),
            dont_frag: p.dont_frag(),
        }
    }

    /// The header's length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header and its checksum. Identification 0: RFC 6864
    /// section 4.1 lets an atomic datagram (DF set) carry any value.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>) {
        p.set_version_and_header_len(HEADER_LEN);
        p.set_dscp_ecn(self.dscp_ecn);
        p.set_total_len((HEADER_LEN + self.payload_len) as u16);
        p.set_ident(0);
        p.set_unfragmented(self.dont_frag);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_checksum(0);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        let c = checksum::checksum(&p.buffer.as_ref()[..HEADER_LEN]);
        p.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IPPROTO_UDP;

    /// A UDP datagram's header from 10.0.0.1 to 10.0.0.2, DF, TTL 64,
    /// 28 bytes in all, with its checksum (checked by smoltcp below).
    const UDP_HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x26, 0xcf, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02,
    ];

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IPPROTO_UDP,
            payload_len: 8,
            ttl: 64,
            dscp_ecn: 0,
            dont_frag: true,
        }
    }

    #[test]
    fn the_fixture_is_a_valid_header_by_smoltcp() {
        let p = smoltcp::wire::Ipv4Packet::new_unchecked(&UDP_HDR[..]);
        assert!(p.verify_checksum());
        assert_eq!(p.total_len(), 28);
    }

    #[test]
    fn a_static_header_parses_to_its_fields() {
        let p = Ipv4Packet::new_checked(&UDP_HDR[..]).unwrap();
        assert_eq!((p.version(), p.header_len(), p.total_len()), (4, 20, 28));
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!((p.ttl(), p.protocol()), (64, IPPROTO_UDP));
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p), repr());
    }

    #[test]
    fn an_emitted_header_is_byte_for_byte_the_static_one() {
        let mut b = [0xffu8; 20];
        repr().emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
        assert_eq!(b, UDP_HDR);
    }

    #[test]
    fn truncated_or_short_ihl_headers_are_errors() {
        assert_eq!(
            Ipv4Packet::new_checked(&UDP_HDR[..19]),
            Err(Error::Truncated)
        );
        let mut b = UDP_HDR;
        b[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[0] = 0x46;
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(Error::Truncated));
    }

    #[test]
    fn fragment_fields_read_as_their_bits() {
        let mut b = UDP_HDR;
        b[6..8].copy_from_slice(&(0x2000u16 | 3).to_be_bytes());
        let p = Ipv4Packet::new_unchecked(&b[..]);
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment());
        assert_eq!(p.frag_offset(), 24);
    }

    #[test]
    fn incremental_updates_keep_the_header_checksum_valid() {
        let mut b = UDP_HDR;
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.replace_ttl(63);
        assert!(p.verify_checksum());
        assert_eq!(p.ttl(), 63);
        p.replace_addrs(0xc0a8_0709, 0x0a00_0002);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 7, 9));
        p.set_ident(77);
        p.fill_checksum();
        assert!(p.verify_checksum());
    }
}
