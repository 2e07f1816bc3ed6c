//! One buffer pool per PMD thread.
//!
//! Small buffers are fixed-size chunks of one memory region. When the thread
//! has AF_XDP ports the region is the UMEM that all of its sockets share, so
//! a frame received on one AF_XDP port is transmitted on another by handing
//! its descriptor over. Otherwise the region is plain heap memory with the
//! same layout, so every code path sees the same frames.
//!
//! Chunk layout: `[0, DATA_OFFSET)` is headroom (the kernel's XDP headroom in
//! UMEM chunks), the packet normally starts at `DATA_OFFSET`. A frame whose
//! packet grew into the headroom (encapsulation) is transmitted from its
//! new start: the TX descriptor's address follows the packet (see
//! `Pool::tx_desc`; xsk-rs is patched for that, third_party/xsk-rs).
//!
//! Large buffers (64 KB + headroom) hold TSO/GSO segments from TAP ports with
//! offloads; there are few of them (DESIGN.md, data path 2).
//!
//! Every pool has an id of its own in the process, and every frame carries
//! the id of the pool that made it. A pool checks it wherever it turns a
//! frame into memory or takes a frame back, so a frame handed to another
//! pool is a panic (a bug in the caller) and never a read past that pool's
//! buffers.

use std::num::NonZeroU32;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::frame::{Buf, Frame, Offload};
use crate::port::PortId;

/// Bytes per small chunk (one UMEM frame).
pub const CHUNK_SIZE: usize = 4096;
/// Where a packet starts inside a chunk: the kernel's XDP_PACKET_HEADROOM,
/// which is also the headroom every frame keeps for encapsulation.
pub const DATA_OFFSET: usize = 256;
/// Largest packet a small chunk holds.
pub const CHUNK_DATA: usize = CHUNK_SIZE - DATA_OFFSET;
/// Headroom kept in front of packets in large buffers.
pub const LARGE_HEADROOM: usize = 256;
/// Bytes per large buffer: a 64 KB GSO segment plus its Ethernet header.
pub const LARGE_SIZE: usize = LARGE_HEADROOM + 65536 + 64;

/// How a pool is sized and backed.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Number of small chunks.
    pub chunks: u32,
    /// Number of large buffers.
    pub large: u32,
    /// Back the small chunks with an AF_XDP UMEM (needs CAP_NET_RAW and
    /// CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK).
    pub umem: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            chunks: 8192,
            large: 64,
            umem: false,
        }
    }
}

/// Errors creating a pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The UMEM could not be created or registered with the kernel.
    #[error("creating a UMEM of {chunks} frames: {reason} (need root, or CAP_NET_RAW with CAP_IPC_LOCK)")]
    Umem {
        /// Frames asked for.
        chunks: u32,
        /// What xsk-rs reported.
        reason: String,
    },
    /// A pool of zero chunks was asked for.
    #[error("a pool needs at least one chunk")]
    Empty,
    /// Every pool id was used: this process created 2^32 pools.
    #[error("no pool id left: this process created 4294967295 pools")]
    NoId,
}

/// The id the next pool gets; 0 is never given out.
static NEXT_POOL_ID: AtomicU32 = AtomicU32::new(1);

/// A pool id never used before in this process; the counter never wraps,
/// so no two pools share one.
fn new_pool_id() -> Result<u32, PoolError> {
    NEXT_POOL_ID
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |id| id.checked_add(1))
        .map_err(|_| PoolError::NoId)
}

enum Region {
    Umem {
        umem: xsk_rs::Umem,
        /// Descriptor of each chunk as xsk-rs created it, by chunk index.
        descs: Vec<xsk_rs::FrameDesc>,
    },
    Heap,
}

/// A per-thread buffer pool. Not `Sync`: only its PMD thread touches it.
pub struct Pool {
    /// Unique in the process; every frame of this pool carries it.
    id: u32,
    region: Region,
    /// Start of the chunk region (UMEM or heap).
    base: NonNull<u8>,
    chunks: u32,
    free: Vec<u32>,
    /// Owns the heap chunks (heap pools) and the large buffers; the raw
    /// pointers `base` and `large_base` point into these.
    _heap: Vec<u8>,
    _large_mem: Vec<u8>,
    large_base: NonNull<u8>,
    large: u32,
    large_free: Vec<u32>,
    /// AF_XDP sockets open on the UMEM (kept by `afxdp`).
    pub(crate) xsk_open: usize,
    /// True once the last socket closed: libxdp registered the UMEM on its
    /// first socket and cannot bind another after that one is gone.
    pub(crate) xsk_retired: bool,
}

