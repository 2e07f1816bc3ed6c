//! Links, addresses and routes through route netlink, without forking `ip`.
//!
//! Synchronous `netlink-packet-route` over a blocking `netlink-sys` socket
//! rather than `rtnetlink` on tokio: every caller is a plain thread (the
//! daemon's start, a lab's worker threads), one request waits for its
//! answer before the next, and a netlink socket stays bound to the
//! namespace it was opened in, which a blocking socket per worker thread
//! expresses directly; an async runtime would add a reactor and nothing
//! the callers use.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::wire::MacAddr;

/// The loopback interface's index: the first device of every namespace.
const LO_INDEX: u32 = 1;

/// Changes to one link, applied by [`Rtnl::set_link`] in one request.
#[derive(Debug, Default)]
pub struct LinkChange<'a> {
    /// Move the link into the namespace of this file (IFLA_NET_NS_FD).
    pub netns: Option<&'a File>,
    /// New name (with `netns`, the name it takes there).
    pub name: Option<&'a str>,
    /// Hardware address.
    pub mac: Option<MacAddr>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Set the link up.
    pub up: bool,
    /// Set IFF_NOARP: the kernel answers no ARP on the link.
    pub noarp: bool,
}

/// `change` as a link message (without an index).
fn link_message(change: &LinkChange<'_>) -> LinkMessage {
    let mut msg = LinkMessage::default();
    if change.up {
        msg.header.flags |= LinkFlags::Up;
        msg.header.change_mask |= LinkFlags::Up;
    }
    if change.noarp {
        msg.header.flags |= LinkFlags::Noarp;
        msg.header.change_mask |= LinkFlags::Noarp;
    }
    if let Some(ns) = change.netns {
        msg.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    }
    if let Some(name) = change.name {
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    }
    if let Some(mac) = change.mac {
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(mtu) = change.mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    msg
}

/// A route netlink socket, bound to the namespace it was opened in for its
/// whole life.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Rtnl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtnl").field("seq", &self.seq).finish()
    }
}

