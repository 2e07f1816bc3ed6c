//! Flow states as pure `match` functions `(state, side, header) -> state`,
//! one per protocol, and the idle timeout of each state. No I/O, no table:
//! the connection table stores the result.
//!
//! The TCP machine follows Linux's `nf_conntrack_proto_tcp` states (without
//! its sequence-window checks): a NAT needs to know how long to keep a
//! mapping, not to police TCP.

use pmd::wire::tcp::flags;

use crate::config::Timeouts;

/// Which way a packet goes relative to the connection's first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Same direction as the packet that created the connection.
    Orig = 0,
    /// The answering direction.
    Reply = 1,
}

impl Side {
    /// The other side.
    #[inline]
    pub fn other(self) -> Side {
        match self {
            Side::Orig => Side::Reply,
            Side::Reply => Side::Orig,
        }
    }
}

/// TCP connection states (Linux conntrack names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TcpState {
    /// SYN seen from the originator.
    SynSent = 0,
    /// SYN-ACK seen from the responder.
    SynRecv = 1,
    /// The originator acknowledged the SYN-ACK.
    Established = 2,
    /// One side sent FIN (that side is the "closer").
    FinWait = 3,
    /// The other side acknowledged the first FIN.
    CloseWait = 4,
    /// Both sides sent FIN; the closer's last ACK is pending.
    LastAck = 5,
    /// Both FINs acknowledged.
    TimeWait = 6,
    /// Reset.
    Close = 7,
}

impl TcpState {
    /// The state stored as a byte.
    pub fn from_u8(v: u8) -> TcpState {
        match v {
            0 => TcpState::SynSent,
            1 => TcpState::SynRecv,
            2 => TcpState::Established,
            3 => TcpState::FinWait,
            4 => TcpState::CloseWait,
            5 => TcpState::LastAck,
            6 => TcpState::TimeWait,
            _ => TcpState::Close,
        }
    }
}

/// The TCP flag bits NAT reads (`pmd::wire::TcpPacket::flags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = flags::FIN;
    /// SYN.
    pub const SYN: u8 = flags::SYN;
    /// RST.
    pub const RST: u8 = flags::RST;
    /// ACK.
    pub const ACK: u8 = flags::ACK;

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// A segment that may open a connection: SYN alone (no ACK, RST, FIN).
    /// NAT creates TCP state only from one, like Linux with
    /// `nf_conntrack_tcp_loose = 0` (Linux's default, 1, also picks up
    /// flows mid-stream; here a flow whose state was lost is reset by its
    /// ends instead). Simultaneous open still works: an internal SYN
    /// creates the mapping, the external SYN then matches its reply side.
    pub fn opens(self) -> bool {
        self.0 & (Self::SYN | Self::ACK | Self::RST | Self::FIN) == Self::SYN
    }
}

/// The next TCP state after a segment from `side` with `flags`. `closer`
/// is the side that sent the first FIN (meaningful from `FinWait` on); the
/// function returns the new state and the new closer.
pub fn next_tcp(state: TcpState, closer: Side, side: Side, flags: TcpFlags) -> (TcpState, Side) {
    use TcpState::*;
    let syn = flags.has(TcpFlags::SYN);
    let ack = flags.has(TcpFlags::ACK);
    let fin = flags.has(TcpFlags::FIN);
    if flags.has(TcpFlags::RST) {
        return (Close, closer);
    }
    let next = match (state, side) {
        // A new incarnation of the same tuple after the old one closed
        // (Linux reopens from TIME_WAIT/CLOSE on a fresh SYN too).
        (TimeWait | Close, Side::Orig) if flags.opens() => return (SynSent, closer),
        (SynSent, Side::Reply) if syn => SynRecv,
        (SynRecv, Side::Orig) if ack && !syn && !fin => Established,
        (SynRecv | Established, s) if fin => return (FinWait, s),
        (FinWait, s) if s != closer && fin => LastAck,
        (FinWait, s) if s != closer && ack => CloseWait,
        (CloseWait, s) if s != closer && fin => LastAck,
        (LastAck, s) if s == closer && ack => TimeWait,
        (other, _) => other,
    };
    (next, closer)
}

