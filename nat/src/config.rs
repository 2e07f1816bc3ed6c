//! What the NAT of an uplink is configured with. The switch builds a
//! [`NatConfig`] from its `[nat]` section, the uplink's `nat` networks and
//! their `[[port_mapping]]`s; this crate does not read files.

use std::net::Ipv4Addr;

pub use ipnet::Ipv4Net;

/// Transport protocol of a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// The IPv4 protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => pmd::wire::IPPROTO_TCP,
            Proto::Udp => pmd::wire::IPPROTO_UDP,
        }
    }
}

/// DNAT: `external_ip:host_port` reaches `internal_ip:internal_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    /// TCP or UDP.
    pub proto: Proto,
    /// The port on the external address.
    pub host_port: u16,
    /// The endpoint (container) address.
    pub internal_ip: Ipv4Addr,
    /// The endpoint's port.
    pub internal_port: u16,
}

/// Idle timeouts in seconds, per protocol and TCP state. The defaults are
/// Linux's `nf_conntrack_*_timeout*` defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// SYN seen from the originator only (`tcp_timeout_syn_sent`, 120).
    pub tcp_syn_sent: u32,
    /// SYN-ACK seen, handshake not finished (`tcp_timeout_syn_recv`, 60).
    pub tcp_syn_recv: u32,
    /// Established (`tcp_timeout_established`, 432000 = 5 days).
    pub tcp_established: u32,
    /// One FIN seen (`tcp_timeout_fin_wait`, 120).
    pub tcp_fin_wait: u32,
    /// The first FIN acknowledged (`tcp_timeout_close_wait`, 60).
    pub tcp_close_wait: u32,
    /// Both FINs seen, last ACK pending (`tcp_timeout_last_ack`, 30).
    pub tcp_last_ack: u32,
    /// Both FINs acknowledged (`tcp_timeout_time_wait`, 120).
    pub tcp_time_wait: u32,
    /// Reset (`tcp_timeout_close`, 10).
    pub tcp_close: u32,
    /// UDP seen in one direction only (`udp_timeout`, 30).
    pub udp: u32,
    /// UDP seen in both directions (`udp_timeout_stream`, 120).
    pub udp_stream: u32,
    /// ICMP echo (`icmp_timeout`, 30). RFC 5508 asks ICMP query
    /// sessions to last at least 60 s; Linux's 30 s default (and the
    /// `[nat]` default) is shorter.
    pub icmp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn_sent: 120,
            tcp_syn_recv: 60,
            tcp_established: 432_000,
            tcp_fin_wait: 120,
            tcp_close_wait: 60,
            tcp_last_ack: 30,
            tcp_time_wait: 120,
            tcp_close: 10,
            udp: 30,
            udp_stream: 120,
            icmp: 30,
        }
    }
}

/// One internal network behind the external address: a `nat` network of
/// the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InternalNet {
    /// The network's subnet (the containers).
    pub subnet: Ipv4Net,
    /// The network's gateway address (owned by the switch). A container
    /// reaching its own mapped port, or a port mapped into this network
    /// from another network of the uplink, sees this as the client.
    pub gateway: Ipv4Addr,
}

/// The NAT of one uplink: every `nat` network behind it shares its
/// address, port range, connection table and port mappings (as Docker
/// masquerades every bridge network through the same host NIC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatConfig {
    /// The uplink's address: SNAT source, DNAT destination.
    pub external_ip: Ipv4Addr,
    /// The internal networks, by index: [`Nat::outbound`] takes the index
    /// of the network a frame comes from and
    /// [`Verdict::ToInternal`] names the one it goes to. Their subnets
    /// must not overlap (the switch's config check refuses overlapping
    /// subnets); where they do, the first listed owns an address.
    ///
    /// [`Nat::outbound`]: crate::Nat::outbound
    /// [`Verdict::ToInternal`]: crate::Verdict::ToInternal
    pub networks: Vec<InternalNet>,
    /// SNAT source ports and ICMP ids, inclusive; mapped host ports are
    /// taken out of it.
    pub port_range: (u16, u16),
    /// Bound of the connection table.
    pub max_entries: u32,
    /// Idle timeouts.
    pub timeouts: Timeouts,
    /// DNAT port mappings: one table for the uplink, into any of its
    /// networks.
    pub mappings: Vec<PortMapping>,
}

impl NatConfig {
    /// A config for one internal network with the defaults of `[nat]`
    /// (ports 32768-60999, 1,048,576 entries, Linux timeouts) and no
    /// mappings. More networks are pushed onto `networks`.
    pub fn new(external_ip: Ipv4Addr, internal: Ipv4Net, gateway_ip: Ipv4Addr) -> NatConfig {
        NatConfig {
            external_ip,
            networks: vec![InternalNet {
                subnet: internal,
                gateway: gateway_ip,
            }],
            port_range: (32768, 60999),
            max_entries: 1 << 20,
            timeouts: Timeouts::default(),
            mappings: Vec::new(),
        }
    }
}
