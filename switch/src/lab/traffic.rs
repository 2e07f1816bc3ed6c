//! Traffic between lab namespaces: ping and a byte-exact TCP transfer, used
//! by `podswitch demo` and by the tests. Traffic goes only to addresses
//! inside namespaces the lab created.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pmd::netns::in_netns;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Result of a ping run.
#[derive(Debug, Clone, Copy)]
pub struct PingReport {
    /// Echo requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
}

/// Pings `dst` from inside `netns` as `ping -c COUNT -i 0.2 -W 1` does:
/// `count` echo requests 200 ms apart, replies counted until 1 s after the
/// last request (so a first reply held up by ARP still counts). Over a raw
/// ICMP socket opened in the namespace: no `ping` process. Raw, not an
/// unprivileged ICMP socket, because a new namespace's
/// `net.ipv4.ping_group_range` admits nobody.
pub fn ping(netns: &str, dst: Ipv4Addr, count: u32) -> Result<PingReport> {
    in_netns(netns, move || echo(dst, count))
        .with_context(|| format!("entering netns {netns} to ping"))?
}

/// Identifiers of concurrent pings in one process, so each counts only the
/// replies to its own requests.
static ECHO_ID: AtomicU16 = AtomicU16::new(0);

/// Time between echo requests (ping's -i).
const INTERVAL: Duration = Duration::from_millis(200);
/// How long replies are awaited after the last request (ping's -W).
const LINGER: Duration = Duration::from_secs(1);

fn echo(dst: Ipv4Addr, count: u32) -> Result<PingReport> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .context("opening a raw ICMP socket (needs CAP_NET_RAW)")?;
    let id = (std::process::id() as u16).wrapping_add(ECHO_ID.fetch_add(1, Ordering::Relaxed));
    let to = SockAddr::from(SocketAddrV4::new(dst, 0));
    let count = count.min(u32::from(u16::MAX));
    let mut answered = vec![false; count as usize];
    let mut buf = [0u8; 2048];
    let mut sent = 0u32;
    let mut next_send = Instant::now();
    let mut give_up = next_send + LINGER;
    while answered.iter().any(|a| !a) {
        let now = Instant::now();
        if sent < count && now >= next_send {
            sock.send_to(&echo_request(id, sent as u16), &to)
                .with_context(|| format!("sending an echo request to {dst}"))?;
            sent += 1;
            next_send = now + INTERVAL;
            give_up = now + LINGER;
            continue;
        }
        let until = if sent < count { next_send } else { give_up };
        let left = until.saturating_duration_since(now);
        if sent == count && left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left.max(Duration::from_micros(1))))?;
        let n = match (&sock).read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e).context("reading ICMP"),
        };
        if let Some(seq) = echo_reply_seq(&buf[..n], dst, id) {
            if let Some(a) = answered.get_mut(usize::from(seq)) {
                *a = true;
            }
        }
    }
    Ok(PingReport {
        sent,
        received: answered.iter().filter(|a| **a).count() as u32,
    })
}

/// ICMP type of an echo request and an echo reply (RFC 792).
const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;

/// An ICMP echo request with 56 bytes of data, as ping sends by default.
fn echo_request(id: u16, seq: u16) -> [u8; 64] {
    let mut m = [0u8; 64];
    m[0] = ECHO_REQUEST;
    m[4..6].copy_from_slice(&id.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in m[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let csum = pmd::wire::checksum::checksum(&m);
    m[2..4].copy_from_slice(&csum.to_be_bytes());
    m
}

/// The sequence number when `packet` (an IPv4 datagram, as a raw socket
/// reads it) is an echo reply from `from` to our request `id`.
fn echo_reply_seq(packet: &[u8], from: Ipv4Addr, id: u16) -> Option<u16> {
    let &vihl = packet.first()?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < 20 || packet.len() < ihl + 8 || packet[12..16] != from.octets() {
        return None;
    }
    let icmp = &packet[ihl..];
    (icmp[0] == ECHO_REPLY
        && icmp[4..6] == id.to_be_bytes()
        && pmd::wire::checksum::checksum(icmp) == 0)
        .then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// Result of a TCP transfer.
#[derive(Debug, Clone, Copy)]
pub struct TransferReport {
    /// Bytes the server received.
    pub bytes: u64,
    /// Wall time of the transfer.
    pub secs: f64,
    /// True when every byte arrived exactly as sent.
    pub exact: bool,
}

impl TransferReport {
    /// Goodput in Gbit/s.
    pub fn gbps(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs / 1e9
    }
}

/// The byte at offset `i` of a transfer: a pattern that catches reordered,
/// duplicated or lost chunks (not just a length check).
#[inline]
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i >> 20) as u8
}

/// Writes `bytes` of the pattern to `s`.
fn write_pattern(s: &mut TcpStream, bytes: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0u64;
    while off < bytes {
        let n = (bytes - off).min(buf.len() as u64) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(off + k as u64);
        }
        s.write_all(&buf[..n])?;
        off += n as u64;
    }
    Ok(())
}

/// Reads `s` to its end; returns the byte count and whether every byte
/// was the pattern's.
fn read_pattern(s: &mut TcpStream) -> Result<(u64, bool)> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0u64;
    let mut exact = true;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok((off, exact));
        }
        exact &= buf[..n]
            .iter()
            .enumerate()
            .all(|(k, b)| *b == pattern(off + k as u64));
        off += n as u64;
    }
}

/// Sends `bytes` over TCP from `client_ns` to a server listening on
/// `server_ip:port` inside `server_ns`, and checks every byte.
pub fn tcp_transfer(
    server_ns: &str,
    server_ip: Ipv4Addr,
    port: u16,
    client_ns: &str,
    bytes: u64,
) -> Result<TransferReport> {
    let to = SocketAddr::from((server_ip, port));
    tcp_upload(server_ns, server_ip, port, client_ns, to, bytes)
}

