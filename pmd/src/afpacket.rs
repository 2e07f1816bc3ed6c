//! AF_PACKET ports with virtio-net headers: whole TCP segments on a host
//! interface.
//!
//! AF_XDP carries MTU-sized frames only, and attaching any XDP program to a
//! veth turns its peer's TSO off (notes/datapath-probes.md), so bulk TCP
//! through an AF_XDP uplink is cut into 1,500-byte frames both ways. A
//! [`PacketPort`] is an `AF_PACKET` socket bound to the interface with
//! `PACKET_VNET_HDR`: the kernel hands it 64 KB GSO segments (a veth peer's
//! TSO output, a NIC's GRO output) with the same virtio-net header a TAP
//! uses, and takes segments back the same way, so segments stay whole from
//! container to wire. This is what Open vSwitch's userspace datapath does
//! for its system ports with `userspace-tso-enable`.
//!
//! The host keeps its NIC:
//! - a classic BPF socket filter passes the switch only ARP for its address
//!   and IPv4 to its address ([`PacketFilter::Owned`]), and
//!   `PACKET_IGNORE_OUTGOING` keeps the host's own transmissions out, so
//!   other host traffic costs one filter run;
//! - the kernel still sees the switch's frames (AF_PACKET taps, it does not
//!   steal), but they are addressed to the switch's own MAC, not the
//!   interface's, so the kernel drops them as `PACKET_OTHERHOST` in
//!   `ip_rcv` before routing or forwarding: it never acts on them. The
//!   switch's MAC is added to the interface's unicast filter
//!   (`PACKET_MR_UNICAST`) so a NIC that filters by MAC delivers them.
//!
//! Transmit bypasses the qdisc (`PACKET_QDISC_BYPASS`, as DPDK's af_packet
//! PMD does) and goes out with `sendmmsg`, one system call per burst.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::counters::{DropReason, PortCounters};
use crate::frame::Frame;
use crate::pool::{Pool, CHUNK_DATA};
use crate::port::{Port, PortId, MAX_BURST};
use crate::spill::SpillRx;
use crate::tap::{build_vnet_hdr, parse_vnet_hdr, VNET_HDR_LEN};
use crate::wire::MacAddr;

/// Frames read per `recvmmsg`; each needs a spare large buffer in case it is
/// a 64 KB segment, so this bounds how many large buffers a port holds.
const RX_BATCH: usize = 8;

/// Socket buffer sizes: the default 208 KB holds three 64 KB segments,
/// which a sleeping PMD thread overflows at once.
const SOCKET_BUFFER: libc::c_int = 8 << 20;

/// `ETH_P_ALL` in network byte order, as `sockaddr_ll` wants it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// Which frames of the interface belong to the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketFilter {
    /// Every frame: the interface is the switch's alone (a veth whose peer
    /// is a container); it is put in promiscuous mode.
    All,
    /// Only ARP for `ip` and IPv4 to `ip` (an uplink shared with the host),
    /// with the switch answering as `mac`.
    Owned {
        /// The switch's address on the interface.
        ip: Ipv4Addr,
        /// The switch's MAC there, added to the interface's unicast filter.
        mac: MacAddr,
    },
}

/// Errors opening an AF_PACKET port.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// The interface does not exist in this namespace.
    #[error("interface {0} does not exist in this network namespace")]
    NoSuchInterface(String),
    /// A system call failed while setting the socket up.
    #[error("AF_PACKET socket on {iface}: {step}: {}", explain(.source))]
    Setup {
        /// The interface.
        iface: String,
        /// What was being done.
        step: &'static str,
        /// The error from the kernel.
        source: io::Error,
    },
}

fn explain(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "permission denied (need CAP_NET_RAW and CAP_NET_ADMIN)".to_string()
        }
        Some(libc::ENOPROTOOPT) => {
            "the kernel lacks this AF_PACKET option (PACKET_VNET_HDR needs Linux 3.14)".to_string()
        }
        _ => e.to_string(),
    }
}

/// An AF_PACKET socket on a host interface, polled by one PMD thread.
pub struct PacketPort {
    iface: String,
    id: PortId,
    fd: OwnedFd,
    /// Bytes of virtio-net header in front of every frame: 12 where the
    /// kernel takes `PACKET_VNET_HDR_SZ` (6.7+), else the legacy 10.
    hdr_len: usize,
    counters: Arc<PortCounters>,
    spill: SpillRx<RX_BATCH>,
    /// Small frames waiting for a `recvmmsg`, kept to avoid reallocating.
    rx_small: Vec<Frame>,
}

