//! AF_XDP ports on existing interfaces, with podswitch's own XDP filter.
//!
//! An [`AfXdpPort`] binds one AF_XDP socket per receive queue of a kernel
//! interface, all on the UMEM of its PMD thread's [`Pool`](crate::Pool), and
//! attaches podswitch's XDP program ([`XdpProgram`], built from
//! `pmd/bpf/pd_xdp.c`) that decides which frames go to those sockets:
//! every frame ([`XdpFilter::All`], a port the switch owns outright) or only
//! the frames that belong to the switch ([`XdpFilter::Switch`], an uplink the
//! host keeps using). See DESIGN.md, data path 7, and
//! notes/datapath-probes.md, probe 1, for the measured recipe.
//!
//! The program is attached with an unpinned bpf_link, so the kernel detaches
//! it when the last fd closes, even after SIGKILL. [`remove_stale_program`]
//! removes a program a netlink attach left behind, and never a foreign one.
//!
//! What the tests on veth (kernel 6.18) taught, for whoever wires ports up:
//! - Queues: a socket per receive queue *in use* (ethtool's current channel
//!   count, not `numrxqueues`); veth uses 1 unless `ethtool -L` raised it.
//!   A later `ethtool -L` is not noticed: reopen the port.
//! - Copy mode only on veth (XDP_ZEROCOPY gives EOPNOTSUPP). Copy-mode TX
//!   happens inside `sendto`, at most 32 frames per call, and without
//!   XDP_USE_NEED_WAKEUP the ring never asks for it: the port kicks after
//!   every burst, and again from `maintain` while frames wait.
//! - Checksums: a sender behind a veth leaves TCP/UDP checksums partial
//!   (tx checksum offload, every veth's default), XDP sees the frame as it
//!   is and AF_XDP carries no checksum state. Forwarded as it is, such TCP
//!   arrives with a bad checksum and is dropped (ping still works). So every
//!   received frame is marked [`Offload::csum_lost`](crate::Offload), and
//!   the pipeline asks [`crate::partial_csum::resolve`] whether its checksum
//!   is the pseudo-header seed; the peer keeps its offloads.
//! - MTU: native XDP on a veth refuses a peer MTU above about 3.5 KB ("Peer
//!   MTU is too large to set XDP"); the port then falls back to generic
//!   mode, where frames larger than a chunk (3840 bytes) are dropped and
//!   counted as NoBuffer.
//! - Native XDP on a veth turns off TSO on its peer while attached.
//! - The pool's UMEM is registered on a socket created with the pool: create
//!   the pool in the namespace of the interfaces its ports will use.
//! - libxdp binds the UMEM's own socket to the first port opened and keeps
//!   it until the pool is dropped; once every port of a pool is released,
//!   no new socket can join that UMEM ([`AfXdpError::UmemRetired`]). A
//!   reload opens the new ports before releasing the old ones.

mod port;
mod sys;
mod xdp;

use std::net::Ipv4Addr;

pub use port::{AfXdpPort, FILL_TARGET_MAX};
pub use sys::{ensure_bpffs, raise_memlock, rx_queue_count};
pub use xdp::{
    remove_stale_program, StaleOutcome, XdpMode, XdpProgram, XdpStats, XdpStatsReader, PROG_NAME,
};

/// Which frames the XDP program hands to the port's sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XdpFilter {
    /// Every frame: an interface that belongs to the switch alone (a
    /// container's veth).
    All,
    /// Only frames that belong to the switch; everything else goes to the
    /// kernel (an uplink the host keeps using, SSH included).
    Switch {
        /// Destination MACs of the switch (endpoint MACs, its own).
        macs: Vec<[u8; 6]>,
        /// Addresses only the switch uses on this link (a VTEP or NAT
        /// address of its own): ARP asking for them and every IPv4 packet
        /// to them go to the switch.
        ips: Vec<Ipv4Addr>,
        /// Addresses the switch shares with the host (NAT masquerade to the
        /// host's own address): ARP and all other traffic stay with the
        /// kernel; only IPv4 packets to them that match `l4` go to the
        /// switch.
        shared_ips: Vec<Ipv4Addr>,
        /// Which packets to `shared_ips` belong to the switch.
        l4: L4Ports,
    },
}