// SAFETY: the pool owns its region exclusively (the raw `base` pointer points
// into memory the pool keeps alive); moving the pool to another thread moves
// that ownership with it.
unsafe impl Send for Pool {}

impl Pool {
    /// Creates a pool; with `config.umem` the chunks are a registered UMEM.
    pub fn new(config: PoolConfig) -> Result<Pool, PoolError> {
        let chunks = NonZeroU32::new(config.chunks).ok_or(PoolError::Empty)?;
        let id = new_pool_id()?;
        let mut heap = Vec::new();
        let (region, base) = if config.umem {
            crate::afxdp::raise_memlock();
            let umem_err = |reason: String| PoolError::Umem {
                chunks: config.chunks,
                reason,
            };
            let qsize = xsk_rs::config::QueueSize::new(
                (config.chunks / 2).next_power_of_two().clamp(64, 4096),
            )
            .map_err(|e| umem_err(e.to_string()))?;
            let ucfg = xsk_rs::config::UmemConfig::builder()
                .frame_size(
                    xsk_rs::config::FrameSize::new(CHUNK_SIZE as u32)
                        .map_err(|e| umem_err(e.to_string()))?,
                )
                .fill_queue_size(qsize)
                .comp_queue_size(qsize)
                .frame_headroom(0)
                .build()
                .map_err(|e| umem_err(e.to_string()))?;
            let (umem, descs) =
                xsk_rs::Umem::new(ucfg, chunks, false).map_err(|e| umem_err(e.to_string()))?;
            // xsk-rs puts the packet of chunk i at i * CHUNK_SIZE + 256;
            // the pool's layout depends on it.
            debug_assert_eq!(descs[0].addr(), DATA_OFFSET);
            // SAFETY: descs[0] belongs to this UMEM and nothing else holds
            // it; the headroom slice (empty, headroom 0) starts at the first
            // byte of chunk 0, which is the start of the region.
            let start = unsafe { umem.headroom(&descs[0]).contents().as_ptr() as *mut u8 };
            let base = NonNull::new(start).ok_or_else(|| umem_err("null UMEM".into()))?;
            (Region::Umem { umem, descs }, base)
        } else {
            heap = vec![0u8; chunks.get() as usize * CHUNK_SIZE];
            let base = NonNull::new(heap.as_mut_ptr()).ok_or(PoolError::Empty)?;
            (Region::Heap, base)
        };
        let mut large_mem = vec![0u8; config.large.max(1) as usize * LARGE_SIZE];
        let large_base = NonNull::new(large_mem.as_mut_ptr()).ok_or(PoolError::Empty)?;
        Ok(Pool {
            id,
            region,
            base,
            chunks: config.chunks,
            free: (0..config.chunks).rev().collect(),
            _heap: heap,
            _large_mem: large_mem,
            large_base,
            large: config.large,
            large_free: (0..config.large).rev().collect(),
            xsk_open: 0,
            xsk_retired: false,
        })
    }

    /// The pool's id, which every frame of this pool carries.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The UMEM behind the small chunks, when the pool has one.
    pub fn umem(&self) -> Option<&xsk_rs::Umem> {
        match &self.region {
            Region::Umem { umem, .. } => Some(umem),
            Region::Heap => None,
        }
    }

    /// Total small chunks.
    pub fn chunks(&self) -> u32 {
        self.chunks
    }

    /// Small chunks currently free in the pool (not held by a frame, a port
    /// or a kernel ring).
    pub fn free_chunks(&self) -> usize {
        self.free.len()
    }

    /// Large buffers currently free.
    pub fn free_large(&self) -> usize {
        self.large_free.len()
    }

    /// Frames out of the pool: held by ports, kernel rings or the pipeline.
    /// A count that grows without traffic is a leak.
    pub fn in_flight(&self) -> usize {
        self.chunks as usize - self.free.len() + self.large as usize - self.large_free.len()
    }

    /// Takes an empty small frame (packet at `DATA_OFFSET`), or `None` when
    /// the pool is exhausted.
    #[inline]
    pub fn alloc(&mut self) -> Option<Frame> {
        let idx = self.free.pop()?;
        Some(Frame {
            buf: Buf::Chunk(idx),
            pool: self.id,
            head: DATA_OFFSET as u32,
            len: 0,
            in_port: PortId(0),
            offload: Offload::default(),
        })
    }

