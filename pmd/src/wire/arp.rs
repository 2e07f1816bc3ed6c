//! ARP for IPv4 over Ethernet (RFC 826): the packet view, a `Repr`, and
//! the in-place reply that both the gateway and the overlay's ARP
//! suppression send.

use std::net::Ipv4Addr;

use super::ethernet::EthernetFrame;
use super::{get16, get_addr, set16, set_addr, Error, Field, MacAddr};

mod field {
    use super::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;
/// Hardware type Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// Operation: request.
pub const OP_REQUEST: u16 = 1;
/// Operation: reply.
pub const OP_REPLY: u16 = 2;

/// A view of an ARP packet with 6-byte hardware and 4-byte protocol
/// addresses (the only kind the switch reads; others fail
/// [`ArpRepr::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer the caller knows holds [`PACKET_LEN`] bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer of at least [`PACKET_LEN`] bytes; after this no
    /// accessor can panic.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        Ok(ArpPacket { buffer })
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type.
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        get16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (an EtherType).
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        get16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware address length.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    #[inline]
    pub fn operation(&self) -> u16 {
        get16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender hardware address.
    #[inline]
    pub fn source_hardware_addr(&self) -> MacAddr {
        MacAddr::from_slice(&self.buffer.as_ref()[field::SHA])
    }

    /// Sender protocol address.
    #[inline]
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::SPA)
    }

    /// Target hardware address.
    #[inline]
    pub fn target_hardware_addr(&self) -> MacAddr {
        MacAddr::from_slice(&self.buffer.as_ref()[field::THA])
    }

    /// Target protocol address.
    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    #[inline]
    pub fn set_hardware_type(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::HTYPE, v);
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::PTYPE, v);
    }

    /// Sets the hardware address length.
    #[inline]
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets the protocol address length.
    #[inline]
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::OPER, v);
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_source_hardware_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&m.0);
    }

    /// Sets the sender protocol address.
    #[inline]
    pub fn set_source_protocol_addr(&mut self, a: Ipv4Addr) {
        set_addr(self.buffer.as_mut(), field::SPA, a);
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&m.0);
    }

    /// Sets the target protocol address.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        set_addr(self.buffer.as_mut(), field::TPA, a);
    }
}

/// An Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// [`OP_REQUEST`], [`OP_REPLY`] or another operation.
    pub operation: u16,
    /// Sender hardware address.
    pub source_hardware_addr: MacAddr,
    /// Sender protocol address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address.
    pub target_hardware_addr: MacAddr,
    /// Target protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads an Ethernet/IPv4 ARP message; anything else (another hardware
    /// or protocol type, other address lengths) is [`Error::Malformed`].
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<ArpRepr, Error> {
        if p.hardware_type() != HTYPE_ETHERNET
            || p.protocol_type() != super::ETHERTYPE_IPV4
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
            return Err(Error::Malformed);
        }
        Ok(ArpRepr {
            operation: p.operation(),
            source_hardware_addr: p.source_hardware_addr(),
            source_protocol_addr: p.source_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        })
    }

    /// The packet's length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the message.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) {
        p.set_hardware_type(HTYPE_ETHERNET);
        p.set_protocol_type(super::ETHERTYPE_IPV4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(self.operation);
        p.set_source_hardware_addr(self.source_hardware_addr);
        p.set_source_protocol_addr(self.source_protocol_addr);
        p.set_target_hardware_addr(self.target_hardware_addr);
        p.set_target_protocol_addr(self.target_protocol_addr);
    }

    /// The reply to this request from `mac`, the owner of the asked
    /// address: "swap the two sender fields with the two target fields,
    /// put the local hardware address in the sender field, set the
    /// opcode to reply" (RFC 826, "Packet Reception").
    #[inline]
    pub fn reply_from(&self, mac: MacAddr) -> ArpRepr {
        ArpRepr {
            operation: OP_REPLY,
            source_hardware_addr: mac,
            source_protocol_addr: self.target_protocol_addr,
            target_hardware_addr: self.source_hardware_addr,
            target_protocol_addr: self.source_protocol_addr,
        }
    }
}

/// Turns the ARP request `request` (read from `frame`, ARP at `l3`) into
/// the reply from `mac` in place: the ARP fields by
/// [`ArpRepr::reply_from`], and the Ethernet header addressed back to the
/// asker from `mac`. False, the frame untouched, when the frame is too
/// short to hold the ARP packet.
pub fn reply_in_place(frame: &mut [u8], l3: usize, request: &ArpRepr, mac: MacAddr) -> bool {
    let Some(Ok(mut arp)) = frame.get_mut(l3..).map(ArpPacket::new_checked) else {
        return false;
    };
    request.reply_from(mac).emit(&mut arp);
    let mut eth = EthernetFrame::new_unchecked(frame);
    eth.set_dst_addr(request.source_hardware_addr);
    eth.set_src_addr(mac);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Who has 10.0.0.1? Tell 10.0.0.9 (02:00:00:00:00:09)".
    const REQUEST: [u8; 28] = [
        0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 9, 10, 0, 0, 9, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1,
    ];
    const ASKER: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);
    const OWNER: MacAddr = MacAddr([2, 0x50, 0, 0, 0, 1]);

    fn request() -> ArpRepr {
        ArpRepr {
            operation: OP_REQUEST,
            source_hardware_addr: ASKER,
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 9),
            target_hardware_addr: MacAddr::ZERO,
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
        }
    }

    #[test]
    fn a_static_request_parses_to_its_repr() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p), Ok(request()));
        let s = smoltcp::wire::ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(
            s.operation(),
            smoltcp::wire::ArpOperation::Request,
            "the fixture is a request"
        );
    }

    #[test]
    fn an_emitted_request_is_byte_for_byte_the_static_one() {
        let mut b = [0xffu8; 28];
        request().emit(&mut ArpPacket::new_unchecked(&mut b[..]));
        assert_eq!(b, REQUEST);
        assert_eq!(request().buffer_len(), 28);
    }

    #[test]
    fn a_request_becomes_the_owners_reply_in_place() {
        let mut f = [0u8; 42];
        f[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
        f[6..12].copy_from_slice(&ASKER.0);
        f[12..14].copy_from_slice(&super::super::ETHERTYPE_ARP.to_be_bytes());
        f[14..].copy_from_slice(&REQUEST);
        assert!(reply_in_place(&mut f, 14, &request(), OWNER));
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), (ASKER, OWNER));
        let s = smoltcp::wire::ArpPacket::new_checked(&f[14..]).unwrap();
        assert_eq!(s.operation(), smoltcp::wire::ArpOperation::Reply);
        assert_eq!(s.source_hardware_addr(), &OWNER.0);
        assert_eq!(s.source_protocol_addr(), &[10, 0, 0, 1]);
        assert_eq!(s.target_hardware_addr(), &ASKER.0);
        assert_eq!(s.target_protocol_addr(), &[10, 0, 0, 9]);
    }

    #[test]
    fn truncated_or_foreign_arp_is_an_error() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]),
            Err(Error::Truncated)
        );
        let mut b = REQUEST;
        b[4] = 8;
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p), Err(Error::Malformed));
        let mut short = [0u8; 41];
        assert!(!reply_in_place(&mut short, 14, &request(), OWNER));
    }
}
