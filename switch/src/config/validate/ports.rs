//! `[[port]]`.

use super::*;

pub(super) struct Port {
    pub(super) cfg: PortCfg,
}

pub(super) fn check_ports(d: &mut Diag, raw: &[S<RawPort>]) -> Vec<Port> {
    unique_names(d, raw.iter().map(|p| &p.get_ref().name), "port");
    let mut ifaces: HashMap<&str, Range<usize>> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for p in raw.iter().map(S::get_ref) {
        let iface = p.iface.get_ref();
        if let Some(why) = iface_problem(iface) {
            d.at(p.iface.span(), format!("iface {iface:?} {why}"));
        } else if let Some(first) = ifaces.get(iface.as_str()) {
            let line = d.line(first);
            d.at(
                p.iface.span(),
                format!("iface {iface:?} is already the iface of another port (line {line})"),
            );
        } else {
            ifaces.insert(iface, p.iface.span());
        }
        let kind = match p.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
            None | Some((_, "packet")) => PortKind::Packet,
            Some((_, "afxdp")) => PortKind::AfXdp,
            Some((_, "tap")) => PortKind::Tap,
            Some((k, other)) => {
                d.at(
                    k.span(),
                    format!(
                        "unknown port kind {other:?}; expected \"packet\", \"afxdp\" or \"tap\""
                    ),
                );
                PortKind::Packet
            }
        };
        let ip =
            p.ip.as_ref()
                .and_then(|v| ipv4_net(d, v, "ip", "10.99.0.2/24").map(|n| (v, n)));
        if let Some((v, n)) = ip {
            if let Some(why) = not_a_host(n.addr(), n.trunc()) {
                d.at(
                    v.span(),
                    format!("ip {} {why}; a port's ip is a host address", n.addr()),
                );
            }
        }
        let ip = ip.map(|(_, n)| n);
        let gateway = p.gateway.as_ref().and_then(|g| {
            let a = ipv4(d, g, "gateway")?;
            match ip {
                None if p.ip.is_none() => d.at(
                    g.span(),
                    "gateway needs ip: the port's own address and subnet, which the gateway is in",
                ),
                None => {}
                Some(n) if a == n.addr() => {
                    d.at(g.span(), format!("gateway {a} is the port's own ip"))
                }
                Some(n) => {
                    if let Some(why) = not_a_host(a, n.trunc()) {
                        d.at(g.span(), format!("gateway {a} {why} (the port's ip {n})"));
                    }
                }
            }
            Some(a)
        });
        let mac = p.mac.as_ref().and_then(|m| unicast_mac(d, m));
        let mut neighbors = Vec::new();
        for nb in p.neighbors.iter().flatten().map(S::get_ref) {
            let (Some(a), Some(m)) = (ipv4(d, &nb.ip, "ip"), unicast_mac(d, &nb.mac)) else {
                continue;
            };
            match ip {
                Some(n) if !n.trunc().contains(&a) => d.at(
                    nb.ip.span(),
                    format!("neighbor {a} is not on the port's subnet {}", n.trunc()),
                ),
                None => d.at(nb.ip.span(), "neighbors need the port's ip (its subnet)"),
                _ => neighbors.push((a, m)),
            }
        }
        out.push(Port {
            cfg: PortCfg {
                name: p.name.get_ref().clone(),
                iface: iface.clone(),
                kind,
                ip,
                gateway,
                mac,
                neighbors,
            },
        });
    }
    out
}

pub(super) fn find_port<'a>(ports: &'a [Port], name: &str) -> Option<&'a Port> {
    ports.iter().find(|p| p.cfg.name == name)
}
