//! The router step between a network's gateway and its uplink: TTL and
//! MAC rewrites for frames the switch routes rather than switches.

use pmd::wire::checksum::update16;
use pmd::wire::MacAddr;

/// Decrements the IPv4 TTL of the header at `l3` and updates its checksum
/// (RFC 1624). False when the TTL has run out (the frame must be dropped).
#[inline]
pub fn decrement_ttl(frame: &mut [u8], l3: usize) -> bool {
    let Some(hdr) = frame.get_mut(l3..l3 + 12) else {
        return false;
    };
    let ttl = hdr[8];
    if ttl <= 1 {
        return false;
    }
    // TTL shares a 16-bit word with the protocol field.
    let old = u16::from_be_bytes([ttl, hdr[9]]);
    let new = u16::from_be_bytes([ttl - 1, hdr[9]]);
    let check = u16::from_be_bytes([hdr[10], hdr[11]]);
    hdr[8] = ttl - 1;
    hdr[10..12].copy_from_slice(&update16(check, old, new).to_be_bytes());
    true
}

/// Sets the Ethernet destination and source.
#[inline]
pub fn set_macs(frame: &mut [u8], dst: MacAddr, src: MacAddr) {
    frame[0..6].copy_from_slice(&dst.0);
    frame[6..12].copy_from_slice(&src.0);
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
