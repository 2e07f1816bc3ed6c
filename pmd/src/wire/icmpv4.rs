//! ICMP for IPv4 (RFC 792): the header view of echo and error messages.

use super::checksum::{self, update16};
use super::{get16, set16, Error, Field, Rest};

mod field {
    use super::{Field, Rest};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    /// Type and code: one 16-bit word of the checksum.
    pub const TYPE_CODE: Field = 0..2;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    /// RFC 1191: the low 16 bits of the word RFC 792 calls "unused".
    pub const UNUSED: Field = 4..6;
    pub const NEXT_HOP_MTU: Field = 6..8;
    /// Echo data, or the datagram an error quotes.
    pub const DATA: Rest = 8..;
}

/// Length of the header (type, code, checksum and one 32-bit word).
pub const HEADER_LEN: usize = field::DATA.start;

/// Message types.
pub mod msg_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Source quench (deprecated, still an error).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;

    /// True for the types that report an error about a quoted datagram.
    #[inline]
    pub fn is_error(t: u8) -> bool {
        matches!(
            t,
            DST_UNREACHABLE | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAM_PROBLEM
        )
    }
}

/// Destination unreachable code "fragmentation needed and DF set".
pub const CODE_FRAG_NEEDED: u8 = 4;

/// A view of an ICMP message (header and data to the end of the buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer whose length a parse already checked; accessors
    /// panic otherwise.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wraps a buffer of at least [`HEADER_LEN`] bytes; after this no
    /// accessor can panic.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Icmpv4Packet { buffer })
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type ([`msg_type`]).
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The identifier of an echo request or reply.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// The sequence number of an echo request or reply.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        get16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// The next-hop MTU of a fragmentation-needed message (RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        get16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// Echo data, or the quoted datagram of an error.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// True when the checksum over the whole message verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the type.
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    /// Sets the code.
    #[inline]
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Stores a checksum.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::ECHO_SEQNO, v);
    }

    /// Sets the next-hop MTU and clears the unused half-word before it.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        set16(self.buffer.as_mut(), field::UNUSED, 0);
        set16(self.buffer.as_mut(), field::NEXT_HOP_MTU, mtu);
    }

    /// Echo data or quoted datagram, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes and stores the checksum over the whole message.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Sets type and code and updates the checksum for that one word
    /// (RFC 1624 eqn. 3): no pass over the data.
    #[inline]
    pub fn replace_type_code(&mut self, msg_type: u8, code: u8) {
        let b = self.buffer.as_mut();
        let new = u16::from_be_bytes([msg_type, code]);
        let c = update16(get16(b, field::CHECKSUM), get16(b, field::TYPE_CODE), new);
        set16(b, field::TYPE_CODE, new);
        set16(b, field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo request, id 0x1234, seq 7, data "hi", checksum 0x7d5b
    /// (checked by smoltcp below).
    const ECHO: [u8; 10] = [8, 0, 0x7d, 0x5b, 0x12, 0x34, 0x00, 0x07, b'h', b'i'];

    #[test]
    fn a_static_echo_request_parses_to_its_fields() {
        let p = Icmpv4Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!((p.msg_type(), p.msg_code()), (msg_type::ECHO_REQUEST, 0));
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 7));
        assert_eq!(p.data(), b"hi");
        assert!(p.verify_checksum());
        let s = smoltcp::wire::Icmpv4Packet::new_checked(&ECHO[..]).unwrap();
        assert!(s.verify_checksum(), "the fixture's checksum is right");
    }

    #[test]
    fn a_built_echo_request_is_byte_for_byte_the_static_one() {
        let mut b = [0xffu8; 10];
        let mut p = Icmpv4Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(msg_type::ECHO_REQUEST);
        p.set_msg_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq_no(7);
        p.data_mut().copy_from_slice(b"hi");
        p.fill_checksum();
        assert_eq!(b, ECHO);
    }

    #[test]
    fn turning_a_request_into_a_reply_keeps_the_checksum_valid() {
        let mut b = ECHO;
        let mut p = Icmpv4Packet::new_unchecked(&mut b[..]);
        p.replace_type_code(msg_type::ECHO_REPLY, 0);
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), msg_type::ECHO_REPLY);
    }

    #[test]
    fn a_frag_needed_message_carries_its_mtu_and_a_truncated_one_is_an_error() {
        let mut b = [0u8; 8];
        let mut p = Icmpv4Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(msg_type::DST_UNREACHABLE);
        p.set_msg_code(CODE_FRAG_NEEDED);
        p.set_next_hop_mtu(1450);
        assert_eq!(b, [3, 4, 0, 0, 0, 0, 0x05, 0xaa]);
        assert!(msg_type::is_error(3) && !msg_type::is_error(8));
        assert_eq!(Icmpv4Packet::new_checked(&ECHO[..7]), Err(Error::Truncated));
    }
}
