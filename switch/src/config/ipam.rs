//! Address pools of one network: the next free host address, lowest
//! first, as Docker's default IPAM hands them out, skipping the gateway and
//! the reserved ranges; and the next free MAC of the network's MAC pool.
//!
//! One type for every place that hands out addresses: the checker (static
//! and IPAM-chosen endpoints of the file), `ctl endpoint add`, reload's
//! `keep_addresses`, and Docker's IPAM driver. Each rebuilds the pool from
//! the addresses in use, so an address goes back to the pool when its
//! endpoint goes away, and none is handed out twice.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use pmd::wire::MacAddr;

use super::NetworkCfg;

/// Free host addresses of one subnet. Reserve what is taken (the gateway,
/// addresses given in the file) first, then allocate: each allocation is
/// the lowest host address not yet reserved or allocated.
#[derive(Debug, Clone)]
pub struct Ipam {
    /// First and last host address, as integers (inclusive).
    first: u32,
    last: u32,
    /// Where the next search starts: everything below is taken.
    cursor: u32,
    taken: BTreeSet<u32>,
    /// Ranges never handed out (`reserved`), inclusive; kept as ranges,
    /// not addresses, so a reserved /16 costs nothing.
    reserved: Vec<(u32, u32)>,
    /// The network's MAC pool, if it has one.
    macs: Option<MacPool>,
}

/// Free MACs of a `mac_pool`, lowest first.
#[derive(Debug, Clone)]
struct MacPool {
    first: u64,
    last: u64,
    cursor: u64,
    taken: BTreeSet<u64>,
}

fn mac_u64(m: MacAddr) -> u64 {
    m.0.iter().fold(0, |a, b| a << 8 | u64::from(*b))
}

