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
//!   and IPv4 to its address ([`PacketFilter::Owned`]), plus the frames of
//!   an L2 network bridged onto the segment ([`Bridged`]: to its endpoints'
//!   MACs, ARP and IPv4 for their addresses), and
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
use crate::frame::{Frame, Offload};
use crate::pool::{Pool, CHUNK_DATA};
use crate::port::{Port, PortId, MAX_BURST};
use crate::spill::SpillRx;
use crate::tap::{build_vnet_hdr, parse_vnet_hdr, VNET_HDR_LEN};
use crate::wire::MacAddr;

mod spread;
pub use spread::ArpDelivery;

/// Frames read per `recvmmsg`; each needs a spare large buffer in case it is
/// a 64 KB segment, so this bounds how many large buffers a port holds.
const RX_BATCH: usize = 8;

/// Socket buffer sizes: the default 208 KB holds three 64 KB segments,
/// which a sleeping PMD thread overflows at once.
const SOCKET_BUFFER: libc::c_int = 8 << 20;

/// Where a port's sockets tap the interface's receive path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binding {
    /// One socket bound to `ETH_P_ALL`: it gets its copy of every frame
    /// before tc ingress runs (ptype_all taps come first in
    /// `__netif_receive_skb_core`), so it sees even what a tc program
    /// redirects.
    #[default]
    AllFrames,
    /// One socket each for IPv4, ARP and IPv6 (ptype_specific handlers,
    /// served after tc ingress): a frame the flow offload's tc program
    /// redirects never reaches the switch. Other ethertypes are not taken.
    AfterTc,
}

impl Binding {
    /// The protocols to bind, in network byte order as `sockaddr_ll`
    /// wants them.
    fn protocols(self) -> &'static [u16] {
        const ALL: [u16; 1] = [(libc::ETH_P_ALL as u16).to_be()];
        const PER_PROTO: [u16; 3] = [
            (libc::ETH_P_IP as u16).to_be(),
            (libc::ETH_P_ARP as u16).to_be(),
            (libc::ETH_P_IPV6 as u16).to_be(),
        ];
        match self {
            Binding::AllFrames => &ALL,
            Binding::AfterTc => &PER_PROTO,
        }
    }
}

/// `ETH_P_ALL` in network byte order, as `sockaddr_ll` wants it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// Which frames of the interface belong to the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketFilter {
    /// Every frame: the interface is the switch's alone (a veth whose peer
    /// is a container); it is put in promiscuous mode.
    All,
    /// Only ARP for `ip` and IPv4 to `ip` (an uplink shared with the host),
    /// with the switch answering as `mac`, and the frames of the L2
    /// networks bridged onto the interface (`bridged`).
    Owned {
        /// The switch's address on the interface; `None` when only L2
        /// networks' endpoints have addresses there.
        ip: Option<Ipv4Addr>,
        /// The switch's MAC there, added to the interface's unicast filter.
        mac: Option<MacAddr>,
        /// UDP ports the switch terminates VXLAN on (its overlay networks').
        vxlan_ports: Vec<u16>,
        /// What belongs to the L2 network on the interface's segment.
        bridged: Bridged,
    },
}

/// The frames of an L2 network on a shared interface (transparent,
/// l2bridge, l2tunnel). The kernel sees them too but does not act on them:
/// those to `macs` are `PACKET_OTHERHOST` to it, as are those to the
/// switch's MAC; ARP for `ips` asks for no address of the host's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bridged {
    /// Destination MACs taken whole (transparent endpoints' own MACs),
    /// each added to the interface's unicast filter.
    pub macs: Vec<MacAddr>,
    /// Addresses whose ARP (by target) and IPv4 (by destination) are taken:
    /// the endpoints'.
    pub ips: Vec<Ipv4Addr>,
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
    /// The first socket frames are received from (and, without `tx`, sent
    /// through).
    fd: OwnedFd,
    /// With [`Binding::AfterTc`], the socket frames are sent through,
    /// bound to protocol 0: it receives nothing, and the kernel takes each
    /// sent frame's protocol from its ethertype. Sent through a socket
    /// bound to `ETH_P_IP`, an ARP or IPv6 frame would leave with
    /// `skb->protocol` IPv4, which GSO and checksum offload go by.
    tx: Option<OwnedFd>,
    /// With [`Binding::AfterTc`], the sockets of the other protocols (same
    /// filter and options); empty with [`Binding::AllFrames`].
    more: Vec<OwnedFd>,
    /// Which receiving socket a burst starts with: turns, so a busy
    /// protocol does not starve the others.
    rx_turn: usize,
    /// Bytes of virtio-net header in front of every frame: 12 where the
    /// kernel takes `PACKET_VNET_HDR_SZ` (6.7+), else the legacy 10.
    hdr_len: usize,
    /// A second socket, without the header, for VXLAN super-frames (see
    /// [`owned_filter`]); only on uplinks of overlay networks.
    tunnel: Option<OwnedFd>,
    /// The overlay MTU on this interface, for super-frames' MSS.
    inner_mtu: u16,
    counters: Arc<PortCounters>,
    spill: SpillRx<RX_BATCH>,
    /// What an uplink's filter takes (`None`: everything).
    spec: Option<OwnedSpec>,
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

/// Which of the switch's frames a socket takes (see [`owned_filter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Share {
    /// Everything but VXLAN super-frames: the socket with virtio-net headers.
    Segments,
    /// Only VXLAN super-frames: the plain socket.
    Tunnel,
}