    /// Takes an empty large frame, or `None` when none is free.
    #[inline]
    pub fn alloc_large(&mut self) -> Option<Frame> {
        let idx = self.large_free.pop()?;
        Some(Frame {
            buf: Buf::Large(idx),
            pool: self.id,
            head: LARGE_HEADROOM as u32,
            len: 0,
            in_port: PortId(0),
            offload: Offload::default(),
        })
    }

    /// Takes a frame that holds `len` bytes: small when they fit, else large.
    #[inline]
    pub fn alloc_for(&mut self, len: usize) -> Option<Frame> {
        if len <= CHUNK_DATA {
            self.alloc()
        } else if len <= LARGE_SIZE - LARGE_HEADROOM {
            self.alloc_large()
        } else {
            None
        }
    }

    /// Returns a frame to the pool.
    ///
    /// # Panics
    /// When `frame` belongs to another pool (so do all methods that take a
    /// frame).
    #[inline]
    pub fn free(&mut self, frame: Frame) {
        self.check_owner(&frame);
        match frame.buf {
            Buf::Chunk(idx) => self.free.push(idx),
            Buf::Large(idx) => self.large_free.push(idx),
        }
    }

    /// Bytes of the packet.
    #[inline]
    pub fn data(&self, frame: &Frame) -> &[u8] {
        let (ptr, _) = self.buf_ptr(frame);
        // SAFETY: `head + len` never exceeds the buffer (set_len and
        // set_head check it), and the frame's owner holds the only handle
        // to this buffer, so no mutable alias exists while `&self` is held.
        unsafe { std::slice::from_raw_parts(ptr.add(frame.head as usize), frame.len as usize) }
    }

    /// Bytes of the packet, writable.
    #[inline]
    pub fn data_mut(&mut self, frame: &mut Frame) -> &mut [u8] {
        let (ptr, _) = self.buf_ptr(frame);
        // SAFETY: as in `data`; `&mut Frame` proves exclusive ownership of
        // the buffer, and the pool is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(ptr.add(frame.head as usize), frame.len as usize) }
    }

    /// Everything from the packet start to the end of the buffer, for a
    /// port or generator to write a packet into; follow with `set_len`.
    #[inline]
    pub fn room_mut(&mut self, frame: &mut Frame) -> &mut [u8] {
        let (ptr, cap) = self.buf_ptr(frame);
        // SAFETY: `head <= cap` always holds; exclusive as in `data_mut`.
        unsafe {
            std::slice::from_raw_parts_mut(ptr.add(frame.head as usize), cap - frame.head as usize)
        }
    }

    /// Capacity from the packet start to the end of the buffer.
    #[inline]
    pub fn room(&self, frame: &Frame) -> usize {
        self.buf_ptr(frame).1 - frame.head as usize
    }

    /// Sets the packet length; false (and no change) when it does not fit.
    #[inline]
    pub fn set_len(&self, frame: &mut Frame, len: usize) -> bool {
        if len > self.room(frame) {
            return false;
        }
        frame.len = len as u32;
        true
    }

    /// Grows the packet at the front by `n` bytes (for a header), returning
    /// the new packet bytes; `None` when the headroom is too small.
    #[inline]
    pub fn push_front<'a>(&'a mut self, frame: &'a mut Frame, n: usize) -> Option<&'a mut [u8]> {
        if n > frame.head as usize {
            return None;
        }
        frame.head -= n as u32;
        frame.len += n as u32;
        Some(self.data_mut(frame))
    }

    /// Drops `n` bytes from the front of the packet (decapsulation).
    #[inline]
    pub fn pull_front(&self, frame: &mut Frame, n: usize) -> bool {
        if n > frame.len as usize {
            return false;
        }
        frame.head += n as u32;
        frame.len -= n as u32;
        true
    }

    /// Copies a packet into a new frame of this pool (ports that copy,
    /// tests).
    pub fn alloc_copy(&mut self, bytes: &[u8]) -> Option<Frame> {
        let mut frame = self.alloc_for(bytes.len())?;
        self.room_mut(&mut frame)[..bytes.len()].copy_from_slice(bytes);
        frame.len = bytes.len() as u32;
        Some(frame)
    }

