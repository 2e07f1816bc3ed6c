//! Ethernet II (IEEE 802.3 framing with an EtherType), with at most one
//! 802.1Q tag.

use super::{get16, set16, Error, Field, MacAddr, Rest};

mod field {
    use super::{Field, Rest};
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
    /// Behind one 802.1Q tag (TPID 12..14, TCI 14..16).
    pub const VLAN_ETHERTYPE: Field = 16..18;
}

/// Length of the untagged header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Length of one 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;

/// A view of an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer the caller knows holds at least [`HEADER_LEN`] bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer of at least [`HEADER_LEN`] bytes; after this no
    /// accessor can panic.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr::from_slice(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// Source MAC.
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        MacAddr::from_slice(&self.buffer.as_ref()[field::SOURCE])
    }

    /// The EtherType field (the tag's TPID on a tagged frame).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        get16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// The EtherType after at most one 802.1Q tag, and where the L3
    /// header starts; `None` when the tag is cut off.
    #[inline]
    pub fn l3_ethertype(&self) -> Option<(u16, usize)> {
        let ethertype = self.ethertype();
        if ethertype != super::ETHERTYPE_VLAN {
            return Some((ethertype, HEADER_LEN));
        }
        let b = self.buffer.as_ref().get(field::VLAN_ETHERTYPE)?;
        Some((u16::from_be_bytes([b[0], b[1]]), HEADER_LEN + VLAN_TAG_LEN))
    }

    /// Everything after the untagged header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    #[inline]
    pub fn set_dst_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&mac.0);
    }

    /// Sets the source MAC.
    #[inline]
    pub fn set_src_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&mac.0);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        set16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
    }

    /// Everything after the untagged header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The fields of an untagged Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source MAC.
    pub src_addr: MacAddr,
    /// Destination MAC.
    pub dst_addr: MacAddr,
    /// EtherType.
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Reads the header of a checked frame.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> EthernetRepr {
        EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        }
    }

    /// The header's length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ETHERTYPE_ARP, ETHERTYPE_IPV4};

    /// A broadcast ARP frame header as Linux sends it, with two payload bytes.
    const ARP_BROADCAST: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x0a, 0x00, 0x00, 0x09, 0x08, 0x06, 0xaa,
        0xbb,
    ];

    #[test]
    fn a_captured_header_parses_to_its_addresses_and_ethertype() {
        let f = EthernetFrame::new_checked(&ARP_BROADCAST[..]).unwrap();
        assert_eq!(f.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(f.src_addr().to_string(), "02:00:0a:00:00:09");
        assert_eq!(f.ethertype(), ETHERTYPE_ARP);
        assert_eq!(f.l3_ethertype(), Some((ETHERTYPE_ARP, 14)));
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn an_emitted_header_is_byte_for_byte_the_captured_one() {
        let mut b = [0u8; 16];
        let repr = EthernetRepr::parse(&EthernetFrame::new_checked(&ARP_BROADCAST[..]).unwrap());
        let mut f = EthernetFrame::new_unchecked(&mut b[..]);
        repr.emit(&mut f);
        f.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(b, ARP_BROADCAST);
        assert_eq!(repr.buffer_len(), 14);
    }

    #[test]
    fn a_tagged_frame_gives_the_inner_ethertype_and_a_cut_tag_gives_none() {
        let mut b = [0u8; 18];
        b[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        b[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let f = EthernetFrame::new_checked(&b[..]).unwrap();
        assert_eq!(f.l3_ethertype(), Some((ETHERTYPE_IPV4, 18)));
        let cut = EthernetFrame::new_checked(&b[..17]).unwrap();
        assert_eq!(cut.l3_ethertype(), None);
    }

    #[test]
    fn a_truncated_header_is_an_error() {
        assert_eq!(
            EthernetFrame::new_checked(&ARP_BROADCAST[..13]),
            Err(Error::Truncated)
        );
    }
}
