//! The AF_XDP port: one socket per receive queue of an interface, all on the
//! PMD thread's UMEM.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, QueueSize, SocketConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue};

use super::sys::rx_queue_count;
use super::xdp::{XdpProgram, XdpStats, XdpStatsReader, XSKMAP_SIZE};
use super::{AfXdpError, XdpFilter};
use crate::counters::{DropReason, PortCounters};
use crate::frame::{Buf, Frame};
use crate::pool::Pool;
use crate::port::{Port, PortId, MAX_BURST};

/// Most frames kept on one queue's fill ring. The fill ring itself is as
/// large as the UMEM's (up to 4096), but every socket of a thread fills
/// from the same pool, so each takes at most this many, and at most a
/// eighth of the pool.
pub const FILL_TARGET_MAX: u32 = 1024;

/// RX and TX ring size of each socket.
const RING_SIZE: u32 = 2048;

/// Descriptors the kernel's copy-mode transmit takes per `sendto`
/// (TX_BATCH_SIZE in net/xdp/xsk.c).
const KERNEL_TX_BATCH: usize = 32;

/// One bound socket: a receive queue of the interface.
struct XskQueue {
    queue_id: u32,
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    comp: CompQueue,
    /// Frames on the fill ring or the RX ring (given to the kernel for
    /// receive, not yet taken back).
    fill_held: u32,
    /// Frames on the TX ring or the completion ring.
    tx_in_flight: u32,
}

impl XskQueue {
    fn fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    /// Entries on the TX ring the kernel has not consumed yet.
    fn tx_pending(&mut self) -> u32 {
        RING_SIZE - self.tx.nb_free_exact().min(RING_SIZE)
    }
}

/// An AF_XDP port on an existing interface.
///
/// Receives on every queue of the interface (traffic may arrive on any;
/// veth has one per CPU), transmits on queue 0. All sockets share the PMD
/// thread's UMEM, so a frame received here and sent out of another AF_XDP
/// port of the same thread moves as a descriptor.
///
/// The pool's UMEM socket belongs to the network namespace the pool was
/// created in: create the pool and open its ports in the namespace of the
/// interfaces.
pub struct AfXdpPort {
    name: String,
    id: PortId,
    counters: Arc<PortCounters>,
    /// Id of the pool whose UMEM the sockets are bound to: the descriptors
    /// the kernel hands back are chunks of that pool and of no other.
    pool: u32,
    queues: Vec<XskQueue>,
    /// The filter; `None` after `release`. Dropped after the sockets'
    /// XSKMAP slots are cleared.
    xdp: Option<XdpProgram>,
    /// By chunk index: true while the chunk sits in one of this port's
    /// kernel rings, so `release` can return exactly those chunks.
    in_kernel: Vec<bool>,
    fill_target: u32,
    scratch: Vec<FrameDesc>,
    /// Receive queue to start the next burst at (round robin).
    next_rx: usize,
    fds: Vec<RawFd>,
    /// Loop counter for occasional kernel statistics reads.
    maintain_calls: u32,
    /// Kernel rx_dropped already counted as NoBuffer.
    kernel_dropped_seen: u64,
}

impl std::fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("queues", &self.queues.len())
            .field("kernel_held", &self.kernel_held())
            .finish()
    }
}