impl std::fmt::Debug for PacketPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketPort")
            .field("iface", &self.iface)
            .field("id", &self.id)
            .field("fd", &self.fd.as_raw_fd())
            .field("hdr_len", &self.hdr_len)
            .finish()
    }
}

/// Sets an integer socket option.
fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    set_opt(fd, level, opt, &value)
}

/// Sets a socket option from a plain-data value.
fn set_opt<T>(fd: RawFd, level: libc::c_int, opt: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of exactly the length passed;
    // setsockopt only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Classic BPF that accepts ARP whose target is `ip` and IPv4 to `ip`, and
/// nothing else. Hand-written: eight instructions, where an eBPF toolchain
/// would be a build dependency for nothing.
fn owned_filter(ip: Ipv4Addr) -> [libc::sock_filter; 9] {
    const LDH_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LDW_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let ip = u32::from(ip);
    // Jump offsets count from the next instruction.
    [
        op(LDH_ABS, 0, 0, 12),                          // 0: EtherType
        op(JEQ_K, 0, 2, libc::ETH_P_ARP as u32),        // 1: ARP? 2 : 4
        op(LDW_ABS, 0, 0, 14 + 24),                     // 2: ARP target address
        op(JEQ_K, 3, 4, ip),                            // 3: ours? 7 : 8
        op(JEQ_K, 0, 3, libc::ETH_P_IP as u32),         // 4: IPv4? 5 : 8
        op(LDW_ABS, 0, 0, 14 + 16),                     // 5: IPv4 destination
        op(JEQ_K, 0, 1, ip),                            // 6: ours? 7 : 8
        op(RET_K, 0, 0, u32::MAX),                      // 7: accept whole
        op(RET_K, 0, 0, 0),                             // 8: drop
    ]
}

impl PacketPort {
    /// Opens an AF_PACKET port on `iface` (in the calling thread's
    /// namespace) that takes the frames `filter` says are the switch's.
    pub fn open(iface: &str, id: PortId, filter: PacketFilter) -> Result<PacketPort, PacketError> {
        let ifindex = crate::netdev::ifindex(iface)
            .ok_or_else(|| PacketError::NoSuchInterface(iface.to_string()))?;
        let fail = |step| {
            let source = io::Error::last_os_error();
            PacketError::Setup {
                iface: iface.to_string(),
                step,
                source,
            }
        };
        let wrap = |step| {
            move |source| PacketError::Setup {
                iface: iface.to_string(),
                step,
                source,
            }
        };
        // Protocol 0: nothing is queued before the filter is on and the
        // socket is bound.
        // SAFETY: socket(2) has no memory preconditions; the result is
        // checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(fail("socket"));
        }
        // SAFETY: `raw` was just returned by socket(2) and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        let hdr_len =
            match set_int(s, libc::SOL_PACKET, libc::PACKET_VNET_HDR_SZ, VNET_HDR_LEN as _) {
                Ok(()) => VNET_HDR_LEN,
                Err(_) => {
                    set_int(s, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)
                        .map_err(wrap("enabling PACKET_VNET_HDR"))?;
                    10
                }
            };
        set_int(s, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)
            .map_err(wrap("setting PACKET_IGNORE_OUTGOING"))?;
        set_int(s, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)
            .map_err(wrap("setting PACKET_QDISC_BYPASS"))?;
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            // FORCE needs CAP_NET_ADMIN; without it the plain option is
            // capped by net.core.[rw]mem_max, which is still better than
            // nothing.
            if set_int(s, libc::SOL_SOCKET, force, SOCKET_BUFFER).is_err() {
                set_int(s, libc::SOL_SOCKET, plain, SOCKET_BUFFER)
                    .map_err(wrap("sizing the socket buffers"))?;
            }
        }
        if let PacketFilter::Owned { ip, .. } = filter {
            let mut prog = owned_filter(ip);
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_mut_ptr(),
            };
            set_opt(s, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
                .map_err(wrap("attaching the socket filter"))?;
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL_BE;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a live sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                s,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(fail("binding to the interface"));
        }
        // SAFETY: packet_mreq is plain data; all-zero is a valid value.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = ifindex as i32;
        match filter {
            PacketFilter::All => mreq.mr_type = libc::PACKET_MR_PROMISC as u16,
            PacketFilter::Owned { mac, .. } => {
                mreq.mr_type = libc::PACKET_MR_UNICAST as u16;
                mreq.mr_alen = 6;
                mreq.mr_address[..6].copy_from_slice(&mac.0);
            }
        }
        // The kernel undoes the membership when the socket closes.
        set_opt(s, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(wrap("adding the switch's MAC to the interface"))?;
        Ok(PacketPort {
            iface: iface.to_string(),
            id,
            fd,
            hdr_len,
            counters: Arc::default(),
            spill: SpillRx::new(),
            rx_small: Vec::with_capacity(RX_BATCH),
        })
    }

    /// The port's id.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// Bytes of virtio-net header per frame (12, or 10 on kernels before 6.7).
    pub fn vnet_hdr_len(&self) -> usize {
        self.hdr_len
    }
}

