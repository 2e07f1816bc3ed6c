//! One parse per frame into a small metadata record that every later stage
//! reads instead of parsing again (DESIGN.md, data path 3).
//!
//! Hand-written rather than etherparse's `SlicedPacket`: the switch needs
//! only offsets and a handful of fields, and this validates lengths once so
//! no later accessor can read past the frame.

use crate::counters::DropReason;
use crate::wire::{
    self, icmpv4, ipv4, ipv6, tcp, udp, ArpPacket, EthernetFrame, Ipv4Packet, MacAddr,
};

/// Offsets and fields of a parsed frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Source MAC.
    pub src_mac: MacAddr,
    /// EtherType after any VLAN tag.
    pub ethertype: u16,
    /// Offset of the L3 header.
    pub l3_off: u16,
    /// Offset of the L4 header (IPv4 only; 0 otherwise).
    pub l4_off: u16,
    /// IPv4 protocol (0 when not IPv4).
    pub ip_proto: u8,
    /// IPv4 source address.
    pub ip_src: [u8; 4],
    /// IPv4 destination address.
    pub ip_dst: [u8; 4],
    /// True for an IPv4 fragment other than the first.
    pub later_fragment: bool,
    /// Length the frame should have: shorter than the received length when
    /// the IPv4 total length shows Ethernet padding, which is trimmed.
    pub frame_len: u32,
}

/// Parses and validates an Ethernet frame.
///
/// Errors are the drop reason to count: a runt, an 802.3 length field in
/// place of an EtherType, or an IPv4/ARP header shorter than it claims.
pub fn parse(frame: &[u8]) -> Result<PacketMeta, DropReason> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Runt)?;
    let mut meta = PacketMeta {
        dst_mac: eth.dst_addr(),
        src_mac: eth.src_addr(),
        frame_len: frame.len() as u32,
        ..PacketMeta::default()
    };
    let (ethertype, l3) = eth.l3_ethertype().ok_or(DropReason::Runt)?;
    // Values below 0x0600 are 802.3 lengths (LLC frames): containers do not
    // speak them and a switch for IP containers does not carry them.
    if ethertype < 0x0600 {
        return Err(DropReason::BadEtherType);
    }
    meta.ethertype = ethertype;
    meta.l3_off = l3 as u16;
    match ethertype {
        wire::ETHERTYPE_IPV4 => parse_ipv4(frame, l3, &mut meta)?,
        wire::ETHERTYPE_ARP => {
            let arp = ArpPacket::new_checked(&frame[l3..]).map_err(|_| DropReason::Truncated)?;
            if arp.hardware_len() != 6 || arp.protocol_len() != 4 {
                return Err(DropReason::Malformed);
            }
        }
        wire::ETHERTYPE_IPV6 if frame.len() < l3 + ipv6::HEADER_LEN => {
            return Err(DropReason::Truncated)
        }
        _ => {}
    }
    Ok(meta)
}

fn parse_ipv4(frame: &[u8], l3: usize, meta: &mut PacketMeta) -> Result<(), DropReason> {
    // The view spans exactly the fixed header, so its fixed fields need
    // no further bounds checks; the stated lengths are checked here.
    let ip = frame
        .get(l3..l3 + ipv4::HEADER_LEN)
        .ok_or(DropReason::Truncated)?;
    let ip = Ipv4Packet::new_unchecked(ip);
    if ip.version() != 4 {
        return Err(DropReason::Malformed);
    }
    let ihl = ip.header_len();
    if ihl < ipv4::HEADER_LEN {
        return Err(DropReason::Malformed);
    }
    let total = ip.total_len() as usize;
    if total < ihl || l3 + total > frame.len() {
        return Err(DropReason::Truncated);
    }
    meta.ip_proto = ip.protocol();
    meta.ip_src = ip.src_addr().octets();
    meta.ip_dst = ip.dst_addr().octets();
    meta.later_fragment = ip.frag_offset() != 0;
    meta.l4_off = (l3 + ihl) as u16;
    meta.frame_len = (l3 + total) as u32;
    if !meta.later_fragment {
        let l4_len = total - ihl;
        let need = match meta.ip_proto {
            wire::IPPROTO_TCP => tcp::HEADER_LEN,
            wire::IPPROTO_UDP => udp::HEADER_LEN,
            wire::IPPROTO_ICMP => icmpv4::HEADER_LEN,
            _ => 0,
        };
        if l4_len < need {
            return Err(DropReason::Truncated);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_frame(payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + payload];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        let total = (20 + 8 + payload) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[23] = 17;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f
    }

    #[test]
    fn a_udp_frame_parses_to_its_offsets_and_addresses() {
        let m = parse(&udp_frame(10)).unwrap();
        assert_eq!(m.ethertype, 0x0800);
        assert_eq!((m.l3_off, m.l4_off, m.ip_proto), (14, 34, 17));
        assert_eq!(m.ip_dst, [10, 0, 0, 2]);
        assert_eq!(m.frame_len, 52);
    }

    #[test]
    fn ethernet_padding_is_trimmed_to_the_ipv4_total_length() {
        let mut f = udp_frame(2);
        f.resize(60, 0);
        assert_eq!(parse(&f).unwrap().frame_len, 44);
    }

    #[test]
    fn bad_frames_name_their_drop_reason() {
        assert_eq!(parse(&[0u8; 10]), Err(DropReason::Runt));
        let mut llc = udp_frame(0);
        llc[12..14].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(parse(&llc), Err(DropReason::BadEtherType));
        let mut short = udp_frame(10);
        short.truncate(40);
        assert_eq!(parse(&short), Err(DropReason::Truncated));
        let mut ihl = udp_frame(10);
        ihl[14] = 0x44;
        assert_eq!(parse(&ihl), Err(DropReason::Malformed));
        let mut arp = udp_frame(0);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        arp.truncate(30);
        assert_eq!(parse(&arp), Err(DropReason::Truncated));
    }

    #[test]
    fn a_tagged_frame_reads_the_inner_ethertype() {
        let mut f = udp_frame(4);
        f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        let m = parse(&f).unwrap();
        assert_eq!((m.ethertype, m.l3_off, m.l4_off), (0x0800, 18, 38));
    }
}
