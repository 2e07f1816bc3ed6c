//! The router step between a network's gateway and its uplink: TTL and
//! MAC rewrites for frames the switch routes rather than switches.

use pmd::wire::{ipv4, EthernetFrame, Ipv4Packet, MacAddr};

/// Decrements the IPv4 TTL of the header at `l3` and updates its checksum
/// (RFC 1624). False when the TTL has run out (the frame must be dropped).
#[inline]
pub fn decrement_ttl(frame: &mut [u8], l3: usize) -> bool {
    let Some(hdr) = frame.get_mut(l3..l3 + ipv4::HEADER_LEN) else {
        return false;
    };
    let mut ip = Ipv4Packet::new_unchecked(hdr);
    let ttl = ip.ttl();
    if ttl <= 1 {
        return false;
    }
    ip.replace_ttl(ttl - 1);
    true
}

/// Sets the Ethernet destination and source.
#[inline]
pub fn set_macs(frame: &mut [u8], dst: MacAddr, src: MacAddr) {
    let mut eth = EthernetFrame::new_unchecked(frame);
    eth.set_dst_addr(dst);
    eth.set_src_addr(src);
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmd::wire::checksum::checksum;

    #[test]
    fn a_decremented_ttl_keeps_the_header_checksum_valid() {
        let mut f = vec![0u8; 34];
        f[14..34].copy_from_slice(&[
            0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        let c = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        assert!(decrement_ttl(&mut f, 14));
        assert_eq!(f[22], 63);
        assert_eq!(checksum(&f[14..34]), 0, "header still sums to zero");
    }

    #[test]
    fn a_ttl_of_one_is_not_forwarded() {
        let mut f = vec![0u8; 34];
        f[22] = 1;
        assert!(!decrement_ttl(&mut f, 14));
        assert!(!decrement_ttl(&mut f[..20], 14), "truncated header");
    }
}
