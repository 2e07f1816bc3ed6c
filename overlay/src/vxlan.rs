//! VXLAN over IPv4 (RFC 7348): the 8-byte header view, encapsulation into
//! a frame's headroom, and decapsulation to a verdict.
//!
//! The outer headers of one encapsulated frame, 50 bytes in all:
//!
//! ```text
//! 0        14          34     42      50
//! | Ethernet | IPv4 (20) | UDP | VXLAN | inner Ethernet frame ...
//! ```
//!
//! Neither direction copies the inner frame: encapsulation writes the 50
//! bytes into the headroom in front of it ([`pmd::Pool::push_front`]),
//! decapsulation reports where the inner frame starts and the caller strips
//! the outer headers with [`pmd::Pool::pull_front`] (or uses
//! [`decapsulate_frame`], which does both).

use std::net::Ipv4Addr;

use pmd::meta::{self, PacketMeta};
use pmd::wire::{self, checksum, ipv4, udp, MacAddr};
use pmd::wire::{EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr, UdpPacket};
use pmd::{Frame, Pool};

use crate::counters::OverlayCounters;
use crate::vtep::{LearnedMacs, VtepTables};

/// A VXLAN Network Identifier: 24 bits (RFC 7348 section 5).
pub type Vni = u32;

/// Largest VNI: "this is a 24-bit value used to designate the individual
/// VXLAN overlay network" (RFC 7348 section 5).
pub const VNI_MAX: Vni = 0x00ff_ffff;

/// The IANA port: "IANA has assigned the value 4789 for the VXLAN UDP port,
/// and this value SHOULD be used by default as the destination UDP port"
/// (RFC 7348 section 5).
pub const VXLAN_PORT: u16 = 4789;

/// The port Linux used before IANA assigned one, still flannel's default.
pub const FLANNEL_PORT: u16 = 8472;

/// Length of the VXLAN header.
pub const VXLAN_HDR: usize = 8;
/// IPv4 header without options, as encapsulation writes it.
pub const OUTER_IPV4_HDR: usize = ipv4::HEADER_LEN;
/// UDP header.
pub const UDP_HDR: usize = udp::HEADER_LEN;
/// Outer Ethernet + IPv4 + UDP + VXLAN: what encapsulation adds, and what
/// an overlay endpoint's MTU gives up (RFC 7348 section 4.3).
pub const OUTER_LEN: usize = wire::ETH_HDR + OUTER_IPV4_HDR + UDP_HDR + VXLAN_HDR;

/// The outer UDP source port range: "it is RECOMMENDED that the value be in
/// the dynamic/private port range 49152-65535 [RFC6335]" (RFC 7348
/// section 5).
pub const SRC_PORT_MIN: u16 = 49152;
/// Upper end of the outer UDP source port range (inclusive).
pub const SRC_PORT_MAX: u16 = 65535;

/// Whether encapsulated packets carry IPv4 DF.
///
/// Set. RFC 7348 section 4.3: "VTEPs MUST NOT fragment VXLAN packets.
/// Intermediate routers may fragment encapsulated VXLAN packets due to the
/// larger frame size. The destination VTEP MAY silently discard such VXLAN
/// fragments." podswitch is such a destination (see
/// [`DecapDrop::OuterFragment`]), so a fragment the underlay made would be
/// lost between two podswitch hosts anyway; with DF the underlay says so
/// with an ICMP error instead. Endpoints get MTU = uplink MTU - 50, so
/// nothing podswitch sends needs fragmenting on a uniform underlay. (Linux's
/// vxlan device leaves DF clear unless `df set`; a Linux receiver
/// reassembles.)
pub const OUTER_DF: bool = true;

/// Outer IPv4 TTL when the network does not set one (Linux's default).
pub const DEFAULT_TTL: u8 = 64;

/// Field positions of the VXLAN header, named rather than numbered in
/// the code that uses them (smoltcp's `wire` style; the outer headers
/// have their views in `pmd::wire`).
mod field {
    pub type Field = core::ops::Range<usize>;
    pub const FLAGS: usize = 0;
    pub const RESERVED1: Field = 1..4;
    pub const VNI: Field = 4..7;
    pub const RESERVED2: usize = 7;
}