fn u64_mac(v: u64) -> MacAddr {
    let b = v.to_be_bytes();
    MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl Ipam {
    /// An allocator over the host addresses of `subnet`: without the network
    /// and broadcast addresses, except in a /31 or /32 (RFC 3021), where
    /// every address is a host.
    pub fn new(subnet: Ipv4Net) -> Ipam {
        let net = u32::from(subnet.network());
        let bcast = u32::from(subnet.broadcast());
        let (first, last) = if subnet.prefix_len() >= 31 {
            (net, bcast)
        } else {
            (net + 1, bcast - 1)
        };
        Ipam {
            first,
            last,
            cursor: first,
            taken: BTreeSet::new(),
            reserved: Vec::new(),
            macs: None,
        }
    }

    /// The pools of network `n`: its subnet less the gateway and the
    /// `reserved` ranges, and its `mac_pool`.
    pub fn for_network(n: &NetworkCfg) -> Ipam {
        let mut ipam = Ipam::new(n.subnet);
        if let Some(g) = n.gateway {
            ipam.reserve(g);
        }
        ipam.reserved = n
            .reserved
            .iter()
            .map(|(a, b)| (u32::from(*a), u32::from(*b)))
            .collect();
        ipam.macs = n.mac_pool.map(|(a, b)| MacPool {
            first: mac_u64(a),
            last: mac_u64(b),
            cursor: mac_u64(a),
            taken: BTreeSet::new(),
        });
        ipam
    }

    /// Whether `ip` is a host address of the subnet (not its network or
    /// broadcast address).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(ip))
    }

    /// Whether `ip` is in a `reserved` range.
    pub fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        let a = u32::from(ip);
        self.reserved
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&a))
    }

    /// Marks `ip` taken. Returns false if it already was.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        self.taken.insert(u32::from(ip))
    }

    /// Gives `ip` back: the next allocation may hand it out again.
    pub fn release(&mut self, ip: Ipv4Addr) {
        let a = u32::from(ip);
        if self.taken.remove(&a) {
            self.cursor = self.cursor.min(a);
        }
    }

    /// The lowest free host address, now taken; `None` when the subnet is
    /// full.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        // The cursor only moves up: everything below it is taken, so a run
        // of allocations costs one pass over the subnet in all.
        let mut a = self.cursor;
        while a <= self.last {
            if let Some(&(_, hi)) = self
                .reserved
                .iter()
                .find(|(lo, hi)| (*lo..=*hi).contains(&a))
            {
                if hi >= self.last {
                    break;
                }
                a = hi + 1;
                continue;
            }
            if self.taken.insert(a) {
                self.cursor = a.saturating_add(1);
                return Some(Ipv4Addr::from(a));
            }
            if a == u32::MAX {
                break;
            }
            a += 1;
        }
        self.cursor = self.last.saturating_add(1).max(self.cursor);
        None
    }

    /// Whether the network has a MAC pool and `mac` is in it.
    pub fn in_mac_pool(&self, mac: MacAddr) -> bool {
        self.macs
            .as_ref()
            .is_some_and(|p| (p.first..=p.last).contains(&mac_u64(mac)))
    }

    /// Marks `mac` taken in the MAC pool (a no-op outside it).
    pub fn reserve_mac(&mut self, mac: MacAddr) {
        if let Some(p) = self.macs.as_mut() {
            p.taken.insert(mac_u64(mac));
        }
    }

    /// The MAC for an endpoint at `ip` that was given none: the lowest free
    /// MAC of the pool, now taken, or without a pool the MAC derived from
    /// `ip` (unique because the address is). `None` when the pool is used
    /// up.
    pub fn allocate_mac(&mut self, ip: Ipv4Addr) -> Option<MacAddr> {
        let Some(p) = self.macs.as_mut() else {
            return Some(MacAddr::from_ipv4(ip));
        };
        let mut m = p.cursor;
        while m <= p.last {
            // A pool across a multicast first octet (01:..) skips it: an
            // endpoint's MAC is unicast.
            if (m >> 40) & 1 == 1 {
                m = ((m >> 40) + 1) << 40;
                continue;
            }
            if p.taken.insert(m) {
                p.cursor = m + 1;
                return Some(u64_mac(m));
            }
            m += 1;
        }
        p.cursor = m;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn allocation_starts_at_the_first_host_and_skips_the_gateway() {
        let mut ipam = Ipam::new(net("172.30.0.0/24"));
        assert!(ipam.reserve(ip("172.30.0.1")));
        assert_eq!(ipam.allocate(), Some(ip("172.30.0.2")));
        assert_eq!(ipam.allocate(), Some(ip("172.30.0.3")));
    }

    #[test]
    fn allocation_skips_addresses_taken_by_other_endpoints() {
        let mut ipam = Ipam::new(net("10.0.0.0/24"));
        ipam.reserve(ip("10.0.0.1"));
        ipam.reserve(ip("10.0.0.2"));
        ipam.reserve(ip("10.0.0.4"));
        assert_eq!(ipam.allocate(), Some(ip("10.0.0.3")));
        assert_eq!(ipam.allocate(), Some(ip("10.0.0.5")));
    }

    #[test]
    fn reserving_a_taken_address_twice_says_so() {
        let mut ipam = Ipam::new(net("10.0.0.0/24"));
        assert!(ipam.reserve(ip("10.0.0.9")));
        assert!(!ipam.reserve(ip("10.0.0.9")));
    }

    #[test]
    fn a_full_subnet_allocates_nothing_and_never_the_broadcast() {
        // A /30 has two hosts: .1 (the gateway) and .2.
        let mut ipam = Ipam::new(net("10.0.0.0/30"));
        ipam.reserve(ip("10.0.0.1"));
        assert_eq!(ipam.allocate(), Some(ip("10.0.0.2")));
        assert_eq!(ipam.allocate(), None);
        assert_eq!(ipam.allocate(), None);
    }

    #[test]
    fn network_and_broadcast_addresses_are_not_hosts() {
        let ipam = Ipam::new(net("10.0.0.0/24"));
        assert!(!ipam.is_host(ip("10.0.0.0")));
        assert!(!ipam.is_host(ip("10.0.0.255")));
        assert!(!ipam.is_host(ip("10.0.1.1")));
        assert!(ipam.is_host(ip("10.0.0.254")));
    }

    #[test]
    fn the_top_of_the_address_space_does_not_overflow() {
        let mut ipam = Ipam::new(net("255.255.255.254/31"));
        assert_eq!(ipam.allocate(), Some(ip("255.255.255.254")));
        assert_eq!(ipam.allocate(), Some(ip("255.255.255.255")));
        assert_eq!(ipam.allocate(), None);
    }

    fn network(
        subnet: &str,
        reserved: &[(&str, &str)],
        mac_pool: Option<(&str, &str)>,
    ) -> NetworkCfg {
        NetworkCfg {
            name: "n".into(),
            mode: super::super::NetworkMode::Nat,
            subnet: net(subnet),
            gateway: Some(net(subnet).hosts().next().unwrap()),
            uplink: None,
            vni: None,
            mtu: None,
            vxlan_port: 4789,
            gateway_mac: None,
            reserved: reserved.iter().map(|(a, b)| (ip(a), ip(b))).collect(),
            mac_pool: mac_pool.map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap())),
            dns: Vec::new(),
            endpoint_link: Default::default(),
        }
    }

    #[test]
    fn allocation_skips_the_gateway_and_the_reserved_ranges() {
        let n = network(
            "10.0.0.0/24",
            &[("10.0.0.2", "10.0.0.9"), ("10.0.0.11", "10.0.0.11")],
            None,
        );
        let mut ipam = Ipam::for_network(&n);
        assert!(ipam.is_reserved(ip("10.0.0.5")));
        assert!(!ipam.is_reserved(ip("10.0.0.10")));
        assert_eq!(ipam.allocate(), Some(ip("10.0.0.10")));
        assert_eq!(ipam.allocate(), Some(ip("10.0.0.12")));
    }

    #[test]
    fn a_subnet_reserved_to_its_end_is_exhausted() {
        let n = network("10.0.0.0/29", &[("10.0.0.3", "10.0.0.6")], None);
        let mut ipam = Ipam::for_network(&n);
        assert_eq!(ipam.allocate(), Some(ip("10.0.0.2")));
        assert_eq!(ipam.allocate(), None);
    }

    #[test]
    fn a_released_address_is_handed_out_again_lowest_first() {
        let mut ipam = Ipam::for_network(&network("10.0.0.0/24", &[], None));
        assert_eq!(ipam.allocate(), Some(ip("10.0.0.2")));
        assert_eq!(ipam.allocate(), Some(ip("10.0.0.3")));
        assert_eq!(ipam.allocate(), Some(ip("10.0.0.4")));
        ipam.release(ip("10.0.0.3"));
        assert_eq!(ipam.allocate(), Some(ip("10.0.0.3")));
        assert_eq!(ipam.allocate(), Some(ip("10.0.0.5")));
    }

    #[test]
    fn without_a_mac_pool_the_mac_is_derived_from_the_address() {
        let mut ipam = Ipam::for_network(&network("10.0.0.0/24", &[], None));
        assert_eq!(
            ipam.allocate_mac(ip("10.0.0.7")),
            Some(MacAddr::from_ipv4(ip("10.0.0.7")))
        );
    }

    #[test]
    fn a_mac_pool_hands_out_its_free_macs_in_order_until_it_is_used_up() {
        let n = network(
            "10.0.0.0/24",
            &[],
            Some(("00:15:5d:00:00:fe", "00:15:5d:00:01:01")),
        );
        let mut ipam = Ipam::for_network(&n);
        ipam.reserve_mac("00:15:5d:00:00:ff".parse().unwrap());
        let got: Vec<String> = (0..3)
            .map(|_| ipam.allocate_mac(ip("10.0.0.2")).unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "00:15:5d:00:00:fe",
                "00:15:5d:00:01:00",
                "00:15:5d:00:01:01"
            ]
        );
        assert_eq!(ipam.allocate_mac(ip("10.0.0.2")), None);
        assert!(ipam.in_mac_pool("00:15:5d:00:01:00".parse().unwrap()));
        assert!(!ipam.in_mac_pool("00:15:5d:00:02:00".parse().unwrap()));
    }

    #[test]
    fn a_mac_pool_across_a_multicast_first_octet_skips_it() {
        let n = network(
            "10.0.0.0/24",
            &[],
            Some(("00:ff:ff:ff:ff:ff", "02:00:00:00:00:00")),
        );
        let mut ipam = Ipam::for_network(&n);
        let a = ipam.allocate_mac(ip("10.0.0.2")).unwrap();
        let b = ipam.allocate_mac(ip("10.0.0.3")).unwrap();
        assert_eq!(
            (a.to_string().as_str(), b.to_string().as_str()),
            ("00:ff:ff:ff:ff:ff", "02:00:00:00:00:00")
        );
        assert_eq!(ipam.allocate_mac(ip("10.0.0.4")), None);
    }
}