/// A cBPF program under construction, with jumps to two final labels.
struct Cbpf {
    insns: Vec<libc::sock_filter>,
    /// (instruction, true-branch target, false-branch target) for jumps.
    fixups: Vec<(usize, Label, Label)>,
    /// (instruction, target) for unconditional far jumps.
    far: Vec<(usize, Label)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    /// The next instruction.
    Next,
    /// This many instructions past the next one.
    Ahead(u8),
    /// Take the whole frame.
    Accept,
    /// Take nothing.
    Drop,
}

impl Cbpf {
    fn new() -> Cbpf {
        Cbpf {
            insns: Vec::new(),
            fixups: Vec::new(),
            far: Vec::new(),
        }
    }

    fn stmt(&mut self, code: u32, k: u32) {
        self.insns.push(libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        });
    }

    fn jump(&mut self, code: u32, k: u32, jt: Label, jf: Label) {
        self.fixups.push((self.insns.len(), jt, jf));
        self.stmt(libc::BPF_JMP | code | libc::BPF_K, k);
    }

    /// Always jumps to `to`.
    fn goto(&mut self, to: Label) {
        self.jump(libc::BPF_JEQ, 0, to, to);
    }

    /// Always jumps to `to`, however far (`BPF_JA` takes a 32-bit offset
    /// where conditional jumps take 8 bits): lists of addresses end each
    /// match with one, so no conditional jump spans a list.
    fn goto_far(&mut self, to: Label) {
        self.far.push((self.insns.len(), to));
        self.stmt(libc::BPF_JMP | libc::BPF_JA, 0);
    }

    /// Jumps `n` instructions past the next one.
    fn skip(&mut self, n: u32) {
        self.stmt(libc::BPF_JMP | libc::BPF_JA, n);
    }

    /// Appends `accept: ret whole; drop: ret 0` and resolves the jumps.
    fn finish(mut self) -> Vec<libc::sock_filter> {
        let accept = self.insns.len();
        self.stmt(libc::BPF_RET | libc::BPF_K, u32::MAX);
        self.stmt(libc::BPF_RET | libc::BPF_K, 0);
        let off = |at: usize, l: Label| match l {
            Label::Next => 0,
            Label::Ahead(n) => usize::from(n),
            Label::Accept => accept - at - 1,
            Label::Drop => accept - at,
        };
        for (at, jt, jf) in self.fixups {
            // Conditional jumps to the end come after the address lists
            // (which end in far jumps), so they stay within 8 bits.
            debug_assert!(off(at, jt) <= 255 && off(at, jf) <= 255);
            self.insns[at].jt = off(at, jt) as u8;
            self.insns[at].jf = off(at, jf) as u8;
        }
        for (at, to) in self.far {
            self.insns[at].k = off(at, to) as u32;
        }
        self.insns
    }
}

/// Classic BPF over the switch's frames on a shared interface.
///
/// The switch's frames are ARP whose target is `ip` and IPv4 to `ip`. Among
/// them, a *VXLAN super-frame* is UDP to one of `vxlan_ports` longer than
/// `max_frame`: a kernel VXLAN device's TSO output, one GSO skb of type
/// `SKB_GSO_UDP_TUNNEL`. The virtio-net header cannot describe that type;
/// a `PACKET_VNET_HDR` socket fails the read (EINVAL) and loses the frame.
/// So super-frames go to a second socket without the header
/// ([`Share::Tunnel`]) and everything else to the first
/// ([`Share::Segments`]).
///
/// Hand-written: a dozen instructions, where an eBPF toolchain would be a
/// build dependency for nothing.
///
/// Before that, on the segments socket, the frames of an L2 network
/// (`bridged`): to one of its MACs, or ARP or IPv4 for one of its
/// addresses. Each list entry ends in a far jump, so the program grows by
/// 5 instructions a MAC and 4 an address (the kernel takes 4,096).
fn owned_filter(
    ip: Option<Ipv4Addr>,
    bridged: &Bridged,
    vxlan_ports: &[u16],
    max_frame: u32,
    share: Share,
) -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_B, BPF_H, BPF_IND, BPF_JEQ, BPF_JGT, BPF_LD, BPF_LDX, BPF_LEN};
    use libc::{BPF_MSH, BPF_W};
    use Label::{Accept, Ahead, Drop, Next};
    let (super_frame, other) = match share {
        Share::Segments => (Drop, Accept),
        Share::Tunnel => (Accept, Drop),
    };
    let mut p = Cbpf::new();
    let segments = share == Share::Segments;
    if segments {
        for mac in &bridged.macs {
            let m = mac.0;
            p.stmt(BPF_LD | BPF_W | BPF_ABS, 0); // destination MAC
            p.jump(
                BPF_JEQ,
                u32::from_be_bytes([m[0], m[1], m[2], m[3]]),
                Next,
                Ahead(3),
            );
            p.stmt(BPF_LD | BPF_H | BPF_ABS, 4);
            p.jump(
                BPF_JEQ,
                u32::from(u16::from_be_bytes([m[4], m[5]])),
                Next,
                Ahead(1),
            );
            p.goto_far(Accept);
        }
    }
    p.stmt(BPF_LD | BPF_H | BPF_ABS, 12); // EtherType
    if segments {
        let arp_ips: Vec<u32> = bridged
            .ips
            .iter()
            .chain(&ip)
            .map(|a| u32::from(*a))
            .collect();
        p.jump(BPF_JEQ, libc::ETH_P_ARP as u32, Ahead(1), Next);
        // Past the ARP block: its load, two per address, its drop.
        p.skip(2 + 2 * arp_ips.len() as u32);
        p.stmt(BPF_LD | BPF_W | BPF_ABS, 14 + 24); // ARP target address
        for a in arp_ips {
            p.jump(BPF_JEQ, a, Next, Ahead(1));
            p.goto_far(Accept);
        }
        p.goto_far(Drop);
    }
    if segments && !bridged.ips.is_empty() {
        p.jump(BPF_JEQ, libc::ETH_P_IP as u32, Ahead(1), Next);
        p.goto_far(Drop);
    } else {
        p.jump(BPF_JEQ, libc::ETH_P_IP as u32, Next, Drop);
    }
    p.stmt(BPF_LD | BPF_W | BPF_ABS, 14 + 16); // destination
    if segments {
        for a in &bridged.ips {
            p.jump(BPF_JEQ, u32::from(*a), Next, Ahead(1));
            p.goto_far(Accept);
        }
    }
    let Some(ip) = ip else {
        p.goto(Drop);
        return p.finish();
    };
    p.jump(BPF_JEQ, u32::from(ip), Next, Drop);
    if vxlan_ports.is_empty() {
        p.goto(other);
        return p.finish();
    }
    p.stmt(BPF_LD | BPF_W | BPF_LEN, 0);
    p.jump(BPF_JGT, max_frame, Next, other);
    p.stmt(BPF_LD | BPF_B | BPF_ABS, 14 + 9); // protocol
    p.jump(BPF_JEQ, libc::IPPROTO_UDP as u32, Next, other);
    p.stmt(BPF_LDX | BPF_B | BPF_MSH, 14); // X = IPv4 header length
    p.stmt(BPF_LD | BPF_H | BPF_IND, 14 + 2); // UDP destination port
    for port in vxlan_ports {
        p.jump(BPF_JEQ, u32::from(*port), super_frame, Next);
    }
    p.goto(other);
    p.finish()
}

