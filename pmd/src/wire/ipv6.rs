//! IPv6 (RFC 8200): the fixed header, as far as the switch reads it (no
//! extension headers are walked).

use super::{get16, set16, Error, Field};

mod field {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// A view of an IPv6 header and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer the caller knows holds [`HEADER_LEN`] bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer of at least [`HEADER_LEN`] bytes; after this no
    /// accessor can panic.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// Length after the fixed header (0 for a jumbogram).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        get16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// The next header (`wire::IPPROTO_*` when there are no extensions).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        a
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        a
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, traffic class 0 and flow label 0.
    #[inline]
    pub fn set_version(&mut self) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::PAYLOAD_LEN, v);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = v;
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: &[u8; 16]) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(a);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: &[u8; 16]) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IPPROTO_TCP;

    /// fd00::1 -> fd00::2, TCP, 20 bytes of payload, hop limit 64.
    const HDR: [u8; 40] = [
        0x60, 0, 0, 0, 0, 20, 6, 64, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xfd, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    ];

    fn addr(last: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = last;
        a
    }

    #[test]
    fn a_static_header_parses_to_its_fields() {
        let p = Ipv6Packet::new_checked(&HDR[..]).unwrap();
        assert_eq!((p.version(), p.payload_len()), (6, 20));
        assert_eq!((p.next_header(), p.hop_limit()), (IPPROTO_TCP, 64));
        assert_eq!((p.src_addr(), p.dst_addr()), (addr(1), addr(2)));
        let s = smoltcp::wire::Ipv6Packet::new_unchecked(&HDR[..]);
        assert_eq!(s.payload_len(), 20, "the fixture is what it says");
    }

    #[test]
    fn a_built_header_is_byte_for_byte_the_static_one() {
        let mut b = [0xffu8; 40];
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.set_version();
        p.set_payload_len(20);
        p.set_next_header(IPPROTO_TCP);
        p.set_hop_limit(64);
        p.set_src_addr(&addr(1));
        p.set_dst_addr(&addr(2));
        assert_eq!(b, HDR);
    }

    #[test]
    fn a_truncated_header_is_an_error() {
        assert_eq!(Ipv6Packet::new_checked(&HDR[..39]), Err(Error::Truncated));
    }
}
