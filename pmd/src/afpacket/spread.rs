//! One interface over several PMD threads: each thread's port has its own
//! packet sockets, and the sockets of all ports for one protocol form a
//! `PACKET_FANOUT_EBPF` group whose steering program (`pmd::steer`) picks
//! the member, so each frame reaches exactly one thread, the one that owns
//! its flow.
//!
//! A fan-out group runs the program before the members' own socket
//! filters: the chosen member's cBPF filter then takes the frame or drops
//! it, so the filter of an uplink still decides what is the switch's.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use super::{
    attach_filter, bound_socket, memberships, owned_filter, PacketError, PacketFilter, PacketPort,
    Share, Sockets,
};
use crate::port::PortId;

/// Who gets an ARP frame when an interface is spread over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpDelivery {
    /// ARP fans out like the rest: the steering program sends it to the
    /// first port (thread 0), which answers for the group.
    Steered,
    /// Every port has its own ARP socket outside the group and gets every
    /// ARP frame: an uplink's threads each learn the next hop.
    Every,
}

const PACKET_FANOUT_EBPF: u32 = 7;
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;

/// The receiving protocols of a spread port, in the order of its sockets
/// (as [`super::Binding::AfterTc`] binds them). Bound to one protocol, a
/// group never sees what leaves the interface (the kernel shows outgoing
/// frames to `ETH_P_ALL` taps only), so the switch's own frames do not
/// come back; a group bound to `ETH_P_ALL` would need
/// `PACKET_FANOUT_FLAG_IGNORE_OUTGOING`, a member's option not applying
/// to its group.
const PROTOCOLS: [u16; 3] = [
    (libc::ETH_P_IP as u16).to_be(),
    (libc::ETH_P_ARP as u16).to_be(),
    (libc::ETH_P_IPV6 as u16).to_be(),
];

/// Drops every frame: what a socket takes until all members have joined
/// and the program is set, so no frame reaches a thread that does not own
/// it while the group is being built.
const HOLD: [libc::sock_filter; 1] = [libc::sock_filter {
    code: (libc::BPF_RET | libc::BPF_K) as u16,
    jt: 0,
    jf: 0,
    k: 0,
}];

/// A fan-out group being built: its id once the first member created it.
struct Group {
    id: Option<u16>,
}

impl Group {
    /// Adds socket `fd` as the next member (its index is the number of
    /// members before it). The first creates the group with an id the
    /// kernel picks, unique on the machine, and gives it the program.
    fn join(&mut self, fd: RawFd, steer: BorrowedFd<'_>) -> io::Result<()> {
        let kind = PACKET_FANOUT_EBPF;
        match self.id {
            Some(id) => super::set_int(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                (kind << 16 | u32::from(id)) as libc::c_int,
            ),
            None => {
                let first = (kind | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
                super::set_int(fd, libc::SOL_PACKET, libc::PACKET_FANOUT, first as _)?;
                let mut got: u32 = 0;
                let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
                // SAFETY: `got` is a live u32 and `len` its size; the
                // kernel writes at most that.
                let rc = unsafe {
                    libc::getsockopt(
                        fd,
                        libc::SOL_PACKET,
                        libc::PACKET_FANOUT,
                        (&mut got as *mut u32).cast(),
                        &mut len,
                    )
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
                let prog: u32 = steer.as_raw_fd() as u32;
                super::set_opt(fd, libc::SOL_PACKET, libc::PACKET_FANOUT_DATA, &prog)?;
                self.id = Some(got as u16);
                Ok(())
            }
        }
    }
}

fn explain_fanout(e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EINVAL) => io::Error::new(
            e.kind(),
            format!("{e} (a kernel without PACKET_FANOUT_EBPF, Linux 4.3?)"),
        ),
        _ => e,
    }
}