/// The transport ports (and ICMP) on a shared address that belong to the
/// switch: the SNAT port range, mapped host ports, VXLAN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L4Ports {
    /// Single ports, as (protocol, destination port): DNAT host ports.
    pub ports: Vec<(L4Proto, u16)>,
    /// An inclusive TCP and UDP destination port range (the SNAT range).
    pub range: Option<(u16, u16)>,
    /// UDP destination port of VXLAN (4789), if the VTEP address is shared.
    pub vxlan_port: Option<u16>,
    /// ICMP to the shared addresses too (errors for NATed flows; echo to
    /// the host then goes to the switch as well).
    pub icmp: bool,
}

/// A transport protocol the filter matches ports of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4Proto {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl L4Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
        }
    }
}

/// Errors opening an AF_XDP port or loading the XDP filter.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    /// The interface does not exist in this network namespace.
    #[error("interface {iface} not found in this network namespace ({source})")]
    NoSuchInterface {
        /// The interface asked for.
        iface: String,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// The pool has no UMEM, so AF_XDP sockets cannot use it.
    #[error("opening AF_XDP port on {iface}: the PMD thread's pool has no UMEM (create it with PoolConfig {{ umem: true, .. }})")]
    NoUmem {
        /// The interface.
        iface: String,
    },
    /// Every AF_XDP socket of this pool was closed before, and libxdp
    /// cannot bind a new one to that UMEM.
    #[error("opening AF_XDP port on {iface}: every AF_XDP port of this PMD thread's pool was released, and its UMEM cannot take new sockets (open new ports before releasing the old ones, or give the thread a new pool)")]
    UmemRetired {
        /// The interface.
        iface: String,
    },
    /// The embedded XDP object could not be opened or loaded.
    #[error("loading the XDP filter {PROG_NAME} for {iface}: {reason} (need root or CAP_BPF with CAP_NET_ADMIN; `dmesg` and the verifier log above say more)")]
    Load {
        /// The interface.
        iface: String,
        /// What libbpf reported.
        reason: String,
    },
    /// A map of the filter could not be filled.
    #[error("filling XDP map {map} for {iface}: {reason}")]
    Map {
        /// The interface.
        iface: String,
        /// The map's name.
        map: &'static str,
        /// What the kernel said.
        reason: String,
    },
    /// Attaching the XDP program failed in native and generic mode.
    #[error("attaching XDP program to {iface}: {reason} (need root; another XDP program or a pinned link on the interface? see `ip -d link show {iface}`)")]
    Attach {
        /// The interface.
        iface: String,
        /// What the kernel said for each mode tried.
        reason: String,
    },
    /// An AF_XDP socket could not be created or bound.
    #[error("binding AF_XDP socket to {iface} queue {queue}: {reason} (need root; is the pool's UMEM from another network namespace?)")]
    Socket {
        /// The interface.
        iface: String,
        /// The receive queue.
        queue: u32,
        /// What xsk-rs and the kernel said.
        reason: String,
    },
    /// The interface has more receive queues than the XSKMAP has slots.
    #[error("{iface} has {queues} receive queues, more than the {max} the XDP filter supports (reduce them with `ethtool -L {iface}`)")]
    TooManyQueues {
        /// The interface.
        iface: String,
        /// Its receive queues.
        queues: u32,
        /// The XSKMAP size.
        max: u32,
    },
    /// Querying or detaching a stale program failed.
    #[error("checking {iface} for a stale XDP program: {reason} (need root)")]
    Stale {
        /// The interface.
        iface: String,
        /// What the kernel said.
        reason: String,
    },
}