impl AfXdpPort {
    /// Opens an AF_XDP port on `iface` with frames of `pool` (which must
    /// have a UMEM): attaches the XDP filter, binds a socket to each receive
    /// queue and fills their fill rings. Call in the interface's namespace.
    pub fn open(
        iface: &str,
        id: PortId,
        pool: &mut Pool,
        filter: XdpFilter,
    ) -> Result<AfXdpPort, AfXdpError> {
        let Some(umem) = pool.umem().cloned() else {
            return Err(AfXdpError::NoUmem {
                iface: iface.to_string(),
            });
        };
        if pool.xsk_retired {
            return Err(AfXdpError::UmemRetired {
                iface: iface.to_string(),
            });
        }
        let nq = rx_queue_count(iface);
        if nq > XSKMAP_SIZE {
            return Err(AfXdpError::TooManyQueues {
                iface: iface.to_string(),
                queues: nq,
                max: XSKMAP_SIZE,
            });
        }
        let xdp = XdpProgram::attach(iface, &filter)?;
        let sock_err = |queue: u32, reason: String| AfXdpError::Socket {
            iface: iface.to_string(),
            queue,
            reason,
        };
        let ifname: Interface = iface
            .parse()
            .map_err(|e: std::ffi::NulError| sock_err(0, e.to_string()))?;
        let ring = QueueSize::new(RING_SIZE).map_err(|e| sock_err(0, e.to_string()))?;
        // Copy mode: veth (and any driver without AF_XDP zero-copy) refuses
        // XDP_ZEROCOPY with EOPNOTSUPP, and every socket sharing this UMEM
        // must use the mode of the first.
        let cfg = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_COPY)
            .build();
        let mut queues = Vec::with_capacity(nq as usize);
        for q in 0..nq {
            // SAFETY: the UMEM is the pool's and outlives the sockets (each
            // socket keeps a clone of it); frames are handed to the sockets
            // only through the pool's descriptors.
            let (tx, rx, rings) = match unsafe { Socket::new(cfg, &umem, &ifname, q) } {
                Ok(created) => created,
                Err(e) => {
                    // Dropping `queues` closes the sockets made so far; if
                    // they were the UMEM's only ones, it is retired now.
                    if pool.xsk_open == 0 && !queues.is_empty() {
                        pool.xsk_retired = true;
                    }
                    let detail = std::error::Error::source(&e)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    return Err(sock_err(q, format!("{e}{detail}")));
                }
            };
            let Some((fill, comp)) = rings else {
                return Err(sock_err(
                    q,
                    "the UMEM already has a socket on this interface and queue".into(),
                ));
            };
            queues.push(XskQueue {
                queue_id: q,
                rx,
                tx,
                fill,
                comp,
                fill_held: 0,
                tx_in_flight: 0,
            });
        }
        pool.xsk_open += queues.len();
        let fill_target = FILL_TARGET_MAX.min((pool.chunks() / 8).max(MAX_BURST as u32));
        let fds = queues.iter().map(XskQueue::fd).collect();
        let mut port = AfXdpPort {
            name: iface.to_string(),
            id,
            counters: Arc::default(),
            pool: pool.id(),
            queues,
            xdp: Some(xdp),
            in_kernel: vec![false; pool.chunks() as usize],
            fill_target,
            scratch: Vec::with_capacity(fill_target as usize),
            next_rx: 0,
            fds,
            maintain_calls: 0,
            kernel_dropped_seen: 0,
        };
        // Fill before the sockets enter the XSKMAP, so the first frames
        // find buffers.
        port.refill(pool);
        if let Some(xdp) = &port.xdp {
            for q in &port.queues {
                if let Err(e) = xdp.set_xsk(q.queue_id, q.fd()) {
                    port.release(pool);
                    return Err(e);
                }
            }
        }
        Ok(port)
    }

    /// Frames the kernel holds for this port: on fill and RX rings, and
    /// transmitted but not yet completed.
    pub fn kernel_held(&self) -> usize {
        self.queues
            .iter()
            .map(|q| (q.fill_held + q.tx_in_flight) as usize)
            .sum()
    }

    /// Number of bound sockets (receive queues).
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// The XDP filter's counters (frames redirected here versus passed to
    /// the kernel).
    pub fn xdp_stats(&self) -> XdpStats {
        self.xdp.as_ref().map(XdpProgram::stats).unwrap_or_default()
    }

    /// A handle on the filter's counters that stays usable after the port
    /// moves into its PMD thread.
    pub fn xdp_stats_reader(&self) -> Option<XdpStatsReader> {
        self.xdp.as_ref().and_then(XdpProgram::stats_reader)
    }

    /// The attached filter, if the port is open.
    pub fn xdp(&self) -> Option<&XdpProgram> {
        self.xdp.as_ref()
    }

    /// Tops every fill ring up to its target from the pool.
    fn refill(&mut self, pool: &mut Pool) {
        for q in &mut self.queues {
            let want = self.fill_target.saturating_sub(q.fill_held);
            if want == 0 {
                continue;
            }
            // Reserve on a ring is all-or-nothing: ask how much room there
            // is, then produce exactly that many.
            let n = q.fill.nb_free(want).min(want) as usize;
            self.scratch.clear();
            while self.scratch.len() < n {
                match pool.alloc_desc() {
                    Some(d) => self.scratch.push(d),
                    None => break,
                }
            }
            if self.scratch.is_empty() {
                continue;
            }
            // SAFETY: the descriptors are free chunks of this pool's UMEM,
            // which is the UMEM the fill ring belongs to; the pool no longer
            // lists them as free.
            let done = unsafe { q.fill.produce(&self.scratch) };
            for d in &self.scratch[..done] {
                self.in_kernel[Pool::chunk_of(d) as usize] = true;
            }
            for d in &self.scratch[done..] {
                pool.free_desc(d);
            }
            q.fill_held += done as u32;
        }
    }

    /// Takes finished transmissions back into the pool.
    fn reap(&mut self, pool: &mut Pool) {
        for q in &mut self.queues {
            while q.tx_in_flight > 0 {
                self.scratch.clear();
                self.scratch.resize(
                    q.tx_in_flight.min(MAX_BURST as u32 * 4) as usize,
                    FrameDesc::default(),
                );
                // SAFETY: descriptors on this completion ring are chunks of
                // this pool's UMEM that this port transmitted. Only the
                // address is used: consume leaves the length zero.
                let n = unsafe { q.comp.consume(&mut self.scratch) };
                if n == 0 {
                    break;
                }
                for d in &self.scratch[..n] {
                    self.in_kernel[Pool::chunk_of(d) as usize] = false;
                    pool.free_desc(d);
                }
                q.tx_in_flight -= n as u32;
            }
        }
    }

    /// Kicks the kernel to transmit what is on queue `qi`'s TX ring. Copy
    /// mode transmits only inside `sendto` (no need_wakeup flag without
    /// XDP_USE_NEED_WAKEUP), up to 32 frames per call.
    fn kick(&mut self, qi: usize) {
        let q = &mut self.queues[qi];
        let mut pending = q.tx_pending();
        let mut tries = pending as usize / KERNEL_TX_BATCH + 2;
        while pending > 0 && tries > 0 {
            tries -= 1;
            // SAFETY: sendto with no buffer on our own socket fd is the
            // AF_XDP transmit kick; nothing is read or written.
            let rc = unsafe {
                libc::sendto(
                    q.fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if rc < 0 {
                let err = std::io::Error::last_os_error();
                match err.raw_os_error() {
                    // Batch limit reached, or the device is busy: try again.
                    Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) => {}
                    _ => {
                        tracing::debug!(port = %self.name, "AF_XDP tx kick: {err}");
                        break;
                    }
                }
            }
            pending = q.tx_pending();
        }
    }

    /// Adds the kernel's receive drops (no fill buffer) to NoBuffer.
    fn sync_kernel_drops(&mut self) {
        let mut dropped = 0;
        for q in &self.queues {
            if let Ok(s) = q.rx.fd().xdp_statistics() {
                dropped += s.rx_dropped();
            }
        }
        if dropped > self.kernel_dropped_seen {
            self.counters.drops[DropReason::NoBuffer as usize]
                .add(dropped - self.kernel_dropped_seen);
            self.kernel_dropped_seen = dropped;
        }
    }
}