/// The kernel's longest classic BPF program (`BPF_MAXINSNS`).
const MAX_FILTER_INSNS: usize = 4096;

/// Attaches (or replaces: the kernel swaps the old one out atomically)
/// the socket filter of `fd`. A program past the kernel's limit is an
/// error that says why, where the kernel would only say EINVAL.
fn attach_filter(fd: RawFd, filter: &[libc::sock_filter]) -> io::Result<()> {
    if filter.len() > MAX_FILTER_INSNS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the socket filter would need {} instructions, more than the kernel's {MAX_FILTER_INSNS}: \
                 too many L2 endpoint addresses and MACs on one uplink (each takes 4 or 5)",
                filter.len()
            ),
        ));
    }
    let fprog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    set_opt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// Adds `mac` to (or drops it from) the unicast filter of interface
/// `ifindex` for as long as socket `fd` lives.
fn unicast_membership(fd: RawFd, ifindex: u32, mac: MacAddr, add: bool) -> io::Result<()> {
    // SAFETY: packet_mreq is plain data; all-zero is a valid value.
    let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
    mreq.mr_ifindex = ifindex as i32;
    mreq.mr_type = libc::PACKET_MR_UNICAST as u16;
    mreq.mr_alen = 6;
    mreq.mr_address[..6].copy_from_slice(&mac.0);
    let opt = if add {
        libc::PACKET_ADD_MEMBERSHIP
    } else {
        libc::PACKET_DROP_MEMBERSHIP
    };
    set_opt(fd, libc::SOL_PACKET, opt, &mreq)
}

/// The sockets of a port, as [`PacketPort`] names them.
struct Sockets {
    fd: OwnedFd,
    more: Vec<OwnedFd>,
    tx: Option<OwnedFd>,
    tunnel: Option<OwnedFd>,
    hdr_len: usize,
}

/// The frames an uplink socket takes, kept to rebuild its filter.
#[derive(Debug, Clone)]
struct OwnedSpec {
    ifindex: u32,
    ip: Option<Ipv4Addr>,
    vxlan_ports: Vec<u16>,
    max_frame: u32,
    bridged: Bridged,
}

/// The control side's hold on an uplink socket's filter: an L2 network's
/// endpoints come and go at run time while its PMD thread polls the port.
/// A second descriptor of the same socket, so the filter and unicast MACs
/// it sets are the port's.
#[derive(Debug)]
pub struct FilterHandle {
    iface: String,
    /// Duplicates of every segment socket of the port (one per bound
    /// protocol); the first holds the unicast memberships.
    fds: Vec<OwnedFd>,
    spec: OwnedSpec,
}

impl FilterHandle {
    /// What the socket takes of the L2 network now.
    pub fn bridged(&self) -> &Bridged {
        &self.spec.bridged
    }

