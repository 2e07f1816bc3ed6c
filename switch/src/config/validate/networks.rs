//! `[[network]]`.

use super::*;

pub(super) struct Network<'r> {
    pub(super) raw: &'r S<RawNetwork>,
    pub(super) name: &'r str,
    /// The mode as far as it could be read (nat when unknown).
    pub(super) mode: NetworkMode,
    /// `None` when the subnet is bad: checks against it are left out.
    pub(super) cfg: Option<NetworkCfg>,
}

impl Network<'_> {
    pub(super) fn subnet(&self) -> Option<Ipv4Net> {
        self.cfg.as_ref().map(|c| c.subnet)
    }
}

pub(super) fn mode_of(d: &mut Diag, v: Option<&S<String>>) -> NetworkMode {
    let Some(v) = v else {
        return NetworkMode::Nat;
    };
    let Some(mode) = NetworkMode::from_name(v.get_ref()) else {
        d.at(
            v.span(),
            format!(
                "unknown network mode {:?}; expected one of nat, bridge, transparent, \
                 l2bridge, l2tunnel, overlay",
                v.get_ref()
            ),
        );
        return NetworkMode::Nat;
    };
    mode
}

/// `endpoint_link`: tap when left out.
fn endpoint_link(d: &mut Diag, v: Option<&S<String>>) -> EndpointLink {
    let Some(v) = v else {
        return EndpointLink::Tap;
    };
    EndpointLink::from_name(v.get_ref()).unwrap_or_else(|| {
        d.at(
            v.span(),
            format!(
                "unknown endpoint_link {:?}; expected \"tap\" or \"veth\"",
                v.get_ref()
            ),
        );
        EndpointLink::Tap
    })
}

