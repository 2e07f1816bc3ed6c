//! TAP ports with virtio-net headers and offloads.
//!
//! A [`TapPort`] opens `/dev/net/tun` with `IFF_TAP | IFF_NO_PI |
//! IFF_VNET_HDR`, a 12-byte virtio-net header (the virtio 1.0 layout that
//! vhost-net uses) and checksum and TCP segmentation offloads, so the kernel
//! hands the switch 64 KB TCP segments with their checksums pending instead
//! of 1,514-byte frames (notes/datapath-probes.md, probe 2: 14.9 Gbit/s
//! against 2.1 without). The header travels with each frame as
//! [`Offload`]; frames leaving through a port without offloads are finished
//! in software by [`crate::gso`].
//!
//! The TAP is not persistent: the kernel deletes the interface when the last
//! file descriptor on it closes, which includes the process being killed
//! (even with SIGKILL). A crashed switch leaves no TAP behind. Do not add
//! `TUNSETPERSIST`.
//!
//! The fd is non-blocking: a burst ends at `EAGAIN` on receive, and a frame
//! the kernel cannot take on transmit is dropped and counted, never waited
//! for.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::counters::{DropReason, PortCounters};
use crate::frame::{Frame, Offload};
use crate::pool::{Pool, CHUNK_DATA};
use crate::port::{Port, PortId};
use crate::spill::SpillRx;
use crate::wire::MacAddr;

/// ioctl numbers from `<linux/if_tun.h>` (`_IOW('T', n, int)`).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
/// `_IOR('T', 224, int)`.
const TUNSETSTEERINGEBPF: libc::c_ulong = 0x8004_54e0;

/// `ifr_flags` for TUNSETIFF.
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;

/// TUNSETOFFLOAD bits.
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;

/// The offloads a vnet TAP port turns on. USO4|USO6 are left out: the
/// software path ([`crate::gso`]) segments TCP only, and the kernel takes
/// those two bits only as a pair.
pub const TAP_OFFLOADS: libc::c_uint = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;

/// Size of the virtio-net header: `virtio_net_hdr_v1` with `num_buffers`.
pub const VNET_HDR_LEN: usize = 12;

/// virtio-net header flags.
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;

/// Longest interface name, without the terminating NUL (IFNAMSIZ - 1).
pub const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Errors opening or configuring a TAP device.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The name cannot be an interface name.
    #[error("TAP name {name:?} is invalid: {reason}")]
    InvalidName {
        /// The name asked for.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `/dev/net/tun` could not be opened.
    #[error("opening /dev/net/tun for TAP device {name}: {}", explain(.source))]
    OpenTun {
        /// The TAP's name.
        name: String,
        /// The error from open(2).
        source: io::Error,
    },
    /// TUNSETIFF failed: the interface could not be created or attached.
    #[error("opening TAP device {name}: {}", explain(.source))]
    Create {
        /// The TAP's name.
        name: String,
        /// The error from the ioctl.
        source: io::Error,
    },
    /// The kernel refused the 12-byte virtio-net header.
    #[error("setting a {VNET_HDR_LEN}-byte vnet header on TAP device {name}: {source} (kernel without TUNSETVNETHDRSZ?)")]
    VnetHdr {
        /// The TAP's name.
        name: String,
        /// The error from the ioctl.
        source: io::Error,
    },
    /// The kernel refused the offload flags.
    #[error("enabling offloads {flags:#x} on TAP device {name}: {source} (kernel too old for these TUNSETOFFLOAD bits?)")]
    Offload {
        /// The TAP's name.
        name: String,
        /// The flags asked for.
        flags: u32,
        /// The error from the ioctl.
        source: io::Error,
    },
    /// TUNSETSTEERINGEBPF failed.
    #[error("setting the steering program of TAP device {name}: {}", explain(.source))]
    Steering {
        /// The TAP's name.
        name: String,
        /// The error from the ioctl.
        source: io::Error,
    },
    /// Reading or setting the interface's MAC address failed.
    #[error("{what} MAC address of TAP device {name}: {}", explain(.source))]
    Mac {
        /// The TAP's name.
        name: String,
        /// "reading" or "setting".
        what: &'static str,
        /// The error from the ioctl.
        source: io::Error,
    },
}

