//! ARP for the addresses the switch owns (gateways, uplink IPs): answering
//! requests in place and building requests for next hops.

use std::net::Ipv4Addr;

use pmd::wire::arp::{self, ArpPacket, ArpRepr};
use pmd::wire::{self, EthernetFrame, EthernetRepr, MacAddr};

/// What an ARP frame was, seen from an address the switch owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpSeen {
    /// A request for our address: the frame is now the reply, addressed
    /// back to the asker, who is at `ip`, `mac`.
    Answered {
        /// The asker's IP.
        ip: Ipv4Addr,
        /// The asker's MAC.
        mac: MacAddr,
    },
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
    let Some(Ok(packet)) = buf.get(l3..).map(ArpPacket::new_checked) else {
        return ArpSeen::Malformed;
    };
    let Ok(msg) = ArpRepr::parse(&packet) else {
        return ArpSeen::Malformed;
    };
    match msg.operation {
        arp::OP_REQUEST if msg.target_protocol_addr == ip => {
            arp::reply_in_place(buf, l3, &msg, mac);
            ArpSeen::Answered {
                ip: msg.source_protocol_addr,
                mac: msg.source_hardware_addr,
            }
        }
        arp::OP_REPLY => ArpSeen::Reply {
            ip: msg.source_protocol_addr,
            mac: msg.source_hardware_addr,
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
    let mut eth = EthernetFrame::new_unchecked(&mut *out);
    EthernetRepr {
        src_addr: mac,
        dst_addr: MacAddr::BROADCAST,
        ethertype: wire::ETHERTYPE_ARP,
    }
    .emit(&mut eth);
    ArpRepr {
        operation: arp::OP_REQUEST,
        source_hardware_addr: mac,
        source_protocol_addr: ip,
        target_hardware_addr: MacAddr::ZERO,
        target_protocol_addr: target,
    }
    .emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    REQUEST_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::ArpOperation;

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
        let asker_at = ArpSeen::Answered {
            ip: Ipv4Addr::new(10, 0, 0, 9),
            mac: asker,
        };
        assert_eq!(seen, asker_at);
        assert_eq!(&buf[0..6], &asker.0);
        assert_eq!(&buf[6..12], &me.0);
        let arp = smoltcp::wire::ArpPacket::new_checked(&buf[14..]).unwrap();
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