    /// A copy of `frame` in a new buffer of this pool (for flooding), with
    /// the same input port and offload state; `None` when the pool is out
    /// of buffers.
    pub fn clone_frame(&mut self, frame: &Frame) -> Option<Frame> {
        let mut copy = self.alloc_for(frame.len())?;
        let (src, _) = self.buf_ptr(frame);
        let (dst, _) = self.buf_ptr(&copy);
        // SAFETY: two distinct buffers (the copy was just taken from the
        // free list while `frame` is held), both in range by the pool's
        // invariants; `alloc_for` chose a buffer with room for `len`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.add(frame.head as usize),
                dst.add(copy.head as usize),
                frame.len as usize,
            )
        };
        copy.len = frame.len;
        copy.in_port = frame.in_port;
        copy.offload = frame.offload;
        Some(copy)
    }

    /// Appends the bytes `range` of `src`'s packet to the end of `dst`
    /// (another frame); false (and nothing changed) when the range is not
    /// inside `src` or `dst` has no room.
    pub fn append(&mut self, dst: &mut Frame, src: &Frame, range: std::ops::Range<usize>) -> bool {
        let (from, n) = (range.start, range.len());
        let at = dst.len as usize;
        if range.end > src.len() || at + n > self.room(dst) {
            return false;
        }
        let (s, _) = self.buf_ptr(src);
        let (d, _) = self.buf_ptr(dst);
        // SAFETY: `src` and `dst` are distinct frames (one is borrowed
        // mutably), so distinct buffers; `from + n` stays inside `src`'s
        // packet and `at + n` inside `dst`'s room (both checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                s.add(src.head as usize + from),
                d.add(dst.head as usize + at),
                n,
            )
        };
        dst.len += n as u32;
        true
    }

    /// A copy of `frame` in a large buffer (to grow it past a chunk), with
    /// the same input port and offload state; `None` when no large buffer
    /// is free.
    pub fn clone_large(&mut self, frame: &Frame) -> Option<Frame> {
        let mut copy = self.alloc_large()?;
        copy.in_port = frame.in_port;
        copy.offload = frame.offload;
        self.append(&mut copy, frame, 0..frame.len())
            .then_some(copy)
    }

    /// The AF_XDP descriptor that transmits this small frame as it is: its
    /// address follows the packet start (which encapsulation may have moved
    /// into the headroom) and its length is the packet length, so nothing
    /// is copied. `None` for large frames (they must be segmented first) or
    /// a pool without UMEM.
    pub(crate) fn tx_desc(&mut self, frame: &Frame) -> Option<xsk_rs::FrameDesc> {
        self.check_owner(frame);
        let Buf::Chunk(idx) = frame.buf else {
            return None;
        };
        let Region::Umem { umem, descs } = &self.region else {
            return None;
        };
        let mut desc = descs[idx as usize];
        // The packet lies inside its chunk (pool invariant), which is all
        // the kernel asks of a TX address in aligned mode.
        desc.set_addr(idx as usize * CHUNK_SIZE + frame.head as usize);
        // SAFETY: the descriptor belongs to this UMEM and the frame is owned
        // by the caller, not by a kernel ring.
        unsafe {
            umem.data_mut(&mut desc)
                .cursor()
                .set_pos(frame.len as usize)
        };
        Some(desc)
    }

    /// Wraps a descriptor the kernel handed back (RX or completion ring)
    /// into a frame of this pool.
    #[inline]
    pub(crate) fn frame_from_desc(&self, desc: &xsk_rs::FrameDesc, in_port: PortId) -> Frame {
        let chunk_start = chunk_index(desc.addr()) as usize * CHUNK_SIZE;
        Frame {
            buf: Buf::Chunk(chunk_index(desc.addr())),
            pool: self.id,
            head: (desc.addr() - chunk_start) as u32,
            len: desc.lengths().data() as u32,
            in_port,
            offload: Offload::default(),
        }
    }

    /// Takes a free chunk's descriptor for a kernel ring (fill queue).
    #[inline]
    pub(crate) fn alloc_desc(&mut self) -> Option<xsk_rs::FrameDesc> {
        let Region::Umem { descs, .. } = &self.region else {
            return None;
        };
        self.free.pop().map(|i| descs[i as usize])
    }

    /// Returns a chunk the kernel gave back (completion ring) to the pool.
    #[inline]
    pub(crate) fn free_desc(&mut self, desc: &xsk_rs::FrameDesc) {
        self.free.push(chunk_index(desc.addr()));
    }

    /// Returns a chunk by index (a port giving back what its closed kernel
    /// rings held). The caller must own the chunk.
    #[inline]
    pub(crate) fn free_chunk(&mut self, idx: u32) {
        debug_assert!(idx < self.chunks);
        self.free.push(idx);
    }

    /// The chunk a UMEM descriptor points into.
    #[inline]
    pub(crate) fn chunk_of(desc: &xsk_rs::FrameDesc) -> u32 {
        chunk_index(desc.addr())
    }

    /// Panics unless `frame` was made by this pool: its buffer index means
    /// nothing anywhere else.
    #[inline]
    #[track_caller]
    fn check_owner(&self, frame: &Frame) {
        if frame.pool != self.id {
            foreign_frame(frame.pool, self.id);
        }
    }

    /// Every method that reads or writes a frame's bytes comes through here.
    #[inline]
    #[track_caller]
    fn buf_ptr(&self, frame: &Frame) -> (*mut u8, usize) {
        self.check_owner(frame);
        match frame.buf {
            Buf::Chunk(idx) => {
                // SAFETY: the frame is this pool's (checked above), and
                // every chunk index this pool hands out is below `chunks`,
                // so the chunk lies inside the region.
                let ptr = unsafe { self.base.as_ptr().add(idx as usize * CHUNK_SIZE) };
                (ptr, CHUNK_SIZE)
            }
            Buf::Large(idx) => {
                // SAFETY: the frame is this pool's, and its large indices
                // are below `large`, inside large_mem.
                let ptr = unsafe { self.large_base.as_ptr().add(idx as usize * LARGE_SIZE) };
                (ptr, LARGE_SIZE)
            }
        }
    }
}