    /// Makes the socket take `bridged`: new MACs join the interface's
    /// unicast filter before the socket filter takes them, and leave it
    /// after it stopped taking them.
    pub fn set_bridged(&mut self, bridged: Bridged) -> Result<(), PacketError> {
        let wrap = |step| {
            let iface = self.iface.clone();
            move |source| PacketError::Setup {
                iface,
                step,
                source,
            }
        };
        let (fd, ifindex) = (self.fds[0].as_raw_fd(), self.spec.ifindex);
        let old = &self.spec.bridged.macs;
        for m in bridged.macs.iter().filter(|m| !old.contains(m)) {
            unicast_membership(fd, ifindex, *m, true)
                .map_err(wrap("adding an endpoint's MAC to the interface"))?;
        }
        let s = &self.spec;
        let prog = owned_filter(s.ip, &bridged, &s.vxlan_ports, s.max_frame, Share::Segments);
        for f in &self.fds {
            attach_filter(f.as_raw_fd(), &prog).map_err(wrap("replacing the socket filter"))?;
        }
        for m in old.iter().filter(|m| !bridged.macs.contains(m)) {
            unicast_membership(fd, ifindex, *m, false)
                .map_err(wrap("dropping an endpoint's MAC from the interface"))?;
        }
        self.spec.bridged = bridged;
        Ok(())
    }
}

/// Opens a non-blocking AF_PACKET socket bound to `ifindex`, with virtio-net
/// headers when `vnet`, taking only what `filter` accepts (all when empty).
/// Returns the socket and its header length.
fn bound_socket(
    iface: &str,
    ifindex: u32,
    vnet: bool,
    filter: &[libc::sock_filter],
    protocol_be: u16,
) -> Result<(OwnedFd, usize), PacketError> {
    let wrap = |step| {
        move |source| PacketError::Setup {
            iface: iface.to_string(),
            step,
            source,
        }
    };
    // Protocol 0: nothing is queued before the filter is on and the socket
    // is bound.
    // SAFETY: socket(2) has no memory preconditions; the result is checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(wrap("socket")(io::Error::last_os_error()));
    }
    // SAFETY: `raw` was just returned by socket(2) and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let s = fd.as_raw_fd();
    let hdr_len = if !vnet {
        0
    } else if set_int(
        s,
        libc::SOL_PACKET,
        libc::PACKET_VNET_HDR_SZ,
        VNET_HDR_LEN as _,
    )
    .is_ok()
    {
        VNET_HDR_LEN
    } else {
        set_int(s, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)
            .map_err(wrap("enabling PACKET_VNET_HDR"))?;
        10
    };
    set_int(s, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)
        .map_err(wrap("setting PACKET_IGNORE_OUTGOING"))?;
    set_int(s, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)
        .map_err(wrap("setting PACKET_QDISC_BYPASS"))?;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        // FORCE needs CAP_NET_ADMIN; without it the plain option is capped
        // by net.core.[rw]mem_max, which is still better than nothing.
        if set_int(s, libc::SOL_SOCKET, force, SOCKET_BUFFER).is_err() {
            set_int(s, libc::SOL_SOCKET, plain, SOCKET_BUFFER)
                .map_err(wrap("sizing the socket buffers"))?;
        }
    }
    if !filter.is_empty() {
        attach_filter(s, filter).map_err(wrap("attaching the socket filter"))?;
    }
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol_be;
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
        return Err(wrap("binding to the interface")(io::Error::last_os_error()));
    }
    Ok((fd, hdr_len))
}

/// The offload a VXLAN super-frame carries: the inner TCP segment's
/// checksum is pending (CHECKSUM_PARTIAL under the tunnel) and it is to be
/// cut at the inner MSS. The kernel does not say the MSS through a socket
/// without a virtio-net header; the sender's is its route MTU (the overlay
/// MTU, `inner_mtu`) less the inner IP and TCP headers, as Linux's
/// `tcp_mss_to_mtu` has it. `None` when the inner frame is not TCP over
/// IPv4 (then the frame is dropped as an offload error).
fn super_frame_offload(frame: &[u8], inner_mtu: u16) -> Option<Offload> {
    use crate::wire::{tcp, TcpPacket};
    let (_, ip_at) = vxlan_inner_ipv4(frame)?;
    let ip = crate::wire::Ipv4Packet::new_unchecked(&frame[ip_at..]);
    if ip.protocol() != crate::wire::IPPROTO_TCP {
        return None;
    }
    let ihl = ip.header_len();
    let tcp_at = ip_at + ihl;
    let tcp_len = TcpPacket::new_checked(frame.get(tcp_at..)?)
        .ok()?
        .header_len();
    let headers = ihl + tcp_len;
    if usize::from(inner_mtu) <= headers {
        return None;
    }
    Some(Offload {
        needs_csum: true,
        data_valid: false,
        gso_type: GSO_TCPV4,
        hdr_len: (tcp_at + tcp_len) as u16,
        gso_size: inner_mtu - headers as u16,
        csum_start: tcp_at as u16,
        csum_offset: tcp::CHECKSUM_OFFSET as u16,
        csum_lost: false,
    })
}

/// Where a UDP GSO train's datagrams start and how long each one's UDP
/// payload is, when `frame` is one: several VXLAN datagrams end to end
/// under one UDP header (a podswitch sender's `overlay::train`). A train's
/// first inner frame ends before the frame does; a kernel VXLAN
/// super-frame's one inner frame runs to the end.
pub fn train_layout(frame: &[u8]) -> Option<(usize, usize)> {
    let (payload, ip_at) = vxlan_inner_ipv4(frame)?;
    let ip = crate::wire::Ipv4Packet::new_unchecked(&frame[ip_at..]);
    let stride = ip_at - payload + usize::from(ip.total_len());
    (payload + stride < frame.len()).then_some((payload, stride))
}

