//! ICMP echo the switch answers itself, in place in the request's buffer:
//! for a network's gateway and for a port's `ip` (a user checks a host's
//! reachability with ping first; any host and VPP answer on their
//! addresses). Replies to a port's `ip` are bounded by a token bucket, so
//! a ping flood costs the switch a counter, not a reply each.

use pmd::meta::PacketMeta;
use pmd::wire::icmpv4::msg_type;
use pmd::wire::{self, icmpv4, ipv4, EthernetFrame, Icmpv4Packet, Ipv4Packet, MacAddr};

/// TTL of a reply, as Linux's default.
const REPLY_TTL: u8 = 64;

/// True for a whole (unfragmented) ICMP echo request. Fragmented pings
/// are left alone: the switch does not reassemble.
pub fn is_echo_request(frame: &[u8], meta: &PacketMeta) -> bool {
    let l3 = meta.l3_off as usize;
    let l4 = meta.l4_off as usize;
    meta.ethertype == wire::ETHERTYPE_IPV4
        && meta.ip_proto == wire::IPPROTO_ICMP
        && !meta.later_fragment
        && frame
            .get(l3..l3 + ipv4::HEADER_LEN)
            .is_some_and(|ip| !Ipv4Packet::new_unchecked(ip).more_frags())
        && frame
            .get(l4..l4 + icmpv4::HEADER_LEN)
            .is_some_and(|m| Icmpv4Packet::new_unchecked(m).msg_type() == msg_type::ECHO_REQUEST)
}

/// Turns the echo request in `frame` into its reply, sent from `mac`:
/// MACs and addresses swapped, type 0 (code 0), TTL 64, both checksums
/// updated for the changed words only (RFC 1624), identifier, sequence
/// and data kept. False (frame untouched) when it is not an echo request
/// `meta` describes.
pub fn reply_in_place(frame: &mut [u8], meta: &PacketMeta, mac: MacAddr) -> bool {
    if !is_echo_request(frame, meta) {
        return false;
    }
    let (l3, l4) = (meta.l3_off as usize, meta.l4_off as usize);
    // `meta::parse` checked that the IPv4 header and 8 ICMP bytes are in
    // the frame; checked again so a stale record cannot make this panic.
    if frame.len() < l4 + icmpv4::HEADER_LEN || l4 < l3 + ipv4::HEADER_LEN {
        return false;
    }
    Icmpv4Packet::new_unchecked(&mut frame[l4..]).replace_type_code(msg_type::ECHO_REPLY, 0);
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[l3..l4]);
    // Swapping the addresses leaves the header sum as it is; only the
    // TTL word changes it.
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.replace_ttl(REPLY_TTL);
    let mut eth = EthernetFrame::new_unchecked(frame);
    eth.set_dst_addr(meta.src_mac);
    eth.set_src_addr(mac);
    true
}

/// Echo replies a port's `ip` sends per second, at most.
pub const ECHO_RATE: u64 = 100;
/// Replies sent back to back before the rate applies.
pub const ECHO_BURST: u64 = 50;

/// A token bucket: `rate` tokens a second, at most `burst` saved.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    ns_per_token: u64,
    burst: u64,
    tokens: u64,
    /// When the tokens were last counted up to.
    last_ns: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u64, burst: u64) -> TokenBucket {
        TokenBucket {
            ns_per_token: 1_000_000_000 / rate.max(1),
            burst,
            tokens: burst,
            last_ns: 0,
        }
    }

    /// Takes a token if there is one at `now_ns` (a monotonic clock).
    pub fn take(&mut self, now_ns: u64) -> bool {
        let earned = now_ns.saturating_sub(self.last_ns) / self.ns_per_token;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(self.burst);
            // Keep the fraction of a token already earned, unless the
            // bucket is full (time spent full earns nothing).
            self.last_ns = if self.tokens == self.burst {
                now_ns
            } else {
                self.last_ns + earned * self.ns_per_token
            };
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv4Type, NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
    use pmd::meta;
    use pmd::wire::checksum::checksum;

    const ME: [u8; 6] = [2, 0x99, 0, 0, 0, 2];
    const PEER: [u8; 6] = [2, 0x99, 0, 0, 0, 1];

    fn request(ttl: u8, data: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(PEER, ME)
            .ipv4([10, 99, 0, 1], [10, 99, 0, 2], ttl)
            .icmpv4_echo_request(0x1234, 7)
            .write(&mut f, data)
            .unwrap();
        f
    }

    #[test]
    fn an_echo_request_becomes_its_reply_with_valid_checksums() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut f = request(17, &data);
        let m = meta::parse(&f).unwrap();
        assert!(reply_in_place(&mut f, &m, MacAddr(ME)));
        assert_eq!((&f[0..6], &f[6..12]), (&PEER[..], &ME[..]));
        let h = PacketHeaders::from_ethernet_slice(&f).unwrap();
        let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
            panic!("not IPv4")
        };
        assert_eq!(
            (ip.source, ip.destination),
            ([10, 99, 0, 2], [10, 99, 0, 1])
        );
        assert_eq!(ip.time_to_live, REPLY_TTL);
        assert_eq!(checksum(&f[14..34]), 0, "IPv4 header checksum");
        let Some(TransportHeader::Icmpv4(icmp)) = h.transport else {
            panic!("not ICMP")
        };
        let Icmpv4Type::EchoReply(e) = icmp.icmp_type else {
            panic!("not an echo reply: {:?}", icmp.icmp_type)
        };
        assert_eq!((e.id, e.seq), (0x1234, 7));
        assert_eq!(checksum(&f[34..]), 0, "ICMP checksum over header and data");
        assert_eq!(&f[42..], &data[..], "data kept");
    }

    #[test]
    fn replies_fragments_and_other_icmp_are_left_alone() {
        let mut reply = Vec::new();
        PacketBuilder::ethernet2(PEER, ME)
            .ipv4([10, 99, 0, 1], [10, 99, 0, 2], 64)
            .icmpv4_echo_reply(1, 1)
            .write(&mut reply, b"x")
            .unwrap();
        let mut first_fragment = request(64, b"big");
        first_fragment[14 + 6] |= 0x20; // MF
        for mut f in [reply, first_fragment] {
            let before = f.clone();
            let m = meta::parse(&f).unwrap();
            assert!(!reply_in_place(&mut f, &m, MacAddr(ME)));
            assert_eq!(f, before);
        }
    }

    #[test]
    fn the_bucket_gives_a_burst_then_its_rate() {
        let mut b = TokenBucket::new(100, 50);
        let t0 = 5_000_000_000;
        let burst = (0..200).filter(|_| b.take(t0)).count();
        assert_eq!(burst, 50);
        // One second later: 50, not the 100 earned (the bucket holds 50).
        let t1 = t0 + 1_000_000_000;
        let second = (0..200).filter(|_| b.take(t1)).count();
        assert_eq!(second, 50);
        // 10 ms apart, one token each, none lost to rounding.
        let paced = (1..=100).filter(|i| b.take(t1 + i * 10_000_000)).count();
        assert_eq!(paced, 100);
    }
}