pub(super) fn check_networks<'r>(
    d: &mut Diag,
    raw: &'r [S<RawNetwork>],
    raw_ports: &[S<RawPort>],
    ports: &[Port],
) -> Vec<Network<'r>> {
    unique_names(d, raw.iter().map(|n| &n.get_ref().name), "network");
    let mut out: Vec<Network<'r>> = Vec::with_capacity(raw.len());
    for rn in raw {
        let n = rn.get_ref();
        let mode = mode_of(d, n.mode.as_ref());
        let overlay = mode == NetworkMode::Overlay;

        let subnet = ipv4_net(d, &n.subnet, "subnet", "172.30.0.0/24").and_then(|s| {
            if s != s.trunc() {
                d.at(
                    n.subnet.span(),
                    format!("subnet {s} has host bits set; did you mean {}?", s.trunc()),
                );
                None
            } else if s.prefix_len() > 30 {
                d.at(
                    n.subnet.span(),
                    format!("subnet {s} is too small: a network needs at least a /30"),
                );
                None
            } else {
                Some(s)
            }
        });
        if let Some(s) = subnet {
            for other in &out {
                let Some(o) = other.subnet() else { continue };
                if s.contains(&o) || o.contains(&s) {
                    let line = d.line(&other.raw.get_ref().subnet.span());
                    d.at(
                        n.subnet.span(),
                        format!(
                            "subnet {s} overlaps subnet {o} of network {:?} (line {line})",
                            other.name
                        ),
                    );
                }
            }
        }

        let mut gateway = n.gateway.as_ref().and_then(|g| {
            let a = ipv4(d, g, "gateway")?;
            if let Some(why) = subnet.and_then(|s| not_a_host(a, s)) {
                d.at(g.span(), format!("gateway {a} {why}"));
            }
            Some(a)
        });
        if gateway.is_none() && n.gateway.is_none() && mode == NetworkMode::Nat {
            // As Docker does: the first host address.
            gateway = subnet.and_then(|s| s.hosts().next());
        }

        let uplink = n.uplink.as_ref().and_then(|u| {
            let Some(port) = find_port(ports, u.get_ref()) else {
                d.at(
                    u.span(),
                    format!(
                        "uplink {:?} is not a [[port]]; {}",
                        u.get_ref(),
                        known_list(
                            raw_ports
                                .iter()
                                .map(|p| p.get_ref().name.get_ref().as_str())
                        )
                    ),
                );
                return None;
            };
            if port.cfg.ip.is_none() && raw_ports_ip_given(raw_ports, u.get_ref()) {
                // The port's ip is bad: already reported there.
            } else if port.cfg.ip.is_none() && overlay {
                d.at(
                    u.span(),
                    format!(
                        "uplink {:?} has no ip; an overlay uses it as the local VTEP address",
                        u.get_ref()
                    ),
                );
            } else if port.cfg.ip.is_none() && mode == NetworkMode::Nat {
                d.at(
                    u.span(),
                    format!(
                        "uplink {:?} has no ip; a nat network masquerades to it",
                        u.get_ref()
                    ),
                );
            }
            Some(u.get_ref().clone())
        });
        if mode.is_l2() {
            check_l2_uplink(d, rn, mode, ports, &out);
        }
        if overlay && n.uplink.is_none() {
            d.at(
                rn.span(),
                "an overlay network needs uplink = a [[port]] with an ip (the local VTEP address)",
            );
        }

        let vni = match (&n.vni, overlay) {
            (Some(v), false) => {
                d.at(
                    v.span(),
                    format!(
                        "vni is only for overlay networks; this one is {}",
                        mode.as_str()
                    ),
                );
                None
            }
            (Some(v), true) if !(1..=VNI_MAX).contains(v.get_ref()) => {
                d.at(
                    v.span(),
                    format!(
                        "vni {} is out of range 1..={VNI_MAX} (24 bits)",
                        v.get_ref()
                    ),
                );
                None
            }
            (Some(v), true) => Some(*v.get_ref()),
            (None, true) => {
                d.at(
                    rn.span(),
                    format!("an overlay network needs vni (1..={VNI_MAX})"),
                );
                None
            }
            (None, false) => None,
        };
        let vxlan_port = match &n.vxlan_port {
            Some(v) if !overlay => {
                d.at(
                    v.span(),
                    format!(
                        "vxlan_port is only for overlay networks; this one is {}",
                        mode.as_str()
                    ),
                );
                4789
            }
            Some(v) if *v.get_ref() == 0 => {
                d.at(v.span(), "vxlan_port must be 1..=65535");
                4789
            }
            Some(v) => *v.get_ref(),
            None => 4789,
        };
        let mtu = n.mtu.as_ref().and_then(|m| {
            if (MTU_MIN..=65535).contains(m.get_ref()) {
                Some(*m.get_ref())
            } else {
                d.at(
                    m.span(),
                    format!("mtu {} is out of range {MTU_MIN}..=65535", m.get_ref()),
                );
                None
            }
        });

        out.push(Network {
            raw: rn,
            name: n.name.get_ref(),
            mode,
            cfg: subnet.map(|subnet| NetworkCfg {
                name: n.name.get_ref().clone(),
                mode,
                subnet,
                gateway,
                uplink,
                vni,
                mtu,
                vxlan_port,
                gateway_mac: n.gateway_mac.as_ref().and_then(|m| {
                    if mode.is_l2() {
                        d.at(
                            m.span(),
                            format!(
                                "gateway_mac is for networks whose gateway the switch owns; in a \
                                 {mode} network the gateway is the physical network's router"
                            ),
                        );
                        return None;
                    }
                    unicast_mac(d, m)
                }),
                reserved: reserved_ranges(d, n.reserved.as_deref(), subnet, gateway),
                mac_pool: n.mac_pool.as_ref().and_then(|v| mac_pool(d, v)),
                dns: dns(d, n.dns.as_ref()),
                endpoint_link: endpoint_link(d, n.endpoint_link.as_ref()),
            }),
        });
    }
    out
}

