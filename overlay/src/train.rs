//! UDP GSO trains of VXLAN frames.
//!
//! A TCP segment from a container is cut to the overlay MSS before it is
//! encapsulated, which gives 45 VXLAN frames per 64 KB segment; sent one by
//! one, each costs the underlay an skb and the receiving kernel a
//! `vxlan_rcv`, a bridge pass and a TCP receive. A *train* is those frames
//! as one UDP datagram whose payload is their VXLAN payloads end to end,
//! marked UDP GSO (`VIRTIO_NET_HDR_GSO_UDP_L4`) with the payload size as
//! `gso_size`: the kernel carries it as one skb and cuts it into the
//! original datagrams where it is received (Linux's `udp_rcv_segment`, or
//! podswitch's AF_PACKET port), where GRO can merge the inner segments
//! again. Only a port that takes UDP GSO (AF_PACKET) gets trains.

use pmd::wire::checksum::{fold, pseudo_header_v4};
use pmd::wire::{udp, Ipv4Packet, UdpPacket, ETH_HDR, IPPROTO_UDP};
use pmd::{Frame, Offload, Pool};

/// Outer headers a train shares: Ethernet, IPv4 without options, UDP.
pub const TRAIN_HDR: usize = ETH_HDR + 20 + udp::HEADER_LEN;

/// `VIRTIO_NET_HDR_GSO_UDP_L4`.
const GSO_UDP_L4: u8 = 5;

/// Largest IPv4 packet.
const MAX_IP_LEN: usize = 65_535;

/// A train being built from encapsulated frames of one flow.
#[derive(Default)]
pub struct Train {
    frame: Option<Frame>,
    /// UDP payload bytes per datagram: the first one's.
    stride: usize,
    datagrams: usize,
    /// A datagram shorter than `stride` was added: it must be the last.
    closed: bool,
}

impl Train {
    /// Adds `frame`, a VXLAN frame as `crate::encapsulate` writes it (outer
    /// IPv4 without options). Returns a finished train (or a lone frame)
    /// when `frame` could not join the current one; it then starts the next.
    pub fn push(&mut self, pool: &mut Pool, frame: Frame) -> Option<Frame> {
        let d = frame.len().saturating_sub(TRAIN_HDR);
        let joins = self.frame.as_ref().is_some_and(|t| {
            !self.closed && d <= self.stride && t.len() - ETH_HDR + d <= MAX_IP_LEN
        });
        let mut train = match self.frame.take() {
            Some(t) if joins => t,
            other => {
                self.frame = other;
                let out = self.finish(pool);
                self.start(frame, d);
                return out;
            }
        };
        if self.datagrams == 1 {
            // The second datagram: move the first into a large buffer. With
            // none free, the first goes alone (as it is) and this one starts
            // the next train.
            match pool.clone_large(&train) {
                Some(large) => {
                    pool.free(train);
                    train = large;
                }
                None => {
                    self.start(frame, d);
                    return Some(train);
                }
            }
        }
        if !pool.append(&mut train, &frame, TRAIN_HDR..frame.len()) {
            // Not reached (a large buffer holds 64 KB of IP), but a train
            // that cannot grow is still finished properly.
            self.frame = Some(train);
            let out = self.finish(pool);
            self.start(frame, d);
            return out;
        }
        pool.free(frame);
        self.datagrams += 1;
        self.closed = d < self.stride;
        self.frame = Some(train);
        None
    }

    /// Starts a train with one datagram of `d` payload bytes.
    fn start(&mut self, frame: Frame, d: usize) {
        self.frame = Some(frame);
        self.stride = d;
        self.datagrams = 1;
        self.closed = false;
    }

