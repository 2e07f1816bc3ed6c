//! The forwarding database of one virtual switch: MAC -> port, learned from
//! source addresses, aged out lazily.
//!
//! Lookups check an entry's age, so an aged entry is never used even before
//! the periodic sweep removes it; the sweep only reclaims memory and walks
//! at most `SWEEP_BUDGET` entries a call, so no call stops the world.

use hashbrown::HashMap;
use pmd::wire::MacAddr;
use pmd::PortId;

/// Entries walked per `sweep` call.
const SWEEP_BUDGET: usize = 4096;

/// One learned address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    /// Where the MAC was last seen.
    pub port: PortId,
    /// When, in engine nanoseconds.
    pub seen_ns: u64,
}

/// What learning a source address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Known on the same port; timestamp refreshed.
    Refreshed,
    /// New, or moved from another port (a VM or container migrated).
    New,
    /// The table is full: not learned, frames to it are flooded.
    TableFull,
}

/// A MAC table with a size limit and an aging time.
#[derive(Debug)]
pub struct Fdb {
    entries: HashMap<u64, FdbEntry>,
    max_entries: usize,
    aging_ns: u64,
    sweep_cursor: usize,
}

impl Fdb {
    /// A table of at most `max_entries` with `aging_secs` aging.
    pub fn new(max_entries: usize, aging_secs: u32) -> Fdb {
        Fdb {
            entries: HashMap::with_capacity(max_entries.min(4096)),
            max_entries,
            aging_ns: aging_secs as u64 * 1_000_000_000,
            sweep_cursor: 0,
        }
    }

    /// Learns `mac` on `port` at `now_ns`.
    #[inline(always)]
    pub fn learn(&mut self, mac: MacAddr, port: PortId, now_ns: u64) -> Learned {
        let key = mac.to_u64();
        if let Some(e) = self.entries.get_mut(&key) {
            let moved = e.port != port || now_ns.saturating_sub(e.seen_ns) > self.aging_ns;
            e.port = port;
            e.seen_ns = now_ns;
            return if moved {
                Learned::New
            } else {
                Learned::Refreshed
            };
        }
        if self.entries.len() >= self.max_entries {
            return Learned::TableFull;
        }
        self.entries.insert(
            key,
            FdbEntry {
                port,
                seen_ns: now_ns,
            },
        );
        Learned::New
    }

    /// The port of a live entry.
    #[inline]
    pub fn lookup(&self, mac: MacAddr, now_ns: u64) -> Option<PortId> {
        let e = self.entries.get(&mac.to_u64())?;
        (now_ns.saturating_sub(e.seen_ns) <= self.aging_ns).then_some(e.port)
    }

    /// Removes aged entries, walking at most `SWEEP_BUDGET` of them.
    pub fn sweep(&mut self, now_ns: u64) -> usize {
        let before = self.entries.len();
        let aging = self.aging_ns;
        let mut walked = 0;
        let skip = self.sweep_cursor;
        let mut dead = Vec::new();
        for (k, e) in self.entries.iter().skip(skip).take(SWEEP_BUDGET) {
            walked += 1;
            if now_ns.saturating_sub(e.seen_ns) > aging {
                dead.push(*k);
            }
        }
        for k in dead {
            self.entries.remove(&k);
        }
        self.sweep_cursor = if walked < SWEEP_BUDGET {
            0
        } else {
            skip + walked
        };
        before - self.entries.len()
    }

    /// Removes every entry pointing at `port` (the port went away).
    pub fn flush_port(&mut self, port: PortId) {
        self.entries.retain(|_, e| e.port != port);
    }

    /// Live entries, for `ctl fdb` and the demo.
    pub fn entries(&self, now_ns: u64) -> Vec<(MacAddr, FdbEntry)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| now_ns.saturating_sub(e.seen_ns) <= self.aging_ns)
            .map(|(k, e)| {
                let b = k.to_be_bytes();
                (MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]), *e)
            })
            .collect();
        v.sort_by_key(|(m, _)| *m);
        v
    }

    /// Number of entries (live or not yet swept).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn a_learned_mac_is_found_on_its_port_until_it_ages_out() {
        let mut fdb = Fdb::new(16, 300);
        assert_eq!(fdb.learn(mac(1), PortId(3), 0), Learned::New);
        assert_eq!(fdb.lookup(mac(1), 299 * SEC), Some(PortId(3)));
        assert_eq!(fdb.lookup(mac(1), 301 * SEC), None);
        assert_eq!(fdb.sweep(301 * SEC), 1);
        assert!(fdb.is_empty());
    }

    #[test]
    fn traffic_refreshes_an_entry_and_a_move_is_reported() {
        let mut fdb = Fdb::new(16, 300);
        fdb.learn(mac(1), PortId(1), 0);
        assert_eq!(fdb.learn(mac(1), PortId(1), 200 * SEC), Learned::Refreshed);
        assert_eq!(fdb.lookup(mac(1), 450 * SEC), Some(PortId(1)));
        assert_eq!(fdb.learn(mac(1), PortId(2), 451 * SEC), Learned::New);
        assert_eq!(fdb.lookup(mac(1), 451 * SEC), Some(PortId(2)));
    }

    #[test]
    fn a_full_table_refuses_new_macs_but_keeps_the_old_ones() {
        let mut fdb = Fdb::new(2, 300);
        fdb.learn(mac(1), PortId(1), 0);
        fdb.learn(mac(2), PortId(1), 0);
        assert_eq!(fdb.learn(mac(3), PortId(1), 0), Learned::TableFull);
        assert_eq!(fdb.lookup(mac(3), 0), None);
        assert_eq!(fdb.lookup(mac(1), 0), Some(PortId(1)));
    }
}