/// As [`tcp_transfer`], with the client connecting to `connect_to` (a
/// NAT address mapped to the server).
pub fn tcp_upload(
    server_ns: &str,
    server_ip: Ipv4Addr,
    port: u16,
    client_ns: &str,
    connect_to: SocketAddr,
    bytes: u64,
) -> Result<TransferReport> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let addr = SocketAddr::from((server_ip, port));
    let server_ns = server_ns.to_string();
    let server = std::thread::spawn(move || {
        in_netns(&server_ns, move || -> Result<(u64, bool)> {
            let listener = TcpListener::bind(addr).context("binding the test server")?;
            let _ = ready_tx.send(());
            let (mut s, _) = listener.accept()?;
            s.set_read_timeout(Some(Duration::from_secs(20)))?;
            let (off, exact) = read_pattern(&mut s)?;
            let _ = s.write_all(&off.to_be_bytes());
            Ok((off, exact))
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the test server did not start")?;
    let client_ns = client_ns.to_string();
    let start = Instant::now();
    let client = in_netns(&client_ns, move || -> Result<u64> {
        let mut s = TcpStream::connect_timeout(&connect_to, Duration::from_secs(5))
            .with_context(|| format!("connecting to {connect_to}"))?;
        s.set_write_timeout(Some(Duration::from_secs(20)))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        write_pattern(&mut s, bytes)?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut ack = [0u8; 8];
        s.read_exact(&mut ack)?;
        Ok(u64::from_be_bytes(ack))
    })??;
    let secs = start.elapsed().as_secs_f64();
    let (got, exact) = server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))???;
    if got != client {
        bail!("server counted {got} bytes, acknowledged {client}");
    }
    Ok(TransferReport {
        bytes: got,
        secs,
        exact: exact && got == bytes,
    })
}

/// A server in `server_ns` on `server_ip:port` sends `bytes` to a client
/// that connects from `client_ns` to `connect_to` (the server's address,
/// or a NAT address mapped to it). Returns the transfer and the client
/// address the server saw.
pub fn tcp_fetch(
    server_ns: &str,
    server_ip: Ipv4Addr,
    port: u16,
    client_ns: &str,
    connect_to: SocketAddr,
    bytes: u64,
) -> Result<(TransferReport, SocketAddr)> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let addr = SocketAddr::from((server_ip, port));
    let server_ns = server_ns.to_string();
    let server = std::thread::spawn(move || {
        in_netns(&server_ns, move || -> Result<SocketAddr> {
            let listener = TcpListener::bind(addr).context("binding the test server")?;
            let _ = ready_tx.send(());
            let (mut s, peer) = listener.accept()?;
            s.set_write_timeout(Some(Duration::from_secs(30)))?;
            write_pattern(&mut s, bytes)?;
            Ok(peer)
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the test server did not start")?;
    let start = Instant::now();
    let client_ns = client_ns.to_string();
    let (got, exact) = in_netns(&client_ns, move || -> Result<(u64, bool)> {
        let mut s = TcpStream::connect_timeout(&connect_to, Duration::from_secs(5))
            .with_context(|| format!("connecting to {connect_to}"))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        read_pattern(&mut s)
    })??;
    let secs = start.elapsed().as_secs_f64();
    let peer = server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))???;
    Ok((
        TransferReport {
            bytes: got,
            secs,
            exact: exact && got == bytes,
        },
        peer,
    ))
}

/// A UDP echo server in `server_ns` on `server_ip:port` answers `count`
/// datagrams sent from `client_ns` to `send_to`, each of at least `size`
/// bytes (padded with a pattern; above the MTU both kernels send them as
/// IPv4 fragments). Returns how many echoes came back intact and the
/// client addresses the server saw.
pub fn udp_echo(
    server_ns: &str,
    server_ip: Ipv4Addr,
    port: u16,
    client_ns: &str,
    send_to: SocketAddr,
    count: u32,
    size: usize,
) -> Result<(u32, Vec<SocketAddr>)> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let addr = SocketAddr::from((server_ip, port));
    let server_ns = server_ns.to_string();
    let server = std::thread::spawn(move || {
        in_netns(&server_ns, move || -> Result<Vec<SocketAddr>> {
            let sock = UdpSocket::bind(addr).context("binding the UDP echo server")?;
            sock.set_read_timeout(Some(Duration::from_millis(1500)))?;
            let _ = ready_tx.send(());
            let mut peers = Vec::new();
            let mut buf = vec![0u8; 65536];
            for _ in 0..count {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    break;
                };
                peers.push(peer);
                sock.send_to(&buf[..n], peer)?;
            }
            Ok(peers)
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the UDP server did not start")?;
    let client_ns = client_ns.to_string();
    let ok = in_netns(&client_ns, move || -> Result<u32> {
        let sock = UdpSocket::bind(("0.0.0.0", 0))?;
        sock.set_read_timeout(Some(Duration::from_millis(1000)))?;
        let mut ok = 0;
        let mut buf = vec![0u8; 65536];
        for i in 0..count {
            let mut msg = format!("podswitch udp echo {i}").into_bytes();
            let pattern = (0..=255u8).cycle().skip(i as usize);
            let pad = size.saturating_sub(msg.len());
            msg.extend(pattern.take(pad));
            sock.send_to(&msg, send_to)?;
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if buf[..n] == msg[..] {
                    ok += 1;
                }
            }
        }
        Ok(ok)
    })??;
    let peers = server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))???;
    Ok((ok, peers))
}
