//! UDP (RFC 768): the header view.

use super::{get16, set16, Error, Field, Rest};

mod field {
    use super::{Field, Rest};
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const PAYLOAD: Rest = 8..;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Where the checksum is, from the header start (a virtio-net
/// `csum_offset`).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// A view of a UDP header and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer whose length a parse already checked; accessors
    /// panic otherwise.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a buffer of at least [`HEADER_LEN`] bytes; after this no
    /// accessor can panic. The length field is the caller's to judge.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(UdpPacket { buffer })
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        get16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length of header and data.
    #[inline]
    pub fn length(&self) -> u16 {
        get16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The checksum as stored (0: none was computed, RFC 768).
    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Everything after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    /// Sets the length of header and data.
    #[inline]
    pub fn set_length(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::LENGTH, v);
    }

    /// Stores a checksum.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Everything after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VXLAN datagram's UDP header: 54321 -> 4789, 58 bytes, no checksum.
    const VXLAN_UDP: [u8; 10] = [0xd4, 0x31, 0x12, 0xb5, 0x00, 0x3a, 0x00, 0x00, 0x08, 0x00];

    #[test]
    fn a_static_header_parses_to_its_fields() {
        let u = UdpPacket::new_checked(&VXLAN_UDP[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (54321, 4789));
        assert_eq!((u.length(), u.checksum()), (58, 0));
        assert_eq!(u.payload(), &[0x08, 0x00]);
        let s = smoltcp::wire::UdpPacket::new_unchecked(&VXLAN_UDP[..]);
        assert_eq!((s.src_port(), s.dst_port(), s.len()), (54321, 4789, 58));
    }

    #[test]
    fn a_built_header_is_byte_for_byte_the_static_one() {
        let mut b = [0xffu8; 10];
        let mut u = UdpPacket::new_unchecked(&mut b[..]);
        u.set_src_port(54321);
        u.set_dst_port(4789);
        u.set_length(58);
        u.set_checksum(0);
        u.payload_mut().copy_from_slice(&[0x08, 0x00]);
        assert_eq!(b, VXLAN_UDP);
    }

    #[test]
    fn a_truncated_header_is_an_error() {
        assert_eq!(
            UdpPacket::new_checked(&VXLAN_UDP[..7]),
            Err(Error::Truncated)
        );
    }
}
