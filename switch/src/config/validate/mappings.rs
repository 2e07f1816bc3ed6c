//! `[[port_mapping]]`.

use super::*;

pub(super) fn check_port_mappings(
    d: &mut Diag,
    raw: &[S<RawPortMapping>],
    endpoints: &[Endpoint],
    networks: &[Network],
) -> Vec<PortMappingCfg> {
    let mut out = Vec::with_capacity(raw.len());
    // The networks of an uplink share its mapping table: (uplink,
    // protocol, host port) -> (the endpoint mapped there, its line).
    let mut host_ports: HashMap<(Option<&str>, Protocol, u16), (&str, usize)> = HashMap::new();
    let mut uplink_reported: Vec<&str> = Vec::new();
    for rm in raw {
        let m = rm.get_ref();
        let protocol = match m.protocol.get_ref().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            other => {
                d.at(
                    m.protocol.span(),
                    format!("unknown protocol {other:?}; expected \"tcp\" or \"udp\""),
                );
                None
            }
        };
        for (key, v) in [("host_port", &m.host_port), ("port", &m.port)] {
            if *v.get_ref() == 0 {
                d.at(v.span(), format!("{key} must be 1..=65535"));
            }
        }
        let ep = endpoints
            .iter()
            .find(|e| e.raw.name.get_ref() == m.endpoint.get_ref());
        let ep_network = ep.map(|e| e.raw.network.get_ref().as_str());
        if ep.is_none() {
            d.at(
                m.endpoint.span(),
                format!(
                    "endpoint {:?} is not an [[endpoint]]; {}",
                    m.endpoint.get_ref(),
                    known_list(endpoints.iter().map(|e| e.raw.name.get_ref().as_str()))
                ),
            );
        }
        if let Some(n) = &m.network {
            match ep_network {
                _ if find_network(networks, n.get_ref()).is_none() => {
                    dangling_network(d, n, networks)
                }
                Some(en) if en != n.get_ref() => d.at(
                    n.span(),
                    format!(
                        "endpoint {:?} is on network {en:?}, not {:?}; leave network out or \
                         make it the endpoint's",
                        m.endpoint.get_ref(),
                        n.get_ref()
                    ),
                ),
                _ => {}
            }
        }
        let net = ep_network.and_then(|en| find_network(networks, en));
        if let Some(net) = net {
            if net.mode != NetworkMode::Nat {
                d.at(
                    rm.span(),
                    format!(
                        "port mappings are for nat networks; {:?} is {}",
                        net.name,
                        net.mode.as_str()
                    ),
                );
            } else if net.raw.get_ref().uplink.is_none() && !uplink_reported.contains(&net.name) {
                uplink_reported.push(net.name);
                d.at(
                    rm.span(),
                    format!(
                        "a port mapping needs network {:?} to have an uplink with an ip \
                         (the address host_port is mapped on)",
                        net.name
                    ),
                );
            }
        }
        if let Some(p) = protocol {
            let uplink = net.and_then(|n| n.raw.get_ref().uplink.as_ref());
            let uplink = uplink.map(|u| u.get_ref().as_str());
            let hp = *m.host_port.get_ref();
            if let Some((first, line)) = host_ports.get(&(uplink, p, hp)) {
                let on = uplink.map_or(String::new(), |u| format!(" on uplink {u:?}"));
                d.at(
                    m.host_port.span(),
                    format!(
                        "{} host_port {hp} is already mapped{on} to endpoint {first:?} (line {line})",
                        p.as_str()
                    ),
                );
            } else {
                let line = d.line(&m.host_port.span());
                host_ports.insert((uplink, p, hp), (m.endpoint.get_ref(), line));
            }
        }
        if let (Some(protocol), Some(en)) = (protocol, ep_network) {
            out.push(PortMappingCfg {
                network: en.to_string(),
                protocol,
                host_port: *m.host_port.get_ref(),
                endpoint: m.endpoint.get_ref().clone(),
                port: *m.port.get_ref(),
            });
        }
    }
    out
}
