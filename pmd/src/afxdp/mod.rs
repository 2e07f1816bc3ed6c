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

mod port;
mod sys;
mod xdp;

use std::net::Ipv4Addr;

pub use port::{AfXdpPort, FILL_TARGET_MAX};
pub use sys::{ensure_bpffs, raise_memlock, rx_queue_count};
pub use xdp::{remove_stale_program, StaleOutcome, XdpMode, XdpProgram, XdpStats, PROG_NAME};

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
        /// The switch's IPv4 addresses on this link (NAT external IP,
        /// VTEP IP). ARP asking for them and IPv4 to them (see `l4`) go to
        /// the switch.
        ips: Vec<Ipv4Addr>,
        /// Which IPv4 packets to `ips` go to the switch.
        l4: L4Filter,
        /// UDP destination port of VXLAN to `ips` (4789), if any.
        vxlan_port: Option<u16>,
    },
}

/// Which IPv4 packets to the switch's addresses the XDP program takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4Filter {
    /// Every packet to the switch's addresses (an address the host does
    /// not use itself).
    Any,
    /// Only these (an address shared with the host: the NAT port range and
    /// mapped host ports); the rest goes to the kernel.
    Only {
        /// Single ports, as (protocol, destination port).
        ports: Vec<(L4Proto, u16)>,
        /// An inclusive port range for TCP and UDP (the SNAT range).
        range: Option<(u16, u16)>,
        /// ICMP to the switch's addresses too.
        icmp: bool,
    },
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
