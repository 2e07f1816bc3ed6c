//! Address allocation in one subnet: the next free host address, lowest
//! first, as Docker's default IPAM hands them out.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

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
        }
    }

    /// Whether `ip` is a host address of the subnet (not its network or
    /// broadcast address).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(ip))
    }

    /// Marks `ip` taken. Returns false if it already was.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        self.taken.insert(u32::from(ip))
    }

    /// The lowest free host address, now taken; `None` when the subnet is
    /// full.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        // The cursor only moves up: everything below it is taken, so a run
        // of allocations costs one pass over the subnet in all.
        let mut a = self.cursor;
        while a <= self.last {
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
}
