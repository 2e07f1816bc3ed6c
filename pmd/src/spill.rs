//! Receiving packets of unknown size into small chunks, with large buffers
//! for the few that need them.
//!
//! Most frames fit a 4 KB chunk, but a GSO segment from a TAP or an
//! AF_PACKET socket is up to 64 KB and its size is known only after the
//! read. So each read gets a chunk and, behind it in the same iovec list, the
//! part of a spare large buffer after its first `CHUNK_DATA` bytes: a large
//! packet then needs only its first chunk's worth copied (see
//! [`SpillRx::settle`]). Without a spare, the tail lands in a scratch buffer
//! and the packet is dropped for want of a buffer, so the queue still moves.
//! Ports take spares for one burst and give them back after it, so a
//! thread's large buffers serve frames in flight, whatever its port count.

use crate::counters::DropReason;
use crate::frame::Frame;
use crate::pool::{Pool, CHUNK_DATA, LARGE_HEADROOM, LARGE_SIZE};

/// Largest packet one read delivers: what a large pool buffer holds.
pub const MAX_RX_FRAME: usize = LARGE_SIZE - LARGE_HEADROOM;

/// Spare large buffers for up to `N` reads in flight at once.
pub struct SpillRx<const N: usize> {
    spares: [Option<Frame>; N],
    /// Where tails go when no spare is free; read into, never from.
    scratch: Box<[u8]>,
}

impl<const N: usize> Default for SpillRx<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> SpillRx<N> {
    /// No spares yet; [`refill`](Self::refill) takes them from the pool.
    pub fn new() -> Self {
        SpillRx {
            spares: std::array::from_fn(|_| None),
            scratch: vec![0u8; MAX_RX_FRAME + 1].into_boxed_slice(),
        }
    }

    /// Takes a large buffer for every empty slot the pool can fill.
    #[inline]
    pub fn refill(&mut self, pool: &mut Pool) {
        for slot in self.spares.iter_mut().filter(|s| s.is_none()) {
            *slot = pool.alloc_large();
            if slot.is_none() {
                break;
            }
        }
    }

    /// Where read `i` puts the bytes after its chunk: the spare's room past
    /// `CHUNK_DATA`, or the scratch buffer (shared by every read without a
    /// spare; such reads are dropped if they reach it).
    #[inline]
    pub fn target(&mut self, pool: &mut Pool, i: usize) -> (*mut u8, usize) {
        match self.spares[i].as_mut() {
            Some(large) => {
                let room = pool.room_mut(large);
                (room[CHUNK_DATA..].as_mut_ptr(), room.len() - CHUNK_DATA)
            }
            None => (self.scratch.as_mut_ptr(), self.scratch.len()),
        }
    }

    /// Turns read `i`, which put `len` bytes into `small` and its spill
    /// target, into one frame: `small` when they fit, else the spare with
    /// the head copied in. `truncated` says the kernel had more than the
    /// buffers held.
    pub fn settle(
        &mut self,
        pool: &mut Pool,
        mut small: Frame,
        i: usize,
        len: usize,
        truncated: bool,
    ) -> Result<Frame, DropReason> {
        let small_len = pool.room(&small).min(CHUNK_DATA);
        if truncated || len > MAX_RX_FRAME {
            pool.free(small);
            return Err(DropReason::TooBig);
        }
        if len <= small_len {
            pool.set_len(&mut small, len);
            return Ok(small);
        }
        match self.spares[i].take() {
            Some(mut large) => {
                let src = pool.room_mut(&mut small).as_ptr();
                let dst = pool.room_mut(&mut large).as_mut_ptr();
                // SAFETY: `small` (a chunk) and `large` (a large buffer) are
                // distinct buffers of the pool, each with at least
                // `small_len` bytes of room; the caller owns both, so nothing
                // else reads or writes them.
                unsafe { std::ptr::copy_nonoverlapping(src, dst, small_len) };
                pool.set_len(&mut large, len);
                pool.free(small);
                Ok(large)
            }
            None => {
                pool.free(small);
                Err(DropReason::NoBuffer)
            }
        }
    }

    /// The scratch buffer, for reading a packet only to discard it.
    pub fn scratch(&mut self) -> &mut [u8] {
        &mut self.scratch
    }

    /// True while any spare is held (they must go back with `release`).
    pub fn holds_frames(&self) -> bool {
        self.spares.iter().any(Option::is_some)
    }

    /// Gives every spare back to the pool.
    pub fn release(&mut self, pool: &mut Pool) {
        for f in self.spares.iter_mut().filter_map(Option::take) {
            pool.free(f);
        }
    }
}
