//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// Adds `data` to a running one's-complement sum. The result is folded to
/// at most 16 bits, so callers may add a few more 16-bit values to it.
///
/// Sums 32-bit big-endian words into a 64-bit accumulator (no carry
/// handling in the loop, four bytes per step): folding a sum of 32-bit
/// words gives the RFC 1071 16-bit sum, since 2^16 = 1 (mod 2^16 - 1).
#[inline]
pub fn sum(acc: u32, data: &[u8]) -> u32 {
    let mut s = acc as u64;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        s += u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for c in &mut pairs {
        s += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = pairs.remainder() {
        s += (*last as u64) << 8;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u32
}

/// Folds a running sum into 16 bits (not complemented).
#[inline]
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum of `data`: the complement of its folded sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// Sum of the IPv4 pseudo-header for TCP/UDP.
#[inline]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u32 {
    let mut acc = sum(0, &src);
    acc = sum(acc, &dst);
    acc + proto as u32 + l4_len as u32
}

/// Sum of the IPv6 pseudo-header for TCP/UDP (RFC 8200 section 8.1):
/// source, destination, the 32-bit upper-layer length and the next header.
#[inline]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, l4_len: u32) -> u32 {
    let mut acc = sum(0, src);
    acc = sum(acc, dst);
    acc + (l4_len >> 16) + (l4_len & 0xffff) + proto as u32
}

/// A checksum to store in a TCP or UDP header: the complement of the folded
/// sum, with 0 sent as 0xffff (RFC 768: a zero UDP checksum means "none";
/// both values verify, and Linux does the same for TCP).
#[inline]
pub fn finish_l4(acc: u32) -> u16 {
    match !fold(acc) {
        0 => 0xffff,
        c => c,
    }
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit field changed from
/// `old` to `new`: HC' = ~(~HC + ~m + m').
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let acc = (!check as u32) + (!old as u32 & 0xffff) + new as u32;
    !fold(acc)
}

/// RFC 1624 update for a 32-bit field (an IPv4 address).
#[inline]
pub fn update32(check: u16, old: u32, new: u32) -> u16 {
    let c = update16(check, (old >> 16) as u16, (new >> 16) as u16);
    update16(c, old as u16, new as u16)
}

/// Several RFC 1624 eqn. 3 terms (`~m + m'`, one per changed 16-bit field)
/// summed, to apply to a checksum once: NAT changes addresses and ports
/// together, and the same terms serve the IPv4 header, the TCP/UDP
/// checksum and a pseudo-header seed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta(u32);

impl Delta {
    /// Adds the change of one 16-bit field.
    #[inline]
    pub fn add16(&mut self, old: u16, new: u16) {
        self.0 = fold(self.0 + (!old) as u32 + new as u32) as u32;
    }

    /// Adds the change of a 32-bit field (an IPv4 address).
    #[inline]
    pub fn add32(&mut self, old: u32, new: u32) {
        self.add16((old >> 16) as u16, (new >> 16) as u16);
        self.add16(old as u16, new as u16);
    }

    /// Adds the terms of another delta.
    #[inline]
    pub fn merge(&mut self, other: Delta) {
        self.0 = fold(self.0 + other.0) as u32;
    }

    /// True when no field changed (or the changes cancel out).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0 == 0 || self.0 == 0xffff
    }

    /// A stored (complemented) checksum after the changes:
    /// HC' = ~(~HC + sum(~m + m')), RFC 1624 eqn. 3.
    #[inline]
    pub fn apply(self, check: u16) -> u16 {
        !fold((!check) as u32 + self.0)
    }

    /// An uncomplemented sum after the changes: the pseudo-header seed a
    /// `needs_csum` frame carries in its checksum field (S' = S + ~m + m').
    #[inline]
    pub fn apply_to_sum(self, sum: u16) -> u16 {
        fold(sum as u32 + self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc1071_example_sums_to_its_published_value() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn the_word_sum_matches_a_plain_16_bit_sum_at_every_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..data.len() {
            let mut plain: u64 = 0xfffe;
            for (i, b) in data[..len].iter().enumerate() {
                plain += if i % 2 == 0 {
                    (*b as u64) << 8
                } else {
                    *b as u64
                };
            }
            while plain > 0xffff {
                plain = (plain & 0xffff) + (plain >> 16);
            }
            assert_eq!(
                fold(sum(0xfffe, &data[..len])),
                plain as u16,
                "length {len}"
            );
        }
    }

    #[test]
    fn an_incremental_update_matches_a_full_recompute() {
        let mut data = [
            0x45u8, 0, 0, 60, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&data), 0);
        // Change the source address, update incrementally.
        let old = u32::from_be_bytes([10, 0, 0, 1]);
        let new = u32::from_be_bytes([192, 168, 7, 9]);
        data[12..16].copy_from_slice(&new.to_be_bytes());
        let inc = update32(c, old, new);
        data[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, checksum(&data));
    }

    #[test]
    fn a_delta_of_several_fields_equals_one_update_per_field() {
        let mut d = Delta::default();
        d.add32(0x0a00_0001, 0xc0a8_0709);
        d.add16(1234, 40000);
        let chained = update16(update32(0x1c46, 0x0a00_0001, 0xc0a8_0709), 1234, 40000);
        assert_eq!(d.apply(0x1c46), chained);
        let seed = fold(pseudo_header_v4([10, 0, 0, 1], [10, 0, 0, 2], 6, 40));
        let mut a = Delta::default();
        a.add32(0x0a00_0001, 0xc0a8_0709);
        assert_eq!(
            a.apply_to_sum(seed),
            fold(pseudo_header_v4([192, 168, 7, 9], [10, 0, 0, 2], 6, 40))
        );
    }
}