/// UDP: the flow has seen a reply once any packet came from the reply side.
pub fn next_udp(replied: bool, side: Side) -> bool {
    replied || side == Side::Reply
}

/// Idle timeout in seconds of a TCP state.
pub fn tcp_timeout(state: TcpState, t: &Timeouts) -> u32 {
    match state {
        TcpState::SynSent => t.tcp_syn_sent,
        TcpState::SynRecv => t.tcp_syn_recv,
        TcpState::Established => t.tcp_established,
        TcpState::FinWait => t.tcp_fin_wait,
        TcpState::CloseWait => t.tcp_close_wait,
        TcpState::LastAck => t.tcp_last_ack,
        TcpState::TimeWait => t.tcp_time_wait,
        TcpState::Close => t.tcp_close,
    }
}

/// Idle timeout in seconds of a UDP flow.
///
/// RFC 4787 section 4.3, REQ-5: "A NAT UDP mapping timer MUST NOT expire
/// in less than two minutes, unless REQ-5a applies" (5a: ports 0-1023).
/// The default stream timeout is 120 s. The 30 s unreplied default is
/// Linux's (and the `[nat]` default) and falls short of REQ-5 for a
/// mapping nobody has answered yet; configure `udp = 120` for strict
/// compliance.
pub fn udp_timeout(replied: bool, t: &Timeouts) -> u32 {
    if replied {
        t.udp_stream
    } else {
        t.udp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Side::*;
    use TcpState::*;

    const SYN: TcpFlags = TcpFlags(TcpFlags::SYN);
    const SYNACK: TcpFlags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK);
    const ACK: TcpFlags = TcpFlags(TcpFlags::ACK);
    const FINACK: TcpFlags = TcpFlags(TcpFlags::FIN | TcpFlags::ACK);
    const RST: TcpFlags = TcpFlags(TcpFlags::RST);

    fn run(steps: &[(Side, TcpFlags)]) -> Vec<TcpState> {
        let (mut s, mut c) = (SynSent, Orig);
        steps
            .iter()
            .map(|(side, f)| {
                (s, c) = next_tcp(s, c, *side, *f);
                s
            })
            .collect()
    }

    #[test]
    fn a_handshake_then_a_close_from_the_originator_walks_every_state() {
        let got = run(&[
            (Reply, SYNACK),
            (Orig, ACK),
            (Orig, FINACK),
            (Reply, ACK),
            (Reply, FINACK),
            (Orig, ACK),
        ]);
        assert_eq!(
            got,
            [SynRecv, Established, FinWait, CloseWait, LastAck, TimeWait]
        );
    }

    #[test]
    fn a_close_from_the_responder_needs_the_originators_fin_and_the_responders_ack() {
        let got = run(&[
            (Reply, SYNACK),
            (Orig, ACK),
            (Reply, FINACK),
            (Orig, FINACK),
            (Orig, ACK),
            (Reply, ACK),
        ]);
        assert_eq!(
            got,
            [SynRecv, Established, FinWait, LastAck, LastAck, TimeWait]
        );
    }

    #[test]
    fn a_reset_closes_from_any_state_and_a_new_syn_reopens() {
        let got = run(&[(Reply, SYNACK), (Orig, ACK), (Reply, RST), (Orig, SYN)]);
        assert_eq!(got, [SynRecv, Established, Close, SynSent]);
    }

    #[test]
    fn only_a_plain_syn_opens_a_connection() {
        assert!(SYN.opens());
        assert!(!SYNACK.opens());
        assert!(!ACK.opens());
        assert!(!TcpFlags(TcpFlags::SYN | TcpFlags::RST).opens());
    }

    #[test]
    fn a_udp_flow_is_a_stream_once_a_reply_is_seen() {
        assert!(!next_udp(false, Orig));
        assert!(next_udp(false, Reply));
        assert!(next_udp(true, Orig));
        let t = Timeouts::default();
        assert_eq!((udp_timeout(false, &t), udp_timeout(true, &t)), (30, 120));
    }
}