/// The rules of an L2 network's uplink: there is one, the switch takes
/// its frames with a socket filter (kind = "packet"), it has a MAC of the
/// switch's when frames carry it (l2bridge, l2tunnel), and no other L2
/// network bridges onto it.
fn check_l2_uplink(
    d: &mut Diag,
    rn: &S<RawNetwork>,
    mode: NetworkMode,
    ports: &[Port],
    before: &[Network],
) {
    let Some(u) = rn.get_ref().uplink.as_ref() else {
        d.at(
            rn.span(),
            format!(
                "a {mode} network needs uplink = the [[port]] whose segment its endpoints join"
            ),
        );
        return;
    };
    let Some(port) = find_port(ports, u.get_ref()) else {
        return; // Reported with the uplink.
    };
    if port.cfg.kind != PortKind::Packet {
        d.at(
            u.span(),
            format!(
                "uplink {:?} is kind = {:?}; {mode} networks need a kind = \"packet\" uplink \
                 (its socket filter takes the endpoints' frames and leaves the host's)",
                u.get_ref(),
                port.cfg.kind.as_str()
            ),
        );
    }
    if mode != NetworkMode::Transparent && port.cfg.mac.is_none() && port.cfg.ip.is_none() {
        d.at(
            u.span(),
            format!(
                "uplink {:?} has neither mac nor ip; every frame of a {mode} network carries \
                 the switch's MAC there (mac, or 02:50 and the ip)",
                u.get_ref()
            ),
        );
    }
    if let Some(other) = before.iter().find(|o| {
        o.mode.is_l2() && o.raw.get_ref().uplink.as_ref().map(|x| x.get_ref()) == Some(u.get_ref())
    }) {
        let line = d.line(&other.raw.span());
        d.at(
            u.span(),
            format!(
                "uplink {:?} already carries {} network {:?} (line {line}); one \
                 transparent, l2bridge or l2tunnel network per uplink",
                u.get_ref(),
                other.mode,
                other.name
            ),
        );
    }
}

pub(super) fn raw_ports_ip_given(raw_ports: &[S<RawPort>], name: &str) -> bool {
    raw_ports
        .iter()
        .any(|p| p.get_ref().name.get_ref() == name && p.get_ref().ip.is_some())
}

pub(super) fn find_network<'a, 'r>(
    networks: &'a [Network<'r>],
    name: &str,
) -> Option<&'a Network<'r>> {
    networks.iter().find(|n| n.name == name)
}

pub(super) fn dangling_network(d: &mut Diag, v: &S<String>, networks: &[Network]) {
    d.at(
        v.span(),
        format!(
            "network {:?} is not a [[network]]; {}",
            v.get_ref(),
            known_list(networks.iter().map(|n| n.name))
        ),
    );
}

/// `reserved = ["10.0.0.2-10.0.0.9", "10.0.0.20"]`: host addresses of the
/// subnet, each range low to high, none the gateway.
fn reserved_ranges(
    d: &mut Diag,
    raw: Option<&[S<String>]>,
    subnet: Ipv4Net,
    gateway: Option<Ipv4Addr>,
) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    let mut out = Vec::new();
    for v in raw.unwrap_or_default() {
        let text = v.get_ref().as_str();
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        let (Ok(lo), Ok(hi)) = (a.trim().parse::<Ipv4Addr>(), b.trim().parse::<Ipv4Addr>()) else {
            d.at(
                v.span(),
                format!("reserved {text:?} is not an address or range (10.0.0.2-10.0.0.9)"),
            );
            continue;
        };
        if lo > hi {
            d.at(
                v.span(),
                format!("reserved range {text:?} goes from high to low"),
            );
            continue;
        }
        if let Some(why) = not_a_host(lo, subnet).or_else(|| not_a_host(hi, subnet)) {
            d.at(v.span(), format!("reserved {text:?}: an address {why}"));
            continue;
        }
        if gateway.is_some_and(|g| (lo..=hi).contains(&g)) {
            d.at(
                v.span(),
                format!("reserved {text:?} holds the gateway, which is never handed out anyway"),
            );
            continue;
        }
        out.push((lo, hi));
    }
    out
}
