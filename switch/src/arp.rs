//! ARP for the addresses the switch owns (gateways, uplink IPs): answering
//! requests in place and building requests for next hops.

use std::net::Ipv4Addr;

use pmd::wire::{self, MacAddr};
use smoltcp::wire::{ArpHardware, ArpOperation, ArpPacket, EthernetProtocol as ArpProtocol};

/// What an ARP frame was, seen from an address the switch owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpSeen {
    /// A request for our address: the frame is now the reply, addressed
    /// back to the asker.
    Answered,
    /// A request for someone else.
    NotOurs,
    /// A reply (or gratuitous ARP) telling `ip` is at `mac`.
    Reply {
        /// The sender's IP.
        ip: Ipv4Addr,
        /// The sender's MAC.
        mac: MacAddr,
    },
    /// Too short or not Ethernet/IPv4 ARP.
    Malformed,
}

/// Looks at the ARP frame `buf` (Ethernet header included; ARP at `l3`) and,
/// when it asks for `ip`, turns it into the reply from `mac` in place.
pub fn answer_in_place(buf: &mut [u8], l3: usize, ip: Ipv4Addr, mac: MacAddr) -> ArpSeen {
    let Some(body) = buf.get_mut(l3..) else {
        return ArpSeen::Malformed;
    };
    let Ok(mut arp) = ArpPacket::new_checked(body) else {
        return ArpSeen::Malformed;
    };
    if arp.hardware_type() != ArpHardware::Ethernet || arp.protocol_type() != ArpProtocol::Ipv4 {
        return ArpSeen::Malformed;
    }
    let sha = MacAddr::from_slice(arp.source_hardware_addr());
    let mut spa = [0u8; 4];
    spa.copy_from_slice(arp.source_protocol_addr());
    match arp.operation() {
        ArpOperation::Request if arp.target_protocol_addr() == ip.octets() => {
            arp.set_operation(ArpOperation::Reply);
            arp.set_target_hardware_addr(&sha.0);
            arp.set_target_protocol_addr(&spa);
            arp.set_source_hardware_addr(&mac.0);
            arp.set_source_protocol_addr(&ip.octets());
            buf[0..6].copy_from_slice(&sha.0);
            buf[6..12].copy_from_slice(&mac.0);
            ArpSeen::Answered
        }
        ArpOperation::Reply => ArpSeen::Reply {
            ip: Ipv4Addr::from(spa),
            mac: sha,
        },
        _ => ArpSeen::NotOurs,
    }
}

/// Bytes of an ARP request frame (padded to the Ethernet minimum).
pub const REQUEST_LEN: usize = wire::ETH_MIN_FRAME;

/// Writes a broadcast ARP request "who has `target`? tell `ip`" into `out`
/// (at least `REQUEST_LEN` bytes) and returns its length.
pub fn write_request(out: &mut [u8], mac: MacAddr, ip: Ipv4Addr, target: Ipv4Addr) -> usize {
    let out = &mut out[..REQUEST_LEN];
    out.fill(0);
    out[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
    out[6..12].copy_from_slice(&mac.0);
    out[12..14].copy_from_slice(&wire::ETHERTYPE_ARP.to_be_bytes());
    let mut arp = ArpPacket::new_unchecked(&mut out[wire::ETH_HDR..]);
    arp.set_hardware_type(ArpHardware::Ethernet);
    arp.set_protocol_type(ArpProtocol::Ipv4);
    arp.set_hardware_len(6);
    arp.set_protocol_len(4);
    arp.set_operation(ArpOperation::Request);
    arp.set_source_hardware_addr(&mac.0);
    arp.set_source_protocol_addr(&ip.octets());
    arp.set_target_hardware_addr(&[0; 6]);
    arp.set_target_protocol_addr(&target.octets());
    REQUEST_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_for_our_address_becomes_the_reply_in_place() {
        let me = MacAddr([2, 0x50, 0, 0, 0, 1]);
        let asker = MacAddr([2, 0, 0, 0, 0, 9]);
        let mut buf = [0u8; 60];
        write_request(
            &mut buf,
            asker,
            Ipv4Addr::new(10, 0, 0, 9),
            Ipv4Addr::new(10, 0, 0, 1),
        );
        let seen = answer_in_place(&mut buf, 14, Ipv4Addr::new(10, 0, 0, 1), me);
        assert_eq!(seen, ArpSeen::Answered);
        assert_eq!(&buf[0..6], &asker.0);
        assert_eq!(&buf[6..12], &me.0);
        let arp = ArpPacket::new_checked(&buf[14..]).unwrap();
        assert_eq!(arp.operation(), ArpOperation::Reply);
        assert_eq!(arp.source_hardware_addr(), &me.0);
        assert_eq!(arp.target_protocol_addr(), &[10, 0, 0, 9]);
    }

    #[test]
    fn a_request_for_another_address_is_left_alone() {
        let mut buf = [0u8; 60];
        let m = MacAddr([2, 0, 0, 0, 0, 9]);
        write_request(
            &mut buf,
            m,
            Ipv4Addr::new(10, 0, 0, 9),
            Ipv4Addr::new(10, 0, 0, 7),
        );
        let before = buf;
        let seen = answer_in_place(&mut buf, 14, Ipv4Addr::new(10, 0, 0, 1), m);
        assert_eq!(seen, ArpSeen::NotOurs);
        assert_eq!(buf, before);
    }
}