/// The I flag: "the I flag MUST be set to 1 for a valid VXLAN Network ID
/// (VNI). The other 7 bits (designated "R") are reserved fields and MUST be
/// set to zero on transmission and ignored on receipt" (RFC 7348 section 5).
pub const FLAG_I: u8 = 0x08;

/// A view of the 8-byte VXLAN header over a buffer (RFC 7348 section 5):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |R|R|R|R|I|R|R|R|            Reserved                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                VXLAN Network Identifier (VNI) |   Reserved    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// This is also the Linux kernel's `struct vxlanhdr` (two big-endian 32-bit
/// words, `vx_flags` and `vx_vni`, the VNI in the upper 24 bits of the
/// second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    /// Wraps a buffer without checking its length (for building a header
    /// in a buffer known to be long enough; accessors panic otherwise).
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanHeader { buffer }
    }

    /// Wraps a buffer of at least [`VXLAN_HDR`] bytes; `None` when shorter.
    /// After this no accessor can panic.
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= VXLAN_HDR).then_some(VxlanHeader { buffer })
    }

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The I bit: the VNI is valid.
    #[inline]
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The VXLAN Network Identifier.
    #[inline]
    pub fn vni(&self) -> Vni {
        let b = &self.buffer.as_ref()[field::VNI];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }

    /// True when every reserved bit (7 flag bits, 24 + 8 reserved bits) is
    /// zero.
    #[inline]
    pub fn reserved_clear(&self) -> bool {
        let b = self.buffer.as_ref();
        b[field::FLAGS] & !FLAG_I == 0
            && b[field::RESERVED1] == [0, 0, 0]
            && b[field::RESERVED2] == 0
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanHeader<T> {
    /// Writes a valid header for `vni`: I set, reserved bits zero ("MUST be
    /// set to zero on transmission", RFC 7348 section 5). The VNI is masked
    /// to 24 bits.
    #[inline]
    pub fn emit(&mut self, vni: Vni) {
        let b = self.buffer.as_mut();
        b[field::FLAGS] = FLAG_I;
        b[field::RESERVED1].fill(0);
        b[field::VNI].copy_from_slice(&(vni & VNI_MAX).to_be_bytes()[1..]);
        b[field::RESERVED2] = 0;
    }
}

/// Everything encapsulation needs to know about where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encap {
    /// The network's VNI.
    pub vni: Vni,
    /// The local VTEP address (the uplink port's `ip`).
    pub src_vtep: Ipv4Addr,
    /// The remote VTEP.
    pub dst_vtep: Ipv4Addr,
    /// The uplink's MAC.
    pub src_mac: MacAddr,
    /// The underlay next hop's MAC (the remote VTEP's, or the uplink
    /// gateway's when the VTEP is in another subnet).
    pub dst_mac: MacAddr,
    /// Outer UDP destination port: [`VXLAN_PORT`] by default,
    /// [`FLANNEL_PORT`] for flannel.
    pub udp_dst_port: u16,
    /// Outer IPv4 TTL.
    pub ttl: u8,
}

/// Why a frame could not be encapsulated. The caller drops and counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncapError {
    /// The frame has less than 50 bytes of headroom (pool frames keep 256,
    /// so this means someone already pushed headers in front of it).
    #[error("frame has {headroom} bytes of headroom, VXLAN needs {OUTER_LEN}")]
    NoHeadroom {
        /// Bytes of headroom the frame had.
        headroom: usize,
    },
    /// The encapsulated packet would not fit the IPv4 total length field.
    #[error("inner frame of {len} bytes is too large to encapsulate in IPv4")]
    TooLarge {
        /// Inner frame length.
        len: usize,
    },
    /// A TCP/UDP segmentation-offload frame (GSO) larger than the MTU: the
    /// switch must segment it (`pmd::gso`) and encapsulate each segment.
    #[error("a GSO frame must be segmented before VXLAN encapsulation")]
    NeedsSegmentation,
}

