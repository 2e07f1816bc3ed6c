//! The neighbour (ARP) cache of an uplink: next-hop IP -> MAC with expiry,
//! and the frames waiting for a resolution. Used by NAT for the next hop of
//! translated traffic and by the overlay for the underlay next hop.
//!
//! While a next hop is unresolved, up to `HOLD_PER_HOP` frames wait for it
//! (like Linux's `unres_qlen`); more are dropped and counted. A request goes
//! out at most once per `RETRY_NS`; after `MAX_TRIES` unanswered requests
//! the held frames are dropped.

use std::net::Ipv4Addr;

use hashbrown::HashMap;
use pmd::wire::MacAddr;
use pmd::Frame;

/// How long a learned neighbour is trusted.
pub const REACHABLE_NS: u64 = 60_000_000_000;
/// Interval between ARP requests for one address.
pub const RETRY_NS: u64 = 1_000_000_000;
/// Requests before giving up on the frames held for an address.
pub const MAX_TRIES: u32 = 3;
/// Frames held per unresolved next hop.
pub const HOLD_PER_HOP: usize = 8;
/// Unresolved next hops tracked at once.
pub const MAX_PENDING: usize = 256;

#[derive(Debug)]
struct Pending {
    held: Vec<Frame>,
    last_request_ns: u64,
    tries: u32,
}

/// What happened to a frame handed to [`NeighborCache::hold`].
#[derive(Debug)]
pub enum Hold {
    /// Held until the ARP reply; `request` says whether to send an ARP
    /// request now.
    Held {
        /// Send a request now.
        request: bool,
    },
    /// Not held (the queue for this hop, or the pending table, is full):
    /// the frame comes back to be dropped and counted.
    Full(Frame),
}

/// One neighbour as the control side lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborEntry {
    /// The next hop.
    pub ip: Ipv4Addr,
    /// Its MAC; `None` while unresolved.
    pub mac: Option<MacAddr>,
    /// `reachable`, `stale`, `static` or `incomplete` (as `ip neigh`).
    pub state: &'static str,
    /// Since it was last confirmed (or last asked, when incomplete);
    /// `None` for a configured one.
    pub age_ns: Option<u64>,
}

/// The cache.
#[derive(Debug, Default)]
pub struct NeighborCache {
    known: HashMap<Ipv4Addr, (MacAddr, u64)>,
    pending: HashMap<Ipv4Addr, Pending>,
}

impl NeighborCache {
    /// An empty cache.
    pub fn new() -> NeighborCache {
        NeighborCache::default()
    }

    /// The MAC of `ip`, when known and fresh.
    #[inline]
    pub fn lookup(&self, ip: Ipv4Addr, now_ns: u64) -> Option<MacAddr> {
        let (mac, seen) = self.known.get(&ip)?;
        (now_ns.saturating_sub(*seen) <= REACHABLE_NS).then_some(*mac)
    }

    /// Adds a neighbour that never expires (configured, not learned).
    pub fn add_static(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        // `u64::MAX` as "seen" keeps `lookup`'s age at zero forever.
        self.known.insert(ip, (mac, u64::MAX));
    }

    /// Holds `frame` until `ip` (not known: see `lookup`) resolves.
    pub fn hold(&mut self, ip: Ipv4Addr, frame: Frame, now_ns: u64) -> Hold {
        if !self.pending.contains_key(&ip) && self.pending.len() >= MAX_PENDING {
            return Hold::Full(frame);
        }
        let p = self.pending.entry(ip).or_insert(Pending {
            held: Vec::with_capacity(HOLD_PER_HOP),
            last_request_ns: 0,
            tries: 0,
        });
        if p.held.len() >= HOLD_PER_HOP {
            return Hold::Full(frame);
        }
        p.held.push(frame);
        let request = p.tries == 0 || now_ns.saturating_sub(p.last_request_ns) >= RETRY_NS;
        if request {
            p.tries += 1;
            p.last_request_ns = now_ns;
        }
        Hold::Held { request }
    }