/// In a VXLAN frame over IPv4 whose inner frame is IPv4: where the outer
/// UDP payload (the VXLAN header) starts and where the inner IPv4 header
/// starts, both headers checked for length.
fn vxlan_inner_ipv4(frame: &[u8]) -> Option<(usize, usize)> {
    use crate::wire::{udp, EthernetFrame, Ipv4Packet, ETH_HDR};
    const VXLAN_HDR: usize = 8;
    let outer = Ipv4Packet::new_checked(frame.get(ETH_HDR..)?).ok()?;
    let payload = ETH_HDR + outer.header_len() + udp::HEADER_LEN;
    let inner = payload + VXLAN_HDR;
    let eth = EthernetFrame::new_checked(frame.get(inner..)?).ok()?;
    let ip_at = inner + ETH_HDR;
    Ipv4Packet::new_checked(frame.get(ip_at..)?).ok()?;
    (eth.ethertype() == crate::wire::ETHERTYPE_IPV4).then_some((payload, ip_at))
}

/// Cuts a train into its datagrams: the outer headers, then each
/// `stride` bytes of payload (the last may be shorter), with their own
/// IPv4 and UDP lengths, IPv4 checksum and no UDP checksum (RFC 7348 lets
/// VXLAN over IPv4 send zero). The inner frames' checksums are whatever
/// the sender wrote, so they are marked `csum_lost`: checked like AF_XDP
/// frames, and merged by GRO on their way to a container. Returns how many
/// datagrams went to `out` (fewer when the pool ran dry).
pub fn split_train(
    pool: &mut Pool,
    train: &Frame,
    payload: usize,
    stride: usize,
    port: PortId,
    out: &mut Vec<Frame>,
) -> usize {
    use crate::wire::{Ipv4Packet, UdpPacket, ETH_HDR};
    let ip_hlen = payload - ETH_HDR - crate::wire::udp::HEADER_LEN;
    let total = train.len();
    let mut n = 0;
    let mut at = payload;
    while at < total {
        let chunk = stride.min(total - at);
        let Some(mut d) = pool.alloc_for(payload + chunk) else {
            break;
        };
        // Both fit: `d` was chosen for `payload + chunk` bytes.
        let copied =
            pool.append(&mut d, train, 0..payload) && pool.append(&mut d, train, at..at + chunk);
        debug_assert!(copied);
        let buf = pool.data_mut(&mut d);
        let mut ip = Ipv4Packet::new_unchecked(&mut buf[ETH_HDR..]);
        ip.set_total_len((ip_hlen + crate::wire::udp::HEADER_LEN + chunk) as u16);
        ip.fill_checksum();
        let mut u = UdpPacket::new_unchecked(&mut buf[ETH_HDR + ip_hlen..]);
        u.set_length((crate::wire::udp::HEADER_LEN + chunk) as u16);
        u.set_checksum(0);
        d.in_port = port;
        d.offload = Offload {
            csum_lost: true,
            ..Offload::default()
        };
        out.push(d);
        n += 1;
        at += chunk;
    }
    n
}