/// The outer UDP source port for an inner frame: a hash of its flow mapped
/// into 49152-65535.
///
/// RFC 7348 section 5: "It is recommended that the UDP source port number
/// be calculated using a hash of fields from the inner packet -- one
/// example being a hash of the inner Ethernet frame's headers. This is to
/// enable a level of entropy for the ECMP/load-balancing of the VM-to-VM
/// traffic across the VXLAN overlay."
///
/// The mapping into the range is Linux's `udp_flow_src_port`: the upper 32
/// bits of `hash * range`, so every port is equally likely.
#[inline]
pub fn source_port(inner: &[u8]) -> u16 {
    let range = (SRC_PORT_MAX - SRC_PORT_MIN) as u64 + 1;
    SRC_PORT_MIN + ((flow_hash(inner) as u64 * range) >> 32) as u16
}

/// A hash of the inner frame's flow: both MACs and the EtherType, and for
/// IPv4 the addresses, the protocol and (TCP, UDP, SCTP; first fragments
/// only) the ports. The same flow always hashes the same; bytes that vary
/// within a flow (lengths, IDs, payload) are left out.
///
/// Reads only what is there: a short or malformed frame hashes the fields
/// it has, and never panics.
#[inline]
pub fn flow_hash(inner: &[u8]) -> u32 {
    let mut h = FlowHasher::default();
    // Both MACs (the first 12 bytes) as two hash words.
    if let Some(macs) = inner.get(0..12) {
        h.add_u64(u64::from_be_bytes([
            macs[0], macs[1], macs[2], macs[3], macs[4], macs[5], macs[6], macs[7],
        ]));
        h.add_u64(u32::from_be_bytes([macs[8], macs[9], macs[10], macs[11]]) as u64);
    }
    let Ok(eth) = EthernetFrame::new_checked(inner) else {
        return h.finish();
    };
    let (ethertype, l3) = match eth.l3_ethertype() {
        Some(found) => found,
        // A cut-off VLAN tag hashes as its TPID.
        None => (wire::ETHERTYPE_VLAN, wire::ETH_HDR),
    };
    h.add_u64(ethertype as u64);
    if ethertype != wire::ETHERTYPE_IPV4 {
        return h.finish();
    }
    let Some(ip) = inner.get(l3..l3 + ipv4::HEADER_LEN) else {
        return h.finish();
    };
    let ip = Ipv4Packet::new_unchecked(ip);
    let proto = ip.protocol();
    h.add_u64((u32::from(ip.src_addr()) as u64) << 32 | u32::from(ip.dst_addr()) as u64);
    h.add_u64(proto as u64);
    // Later fragments carry no ports; hashing ports only for first
    // fragments would send one datagram's fragments different ways, so a
    // fragmented datagram hashes without ports (as Linux's flow dissector
    // does) whenever MF or an offset is set.
    let l4 = l3 + ip.header_len();
    if !ip.is_fragment() && matches!(proto, wire::IPPROTO_TCP | wire::IPPROTO_UDP | 132) {
        // TCP, UDP and SCTP all begin with the two ports.
        if let Some(p) = inner.get(l4..l4 + 4) {
            let ports = UdpPacket::new_unchecked(p);
            h.add_u64(((ports.src_port() as u32) << 16 | ports.dst_port() as u32) as u64);
        }
    }
    h.finish()
}

/// A small multiply-rotate hash with a murmur3 finaliser: fast for the
/// handful of words a flow key has, and well mixed in its upper bits,
/// which the source-port mapping uses.
#[derive(Default)]
struct FlowHasher(u64);

impl FlowHasher {
    #[inline]
    fn add_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }

    #[inline]
    fn finish(&self) -> u32 {
        // murmur3 fmix64.
        let mut k = self.0;
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^= k >> 33;
        (k >> 32) as u32
    }
}