    /// Learns `ip` at `mac` (an ARP reply or request seen on the uplink) and
    /// returns the frames that waited for it.
    pub fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr, now_ns: u64) -> Vec<Frame> {
        match self.known.get_mut(&ip) {
            // A configured neighbour stays as configured.
            Some((_, seen)) if *seen == u64::MAX => {}
            _ => {
                self.known.insert(ip, (mac, now_ns));
            }
        }
        self.pending.remove(&ip).map(|p| p.held).unwrap_or_default()
    }

    /// Next hops whose request is due again, and frames to drop because
    /// their hop never answered. Call from housekeeping.
    pub fn tick(&mut self, now_ns: u64) -> (Vec<Ipv4Addr>, Vec<Frame>) {
        let mut retry = Vec::new();
        let mut dead = Vec::new();
        self.pending.retain(|ip, p| {
            if now_ns.saturating_sub(p.last_request_ns) < RETRY_NS {
                return true;
            }
            if p.tries >= MAX_TRIES {
                dead.append(&mut p.held);
                return false;
            }
            p.tries += 1;
            p.last_request_ns = now_ns;
            retry.push(*ip);
            true
        });
        (retry, dead)
    }

    /// Every neighbour as `ctl neighbors` lists it: resolved ones with
    /// their MAC and age (`None` for a configured one), then the next hops
    /// still waiting for an answer.
    pub fn entries(&self, now_ns: u64) -> impl Iterator<Item = NeighborEntry> + '_ {
        let known = self.known.iter().map(move |(ip, (mac, seen))| {
            let age_ns = (*seen != u64::MAX).then(|| now_ns.saturating_sub(*seen));
            NeighborEntry {
                ip: *ip,
                mac: Some(*mac),
                state: match age_ns {
                    None => "static",
                    Some(a) if a <= REACHABLE_NS => "reachable",
                    Some(_) => "stale",
                },
                age_ns,
            }
        });
        let pending = self.pending.iter().map(move |(ip, p)| NeighborEntry {
            ip: *ip,
            mac: None,
            state: "incomplete",
            age_ns: Some(now_ns.saturating_sub(p.last_request_ns)),
        });
        known.chain(pending)
    }

    /// Known neighbours (for stats).
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Frames waiting for a resolution (a trace sees one frame join them).
    pub fn held(&self) -> usize {
        self.pending.values().map(|p| p.held.len()).sum()
    }

    /// Every held frame, for shutdown.
    pub fn drain_held(&mut self) -> Vec<Frame> {
        self.pending.drain().flat_map(|(_, p)| p.held).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_shows_static_reachable_stale_and_incomplete_neighbours() {
        let mut pool = pmd::Pool::new(pmd::PoolConfig::default()).unwrap();
        let mut n = NeighborCache::new();
        let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        n.add_static(Ipv4Addr::new(10, 0, 0, 1), mac);
        n.learn(Ipv4Addr::new(10, 0, 0, 2), mac, 0);
        n.learn(Ipv4Addr::new(10, 0, 0, 3), mac, REACHABLE_NS);
        let frame = pool.alloc_copy(&[0u8; 60]).unwrap();
        assert!(matches!(
            n.hold(Ipv4Addr::new(10, 0, 0, 4), frame, REACHABLE_NS),
            Hold::Held { request: true }
        ));
        let mut rows: Vec<NeighborEntry> = n.entries(REACHABLE_NS + 1).collect();
        rows.sort_by_key(|r| r.ip);
        let states: Vec<&str> = rows.iter().map(|r| r.state).collect();
        assert_eq!(states, ["static", "stale", "reachable", "incomplete"]);
        assert_eq!((rows[0].age_ns, rows[3].mac), (None, None));
        assert_eq!(rows[2].age_ns, Some(1));
        for f in n.drain_held() {
            pool.free(f);
        }
    }
}