fn context(what: impl std::fmt::Display, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Rtnl {
    /// A socket in the calling thread's namespace.
    pub fn open() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// A socket in the namespace `ns` (an open namespace file). It is
    /// opened on a short-lived thread that enters `ns`, so the caller's
    /// thread never changes namespace (nothing to restore, nothing to
    /// leak if a step fails).
    pub fn open_in(ns: &File) -> io::Result<Rtnl> {
        std::thread::scope(|s| {
            s.spawn(|| {
                crate::netns::enter(ns)?;
                Rtnl::open()
            })
            .join()
            .map_err(|_| io::Error::other("netlink thread panicked"))?
        })
    }

    /// A socket in the namespace at `path` (`/run/netns/NAME`,
    /// `/proc/PID/ns/net`).
    pub fn open_at(path: &Path) -> io::Result<Rtnl> {
        let file =
            File::open(path).map_err(|e| context(format!("opening {}", path.display()), e))?;
        Rtnl::open_in(&file)
    }

    /// Sends one request and collects the messages answered before the
    /// kernel's acknowledgement; a refusal is the kernel's errno.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        self.sock.send(&out, 0)?;
        let mut answers = Vec::new();
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off < n {
                let reply: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&self.buf[off..n])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number == self.seq {
                    match reply.payload {
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(answers),
                                Some(_) => Err(e.to_io()),
                            };
                        }
                        NetlinkPayload::Done(_) => return Ok(answers),
                        NetlinkPayload::InnerMessage(m) => answers.push(m),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }

    /// The link called `name`, or `None` when there is none.
    fn get_link(&mut self, name: &str) -> io::Result<Option<LinkMessage>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(answers) => Ok(answers.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(context(format!("looking up link {name}"), e)),
        }
    }

    /// The index of the link called `name`, or `None` when there is none.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        Ok(self.get_link(name)?.map(|l| l.header.index))
    }

    /// The names of every link here (a dump, as `ip link show`).
    pub fn link_names(&mut self) -> io::Result<Vec<String>> {
        let answers = self
            .request(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_DUMP,
            )
            .map_err(|e| context("listing links", e))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n),
                    _ => None,
                }),
                _ => None,
            })
            .collect())
    }

    /// Applies `change` to the link with index `index` in one RTM_SETLINK.
    /// The kernel moves the link first (taking the new name there), then
    /// sets address, MTU and flags in its new namespace.
    pub fn set_link(&mut self, index: u32, change: &LinkChange<'_>) -> io::Result<()> {
        let mut msg = link_message(change);
        msg.header.index = index;
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
            .map(drop)
            .map_err(|e| context(format!("configuring link {index}"), e))
    }

    /// Sets loopback up (a new namespace starts with it down).
    pub fn loopback_up(&mut self) -> io::Result<()> {
        self.set_link(
            LO_INDEX,
            &LinkChange {
                up: true,
                ..LinkChange::default()
            },
        )
        .map_err(|e| context("setting lo up", e))
    }

    /// Adds `ip/prefix` to the link `index` (as `ip addr add`: the broadcast
    /// address derived, the subnet route made by the kernel).
    pub fn add_ipv4(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(ip.into()));
        msg.attributes.push(AddressAttribute::Address(ip.into()));
        if prefix < 31 {
            let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            let bcast = Ipv4Addr::from(u32::from(ip) | host);
            msg.attributes.push(AddressAttribute::Broadcast(bcast));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
        .map_err(|e| context(format!("adding {ip}/{prefix}"), e))
    }

    /// Sets the IPv4 default route via `gateway` (as `ip route replace
    /// default via GATEWAY`).
    pub fn replace_default_route(&mut self, gateway: Ipv4Addr) -> io::Result<()> {
        self.replace_route(Ipv4Addr::UNSPECIFIED, 0, gateway)
    }

    /// Adds or replaces the route to `dst/prefix` via `gateway` (a prefix of
    /// 0 is the default route, which carries no destination attribute).
    pub fn replace_route(
        &mut self,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
    ) -> io::Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.header.destination_prefix_length = prefix;
        if prefix > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        }
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        let what = if prefix == 0 {
            format!("default route via {gateway}")
        } else {
            format!("route to {dst}/{prefix} via {gateway}")
        };
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
        .map_err(|e| context(what, e))
    }

    /// Creates a veth pair `a` <-> `b` here, both up.
    pub fn add_veth(&mut self, a: &str, b: &str) -> io::Result<()> {
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName(b.to_string()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(a.to_string()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| context(format!("creating veth {a} <-> {b}"), e))?;
        // Up only once both ends exist: the kernel refuses to open a veth
        // whose peer is not registered yet (ENOTCONN), which it would be
        // if the flags came with the request.
        let up = LinkChange {
            up: true,
            ..LinkChange::default()
        };
        for name in [a, b] {
            let index = self
                .link_index(name)?
                .ok_or_else(|| io::Error::other(format!("veth {name} vanished")))?;
            self.set_link(index, &up)?;
        }
        Ok(())
    }

    /// Creates a veth pair in one request: `host` here, and its peer as
    /// `peer.name` directly in the namespace `peer.netns` with the peer's
    /// MAC and both ends' MTU set (`peer.up` must be false, see
    /// [`Rtnl::add_veth`]). Both ends stay down: set them up after
    /// anything that must come first (IPv6 off). Returns `host`'s index.
    pub fn add_veth_into(
        &mut self,
        host: &str,
        mtu: u32,
        peer: &LinkChange<'_>,
    ) -> io::Result<u32> {
        let p = link_message(peer);
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| {
                context(
                    format!("creating veth {host} <-> {}", peer.name.unwrap_or("?")),
                    e,
                )
            })?;
        self.link_index(host)?
            .ok_or_else(|| io::Error::other(format!("veth {host} vanished after its creation")))
    }

    /// How many holders put the link `name` in promiscuous mode (an
    /// AF_PACKET socket's membership counts while the socket is open), or
    /// `None` when there is no such link.
    pub fn link_promiscuity(&mut self, name: &str) -> io::Result<Option<u32>> {
        Ok(self.get_link(name)?.map(|l| {
            l.attributes
                .into_iter()
                .find_map(|a| match a {
                    LinkAttribute::Promiscuity(n) => Some(n),
                    _ => None,
                })
                .unwrap_or(0)
        }))
    }

    /// Deletes the link with index `index` (with a veth, its peer goes too).
    pub fn del_link_index(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(msg), 0)
            .map(drop)
            .map_err(|e| context(format!("deleting link {index}"), e))
    }

    /// Deletes the link called `name` (with a veth, its peer goes too).
    pub fn del_link(&mut self, name: &str) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.request(RouteNetlinkMessage::DelLink(msg), 0)
            .map(drop)
            .map_err(|e| context(format!("deleting link {name}"), e))
    }
}