/// Writes the 50 outer bytes for an inner frame of `inner_len` bytes whose
/// outer UDP source port is `src_port`.
#[inline]
fn emit_outer(out: &mut [u8], e: &Encap, inner_len: usize, src_port: u16) {
    let (eth, rest) = out[..OUTER_LEN].split_at_mut(wire::ETH_HDR);
    let (ip, rest) = rest.split_at_mut(OUTER_IPV4_HDR);
    let (udp, vxlan) = rest.split_at_mut(UDP_HDR);
    EthernetRepr {
        src_addr: e.src_mac,
        dst_addr: e.dst_mac,
        ethertype: wire::ETHERTYPE_IPV4,
    }
    .emit(&mut EthernetFrame::new_unchecked(eth));
    let udp_len = UDP_HDR + VXLAN_HDR + inner_len;
    // An atomic datagram (DF set, never fragmented): RFC 6864 section 4.1
    // lets its Identification be any value (the Repr writes 0).
    Ipv4Repr {
        src_addr: e.src_vtep,
        dst_addr: e.dst_vtep,
        protocol: wire::IPPROTO_UDP,
        payload_len: udp_len,
        ttl: e.ttl,
        dscp_ecn: 0,
        dont_frag: OUTER_DF,
    }
    .emit(&mut Ipv4Packet::new_unchecked(ip));
    let mut udp = UdpPacket::new_unchecked(udp);
    udp.set_src_port(src_port);
    udp.set_dst_port(e.udp_dst_port);
    udp.set_length(udp_len as u16);
    // RFC 7348 section 5: "UDP Checksum: It SHOULD be transmitted as zero.
    // When a packet is received with a UDP checksum of zero, it MUST be
    // accepted for decapsulation." (RFC 768 allows zero over IPv4.)
    udp.set_checksum(0);
    VxlanHeader::new_unchecked(vxlan).emit(e.vni);
}

/// Largest inner frame that still fits the outer IPv4 total length.
const MAX_INNER: usize = u16::MAX as usize - (OUTER_IPV4_HDR + UDP_HDR + VXLAN_HDR);

/// Encapsulates `frame` in place: prepends outer Ethernet/IPv4/UDP/VXLAN
/// (50 bytes) into its headroom with [`Pool::push_front`]; the inner frame
/// is not copied.
///
/// A frame with a pending checksum offload (`needs_csum`) keeps it: its
/// `csum_start` moves by 50 so whoever finishes the inner checksum (an
/// uplink without offloads, in software) still finds it. A GSO frame is
/// refused ([`EncapError::NeedsSegmentation`]).
pub fn encapsulate(pool: &mut Pool, frame: &mut Frame, e: &Encap) -> Result<(), EncapError> {
    if frame.offload.gso_type != 0 {
        return Err(EncapError::NeedsSegmentation);
    }
    let inner_len = frame.len();
    if inner_len > MAX_INNER {
        return Err(EncapError::TooLarge { len: inner_len });
    }
    let headroom = frame.headroom();
    if headroom < OUTER_LEN {
        return Err(EncapError::NoHeadroom { headroom });
    }
    let src_port = source_port(pool.data(frame));
    if frame.offload.needs_csum {
        frame.offload.csum_start += OUTER_LEN as u16;
    }
    let Some(bytes) = pool.push_front(frame, OUTER_LEN) else {
        return Err(EncapError::NoHeadroom { headroom });
    };
    emit_outer(bytes, e, inner_len, src_port);
    Ok(())
}

/// Encapsulates an inner frame that sits in `buf[headroom..headroom +
/// inner_len]`, writing the outer headers into `buf[headroom - 50..
/// headroom]`; returns the range of the whole encapsulated packet. For
/// callers without a pool (benchmarks, tests, other frame types).
pub fn encapsulate_into(
    buf: &mut [u8],
    headroom: usize,
    inner_len: usize,
    e: &Encap,
) -> Result<core::ops::Range<usize>, EncapError> {
    if headroom < OUTER_LEN {
        return Err(EncapError::NoHeadroom { headroom });
    }
    if inner_len > MAX_INNER {
        return Err(EncapError::TooLarge { len: inner_len });
    }
    let end = headroom
        .checked_add(inner_len)
        .filter(|&end| end <= buf.len())
        .ok_or(EncapError::TooLarge { len: inner_len })?;
    let src_port = source_port(&buf[headroom..end]);
    let start = headroom - OUTER_LEN;
    emit_outer(&mut buf[start..headroom], e, inner_len, src_port);
    Ok(start..end)
}