fn iov(base: *mut u8, len: usize) -> libc::iovec {
    libc::iovec {
        iov_base: base.cast(),
        iov_len: len,
    }
}

impl Port for PacketPort {
    fn name(&self) -> &str {
        &self.iface
    }

    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Vec<Frame>, max: usize) -> usize {
        let mut got = 0;
        while got < max {
            let want = (max - got).min(RX_BATCH);
            self.spill.refill(pool);
            self.rx_small.clear();
            while self.rx_small.len() < want {
                match pool.alloc() {
                    Some(f) => self.rx_small.push(f),
                    None => break,
                }
            }
            let n = self.rx_small.len();
            if n == 0 {
                // No buffer: leave the frames in the socket (the kernel
                // counts its own drops if the queue overflows).
                self.counters.count_drop(DropReason::NoBuffer);
                break;
            }
            let mut hdrs = [[0u8; VNET_HDR_LEN]; RX_BATCH];
            let mut iovs = [[iov(std::ptr::null_mut(), 0); 3]; RX_BATCH];
            // SAFETY: mmsghdr is plain data; all-zero is a valid value.
            let mut msgs: [libc::mmsghdr; RX_BATCH] = unsafe { std::mem::zeroed() };
            for i in 0..n {
                let (spill_ptr, spill_len) = self.spill.target(pool, i);
                let room = pool.room_mut(&mut self.rx_small[i]);
                let small_len = room.len().min(CHUNK_DATA);
                iovs[i] = [
                    iov(hdrs[i].as_mut_ptr(), self.hdr_len),
                    iov(room.as_mut_ptr(), small_len),
                    iov(spill_ptr, spill_len),
                ];
                msgs[i].msg_hdr.msg_iov = iovs[i].as_mut_ptr();
                msgs[i].msg_hdr.msg_iovlen = 3;
            }
            // SAFETY: `msgs[..n]` point to iovecs into buffers this port
            // owns exclusively for the call (its header array, pool frames it
            // holds, its spill buffers), each for the length given; the
            // kernel writes at most that much into each.
            let rc = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    n as u32,
                    libc::MSG_TRUNC,
                    std::ptr::null_mut(),
                )
            };
            let received = if rc < 0 {
                let e = io::Error::last_os_error();
                if !matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
                    tracing::debug!(port = %self.iface, "recvmmsg: {e}");
                }
                0
            } else {
                rc as usize
            };
            let mut small = std::mem::take(&mut self.rx_small);
            for (i, frame) in small.drain(..).enumerate() {
                if i >= received {
                    pool.free(frame);
                    continue;
                }
                let total = msgs[i].msg_len as usize;
                let truncated = msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                if total < self.hdr_len + crate::wire::ETH_HDR {
                    self.counters.count_drop(DropReason::Runt);
                    pool.free(frame);
                    continue;
                }
                let len = total - self.hdr_len;
                let mut frame = match self.spill.settle(pool, frame, i, len, truncated) {
                    Ok(f) => f,
                    Err(reason) => {
                        self.counters.count_drop(reason);
                        continue;
                    }
                };
                frame.in_port = self.id;
                frame.offload = parse_vnet_hdr(&hdrs[i]);
                self.counters.rx_packets.add(1);
                self.counters.rx_bytes.add(len as u64);
                out.push(frame);
                got += 1;
            }
            self.rx_small = small;
            if received < n {
                break;
            }
        }
        got
    }

    fn tx_burst(&mut self, pool: &mut Pool, frames: &mut Vec<Frame>) {
        let mut start = 0;
        while start < frames.len() {
            let n = (frames.len() - start).min(MAX_BURST);
            let mut hdrs = [[0u8; VNET_HDR_LEN]; MAX_BURST];
            let mut iovs = [[iov(std::ptr::null_mut(), 0); 2]; MAX_BURST];
            // SAFETY: mmsghdr is plain data; all-zero is a valid value.
            let mut msgs: [libc::mmsghdr; MAX_BURST] = unsafe { std::mem::zeroed() };
            for i in 0..n {
                let frame = &frames[start + i];
                hdrs[i] = build_vnet_hdr(&frame.offload);
                let data = pool.data(frame);
                iovs[i] = [
                    iov(hdrs[i].as_mut_ptr(), self.hdr_len),
                    iov(data.as_ptr() as *mut u8, data.len()),
                ];
                msgs[i].msg_hdr.msg_iov = iovs[i].as_mut_ptr();
                msgs[i].msg_hdr.msg_iovlen = 2;
            }
            // SAFETY: every iovec points into a live buffer (the local
            // headers, frames the caller handed over and that are freed only
            // after this loop) for the length given; sendmmsg only reads them.
            let rc = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
            let sent = if rc > 0 {
                rc as usize
            } else {
                // The first frame failed: count it and go on with the rest.
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                        self.counters.count_drop(DropReason::TxFull)
                    }
                    _ => {
                        tracing::trace!(port = %self.iface, "sendmmsg: {e}");
                        self.counters.count_drop(DropReason::TxError)
                    }
                }
                start += 1;
                continue;
            };
            for frame in &frames[start..start + sent] {
                self.counters.tx_packets.add(1);
                self.counters.tx_bytes.add(frame.len() as u64);
            }
            start += sent;
        }
        for frame in frames.drain(..) {
            pool.free(frame);
        }
    }

    fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }

    fn rx_fds(&self) -> Vec<RawFd> {
        vec![self.fd.as_raw_fd()]
    }

    fn accepts_offload(&self) -> bool {
        true
    }

    fn release(&mut self, pool: &mut Pool) {
        self.spill.release(pool);
        for f in self.rx_small.drain(..) {
            pool.free(f);
        }
    }
}

