//! The connection table as the control side lists it (`ctl conntrack`):
//! a lazy walk over the slab, so a caller that wants `limit` entries
//! visits only as many slots as it takes to find them.

use std::net::Ipv4Addr;

use crate::conntrack::{ConnTrack, Entry, Tuple, F_DNAT, F_HAIRPIN, F_SNAT_PORT};
use crate::state::{Side, TcpState};

/// One direction of a connection, as its packets arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// Source address.
    pub src: Ipv4Addr,
    /// Source port (or ICMP echo id).
    pub sport: u16,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Destination port (or ICMP echo id).
    pub dport: u16,
}

impl From<Tuple> for Endpoints {
    fn from(t: Tuple) -> Endpoints {
        Endpoints {
            src: Ipv4Addr::from(t.src),
            sport: t.sport,
            dst: Ipv4Addr::from(t.dst),
            dport: t.dport,
        }
    }
}

/// One live connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// IP protocol number (6, 17, 1).
    pub proto: u8,
    /// `tcp`, `udp` or `icmp`.
    pub proto_name: &'static str,
    /// TCP state (`established`, ...); for UDP `replied` or `unreplied`;
    /// `-` for ICMP.
    pub state: &'static str,
    /// The first packet's direction.
    pub orig: Endpoints,
    /// The answers' direction.
    pub reply: Endpoints,
    /// Seconds until it expires without traffic.
    pub expires_in_s: u32,
    /// The internal network it belongs to (index in `NatConfig::networks`).
    pub network: Option<usize>,
    /// Holds an SNAT port.
    pub snat: bool,
    /// Came in through a port mapping.
    pub dnat: bool,
    /// A hairpin (an endpoint reaching the external address).
    pub hairpin: bool,
}

fn tcp_state_name(s: TcpState) -> &'static str {
    match s {
        TcpState::SynSent => "syn_sent",
        TcpState::SynRecv => "syn_recv",
        TcpState::Established => "established",
        TcpState::FinWait => "fin_wait",
        TcpState::CloseWait => "close_wait",
        TcpState::LastAck => "last_ack",
        TcpState::TimeWait => "time_wait",
        TcpState::Close => "close",
    }
}

fn describe(e: &Entry, now_s: u32, network: Option<usize>) -> Connection {
    let (proto_name, state) = match e.proto {
        pmd::wire::IPPROTO_TCP => ("tcp", tcp_state_name(TcpState::from_u8(e.state))),
        pmd::wire::IPPROTO_UDP => ("udp", if e.state == 0 { "unreplied" } else { "replied" }),
        _ => ("icmp", "-"),
    };
    Connection {
        proto: e.proto,
        proto_name,
        state,
        orig: e.tuples[Side::Orig as usize].into(),
        reply: e.tuples[Side::Reply as usize].into(),
        expires_in_s: e.expires_s.saturating_sub(now_s),
        network,
        snat: e.flags & F_SNAT_PORT != 0,
        dnat: e.flags & F_DNAT != 0,
        hairpin: e.flags & F_HAIRPIN != 0,
    }
}

/// Live (unexpired) connections of `ct`; `net_of` names the internal
/// network of an address.
pub(crate) fn connections<'a>(
    ct: &'a ConnTrack,
    now_s: u32,
    net_of: impl Fn(u32) -> Option<usize> + 'a,
) -> impl Iterator<Item = Connection> + 'a {
    ct.live()
        .filter(move |e| e.expires_s > now_s)
        .map(move |e| {
            let o = e.tuples[Side::Orig as usize];
            let r = e.tuples[Side::Reply as usize];
            // Outbound flows start inside; inbound (DNAT) ones are answered
            // from inside.
            let network = net_of(o.src).or_else(|| net_of(r.src));
            describe(e, now_s, network)
        })
}