/// Why a received packet was not decapsulated. Each has a counter in
/// [`OverlayCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DecapDrop {
    /// Not IPv4/UDP to the local VTEP on a configured VXLAN port. (The
    /// switch normally classifies first and only hands VXLAN here; this
    /// reason is for what slips through.)
    NotVxlan,
    /// The outer IPv4 header checksum is wrong.
    BadOuterChecksum,
    /// An outer IPv4 fragment: RFC 7348 section 4.3, "The destination VTEP
    /// MAY silently discard such VXLAN fragments." podswitch does not
    /// reassemble.
    OuterFragment,
    /// The UDP length or the VXLAN header runs past the packet.
    Truncated,
    /// The I flag is clear, or a reserved bit is set.
    BadFlags,
    /// No overlay network has this VNI on this UDP port.
    UnknownVni,
    /// The sender is not a known peer VTEP of the VNI's network.
    UnknownVtep,
    /// The inner frame is shorter than an Ethernet header or fails
    /// `pmd::meta::parse`.
    BadInner,
}

impl DecapDrop {
    /// Number of reasons.
    pub const COUNT: usize = 8;
    /// Every reason, in counter order.
    pub const ALL: [DecapDrop; Self::COUNT] = [
        DecapDrop::NotVxlan,
        DecapDrop::BadOuterChecksum,
        DecapDrop::OuterFragment,
        DecapDrop::Truncated,
        DecapDrop::BadFlags,
        DecapDrop::UnknownVni,
        DecapDrop::UnknownVtep,
        DecapDrop::BadInner,
    ];

    /// A short name for stats output.
    pub fn name(self) -> &'static str {
        match self {
            DecapDrop::NotVxlan => "not_vxlan",
            DecapDrop::BadOuterChecksum => "bad_outer_checksum",
            DecapDrop::OuterFragment => "outer_fragment",
            DecapDrop::Truncated => "truncated",
            DecapDrop::BadFlags => "bad_flags",
            DecapDrop::UnknownVni => "unknown_vni",
            DecapDrop::UnknownVtep => "unknown_vtep",
            DecapDrop::BadInner => "bad_inner",
        }
    }
}

/// The verdict on a received VXLAN packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decap {
    /// A valid inner frame for a configured network from a known peer.
    Inner {
        /// The network's VNI.
        vni: Vni,
        /// The sending VTEP (outer IPv4 source).
        src_vtep: Ipv4Addr,
        /// Where the inner Ethernet frame starts in the outer packet.
        inner_offset: usize,
        /// Inner frame length, from the outer UDP length.
        inner_len: usize,
        /// The inner frame parsed (offsets relative to the inner frame),
        /// so the switch does not parse it again.
        meta: PacketMeta,
    },
    /// Drop and count.
    Drop(DecapDrop),
}

/// Decides whether `packet` (a whole outer Ethernet frame, parsed into
/// `outer` by `pmd::meta::parse`) is VXLAN this host accepts, and where the
/// inner frame is. Pure: counts nothing and learns nothing ([`receive`]
/// does both).
///
/// VXLAN has no authentication, so only configured VNIs from known peer
/// VTEPs are accepted. Never panics, whatever the bytes and whatever
/// `outer` says.
pub fn decapsulate(packet: &[u8], outer: &PacketMeta, tables: &VtepTables) -> Decap {
    match decap(packet, outer, tables) {
        Ok(d) => d,
        Err(reason) => Decap::Drop(reason),
    }
}

