//! External port (and ICMP id) allocation with endpoint-independent
//! mapping.
//!
//! RFC 4787 section 4.1, REQ-1: "A NAT MUST have an 'Endpoint-Independent
//! Mapping' behavior." An internal `ip:port` keeps one external port for
//! every destination while any of its connections lives; the mapping is
//! counted by references and the port returns to the pool with the last
//! connection. RFC 5382 section 4.1, REQ-1: "A NAT MUST have an
//! 'Endpoint-Independent Mapping' behavior for TCP."
//!
//! RFC 4787 section 4.2.1, REQ-3: "A NAT MUST NOT have a 'Port assignment'
//! behavior of 'Port overloading'." One external port belongs to one
//! internal endpoint, so the range bounds the number of distinct internal
//! endpoints per protocol, not the number of connections.
//!
//! Port preservation is optional in RFC 4787 (section 4.2.1); like Linux,
//! the internal port is kept when it is in the range and free, otherwise
//! the next free port from a rotating cursor is taken.

use hashbrown::HashMap;

use pmd::wire::{IPPROTO_TCP, IPPROTO_UDP};

#[derive(Debug, Clone, Copy)]
struct Mapping {
    external: u16,
    refs: u32,
}

/// Free ports per protocol as bitsets, and the live mappings.
pub(crate) struct PortAllocator {
    lo: u16,
    hi: u16,
    /// Bit set = port held by a mapping (bits past the range always set).
    used: [Vec<u64>; 3],
    /// Bit set = a mapped host port, never handed out.
    reserved: [Vec<u64>; 3],
    cursor: [u32; 3],
    mappings: HashMap<(u8, u32, u16), Mapping>,
}

fn slot(proto: u8) -> usize {
    match proto {
        IPPROTO_TCP => 0,
        IPPROTO_UDP => 1,
        _ => 2,
    }
}

impl PortAllocator {
    pub fn new(lo: u16, hi: u16) -> PortAllocator {
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        let n = (hi - lo) as usize + 1;
        let words = n.div_ceil(64);
        let mut bits = vec![0u64; words];
        // Bits past the range are permanently taken.
        for i in n..words * 64 {
            bits[i / 64] |= 1 << (i % 64);
        }
        PortAllocator {
            lo,
            hi,
            used: [bits.clone(), bits.clone(), bits],
            reserved: [vec![0; words], vec![0; words], vec![0; words]],
            cursor: [0; 3],
            mappings: HashMap::new(),
        }
    }

    fn bit(&self, port: u16) -> Option<usize> {
        (self.lo..=self.hi)
            .contains(&port)
            .then(|| (port - self.lo) as usize)
    }

    /// Takes a mapped host port out of the SNAT range (until
    /// [`PortAllocator::clear_reserved`]). An endpoint that holds it
    /// already keeps it until its connections end.
    pub fn reserve(&mut self, proto: u8, port: u16) {
        if let Some(b) = self.bit(port) {
            self.reserved[slot(proto)][b / 64] |= 1 << (b % 64);
        }
    }

    /// Forgets every reserved host port (a reload reserves the new set).
    pub fn clear_reserved(&mut self) {
        for r in &mut self.reserved {
            r.fill(0);
        }
    }

    fn taken(&self, s: usize, w: usize) -> u64 {
        self.used[s][w] | self.reserved[s][w]
    }

    /// The external port of `ip:port`: the existing mapping (one more
    /// reference) or a new one. `None` when the range is exhausted.
    pub fn acquire(&mut self, proto: u8, ip: u32, port: u16) -> Option<u16> {
        if let Some(m) = self.mappings.get_mut(&(proto, ip, port)) {
            m.refs += 1;
            return Some(m.external);
        }
        let s = slot(proto);
        let b = match self.bit(port) {
            Some(b) if self.taken(s, b / 64) & (1 << (b % 64)) == 0 => b,
            _ => self.next_free(s)?,
        };
        self.used[s][b / 64] |= 1 << (b % 64);
        let external = self.lo + b as u16;
        self.mappings
            .insert((proto, ip, port), Mapping { external, refs: 1 });
        Some(external)
    }

    fn next_free(&mut self, s: usize) -> Option<usize> {
        let n = self.used[s].len();
        let start = self.cursor[s] as usize % n;
        for k in 0..n {
            let w = (start + k) % n;
            let word = self.taken(s, w);
            if word != u64::MAX {
                let b = w * 64 + (!word).trailing_zeros() as usize;
                self.cursor[s] = w as u32;
                return Some(b);
            }
        }
        None
    }

    /// Drops one reference of `ip:port`'s mapping; the port is free again
    /// with the last.
    pub fn release(&mut self, proto: u8, ip: u32, port: u16) {
        let key = (proto, ip, port);
        let Some(m) = self.mappings.get_mut(&key) else {
            return;
        };
        m.refs -= 1;
        if m.refs == 0 {
            let external = m.external;
            self.mappings.remove(&key);
            if let Some(b) = self.bit(external) {
                self.used[slot(proto)][b / 64] &= !(1 << (b % 64));
            }
        }
    }

    /// Internal endpoints holding a port now.
    pub fn mappings(&self) -> usize {
        self.mappings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_internal_port_in_the_range_is_kept() {
        let mut p = PortAllocator::new(1000, 1999);
        assert_eq!(p.acquire(6, 1, 1500), Some(1500));
        assert_ne!(p.acquire(6, 2, 1500), Some(1500));
    }

    #[test]
    fn a_mapping_lives_until_its_last_reference_goes() {
        let mut p = PortAllocator::new(1000, 1001);
        let a = p.acquire(17, 1, 5).unwrap();
        assert_eq!(p.acquire(17, 1, 5), Some(a));
        p.release(17, 1, 5);
        assert_eq!(p.mappings(), 1);
        p.release(17, 1, 5);
        assert_eq!(p.mappings(), 0);
    }

    #[test]
    fn reserved_ports_are_never_handed_out_and_the_range_runs_out() {
        let mut p = PortAllocator::new(1000, 1002);
        p.reserve(6, 1001);
        let got: Vec<_> = (0..3).map(|i| p.acquire(6, i, 5)).collect();
        assert_eq!(got, [Some(1000), Some(1002), None]);
        assert_eq!(
            p.acquire(17, 9, 5),
            Some(1000),
            "protocols have their own ports"
        );
    }

    #[test]
    fn a_released_port_that_became_reserved_stays_reserved() {
        let mut p = PortAllocator::new(1000, 1001);
        assert_eq!(p.acquire(6, 1, 1000), Some(1000));
        p.reserve(6, 1000);
        p.release(6, 1, 1000);
        assert_eq!(p.acquire(6, 2, 1000), Some(1001));
        p.clear_reserved();
        assert_eq!(p.acquire(6, 3, 1000), Some(1000));
    }
}
