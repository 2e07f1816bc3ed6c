//! Later IPv4 fragments follow their first fragment.
//!
//! Only the first fragment carries ports, so it alone is matched against
//! the connection table; its translation (new source and destination) is
//! remembered under the datagram's identity (RFC 791: source,
//! destination, protocol and identification) and applied to the later
//! fragments, which only need their IPv4 addresses and header checksum
//! rewritten (the L4 checksum in the first fragment covers the whole
//! datagram and was updated there).
//!
//! The table is small, fixed and direct-mapped: 1024 slots, no allocation,
//! an entry lives 30 s (Linux's `ipfrag_time`) or until another datagram
//! hashes to its slot. A later fragment with no entry (it overtook its
//! first fragment, or its entry was overwritten) is dropped and counted
//! as `FragmentUnknown`: NAT does not reassemble or queue.

const SLOTS: usize = 1024;
const TTL_S: u32 = 30;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    src: u32,
    dst: u32,
    id: u16,
    proto: u8,
    live: bool,
    new_src: u32,
    new_dst: u32,
    expires_s: u32,
}

/// Translations of fragmented datagrams in flight.
pub(crate) struct FragTable {
    slots: Box<[Slot]>,
    seed: u32,
}

impl FragTable {
    pub fn new(seed: u32) -> FragTable {
        FragTable {
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
            seed,
        }
    }

    fn slot(&self, src: u32, dst: u32, id: u16, proto: u8) -> usize {
        let mut h = src.wrapping_mul(0x9e37_79b1) ^ self.seed;
        h = (h ^ dst).wrapping_mul(0x85eb_ca6b);
        h = (h ^ ((id as u32) << 8 | proto as u32)).wrapping_mul(0xc2b2_ae35);
        (h >> 16) as usize % SLOTS
    }

    /// Remembers that datagram `(src, dst, id, proto)` was translated to
    /// `new_src -> new_dst`.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        src: u32,
        dst: u32,
        id: u16,
        proto: u8,
        new_src: u32,
        new_dst: u32,
        now_s: u32,
    ) {
        let i = self.slot(src, dst, id, proto);
        self.slots[i] = Slot {
            src,
            dst,
            id,
            proto,
            live: true,
            new_src,
            new_dst,
            expires_s: now_s.saturating_add(TTL_S),
        };
    }

    /// The translation of a later fragment of `(src, dst, id, proto)`.
    pub fn lookup(&self, src: u32, dst: u32, id: u16, proto: u8, now_s: u32) -> Option<(u32, u32)> {
        let s = &self.slots[self.slot(src, dst, id, proto)];
        (s.live
            && s.src == src
            && s.dst == dst
            && s.id == id
            && s.proto == proto
            && s.expires_s > now_s)
            .then_some((s.new_src, s.new_dst))
    }
}