fn decap(packet: &[u8], outer: &PacketMeta, tables: &VtepTables) -> Result<Decap, DecapDrop> {
    if outer.ethertype != wire::ETHERTYPE_IPV4
        || outer.ip_proto != wire::IPPROTO_UDP
        || outer.ip_dst != tables.local_vtep().octets()
    {
        return Err(DecapDrop::NotVxlan);
    }
    let end = (outer.frame_len as usize).min(packet.len());
    let packet = &packet[..end];
    let (l3, l4) = (outer.l3_off as usize, outer.l4_off as usize);
    let hdr = packet.get(l3..l4).ok_or(DecapDrop::Truncated)?;
    if hdr.len() < OUTER_IPV4_HDR {
        return Err(DecapDrop::Truncated);
    }
    let ip = Ipv4Packet::new_unchecked(hdr);
    if outer.later_fragment || ip.is_fragment() {
        return Err(DecapDrop::OuterFragment);
    }
    let udp = packet.get(l4..l4 + UDP_HDR).ok_or(DecapDrop::Truncated)?;
    let udp = UdpPacket::new_unchecked(udp);
    let dst_port = udp.dst_port();
    if !tables.is_vxlan_port(dst_port) {
        return Err(DecapDrop::NotVxlan);
    }
    // The header checksum only now: other UDP is not ours to judge.
    // `hdr` is exactly the header (l3..l4): sum it without reading the
    // IHL again.
    if checksum::checksum(hdr) != 0 {
        return Err(DecapDrop::BadOuterChecksum);
    }
    let udp_len = udp.length() as usize;
    // The UDP checksum is not verified: RFC 7348 section 5, "When a
    // decapsulating end point receives a packet with a non-zero checksum,
    // it MAY choose to verify the checksum value." Linux's vxlan leaves it
    // to the UDP stack (or the NIC); an AF_XDP uplink gives us neither, and
    // a full pass over every payload costs more than the decapsulation.
    if udp_len < UDP_HDR + VXLAN_HDR || l4 + udp_len > packet.len() {
        return Err(DecapDrop::Truncated);
    }
    let vx_start = l4 + UDP_HDR;
    let vx = VxlanHeader::new_checked(&packet[vx_start..vx_start + VXLAN_HDR])
        .ok_or(DecapDrop::Truncated)?;
    // RFC 7348 says reserved bits are "ignored on receipt"; Linux's vxlan
    // (vxlan_rcv: "If there are any unprocessed flags remaining treat this
    // as a malformed packet") drops them unless an extension (GBP, GPE) is
    // configured. We follow Linux: a peer that sets them speaks an
    // extension we do not, and guessing its meaning is worse than a drop.
    if !vx.vni_valid() || !vx.reserved_clear() {
        return Err(DecapDrop::BadFlags);
    }
    let vni = vx.vni();
    let net = tables.network(vni).ok_or(DecapDrop::UnknownVni)?;
    if net.udp_port != dst_port {
        return Err(DecapDrop::UnknownVni);
    }
    let src_vtep = Ipv4Addr::from(outer.ip_src);
    if !net.is_peer(src_vtep) {
        return Err(DecapDrop::UnknownVtep);
    }
    let inner_offset = vx_start + VXLAN_HDR;
    let inner_len = l4 + udp_len - inner_offset;
    let inner = &packet[inner_offset..inner_offset + inner_len];
    if inner.len() < wire::ETH_HDR {
        return Err(DecapDrop::BadInner);
    }
    let meta = meta::parse(inner).map_err(|_| DecapDrop::BadInner)?;
    Ok(Decap::Inner {
        vni,
        src_vtep,
        inner_offset,
        inner_len,
        meta,
    })
}

/// [`decapsulate`], then counts the verdict and learns the inner source
/// MAC -> VTEP for an accepted frame (RFC 7348 section 4.1: the VTEP
/// "learns the mapping of inner source MAC address to outer source IP
/// address"). This is what the switch calls per received VXLAN packet.
pub fn receive(
    packet: &[u8],
    outer: &PacketMeta,
    tables: &VtepTables,
    learned: &mut LearnedMacs,
    counters: &OverlayCounters,
    now_ns: u64,
) -> Decap {
    let verdict = decapsulate(packet, outer, tables);
    match verdict {
        Decap::Inner {
            vni,
            src_vtep,
            meta,
            ..
        } => {
            counters.decapsulated.add(1);
            if learned.learn(tables, vni, meta.src_mac, src_vtep, now_ns) {
                counters.learned.add(1);
            }
        }
        Decap::Drop(reason) => counters.count_decap_drop(reason),
    }
    verdict
}

/// [`receive`] on a pool frame, and on success strips the outer headers in
/// place ([`Pool::pull_front`]) and trims any trailing bytes, so `frame` is
/// the inner Ethernet frame. On a drop the frame is unchanged; the caller
/// frees it.
pub fn decapsulate_frame(
    pool: &mut Pool,
    frame: &mut Frame,
    outer: &PacketMeta,
    tables: &VtepTables,
    learned: &mut LearnedMacs,
    counters: &OverlayCounters,
    now_ns: u64,
) -> Decap {
    let verdict = receive(pool.data(frame), outer, tables, learned, counters, now_ns);
    if let Decap::Inner {
        inner_offset,
        inner_len,
        ..
    } = verdict
    {
        // Both hold: the verdict's range lies inside the frame.
        let pulled = pool.pull_front(frame, inner_offset);
        let trimmed = pool.set_len(frame, inner_len);
        debug_assert!(pulled && trimmed);
        frame.offload = inner_offload(&frame.offload, inner_offset);
    }
    verdict
}