/// An OS error with the hint a user needs to act on it.
fn explain(e: &io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => "permission denied (need CAP_NET_ADMIN)",
        Some(libc::ENOENT) | Some(libc::ENODEV) => {
            "no TUN/TAP support (is the tun module loaded? modprobe tun)"
        }
        Some(libc::EBUSY) => "the TAP is already attached to another file descriptor",
        Some(libc::EINVAL) => {
            "invalid argument (an interface of another type with this name exists?)"
        }
        Some(libc::EADDRNOTAVAIL) => "not a valid unicast MAC address",
        _ => return e.to_string(),
    };
    hint.to_string()
}

/// Checks an interface name: 1 to 15 bytes, no '/', whitespace, ':' or NUL.
fn check_name(name: &str) -> Result<(), TapError> {
    let bad = |reason| {
        Err(TapError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("interface names are at most 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not interface names");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return bad("it contains '/', ':', whitespace or NUL");
    }
    Ok(())
}

/// `struct ifreq` as the TUN ioctls read it: the name and a union whose
/// first member used here is `ifr_flags` (or `ifr_hwaddr`).
#[repr(C)]
#[derive(Clone, Copy)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    /// The `ifr_ifru` union (24 bytes on 64-bit Linux).
    data: [u8; 24],
}

impl IfReq {
    /// An ifreq for `name` (checked by the caller to fit).
    fn with_name(name: &str) -> IfReq {
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: [0; 24],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        req
    }

    /// Sets `ifr_flags`.
    fn flags(mut self, flags: libc::c_short) -> IfReq {
        self.data[..2].copy_from_slice(&flags.to_ne_bytes());
        self
    }

    /// Sets `ifr_hwaddr` to an Ethernet address.
    fn hwaddr(mut self, mac: MacAddr) -> IfReq {
        self.data[..2].copy_from_slice(&(libc::ARPHRD_ETHER).to_ne_bytes());
        self.data[2..8].copy_from_slice(&mac.0);
        self
    }

