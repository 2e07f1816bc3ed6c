//! The connection table: one compact [`Entry`] per connection in a slab,
//! found from either direction's 5-tuple through one hash index.
//!
//! Layout, measured by `bytes_per_connection` (printed by the bench):
//! a 32-byte entry (both tuples, expiry, protocol, state, flags) plus two
//! 4-byte index slots (the entry number and the side) with hashbrown's
//! one control byte each, at its 7/8 maximum load. The index stores no
//! keys: a probe compares against the entry's tuple, which costs one more
//! cache line per lookup than a key-holding index but keeps a connection
//! near 45 bytes instead of about 100.
//!
//! Expiry is lazy with an incremental sweep: a lookup that finds an
//! expired entry treats it as absent (the caller removes it), and
//! [`ConnTrack::sweep`] visits a bounded number of slab slots per call
//! from a rotating cursor, so no call scans the whole table.

use core::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::state::Side;

/// One direction of a connection as it appears on the wire before
/// translation: addresses and ports in host order. For ICMP echo the
/// identifier is the source "port" of a request and the destination
/// "port" of a reply; the other port is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source port (or echo id).
    pub sport: u16,
    /// Destination port (or echo id).
    pub dport: u16,
}

impl Tuple {
    /// The same flow seen from the other end.
    #[inline]
    pub fn inverted(self) -> Tuple {
        Tuple {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

/// The entry holds an SNAT port from the allocator (release on removal).
pub(crate) const F_SNAT_PORT: u8 = 1;
/// A hairpin connection (container to external address to container).
pub(crate) const F_HAIRPIN: u8 = 2;
/// The first FIN came from the reply side.
pub(crate) const F_CLOSER_REPLY: u8 = 4;
/// A connection from outside to a mapped port.
pub(crate) const F_DNAT: u8 = 8;

/// One connection. `tuples[Orig]` is the first packet's tuple as it
/// arrived, `tuples[Reply]` the tuple its answers arrive with. A packet
/// that matches side `s` is rewritten to `tuples[s.other()].inverted()`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Entry {
    pub tuples: [Tuple; 2],
    /// Second (of `now_ns / 1e9`) from which the entry is dead.
    pub expires_s: u32,
    /// IP protocol; 0 marks a free slab slot.
    pub proto: u8,
    /// `TcpState` as a byte; for UDP 1 once replied; 0 for ICMP.
    pub state: u8,
    /// `F_*` bits.
    pub flags: u8,
}

#[inline]
fn code(idx: u32, side: Side) -> u32 {
    idx << 1 | side as u32
}

#[inline]
fn side_of(code: u32) -> Side {
    if code & 1 == 0 {
        Side::Orig
    } else {
        Side::Reply
    }
}

#[inline]
fn hash(hasher: &DefaultHashBuilder, proto: u8, t: &Tuple) -> u64 {
    let a = (t.src as u64) << 32 | t.dst as u64;
    let b = (t.sport as u64) << 24 | (t.dport as u64) << 8 | proto as u64;
    hasher.hash_one((a, b))
}

/// The table. Bounded by `max` live entries; never evicts a live one.
pub(crate) struct ConnTrack {
    entries: Vec<Entry>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    live: usize,
    max: usize,
    cursor: usize,
}

impl ConnTrack {
    pub fn new(max: usize) -> ConnTrack {
        let initial = max.min(4096);
        ConnTrack {
            entries: Vec::with_capacity(initial),
            free: Vec::new(),
            index: HashTable::with_capacity(2 * initial),
            hasher: DefaultHashBuilder::default(),
            live: 0,
            max,
            cursor: 0,
        }
    }

    /// Entries in the table (live or expired but not yet removed).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_full(&self) -> bool {
        self.live >= self.max
    }

    /// The entry and side whose tuple is `t`, expired or not.
    #[inline]
    pub fn lookup(&self, proto: u8, t: &Tuple) -> Option<(u32, Side)> {
        let h = hash(&self.hasher, proto, t);
        let entries = &self.entries;
        self.index
            .find(h, |&c| {
                let e = &entries[(c >> 1) as usize];
                e.proto == proto && e.tuples[(c & 1) as usize] == *t
            })
            .map(|&c| (c >> 1, side_of(c)))
    }

    #[inline]
    pub fn get(&self, idx: u32) -> &Entry {
        &self.entries[idx as usize]
    }

    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> &mut Entry {
        &mut self.entries[idx as usize]
    }

    /// Adds a connection whose two tuples are both absent (the caller
    /// checked), and returns its number. The caller checked `is_full`.
    pub fn insert(&mut self, e: Entry) -> u32 {
        let idx = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = e;
                i
            }
            None => {
                self.entries.push(e);
                (self.entries.len() - 1) as u32
            }
        };
        let ConnTrack {
            entries,
            index,
            hasher,
            ..
        } = self;
        for side in [Side::Orig, Side::Reply] {
            let h = hash(hasher, e.proto, &e.tuples[side as usize]);
            index.insert_unique(h, code(idx, side), |&c| {
                let e = &entries[(c >> 1) as usize];
                hash(hasher, e.proto, &e.tuples[(c & 1) as usize])
            });
        }
        self.live += 1;
        idx
    }

    /// Removes entry `idx` and returns what it was.
    pub fn remove(&mut self, idx: u32) -> Entry {
        let e = self.entries[idx as usize];
        for side in [Side::Orig, Side::Reply] {
            let h = hash(&self.hasher, e.proto, &e.tuples[side as usize]);
            if let Ok(o) = self.index.find_entry(h, |&c| c == code(idx, side)) {
                o.remove();
            }
        }
        self.entries[idx as usize].proto = 0;
        self.free.push(idx);
        self.live -= 1;
        e
    }

    /// Visits up to `budget` slab slots from the cursor and removes the
    /// expired entries among them, handing each to `gone`. Returns the
    /// number removed.
    pub fn sweep(&mut self, now_s: u32, budget: usize, mut gone: impl FnMut(Entry)) -> usize {
        let n = self.entries.len();
        if n == 0 {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            if self.cursor >= n {
                self.cursor = 0;
            }
            let idx = self.cursor as u32;
            self.cursor += 1;
            let e = &self.entries[idx as usize];
            if e.proto != 0 && e.expires_s <= now_s {
                gone(self.remove(idx));
                removed += 1;
            }
        }
        removed
    }

    /// Removes every entry `keep` refuses, handing each to `gone`. A full
    /// pass: for reloads, never on the packet path.
    pub fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool, mut gone: impl FnMut(Entry)) {
        for idx in 0..self.entries.len() as u32 {
            let e = &self.entries[idx as usize];
            if e.proto != 0 && !keep(e) {
                gone(self.remove(idx));
            }
        }
    }

    /// Every entry in use (expired ones not yet removed included), in
    /// slab order.
    pub fn live(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.proto != 0)
    }

    /// A new bound; live entries above it stay (never evicted), new ones
    /// are refused until they drain.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Heap bytes held now (slab, free list, index).
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * core::mem::size_of::<Entry>()
            + self.free.capacity() * 4
            + self.index.allocation_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(a: u32, p: u16) -> Tuple {
        Tuple {
            src: a,
            dst: 99,
            sport: p,
            dport: 80,
        }
    }

    #[test]
    fn an_entry_is_found_from_both_directions_and_gone_after_removal() {
        let mut ct = ConnTrack::new(8);
        let e = Entry {
            tuples: [t(1, 1000), t(2, 2000)],
            expires_s: 10,
            proto: 6,
            ..Entry::default()
        };
        let i = ct.insert(e);
        assert_eq!(ct.lookup(6, &t(1, 1000)), Some((i, Side::Orig)));
        assert_eq!(ct.lookup(6, &t(2, 2000)), Some((i, Side::Reply)));
        assert_eq!(ct.lookup(17, &t(1, 1000)), None);
        ct.remove(i);
        assert_eq!(ct.lookup(6, &t(1, 1000)), None);
        assert_eq!(ct.len(), 0);
    }

    #[test]
    fn the_sweep_removes_only_expired_entries_within_its_budget() {
        let mut ct = ConnTrack::new(100);
        for i in 0..10u32 {
            ct.insert(Entry {
                tuples: [t(i, 1), t(i, 2)],
                expires_s: if i % 2 == 0 { 5 } else { 50 },
                proto: 17,
                ..Entry::default()
            });
        }
        let mut seen = 0;
        assert_eq!(ct.sweep(10, 4, |_| seen += 1), 2);
        assert_eq!(ct.sweep(10, 100, |_| seen += 1), 3);
        assert_eq!((seen, ct.len()), (5, 5));
    }

    #[test]
    fn an_entry_is_32_bytes() {
        assert_eq!(core::mem::size_of::<Entry>(), 32);
    }
}