/// The offload state of a decapsulated frame. A pending checksum inside
/// the inner frame (a kernel vxlan device behind a TAP with virtio-net
/// headers reports the inner TCP's `csum_start`) moves with it; anything
/// about the outer headers is gone. A port that lost the checksum state
/// lost it for the inner frame too, so the inner frame is looked at again
/// (`pmd::partial_csum`).
fn inner_offload(outer: &pmd::Offload, inner_offset: usize) -> pmd::Offload {
    let mut inner = pmd::Offload {
        csum_lost: outer.csum_lost,
        ..pmd::Offload::default()
    };
    if outer.needs_csum && outer.csum_start as usize >= inner_offset {
        inner.needs_csum = true;
        inner.csum_start = outer.csum_start - inner_offset as u16;
        inner.csum_offset = outer.csum_offset;
        // A GSO frame whose pending checksum is the inner one is a tunnel
        // segment (a kernel VXLAN device's TSO output): the inner frame is
        // that TCP segment, to be cut at the same size.
        if outer.gso_type != 0 {
            inner.gso_type = outer.gso_type;
            inner.gso_size = outer.gso_size;
            inner.hdr_len = outer.hdr_len.saturating_sub(inner_offset as u16);
        }
    }
    inner
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VXLAN header as Linux's vxlan device sends it for VNI 42 (`ip link
    /// add vxlan0 type vxlan id 42`): `vx_flags` = htonl(0x08000000),
    /// `vx_vni` = htonl(42 << 8).
    const LINUX_VNI_42: [u8; 8] = [0x08, 0, 0, 0, 0, 0, 42, 0];

    #[test]
    fn the_header_linux_sends_parses_to_its_vni_with_the_i_flag() {
        let h = VxlanHeader::new_checked(&LINUX_VNI_42[..]).unwrap();
        assert_eq!(h.flags(), FLAG_I);
        assert!(h.vni_valid() && h.reserved_clear());
        assert_eq!(h.vni(), 42);
    }

    #[test]
    fn an_emitted_header_matches_the_linux_layout_byte_for_byte() {
        let mut b = [0xffu8; 8];
        VxlanHeader::new_unchecked(&mut b[..]).emit(42);
        assert_eq!(b, LINUX_VNI_42);
        VxlanHeader::new_unchecked(&mut b[..]).emit(0x00ab_cdef);
        assert_eq!(b, [0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
        // Only 24 bits exist.
        VxlanHeader::new_unchecked(&mut b[..]).emit(0x0100_0001);
        assert_eq!(VxlanHeader::new_checked(&b[..]).unwrap().vni(), 1);
    }

    #[test]
    fn a_short_buffer_is_no_header_and_reserved_bits_are_seen() {
        assert!(VxlanHeader::new_checked(&[0u8; 7][..]).is_none());
        for at in [0usize, 1, 2, 3, 7] {
            let mut b = LINUX_VNI_42;
            b[at] |= if at == 0 { 0x80 } else { 1 };
            assert!(!VxlanHeader::new_checked(&b[..]).unwrap().reserved_clear());
        }
    }

    #[test]
    fn the_outer_headers_add_50_bytes() {
        assert_eq!(OUTER_LEN, 50);
    }

    #[test]
    fn a_decapsulated_frame_keeps_an_inner_pending_checksum_and_the_lost_state() {
        let tap = pmd::Offload {
            needs_csum: true,
            csum_start: 50 + 34,
            csum_offset: 16,
            ..pmd::Offload::default()
        };
        let inner = inner_offload(&tap, 50);
        assert!(inner.needs_csum);
        assert_eq!((inner.csum_start, inner.csum_offset), (34, 16));
        let outer_udp = pmd::Offload {
            needs_csum: true,
            csum_start: 34,
            csum_offset: 6,
            csum_lost: true,
            ..pmd::Offload::default()
        };
        let inner = inner_offload(&outer_udp, 50);
        assert!(
            !inner.needs_csum,
            "the outer UDP checksum is not the inner's"
        );
        assert!(
            inner.csum_lost,
            "the inner frame lost its state as the outer did"
        );
    }
}