impl PacketPort {
    /// Opens `n` ports on `iface` (in the calling thread's namespace), one
    /// per PMD thread of a spread network, taking what `filter` says is
    /// the switch's. Each has its own sockets per protocol (IPv4, ARP,
    /// IPv6, as [`super::Binding::AfterTc`]: after tc ingress) and its own
    /// transmit socket; the IPv4 and IPv6 sockets, and the VXLAN
    /// super-frame sockets of an overlay uplink, form one fan-out group
    /// per protocol in which port i is member i, and `steer` (a
    /// [`crate::steer::SteerProgram`]'s fd) picks the member. ARP goes as
    /// `arp` says. Each group holds the program for as long as it lives.
    pub fn open_spread(
        iface: &str,
        id: PortId,
        filter: PacketFilter,
        n: usize,
        steer: BorrowedFd<'_>,
        arp: ArpDelivery,
    ) -> Result<Vec<PacketPort>, PacketError> {
        let wrap = |step| {
            move |source| PacketError::Setup {
                iface: iface.to_string(),
                step,
                source,
            }
        };
        let ifindex = crate::netdev::ifindex(iface)
            .ok_or_else(|| PacketError::NoSuchInterface(iface.to_string()))?;
        let mtu = crate::netdev::mtu(iface).unwrap_or(1500);
        let max_frame = mtu + crate::wire::ETH_HDR as u32;
        let (segment_prog, tunnel_prog) = match &filter {
            PacketFilter::All => (Vec::new(), None),
            PacketFilter::Owned {
                ip,
                vxlan_ports,
                bridged,
                ..
            } => (
                owned_filter(*ip, bridged, vxlan_ports, max_frame, Share::Segments),
                (!vxlan_ports.is_empty())
                    .then(|| owned_filter(*ip, bridged, vxlan_ports, max_frame, Share::Tunnel)),
            ),
        };
        let mut groups: Vec<Group> = (0..PROTOCOLS.len() + 1)
            .map(|_| Group { id: None })
            .collect();
        let mut ports = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let mut rx = Vec::with_capacity(PROTOCOLS.len());
            let mut hdr_len = 0;
            for (k, proto) in PROTOCOLS.iter().enumerate() {
                let (fd, len) = bound_socket(iface, ifindex, true, &HOLD, *proto)?;
                hdr_len = len;
                let fans_out =
                    *proto != (libc::ETH_P_ARP as u16).to_be() || arp == ArpDelivery::Steered;
                if fans_out {
                    groups[k]
                        .join(fd.as_raw_fd(), steer)
                        .map_err(|e| wrap("joining the fan-out group")(explain_fanout(e)))?;
                }
                rx.push(fd);
            }
            let tunnel = match tunnel_prog {
                None => None,
                Some(_) => {
                    let (fd, _) = bound_socket(iface, ifindex, false, &HOLD, PROTOCOLS[0])?;
                    groups[PROTOCOLS.len()]
                        .join(fd.as_raw_fd(), steer)
                        .map_err(|e| wrap("joining the fan-out group")(explain_fanout(e)))?;
                    Some(fd)
                }
            };
            let tx = bound_socket(iface, ifindex, true, &[], 0)?.0;
            let mut rx = rx.into_iter();
            let fd = rx.next().expect("three protocols");
            let spec = memberships(iface, ifindex, max_frame, fd.as_raw_fd(), &filter)?;
            let sockets = Sockets {
                fd,
                more: rx.collect(),
                tx: Some(tx),
                tunnel,
                hdr_len,
            };
            ports.push(PacketPort::with(iface, id, sockets, mtu, spec));
        }
        // Every member is in and the program is set: open the filters.
        for port in &ports {
            for fd in std::iter::once(&port.fd).chain(&port.more) {
                let s = fd.as_raw_fd();
                if segment_prog.is_empty() {
                    super::set_int(s, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, 0)
                        .map_err(wrap("taking the hold filter off"))?;
                } else {
                    attach_filter(s, &segment_prog).map_err(wrap("attaching the socket filter"))?;
                }
            }
            if let (Some(t), Some(prog)) = (&port.tunnel, &tunnel_prog) {
                attach_filter(t.as_raw_fd(), prog).map_err(wrap("attaching the socket filter"))?;
            }
        }
        Ok(ports)
    }
}