    /// The name the kernel filled in (it may expand a `%d` template).
    fn name(&self) -> String {
        CStr::from_bytes_until_nul(&self.name)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The Ethernet address in `ifr_hwaddr`.
    fn mac(&self) -> MacAddr {
        MacAddr::from_slice(&self.data[2..8])
    }
}

/// Runs an ioctl that takes a pointer to an `IfReq`.
fn ioctl_ifreq(fd: RawFd, request: libc::c_ulong, req: &mut IfReq) -> io::Result<()> {
    // SAFETY: `req` is a live, writable `struct ifreq`-sized buffer (40
    // bytes, the kernel's layout) for the duration of the call.
    let rc = unsafe { libc::ioctl(fd, request as _, req as *mut IfReq) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Parses a virtio-net header (little-endian on every host Linux runs
/// virtio 1.0 on).
pub fn parse_vnet_hdr(h: &[u8; VNET_HDR_LEN]) -> Offload {
    let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
    Offload {
        needs_csum: h[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0,
        data_valid: h[0] & VIRTIO_NET_HDR_F_DATA_VALID != 0,
        gso_type: h[1],
        hdr_len: u16_at(2),
        gso_size: u16_at(4),
        csum_start: u16_at(6),
        csum_offset: u16_at(8),
        csum_lost: false,
    }
}

/// Builds the virtio-net header for a frame (`num_buffers` zero).
pub fn build_vnet_hdr(o: &Offload) -> [u8; VNET_HDR_LEN] {
    let mut h = [0u8; VNET_HDR_LEN];
    h[0] = if o.needs_csum {
        VIRTIO_NET_HDR_F_NEEDS_CSUM
    } else {
        0
    } | if o.data_valid {
        VIRTIO_NET_HDR_F_DATA_VALID
    } else {
        0
    };
    h[1] = o.gso_type;
    h[2..4].copy_from_slice(&o.hdr_len.to_le_bytes());
    h[4..6].copy_from_slice(&o.gso_size.to_le_bytes());
    h[6..8].copy_from_slice(&o.csum_start.to_le_bytes());
    h[8..10].copy_from_slice(&o.csum_offset.to_le_bytes());
    h
}

/// A TAP interface the switch owns, polled by one PMD thread.
pub struct TapPort {
    name: String,
    id: PortId,
    fd: OwnedFd,
    vnet_hdr: bool,
    counters: Arc<PortCounters>,
    /// A large frame taken for the length of a burst, so the tail of a GSO
    /// frame is read straight into it.
    spill: SpillRx<1>,
}

impl std::fmt::Debug for TapPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapPort")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("fd", &self.fd.as_raw_fd())
            .field("vnet_hdr", &self.vnet_hdr)
            .finish()
    }
}

impl TapPort {
    /// Creates (or attaches to) the TAP `name` with a virtio-net header and
    /// checksum/TSO offloads, non-blocking. The interface lives as long as
    /// this port (see the module docs); it starts down and in the calling
    /// thread's namespace: move it, address it and bring it up with `ip`.
    pub fn create(name: &str, id: PortId) -> Result<TapPort, TapError> {
        Self::open(name, id, true, false)
    }

    /// Creates the TAP `name` with `n` queues, one port each (all with
    /// `id`, as [`TapPort::create`] makes them), for a network spread over
    /// `n` PMD threads. The kernel picks a frame's queue with the program
    /// [`TapPort::set_steering`] sets (by flow hash until then). `n` of 1
    /// is exactly [`TapPort::create`]: a single-queue TAP. Call it in the
    /// namespace the TAP is to live in; more queues of a TAP can only be
    /// opened where the TAP is.
    pub fn create_queues(name: &str, id: PortId, n: usize) -> Result<Vec<TapPort>, TapError> {
        if n <= 1 {
            return Ok(vec![Self::create(name, id)?]);
        }
        let first = Self::open(name, id, true, true)?;
        // A `%d` template is resolved by the first: the rest attach to it.
        let name = first.name.clone();
        let mut queues = vec![first];
        for _ in 1..n {
            queues.push(Self::open(&name, id, true, true)?);
        }
        Ok(queues)
    }

    /// Sets the TAP's steering program (`pmd::steer`): the queue of every
    /// frame the TAP receives from its namespace is what the program
    /// returns, modulo the queues. Set on one queue, it holds for all; the
    /// TAP holds the program until it goes away.
    pub fn set_steering(&self, prog: BorrowedFd<'_>) -> Result<(), TapError> {
        let fd: libc::c_int = prog.as_raw_fd();
        // SAFETY: TUNSETSTEERINGEBPF reads one int through the pointer,
        // which points to a live local.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), TUNSETSTEERINGEBPF as _, &fd) };
        if rc < 0 {
            return Err(TapError::Steering {
                name: self.name.clone(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Creates a TAP without a virtio-net header and without offloads: the
    /// kernel sends and expects only finished frames of at most the MTU.
    /// Such a port does not accept offloads, so the switch segments and
    /// checksums for it (useful to test [`crate::gso`] against a kernel).
    pub fn create_plain(name: &str, id: PortId) -> Result<TapPort, TapError> {
        Self::open(name, id, false, false)
    }

    fn open(
        name: &str,
        id: PortId,
        vnet_hdr: bool,
        multi_queue: bool,
    ) -> Result<TapPort, TapError> {
        check_name(name)?;
        // SAFETY: the path is a NUL-terminated literal; open has no other
        // preconditions and the result is checked below.
        let raw = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(TapError::OpenTun {
                name: name.to_string(),
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `raw` is a file descriptor open(2) just returned and
        // nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut flags = IFF_TAP | IFF_NO_PI;
        if vnet_hdr {
            flags |= IFF_VNET_HDR;
        }
        if multi_queue {
            flags |= IFF_MULTI_QUEUE;
        }
        let mut req = IfReq::with_name(name).flags(flags);
        ioctl_ifreq(fd.as_raw_fd(), TUNSETIFF, &mut req).map_err(|source| TapError::Create {
            name: name.to_string(),
            source,
        })?;
        let name = req.name();
        if vnet_hdr {
            let size: libc::c_int = VNET_HDR_LEN as libc::c_int;
            // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer,
            // which points to a live local.
            let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETVNETHDRSZ as _, &size) };
            if rc < 0 {
                return Err(TapError::VnetHdr {
                    name,
                    source: io::Error::last_os_error(),
                });
            }
        }
        let offloads = if vnet_hdr { TAP_OFFLOADS } else { 0 };
        // SAFETY: TUNSETOFFLOAD takes the flags by value, not a pointer.
        let rc = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                TUNSETOFFLOAD as _,
                offloads as libc::c_ulong,
            )
        };
        if rc < 0 {
            return Err(TapError::Offload {
                name,
                flags: offloads,
                source: io::Error::last_os_error(),
            });
        }
        Ok(TapPort {
            name,
            id,
            fd,
            vnet_hdr,
            counters: Arc::default(),
            spill: SpillRx::new(),
        })
    }

    /// The port's id.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// True when frames carry a virtio-net header (offloads on).
    pub fn has_vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    /// The interface's MAC address. Works through the TAP's fd, so it also
    /// answers after the interface moved to another namespace.
    pub fn mac(&self) -> Result<MacAddr, TapError> {
        let mut req = IfReq::with_name(&self.name);
        ioctl_ifreq(self.fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req).map_err(|source| {
            TapError::Mac {
                name: self.name.clone(),
                what: "reading",
                source,
            }
        })?;
        Ok(req.mac())
    }

    /// Sets the interface's MAC address (through the TAP's fd, so in any
    /// namespace). Set it before the endpoint starts talking: neighbours
    /// cache the old one.
    pub fn set_mac(&self, mac: MacAddr) -> Result<(), TapError> {
        let mut req = IfReq::with_name(&self.name).hwaddr(mac);
        ioctl_ifreq(self.fd.as_raw_fd(), libc::SIOCSIFHWADDR, &mut req).map_err(|source| {
            TapError::Mac {
                name: self.name.clone(),
                what: "setting",
                source,
            }
        })
    }

    /// Reads one frame into `iov`; `Ok(None)` at EAGAIN.
    fn readv(&self, iov: &[libc::iovec]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: every iovec points into a live buffer this port owns
            // exclusively (its header array, a pool frame it holds, its
            // scratch) for the length given.
            let n = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_ptr(), iov.len() as _) };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(None),
                _ => return Err(e),
            }
        }
    }

    /// Reads and discards one frame because no buffer could take it.
    /// Returns false when the queue was empty.
    fn drain_one(&mut self) -> bool {
        let mut hdr = [0u8; VNET_HDR_LEN];
        let hdr_len = if self.vnet_hdr { VNET_HDR_LEN } else { 0 };
        let scratch = self.spill.scratch();
        let iov = [
            iov(hdr.as_mut_ptr(), hdr_len),
            iov(scratch.as_mut_ptr(), scratch.len()),
        ];
        match self.readv(&iov) {
            Ok(Some(_)) => {
                self.counters.count_drop(DropReason::NoBuffer);
                true
            }
            _ => false,
        }
    }
}

fn iov(base: *mut u8, len: usize) -> libc::iovec {
    libc::iovec {
        iov_base: base.cast(),
        iov_len: len,
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Vec<Frame>, max: usize) -> usize {
        let mut n = 0;
        let mut hdr = [0u8; VNET_HDR_LEN];
        let hdr_len = if self.vnet_hdr { VNET_HDR_LEN } else { 0 };
        while n < max {
            let Some(mut frame) = pool.alloc() else {
                if self.drain_one() {
                    continue;
                }
                break;
            };
            self.spill.refill(pool);
            let (spill_ptr, spill_len) = self.spill.target(pool, 0);
            let room = pool.room_mut(&mut frame);
            let small_len = room.len().min(CHUNK_DATA);
            let iovs = [
                iov(hdr.as_mut_ptr(), hdr_len),
                iov(room.as_mut_ptr(), small_len),
                iov(spill_ptr, spill_len),
            ];
            let got = match self.readv(&iovs) {
                Ok(Some(got)) => got,
                Ok(None) => {
                    pool.free(frame);
                    break;
                }
                Err(e) => {
                    // EBADFD when the interface went away under us; nothing
                    // to read now, the control side sees the port down.
                    tracing::debug!(port = %self.name, "TAP read: {e}");
                    pool.free(frame);
                    break;
                }
            };
            if got < hdr_len + crate::wire::ETH_HDR {
                self.counters.count_drop(DropReason::Runt);
                pool.free(frame);
                continue;
            }
            let len = got - hdr_len;
            let mut frame = match self.spill.settle(pool, frame, 0, len, false) {
                Ok(f) => f,
                Err(reason) => {
                    self.counters.count_drop(reason);
                    continue;
                }
            };
            frame.in_port = self.id;
            if self.vnet_hdr {
                frame.offload = parse_vnet_hdr(&hdr);
            }
            self.counters.rx_packets.add(1);
            self.counters.rx_bytes.add(len as u64);
            out.push(frame);
            n += 1;
        }
        // Large buffers are for frames in flight, not for idle ports: a
        // thread with more TAPs than large buffers would otherwise starve
        // the last ones of any GSO segment.
        self.spill.release(pool);
        n
    }

    fn tx_burst(&mut self, pool: &mut Pool, frames: &mut Vec<Frame>) {
        let hdr_len = if self.vnet_hdr { VNET_HDR_LEN } else { 0 };
        for frame in frames.drain(..) {
            let mut hdr = build_vnet_hdr(&frame.offload);
            let data = pool.data(&frame);
            let len = data.len();
            let iovs = [
                iov(hdr.as_mut_ptr(), hdr_len),
                iov(data.as_ptr() as *mut u8, len),
            ];
            // SAFETY: both iovecs point into live buffers (a local array and
            // the frame's bytes, which the pool keeps until the free below);
            // writev only reads them.
            let rc = unsafe { libc::writev(self.fd.as_raw_fd(), iovs.as_ptr(), 2) };
            pool.free(frame);
            if rc >= 0 {
                self.counters.tx_packets.add(1);
                self.counters.tx_bytes.add(len as u64);
            } else {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    // The TAP's queue is full (or the interface is down and
                    // has no carrier): never block the PMD thread.
                    Some(libc::EAGAIN) => self.counters.count_drop(DropReason::TxFull),
                    _ => {
                        tracing::trace!(port = %self.name, "TAP write: {e}");
                        self.counters.count_drop(DropReason::TxError)
                    }
                }
            }
        }
    }

    fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }

    fn rx_fds(&self) -> Vec<RawFd> {
        vec![self.fd.as_raw_fd()]
    }

    fn rx_costs_syscall(&self) -> bool {
        true
    }

    fn accepts_offload(&self) -> bool {
        self.vnet_hdr
    }

    fn release(&mut self, pool: &mut Pool) {
        self.spill.release(pool);
    }
}

impl Drop for TapPort {
    fn drop(&mut self) {
        // A frame still held here would be lost from its pool; `release`
        // should have run. The fd closes with `OwnedFd`, which deletes the
        // (non-persistent) interface.
        if self.spill.holds_frames() {
            tracing::warn!(port = %self.name, "TAP port dropped without release()");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vnet_header_round_trips() {
        let o = Offload {
            needs_csum: true,
            data_valid: false,
            gso_type: 1,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            csum_lost: false,
        };
        let h = build_vnet_hdr(&o);
        assert_eq!(h, [1, 1, 66, 0, 0xa8, 5, 34, 0, 16, 0, 0, 0]);
        assert_eq!(parse_vnet_hdr(&h), o);
    }

    #[test]
    fn a_15_byte_name_is_accepted_and_a_16_byte_one_is_refused() {
        assert!(check_name("abcdefghijklmno").is_ok());
        let e = check_name("abcdefghijklmnop").unwrap_err();
        assert!(e.to_string().contains("at most 15"), "{e}");
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
    }

    #[test]
    fn a_permission_error_says_what_capability_is_missing() {
        let e = TapError::Create {
            name: "tap3".into(),
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        assert_eq!(
            e.to_string(),
            "opening TAP device tap3: permission denied (need CAP_NET_ADMIN)"
        );
    }

    #[test]
    fn ifreq_has_the_kernel_layout() {
        assert_eq!(
            std::mem::size_of::<IfReq>(),
            std::mem::size_of::<libc::ifreq>()
        );
    }
}
