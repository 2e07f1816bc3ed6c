//! TCP (RFC 9293): the header view.

use super::checksum;
use super::{check_header, get16, get32, set16, set32, Error, Field, Rest};

mod field {
    use super::{Field, Rest};
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset in the upper four bits.
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
    pub const OPTIONS: Rest = 20..;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::URGENT.end;
/// Where the checksum is, from the header start (a virtio-net
/// `csum_offset`).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// The flag bits of byte 13.
pub mod flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// The acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// The urgent pointer is significant.
    pub const URG: u8 = 0x20;
    /// ECN-Echo (RFC 3168).
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced (RFC 3168).
    pub const CWR: u8 = 0x80;
}

/// A view of a TCP header and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer whose lengths a parse already checked; accessors
    /// panic otherwise. (An ICMP error quotes only the first 8 bytes:
    /// the ports and sequence number are there, the rest may not be.)
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer that holds the whole header its data offset claims
    /// (at least 20 bytes); after this no accessor can panic.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = TcpPacket { buffer };
        check_header(p.buffer.as_ref().len(), HEADER_LEN, || p.header_len())?;
        Ok(p)
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        get32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        get32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) as usize * 4
    }

    /// The flags byte ([`flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Window size.
    #[inline]
    pub fn window_len(&self) -> u16 {
        get16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// The checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The options: from the fixed header to the data offset.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS.start..self.header_len()]
    }

    /// The data after the header and its options.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        set32(self.buffer.as_mut(), field::SEQ_NUM, v);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        set32(self.buffer.as_mut(), field::ACK_NUM, v);
    }

    /// Sets the header length in bytes (a multiple of 4).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFF] = ((len / 4) as u8) << 4;
    }

    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    /// Sets the window size.
    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::WIN_SIZE, v);
    }

    /// Stores a checksum.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Computes and stores the checksum over the header and data (the whole
    /// buffer) on top of `pseudo`, the pseudo-header sum
    /// (`checksum::pseudo_header_v4`/`_v6`).
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = checksum::finish_l4(checksum::sum(pseudo, self.buffer.as_ref()));
        self.set_checksum(c);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// The options, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS.start..h]
    }

    /// The data after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN from port 40000 to 5201, seq 1, window 64240, MSS option,
    /// checksum 0x1234 (not verified here).
    const SYN: [u8; 24] = [
        0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xfa, 0xf0, 0x12, 0x34, 0, 0,
        0x02, 0x04, 0x05, 0xb4,
    ];

    #[test]
    fn a_static_header_parses_to_its_fields() {
        let t = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (40000, 5201));
        assert_eq!((t.seq_number(), t.ack_number()), (1, 0));
        assert_eq!((t.header_len(), t.flags()), (24, flags::SYN));
        assert_eq!((t.window_len(), t.checksum()), (64240, 0x1234));
        assert_eq!(t.options(), &[0x02, 0x04, 0x05, 0xb4]);
        assert!(t.payload().is_empty());
        let s = smoltcp::wire::TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!((s.src_port(), s.syn(), s.header_len()), (40000, true, 24));
    }

    #[test]
    fn a_built_header_is_byte_for_byte_the_static_one() {
        let mut b = [0xffu8; 24];
        let mut t = TcpPacket::new_unchecked(&mut b[..]);
        t.set_src_port(40000);
        t.set_dst_port(5201);
        t.set_seq_number(1);
        t.set_ack_number(0);
        t.set_header_len(24);
        t.set_flags(flags::SYN);
        t.set_window_len(64240);
        t.set_checksum(0x1234);
        t.set_urgent_at(0);
        t.options_mut().copy_from_slice(&[0x02, 0x04, 0x05, 0xb4]);
        assert!(t.payload_mut().is_empty());
        assert_eq!(b, SYN);
    }

    #[test]
    fn truncated_headers_and_short_data_offsets_are_errors() {
        assert_eq!(TcpPacket::new_checked(&SYN[..19]), Err(Error::Truncated));
        assert_eq!(TcpPacket::new_checked(&SYN[..22]), Err(Error::Truncated));
        let mut b = SYN;
        b[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&b[..]), Err(Error::Malformed));
    }
}