impl Drop for PacketPort {
    fn drop(&mut self) {
        if self.spill.holds_frames() {
            tracing::warn!(port = %self.iface, "AF_PACKET port dropped without release()");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter over `frame` the way the kernel's cBPF interpreter
    /// would for the few instructions it uses.
    fn run(prog: &[libc::sock_filter], frame: &[u8]) -> u32 {
        let mut a = 0u32;
        let mut pc = 0;
        loop {
            let i = prog[pc];
            let k = i.k as usize;
            match i.code as u32 {
                c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_ABS => {
                    let Some(b) = frame.get(k..k + 2) else { return 0 };
                    a = u16::from_be_bytes([b[0], b[1]]) as u32;
                }
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let Some(b) = frame.get(k..k + 4) else { return 0 };
                    a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                }
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += if a == i.k { i.jt } else { i.jf } as usize;
                }
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                other => panic!("instruction {other:#x} not modelled"),
            }
            pc += 1;
        }
    }

    fn frame(ethertype: u16, at: usize, addr: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f[at..at + 4].copy_from_slice(&addr);
        f
    }

    #[test]
    fn the_filter_takes_arp_and_ipv4_for_the_switch_and_nothing_else() {
        let prog = owned_filter(Ipv4Addr::new(10, 99, 0, 2));
        let ours = [10, 99, 0, 2];
        let host = [10, 99, 0, 3];
        assert_eq!(run(&prog, &frame(0x0806, 38, ours)), u32::MAX);
        assert_eq!(run(&prog, &frame(0x0800, 30, ours)), u32::MAX);
        assert_eq!(run(&prog, &frame(0x0806, 38, host)), 0);
        assert_eq!(run(&prog, &frame(0x0800, 30, host)), 0);
        // An IPv6 frame, or an IPv4 frame with our address as its source.
        assert_eq!(run(&prog, &frame(0x86dd, 30, ours)), 0);
        assert_eq!(run(&prog, &frame(0x0800, 26, ours)), 0);
        // A runt is refused, not read past its end.
        assert_eq!(run(&prog, &frame(0x0800, 30, ours)[..20]), 0);
    }

    #[test]
    fn a_missing_interface_is_named_in_the_error() {
        let e = PacketPort::open("pd-no-such-if", PortId(0), PacketFilter::All).unwrap_err();
        assert_eq!(
            e.to_string(),
            "interface pd-no-such-if does not exist in this network namespace"
        );
    }
}