impl AfXdpPort {
    /// Panics unless `pool` is the one the port was opened with (a thread
    /// plan that hands a port to another pool's thread is a bug).
    #[inline]
    fn check_pool(&self, pool: &Pool) {
        assert!(
            pool.id() == self.pool,
            "AF_XDP port {} was opened on pool {} but used with pool {}",
            self.name,
            self.pool,
            pool.id()
        );
    }
}

impl Port for AfXdpPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Vec<Frame>, max: usize) -> usize {
        self.check_pool(pool);
        let nq = self.queues.len();
        let mut got = 0;
        let mut bytes = 0u64;
        for i in 0..nq {
            if got >= max {
                break;
            }
            let qi = (self.next_rx + i) % nq;
            let q = &mut self.queues[qi];
            self.scratch.clear();
            self.scratch.resize(max - got, FrameDesc::default());
            // SAFETY: the RX ring hands back chunks of this pool's UMEM that
            // this port put on its fill ring.
            let n = unsafe { q.rx.consume(&mut self.scratch) };
            q.fill_held -= n as u32;
            for d in &self.scratch[..n] {
                self.in_kernel[Pool::chunk_of(d) as usize] = false;
                let mut frame = pool.frame_from_desc(d, self.id);
                // XDP dropped the skb's checksum state (see the module doc).
                frame.offload.csum_lost = true;
                bytes += frame.len() as u64;
                out.push(frame);
            }
            got += n;
        }
        self.next_rx = (self.next_rx + 1) % nq.max(1);
        if got > 0 {
            self.counters.rx_packets.add(got as u64);
            self.counters.rx_bytes.add(bytes);
            self.refill(pool);
        }
        got
    }

    fn tx_burst(&mut self, pool: &mut Pool, frames: &mut Vec<Frame>) {
        self.check_pool(pool);
        if self.queues.is_empty() {
            for f in frames.drain(..) {
                self.counters.count_drop(DropReason::TxError);
                pool.free(f);
            }
            return;
        }
        self.reap(pool);
        let room = self.queues[0].tx.nb_free(frames.len() as u32) as usize;
        self.scratch.clear();
        let mut bytes = 0u64;
        for frame in frames.drain(..) {
            let Buf::Chunk(idx) = frame.buf else {
                // A GSO segment must be cut to MTU-sized frames before it
                // reaches a port without offloads (see `gso`).
                self.counters.count_drop(DropReason::OffloadError);
                pool.free(frame);
                continue;
            };
            if self.scratch.len() >= room {
                self.counters.count_drop(DropReason::TxFull);
                pool.free(frame);
                continue;
            }
            match pool.tx_desc(&frame) {
                Some(desc) => {
                    bytes += frame.len() as u64;
                    self.in_kernel[idx as usize] = true;
                    self.scratch.push(desc);
                    // The chunk now belongs to the TX ring until completion;
                    // the frame handle is dropped without freeing it.
                }
                None => {
                    self.counters.count_drop(DropReason::TxError);
                    pool.free(frame);
                }
            }
        }
        if self.scratch.is_empty() {
            return;
        }
        let q = &mut self.queues[0];
        // SAFETY: every descriptor is a chunk of this pool's UMEM whose
        // frame handle was consumed above; `room` was reserved-checked, so
        // produce takes them all.
        let done = unsafe { q.tx.produce(&self.scratch) };
        if done < self.scratch.len() {
            // Not expected (room was checked); give the rest back.
            for d in &self.scratch[done..] {
                self.in_kernel[Pool::chunk_of(d) as usize] = false;
                pool.free_desc(d);
                self.counters.count_drop(DropReason::TxFull);
            }
        }
        q.tx_in_flight += done as u32;
        self.counters.tx_packets.add(done as u64);
        self.counters.tx_bytes.add(bytes);
        self.kick(0);
        self.reap(pool);
    }

    fn maintain(&mut self, pool: &mut Pool) {
        self.check_pool(pool);
        self.reap(pool);
        // Frames a kick left on the TX ring (device busy) go out now.
        if self.queues.first().is_some_and(|q| q.tx_in_flight > 0)
            && self.queues[0].tx_pending() > 0
        {
            self.kick(0);
        }
        self.refill(pool);
        self.maintain_calls = self.maintain_calls.wrapping_add(1);
        if self.maintain_calls & 4095 == 0 {
            self.sync_kernel_drops();
        }
    }

    fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }

    /// One fd per receive queue: each becomes readable when its RX ring
    /// has frames.
    fn rx_fds(&self) -> Vec<RawFd> {
        self.fds.clone()
    }

    /// Detaches the filter, closes the sockets and returns every chunk the
    /// kernel held (fill, RX, TX and completion rings) to the pool.
    fn release(&mut self, pool: &mut Pool) {
        self.check_pool(pool);
        if !self.queues.is_empty() {
            self.reap(pool);
            self.sync_kernel_drops();
        }
        if let Some(xdp) = &self.xdp {
            for q in &self.queues {
                xdp.clear_xsk(q.queue_id);
            }
        }
        // Detach first: no frame can be redirected to the sockets after this.
        self.xdp = None;
        // Closing the sockets ends the kernel's use of their rings. (The
        // UMEM's first socket shares its fd with the UMEM and stays bound
        // until the pool is dropped, but with its XSKMAP slot gone and the
        // program detached nothing reaches it.)
        if !self.queues.is_empty() {
            pool.xsk_open = pool.xsk_open.saturating_sub(self.queues.len());
            pool.xsk_retired |= pool.xsk_open == 0;
        }
        self.queues.clear();
        self.fds.clear();
        for (idx, held) in self.in_kernel.iter_mut().enumerate() {
            if std::mem::take(held) {
                pool.free_chunk(idx as u32);
            }
        }
    }
}

impl Drop for AfXdpPort {
    fn drop(&mut self) {
        // Without the pool, chunks still marked in_kernel stay out of it
        // (call `release` first); the kernel side is cleaned up either way.
        self.xdp = None;
        self.queues.clear();
    }
}
