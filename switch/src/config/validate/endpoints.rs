//! `[[endpoint]]`.

use super::*;

pub(super) struct Endpoint<'r> {
    pub(super) raw: &'r RawEndpoint,
    pub(super) cfg: Option<EndpointCfg>,
}

pub(super) fn check_endpoints<'r>(
    d: &mut Diag,
    raw: &'r [S<RawEndpoint>],
    raw_remotes: &[S<RawRemoteEndpoint>],
    remotes: &[Option<RemoteEndpointCfg>],
    networks: &[Network],
    ports: &[Port],
    addrs: &mut Addresses,
) -> Vec<Endpoint<'r>> {
    unique_names(d, raw.iter().map(|e| &e.get_ref().name), "endpoint");

    // Which network uses which port as its uplink.
    let uplinks: HashMap<&str, &str> = networks
        .iter()
        .filter_map(|n| Some((n.cfg.as_ref()?.uplink.as_deref()?, n.name)))
        .collect();
    let mut port_users: HashMap<&str, (&str, usize)> = HashMap::new();

    // First pass: everything but IPAM, and claim the addresses the file
    // gives, so an endpoint without `ip` never takes one a later endpoint
    // or a remote endpoint names.
    let mut given_ips = Vec::with_capacity(raw.len());
    let mut attaches = Vec::with_capacity(raw.len());
    for re in raw {
        let e = re.get_ref();
        let name = e.name.get_ref();
        let net = find_network(networks, e.network.get_ref());
        if net.is_none() {
            dangling_network(d, &e.network, networks);
        }

        let attach = match (&e.netns, &e.port) {
            (Some(_), Some(p)) => {
                d.at(p.span(), "an endpoint has either netns or port, not both");
                None
            }
            (None, None) => {
                d.at(
                    re.span(),
                    format!(
                        "endpoint {name:?} needs netns (a namespace) or port (a [[port]] it \
                         sits behind)"
                    ),
                );
                None
            }
            (Some(ns), None) => match netns_problem(ns.get_ref()) {
                Some(why) => {
                    d.at(ns.span(), format!("netns {:?} {why}", ns.get_ref()));
                    None
                }
                None => Some(Attach::Netns(ns.get_ref().clone())),
            },
            (None, Some(p)) => {
                let pname = p.get_ref().as_str();
                if find_port(ports, pname).is_none() {
                    d.at(
                        p.span(),
                        format!(
                            "port {pname:?} is not a [[port]]; {}",
                            known_list(ports.iter().map(|p| p.cfg.name.as_str()))
                        ),
                    );
                    None
                } else if let Some(network) = uplinks.get(pname) {
                    d.at(
                        p.span(),
                        format!(
                            "port {pname:?} is the uplink of network {network:?}; an \
                             endpoint cannot sit behind an uplink"
                        ),
                    );
                    None
                } else if let Some((other, line)) = port_users.get(pname) {
                    d.at(
                        p.span(),
                        format!("port {pname:?} already carries endpoint {other:?} (line {line})"),
                    );
                    None
                } else {
                    port_users.insert(pname, (name, d.line(&p.span())));
                    Some(Attach::Port(pname.to_string()))
                }
            }
        };
        attaches.push(attach);

        let ip = e.ip.as_ref().and_then(|v| {
            let ip = check_member_ip(d, v, net)?;
            let net = net?;
            let line = d.line(&v.span());
            match addrs.claim_ip(net.name, ip, format!("endpoint {name:?}"), line) {
                Ok(()) => Some(ip),
                Err((holder, at)) => {
                    d.at(
                        v.span(),
                        format!(
                            "ip {ip} is already {holder}'s in network {:?} (line {at})",
                            net.name
                        ),
                    );
                    None
                }
            }
        });
        given_ips.push(ip);
    }
    for (rr, r) in raw_remotes.iter().zip(remotes) {
        let Some(r) = r else { continue };
        let v = &rr.get_ref().ip;
        let line = d.line(&v.span());
        if let Err((holder, at)) =
            addrs.claim_ip(&r.network, r.ip, "a remote endpoint".into(), line)
        {
            d.at(
                v.span(),
                format!(
                    "ip {} is already {holder}'s in network {:?} (line {at})",
                    r.ip, r.network
                ),
            );
        }
    }

    // Second pass: IPAM in file order, then MACs.
    let mut out = Vec::with_capacity(raw.len());
    for ((re, attach), given) in raw.iter().zip(attaches).zip(given_ips) {
        let e = re.get_ref();
        let name = e.name.get_ref();
        let net = find_network(networks, e.network.get_ref()).and_then(|n| n.cfg.as_ref());
        let ip = match (given, &e.ip, net) {
            (Some(ip), _, _) => Some(ip),
            (None, None, Some(cfg)) => match addrs.ipam.get_mut(&cfg.name).and_then(Ipam::allocate)
            {
                Some(ip) => Some(ip),
                None => {
                    d.at(
                        re.span(),
                        format!(
                            "network {:?} ({}) has no free address left for endpoint \
                             {name:?}; give it an ip or widen the subnet",
                            cfg.name, cfg.subnet
                        ),
                    );
                    None
                }
            },
            _ => None,
        };
        let mac = match (&e.mac, ip) {
            (Some(m), _) => unicast_mac(d, m),
            (None, ip) => ip.map(MacAddr::from_ipv4),
        };
        if let (Some(cfg), Some(m)) = (net, mac) {
            let span = e.mac.as_ref().map_or_else(|| re.span(), |m| m.span());
            let line = d.line(&span);
            if let Err((holder, at)) =
                addrs.claim_mac(&cfg.name, m, format!("endpoint {name:?}"), line)
            {
                d.at(
                    span,
                    format!(
                        "mac {m} is already {holder}'s in network {:?} (line {at})",
                        cfg.name
                    ),
                );
            }
        }
        let policy = check_policy(d, e, net);
        out.push(Endpoint {
            raw: e,
            cfg: match (net, attach, ip, mac, policy) {
                (Some(cfg), Some(attach), Some(ip), Some(mac), Some(policy)) => Some(EndpointCfg {
                    name: name.clone(),
                    network: cfg.name.clone(),
                    attach,
                    ip,
                    mac,
                    ip_given: e.ip.is_some(),
                    policy,
                }),
                _ => None,
            },
        });
    }
    // Remote endpoints' MACs last: a clash is reported at the remote
    // endpoint, whose MAC was copied from another host's config.
    for (rr, r) in raw_remotes.iter().zip(remotes) {
        let Some(r) = r else { continue };
        let span = rr
            .get_ref()
            .mac
            .as_ref()
            .map_or_else(|| rr.span(), |m| m.span());
        let line = d.line(&span);
        if let Err((holder, at)) =
            addrs.claim_mac(&r.network, r.mac, "a remote endpoint".into(), line)
        {
            d.at(
                span,
                format!(
                    "mac {} is already {holder}'s in network {:?} (line {at})",
                    r.mac, r.network
                ),
            );
        }
    }
    out
}