/// Makes the interface deliver what `filter` takes to socket `fd`
/// (promiscuous mode, or the switch's MACs in its unicast filter) and
/// returns what an uplink's filter is rebuilt from. The kernel undoes
/// memberships when the socket closes.
fn memberships(
    iface: &str,
    ifindex: u32,
    max_frame: u32,
    fd: RawFd,
    filter: &PacketFilter,
) -> Result<Option<OwnedSpec>, PacketError> {
    let wrap = |step| {
        move |source| PacketError::Setup {
            iface: iface.to_string(),
            step,
            source,
        }
    };
    Ok(match filter {
        PacketFilter::All => {
            // SAFETY: packet_mreq is plain data; all-zero is a valid value.
            let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
            mreq.mr_ifindex = ifindex as i32;
            mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
            set_opt(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(wrap("putting the interface in promiscuous mode"))?;
            None
        }
        PacketFilter::Owned {
            ip,
            mac,
            vxlan_ports,
            bridged,
        } => {
            for m in mac.iter().chain(&bridged.macs) {
                unicast_membership(fd, ifindex, *m, true)
                    .map_err(wrap("adding the switch's MACs to the interface"))?;
            }
            Some(OwnedSpec {
                ifindex,
                ip: *ip,
                vxlan_ports: vxlan_ports.clone(),
                max_frame,
                bridged: bridged.clone(),
            })
        }
    })
}

/// `VIRTIO_NET_HDR_GSO_TCPV4`.
const GSO_TCPV4: u8 = 1;

/// Outer headers of a VXLAN frame over IPv4 without options: Ethernet 14,
/// IPv4 20, UDP 8, VXLAN 8.
const VXLAN_OVERHEAD: u32 = 50;

impl PacketPort {
    /// Opens an AF_PACKET port on `iface` (in the calling thread's
    /// namespace) that takes the frames `filter` says are the switch's.
    pub fn open(iface: &str, id: PortId, filter: PacketFilter) -> Result<PacketPort, PacketError> {
        PacketPort::open_bound(iface, id, filter, Binding::AllFrames)
    }

    /// Like [`PacketPort::open`], with the receive sockets bound as
    /// `binding` says ([`Binding::AfterTc`] on an offload port, so what
    /// the tc flow offload carries is not taken a second time).
    pub fn open_bound(
        iface: &str,
        id: PortId,
        filter: PacketFilter,
        binding: Binding,
    ) -> Result<PacketPort, PacketError> {
        let ifindex = crate::netdev::ifindex(iface)
            .ok_or_else(|| PacketError::NoSuchInterface(iface.to_string()))?;
        let mtu = crate::netdev::mtu(iface).unwrap_or(1500);
        let max_frame = mtu + crate::wire::ETH_HDR as u32;
        let segment_prog = match &filter {
            PacketFilter::All => Vec::new(),
            PacketFilter::Owned {
                ip,
                vxlan_ports,
                bridged,
                ..
            } => owned_filter(*ip, bridged, vxlan_ports, max_frame, Share::Segments),
        };
        let (first, rest) = binding
            .protocols()
            .split_first()
            .expect("every binding has a protocol");
        let (fd, hdr_len) = bound_socket(iface, ifindex, true, &segment_prog, *first)?;
        let more = rest
            .iter()
            .map(|p| bound_socket(iface, ifindex, true, &segment_prog, *p).map(|(fd, _)| fd))
            .collect::<Result<Vec<_>, _>>()?;
        let tx = match binding {
            Binding::AllFrames => None,
            Binding::AfterTc => Some(bound_socket(iface, ifindex, true, &[], 0)?.0),
        };
        let tunnel = match &filter {
            PacketFilter::All => None,
            PacketFilter::Owned {
                ip,
                vxlan_ports,
                bridged,
                ..
            } => {
                if vxlan_ports.is_empty() {
                    None
                } else {
                    // Super-frames are what the flow offload decapsulates
                    // in tc: after tc, so that one it delivers is not also
                    // the switch's.
                    let proto = match binding {
                        Binding::AllFrames => ETH_P_ALL_BE,
                        Binding::AfterTc => (libc::ETH_P_IP as u16).to_be(),
                    };
                    let prog = owned_filter(*ip, bridged, vxlan_ports, max_frame, Share::Tunnel);
                    Some(bound_socket(iface, ifindex, false, &prog, proto)?.0)
                }
            }
        };
        let spec = memberships(iface, ifindex, max_frame, fd.as_raw_fd(), &filter)?;
        let sockets = Sockets {
            fd,
            more,
            tx,
            tunnel,
            hdr_len,
        };
        Ok(PacketPort::with(iface, id, sockets, mtu, spec))
    }

    /// A port over sockets already set up.
    fn with(
        iface: &str,
        id: PortId,
        sockets: Sockets,
        mtu: u32,
        spec: Option<OwnedSpec>,
    ) -> PacketPort {
        PacketPort {
            iface: iface.to_string(),
            id,
            fd: sockets.fd,
            more: sockets.more,
            tx: sockets.tx,
            rx_turn: 0,
            hdr_len: sockets.hdr_len,
            tunnel: sockets.tunnel,
            inner_mtu: mtu.saturating_sub(VXLAN_OVERHEAD) as u16,
            counters: Arc::default(),
            spill: SpillRx::new(),
            rx_small: Vec::with_capacity(RX_BATCH),
            spec,
        }
    }

    /// A handle on the filter of an uplink (`PacketFilter::Owned`) that
    /// outlives handing the port to its PMD thread; `None` for a port
    /// that takes everything.
    pub fn filter_handle(&self) -> Result<Option<FilterHandle>, PacketError> {
        let Some(spec) = &self.spec else {
            return Ok(None);
        };
        let fds = std::iter::once(&self.fd)
            .chain(&self.more)
            .map(|fd| {
                fd.try_clone().map_err(|source| PacketError::Setup {
                    iface: self.iface.clone(),
                    step: "duplicating the socket for its filter",
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(FilterHandle {
            iface: self.iface.clone(),
            fds,
            spec: spec.clone(),
        }))
    }

    /// The port's id.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// Bytes of virtio-net header per frame (12, or 10 on kernels before 6.7).
    pub fn vnet_hdr_len(&self) -> usize {
        self.hdr_len
    }

    /// Receives up to `max` frames from segment socket `socket` (0 the
    /// first, then `more`), or from the tunnel socket when `tunnel`.
    fn rx_from(
        &mut self,
        socket: usize,
        tunnel: bool,
        pool: &mut Pool,
        out: &mut Vec<Frame>,
        max: usize,
    ) -> usize {
        let (fd, hdr_len) = match (tunnel, &self.tunnel) {
            (false, _) if socket == 0 => (self.fd.as_raw_fd(), self.hdr_len),
            (false, _) => match self.more.get(socket - 1) {
                Some(fd) => (fd.as_raw_fd(), self.hdr_len),
                None => return 0,
            },
            (true, Some(t)) => (t.as_raw_fd(), 0),
            (true, None) => return 0,
        };
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
                    iov(hdrs[i].as_mut_ptr(), hdr_len),
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
                    fd,
                    msgs.as_mut_ptr(),
                    n as u32,
                    libc::MSG_TRUNC,
                    std::ptr::null_mut(),
                )
            };
            let received = if rc < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => {}
                    // A GSO type the virtio-net header cannot carry: the
                    // kernel has dropped that frame.
                    Some(libc::EINVAL) => self.counters.count_drop(DropReason::OffloadError),
                    // ENETDOWN and the like: nothing to read now.
                    _ => tracing::debug!(port = %self.iface, "recvmmsg: {e}"),
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
                if total < hdr_len + crate::wire::ETH_HDR {
                    self.counters.count_drop(DropReason::Runt);
                    pool.free(frame);
                    continue;
                }
                let len = total - hdr_len;
                let mut frame = match self.spill.settle(pool, frame, i, len, truncated) {
                    Ok(f) => f,
                    Err(reason) => {
                        self.counters.count_drop(reason);
                        continue;
                    }
                };
                if tunnel {
                    if let Some((payload, stride)) = train_layout(pool.data(&frame)) {
                        let n = split_train(pool, &frame, payload, stride, self.id, out);
                        if n == 0 {
                            self.counters.count_drop(DropReason::NoBuffer);
                        }
                        self.counters.rx_packets.add(n as u64);
                        self.counters.rx_bytes.add(len as u64);
                        pool.free(frame);
                        got += n;
                        continue;
                    }
                }
                frame.offload = if tunnel {
                    match super_frame_offload(pool.data(&frame), self.inner_mtu) {
                        Some(o) => o,
                        None => {
                            self.counters.count_drop(DropReason::OffloadError);
                            pool.free(frame);
                            continue;
                        }
                    }
                } else {
                    parse_vnet_hdr(&hdrs[i])
                };
                frame.in_port = self.id;
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
        let sockets = 1 + self.more.len();
        let mut got = 0;
        if sockets == 1 {
            got = self.rx_from(0, false, pool, out, max);
        } else {
            self.rx_turn = (self.rx_turn + 1) % sockets;
            for i in 0..sockets {
                got += self.rx_from((self.rx_turn + i) % sockets, false, pool, out, max - got);
            }
        }
        let got = got + self.rx_from(0, true, pool, out, max - got);
        // Spares are for the length of a burst (see `TapPort::rx_burst`).
        self.spill.release(pool);
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
            let tx_fd = self.tx.as_ref().unwrap_or(&self.fd).as_raw_fd();
            // SAFETY: every iovec points into a live buffer (the local
            // headers, frames the caller handed over and that are freed only
            // after this loop) for the length given; sendmmsg only reads them.
            let rc = unsafe { libc::sendmmsg(tx_fd, msgs.as_mut_ptr(), n as u32, 0) };
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
        let mut fds = vec![self.fd.as_raw_fd()];
        fds.extend(self.more.iter().map(|fd| fd.as_raw_fd()));
        fds.extend(self.tunnel.as_ref().map(|t| t.as_raw_fd()));
        fds
    }

    fn rx_costs_syscall(&self) -> bool {
        true
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
    /// would for the instructions it uses.
    fn run(prog: &[libc::sock_filter], frame: &[u8]) -> u32 {
        let (mut a, mut x) = (0u32, 0u32);
        let mut pc = 0;
        let load = |at: usize, n: usize| -> Option<u32> {
            let b = frame.get(at..at + n)?;
            Some(b.iter().fold(0u32, |v, b| v << 8 | u32::from(*b)))
        };
        loop {
            let i = prog[pc];
            let k = i.k as usize;
            let c = u32::from(i.code);
            use libc::*;
            if c == BPF_LD | BPF_H | BPF_ABS {
                let Some(v) = load(k, 2) else { return 0 };
                a = v;
            } else if c == BPF_LD | BPF_W | BPF_ABS {
                let Some(v) = load(k, 4) else { return 0 };
                a = v;
            } else if c == BPF_LD | BPF_B | BPF_ABS {
                let Some(v) = load(k, 1) else { return 0 };
                a = v;
            } else if c == BPF_LD | BPF_H | BPF_IND {
                let Some(v) = load(x as usize + k, 2) else {
                    return 0;
                };
                a = v;
            } else if c == BPF_LD | BPF_W | BPF_LEN {
                a = frame.len() as u32;
            } else if c == BPF_LDX | BPF_B | BPF_MSH {
                let Some(v) = load(k, 1) else { return 0 };
                x = (v & 0xf) * 4;
            } else if c == BPF_JMP | BPF_JEQ | BPF_K {
                pc += if a == i.k { i.jt } else { i.jf } as usize;
            } else if c == BPF_JMP | BPF_JA {
                pc += k;
            } else if c == BPF_JMP | BPF_JGT | BPF_K {
                pc += if a > i.k { i.jt } else { i.jf } as usize;
            } else if c == BPF_RET | BPF_K {
                return i.k;
            } else {
                panic!("instruction {c:#x} not modelled");
            }
            pc += 1;
        }
    }

    fn frame(ethertype: u16, at: usize, addr: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f[14] = 0x45;
        f[at..at + 4].copy_from_slice(&addr);
        f
    }

    /// A UDP frame to 10.99.0.2:`port` of `len` bytes.
    fn udp(port: u16, len: usize) -> Vec<u8> {
        let mut f = frame(0x0800, 30, [10, 99, 0, 2]);
        f.resize(len, 0);
        f[14 + 9] = 17;
        f[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&port.to_be_bytes());
        f
    }

    const IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

    #[test]
    fn the_filter_takes_arp_and_ipv4_for_the_switch_and_nothing_else() {
        let prog = owned_filter(Some(IP), &Bridged::default(), &[], 1514, Share::Segments);
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
    fn an_l2_networks_frames_are_taken_by_mac_and_address_and_the_hosts_are_left() {
        let ep_mac = MacAddr([0x02, 0, 10, 99, 0, 21]);
        let bridged = Bridged {
            macs: vec![ep_mac],
            ips: vec![Ipv4Addr::new(10, 99, 0, 21), Ipv4Addr::new(10, 99, 0, 22)],
        };
        let to_mac = |m: MacAddr| {
            let mut f = frame(0x86dd, 30, [0; 4]);
            f[..6].copy_from_slice(&m.0);
            f
        };
        for ip in [None, Some(IP)] {
            let prog = owned_filter(ip, &bridged, &[], 1514, Share::Segments);
            assert_eq!(
                run(&prog, &to_mac(ep_mac)),
                u32::MAX,
                "to an endpoint's MAC"
            );
            // Same first four bytes, another MAC.
            assert_eq!(run(&prog, &to_mac(MacAddr([0x02, 0, 10, 99, 0, 23]))), 0);
            for a in [[10, 99, 0, 21], [10, 99, 0, 22]] {
                assert_eq!(run(&prog, &frame(0x0806, 38, a)), u32::MAX, "ARP for {a:?}");
                assert_eq!(run(&prog, &frame(0x0800, 30, a)), u32::MAX, "IPv4 to {a:?}");
            }
            // The host's own address on the segment stays the host's.
            assert_eq!(run(&prog, &frame(0x0806, 38, [10, 99, 0, 3])), 0);
            assert_eq!(run(&prog, &frame(0x0800, 30, [10, 99, 0, 3])), 0);
            let ours = u32::from(ip.is_some()) * u32::MAX;
            assert_eq!(run(&prog, &frame(0x0806, 38, [10, 99, 0, 2])), ours);
            assert_eq!(run(&prog, &frame(0x0800, 30, [10, 99, 0, 2])), ours);
        }
        // A list far longer than an 8-bit jump still ends where it should.
        let many = Bridged {
            macs: (0..200)
                .map(|i| MacAddr([2, 0, 10, 99, 1, i as u8]))
                .collect(),
            ips: (0..200)
                .map(|i| Ipv4Addr::new(10, 99, 1, i as u8))
                .collect(),
        };
        let prog = owned_filter(Some(IP), &many, &[], 1514, Share::Segments);
        assert_eq!(
            run(&prog, &to_mac(MacAddr([2, 0, 10, 99, 1, 199]))),
            u32::MAX
        );
        assert_eq!(run(&prog, &frame(0x0806, 38, [10, 99, 1, 199])), u32::MAX);
        assert_eq!(run(&prog, &frame(0x0800, 30, [10, 99, 1, 199])), u32::MAX);
        assert_eq!(run(&prog, &frame(0x0800, 30, [10, 99, 0, 2])), u32::MAX);
        assert_eq!(run(&prog, &frame(0x0800, 30, [10, 99, 2, 1])), 0);
    }

    #[test]
    fn a_filter_past_the_kernels_limit_is_refused_with_the_reason() {
        let too_many = Bridged {
            macs: (0..500u32)
                .map(|i| MacAddr([2, 0, 10, 99, (i >> 8) as u8, i as u8]))
                .collect(),
            ips: (0..500u32)
                .map(|i| Ipv4Addr::new(10, 99, (i >> 8) as u8 + 1, i as u8))
                .collect(),
        };
        let prog = owned_filter(Some(IP), &too_many, &[], 1514, Share::Segments);
        assert!(prog.len() > MAX_FILTER_INSNS, "{}", prog.len());
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = attach_filter(sock.as_raw_fd(), &prog).unwrap_err();
        assert!(
            err.to_string().contains("too many L2 endpoint addresses"),
            "{err}"
        );
    }

    #[test]
    fn vxlan_super_frames_go_to_the_tunnel_socket_and_everything_else_stays() {
        let seg = owned_filter(
            Some(IP),
            &Bridged::default(),
            &[4789, 8472],
            1514,
            Share::Segments,
        );
        let tun = owned_filter(
            Some(IP),
            &Bridged::default(),
            &[4789, 8472],
            1514,
            Share::Tunnel,
        );
        for (f, super_frame) in [
            (udp(4789, 20_000), true),
            (udp(8472, 1515), true),
            (udp(4789, 1514), false),
            (udp(53, 20_000), false),
            (frame(0x0806, 38, [10, 99, 0, 2]), false),
        ] {
            let (s, t) = (run(&seg, &f), run(&tun, &f));
            assert_eq!(
                (s, t),
                if super_frame {
                    (0, u32::MAX)
                } else {
                    (u32::MAX, 0)
                },
                "frame of {} bytes",
                f.len()
            );
        }
        // Not ours at all: neither takes it.
        let mut other = udp(4789, 20_000);
        other[33] = 3;
        assert_eq!((run(&seg, &other), run(&tun, &other)), (0, 0));
    }

    #[test]
    fn a_super_frame_is_cut_at_the_overlay_mss() {
        // Outer Ethernet, IPv4, UDP, VXLAN; inner Ethernet, IPv4, TCP with
        // 12 bytes of options (timestamps), as Linux sends them.
        let mut f = vec![0u8; 14 + 20 + 16 + 14 + 20 + 32 + 1000];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        let inner = 14 + 20 + 16;
        f[inner + 12..inner + 14].copy_from_slice(&[0x08, 0x00]);
        f[inner + 14] = 0x45;
        f[inner + 14 + 9] = 6;
        f[inner + 14 + 20 + 12] = 8 << 4;
        let o = super_frame_offload(&f, 1450).unwrap();
        assert_eq!(o.gso_size, 1450 - 20 - 32, "the sender's MSS");
        assert_eq!(o.csum_start as usize, inner + 14 + 20);
        assert_eq!(o.hdr_len as usize, inner + 14 + 20 + 32);
        assert!(o.needs_csum && o.gso_type == GSO_TCPV4);
        // UDP inside: not something a super-frame carries here.
        f[inner + 14 + 9] = 17;
        assert!(super_frame_offload(&f, 1450).is_none());
        assert!(super_frame_offload(&f[..40], 1450).is_none());
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