/// A frame given to a pool that did not make it: a bug in the caller (a
/// pipeline, a port, or a thread plan that mixes pools), stopped before
/// any memory is touched.
#[cold]
#[inline(never)]
#[track_caller]
fn foreign_frame(frame_pool: u32, pool: u32) -> ! {
    panic!(
        "a frame of pool {frame_pool} was handed to pool {pool}: a frame belongs to the pool (and PMD thread) that made it"
    )
}

#[inline]
fn chunk_index(addr: usize) -> u32 {
    (addr / CHUNK_SIZE) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encapsulated_frame_is_transmitted_from_its_new_start_without_a_copy() {
        if !test_support::require_root("a UMEM") {
            return;
        }
        let mut pool = Pool::new(PoolConfig {
            chunks: 64,
            large: 1,
            umem: true,
        })
        .unwrap();
        let mut f = pool.alloc_copy(&[7u8; 100]).unwrap();
        let before = pool.data(&f).as_ptr();
        pool.push_front(&mut f, 50).unwrap()[..50].fill(9);
        let desc = pool.tx_desc(&f).unwrap();
        let Buf::Chunk(idx) = f.buf else {
            panic!("small frame")
        };
        assert_eq!(desc.addr(), idx as usize * CHUNK_SIZE + DATA_OFFSET - 50);
        assert_eq!(desc.lengths().data(), 150);
        // The payload did not move: it is still 50 bytes after the start.
        // SAFETY: pointer arithmetic inside the same chunk, for comparison.
        assert_eq!(unsafe { pool.data(&f).as_ptr().add(50) }, before);
        assert_eq!(&pool.data(&f)[50..], &[7u8; 100][..]);
        pool.free(f);
        assert_eq!(pool.in_flight(), 0);
    }

    fn heap_pool(chunks: u32) -> Pool {
        Pool::new(PoolConfig {
            chunks,
            large: 1,
            umem: false,
        })
        .unwrap()
    }

    /// A frame of a 64-chunk pool whose index lies far beyond a 2-chunk
    /// pool's memory.
    fn last_frame_of_a_large_pool() -> (Pool, Frame) {
        let mut a = heap_pool(64);
        let mut frames: Vec<Frame> = (0..64).map(|_| a.alloc().unwrap()).collect();
        let last = frames.pop().unwrap();
        for f in frames {
            a.free(f);
        }
        assert!(
            matches!(last.buf, Buf::Chunk(idx) if idx >= 2),
            "fixture: an index beyond the small pool"
        );
        (a, last)
    }

    #[test]
    #[should_panic(expected = "belongs to the pool (and PMD thread) that made it")]
    fn reading_a_frame_through_another_pool_panics_instead_of_reading_past_it() {
        let (_a, frame) = last_frame_of_a_large_pool();
        let b = heap_pool(2);
        let _ = b.data(&frame);
    }

    #[test]
    #[should_panic(expected = "belongs to the pool (and PMD thread) that made it")]
    fn freeing_a_frame_into_another_pool_panics() {
        let (_a, frame) = last_frame_of_a_large_pool();
        let mut b = heap_pool(2);
        b.free(frame);
    }

    #[test]
    fn two_pools_never_share_an_id() {
        let (a, b) = (heap_pool(1), heap_pool(1));
        assert_ne!(a.id(), b.id());
    }
}