    /// The current train, finished: one datagram goes as it is; more get
    /// the train's lengths, the IPv4 checksum, the UDP pseudo-header seed
    /// and the GSO offload.
    pub fn finish(&mut self, pool: &mut Pool) -> Option<Frame> {
        let mut train = self.frame.take()?;
        if self.datagrams > 1 {
            let len = train.len();
            let stride = self.stride;
            let bytes = pool.data_mut(&mut train);
            let mut ip = Ipv4Packet::new_unchecked(&mut bytes[ETH_HDR..]);
            ip.set_total_len((len - ETH_HDR) as u16);
            ip.fill_checksum();
            let (src, dst) = (ip.src_addr().octets(), ip.dst_addr().octets());
            let udp_len = (len - ETH_HDR - 20) as u16;
            let mut u = UdpPacket::new_unchecked(&mut bytes[ETH_HDR + 20..]);
            u.set_length(udp_len);
            u.set_checksum(fold(pseudo_header_v4(src, dst, IPPROTO_UDP, udp_len)));
            train.offload = Offload {
                needs_csum: true,
                data_valid: false,
                gso_type: GSO_UDP_L4,
                hdr_len: TRAIN_HDR as u16,
                gso_size: stride as u16,
                csum_start: (ETH_HDR + 20) as u16,
                csum_offset: udp::CHECKSUM_OFFSET as u16,
                csum_lost: false,
            };
        }
        self.datagrams = 0;
        Some(train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vxlan::{encapsulate, Encap};
    use pmd::afpacket::{split_train, train_layout};
    use pmd::wire::MacAddr;
    use pmd::{PoolConfig, PortId};
    use std::net::Ipv4Addr;

    /// A VXLAN frame around an inner IPv4/TCP frame with `payload` bytes of
    /// data (the pattern `seed`), as the overlay sends a segment's piece.
    fn vxlan_frame(pool: &mut Pool, payload: usize, seed: u8) -> Frame {
        let mut inner = vec![0u8; 14 + 20 + 20 + payload];
        inner[12..14].copy_from_slice(&[0x08, 0x00]);
        inner[14] = 0x45;
        inner[16..18].copy_from_slice(&((20 + 20 + payload) as u16).to_be_bytes());
        inner[14 + 9] = 6;
        inner[14 + 20 + 12] = 5 << 4;
        for (i, b) in inner[54..].iter_mut().enumerate() {
            *b = seed.wrapping_add(i as u8);
        }
        let mut f = pool.alloc_copy(&inner).unwrap();
        let e = Encap {
            vni: 42,
            src_vtep: Ipv4Addr::new(10, 99, 0, 2),
            dst_vtep: Ipv4Addr::new(10, 99, 0, 3),
            src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 3]),
            udp_dst_port: 4789,
            ttl: 64,
        };
        encapsulate(pool, &mut f, &e).unwrap();
        f
    }

    #[test]
    fn a_train_is_cut_back_into_the_datagrams_it_was_built_from() {
        let mut pool = Pool::new(PoolConfig::default()).unwrap();
        let sizes = [1398, 1398, 1398, 1398, 700];
        let originals: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let f = vxlan_frame(&mut pool, *n, i as u8);
                let bytes = pool.data(&f).to_vec();
                pool.free(f);
                bytes
            })
            .collect();
        let mut train = Train::default();
        for (i, n) in sizes.iter().enumerate() {
            let f = vxlan_frame(&mut pool, *n, i as u8);
            assert!(
                train.push(&mut pool, f).is_none(),
                "one train holds all five"
            );
        }
        let t = train.finish(&mut pool).unwrap();
        assert_eq!(t.offload.gso_type, GSO_UDP_L4);
        assert_eq!(
            usize::from(t.offload.gso_size),
            originals[0].len() - TRAIN_HDR
        );
        let bytes = pool.data(&t).to_vec();
        let ip = Ipv4Packet::new_checked(&bytes[ETH_HDR..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(usize::from(ip.total_len()), bytes.len() - ETH_HDR);
        let (payload, stride) = train_layout(&bytes).expect("seen as a train");
        assert_eq!(
            (payload, stride),
            (TRAIN_HDR, originals[0].len() - TRAIN_HDR)
        );
        let mut out = Vec::new();
        assert_eq!(
            split_train(&mut pool, &t, payload, stride, PortId(1), &mut out),
            5
        );
        for (got, want) in out.iter().zip(&originals) {
            let got = pool.data(got);
            let ip = Ipv4Packet::new_checked(&got[ETH_HDR..]).unwrap();
            assert!(ip.verify_checksum());
            // Equal but for the IPv4 checksum (same id, same length, so
            // equal too) and the UDP checksum, which a split leaves zero.
            assert_eq!(got.len(), want.len());
            assert_eq!(got[..40], want[..40]);
            assert_eq!(got[42..], want[42..]);
        }
        for f in out {
            pool.free(f);
        }
        pool.free(t);
        assert_eq!(pool.in_flight(), 0);
    }

    #[test]
    fn a_lone_datagram_and_a_short_one_in_the_middle_end_trains() {
        let mut pool = Pool::new(PoolConfig::default()).unwrap();
        let mut train = Train::default();
        let f = vxlan_frame(&mut pool, 1398, 0);
        assert!(train.push(&mut pool, f).is_none());
        let f = vxlan_frame(&mut pool, 500, 1);
        assert!(train.push(&mut pool, f).is_none());
        // A full-size one after a short one starts a new train.
        let f = vxlan_frame(&mut pool, 1398, 2);
        let first = train
            .push(&mut pool, f)
            .expect("the short datagram closed it");
        assert_eq!(first.offload.gso_type, GSO_UDP_L4);
        let lone = train.finish(&mut pool).unwrap();
        assert_eq!(lone.offload.gso_type, 0, "one datagram goes as it is");
        assert!(train_layout(pool.data(&lone)).is_none());
        pool.free(first);
        pool.free(lone);
        assert_eq!(pool.in_flight(), 0);
    }
}
