//! HNS JSON: the Windows Host Networking Service's network and endpoint
//! objects (v1 `HNSNetwork`/`HNSEndpoint` and v2 `HostComputeNetwork`/
//! `HostComputeEndpoint`, as hcsshim, flannel and the Windows CNI plugins
//! write them), mapped onto the raw config, so that the checker treats
//! them as it treats TOML and every error points into the JSON file.
//!
//! - `json`: the spanned JSON tree, fields matched as Go matches them.
//! - `policy`: the v1 and v2 policy shapes.
//! - `import`: the equivalent TOML, for `podswitch hns import`.

mod import;
mod json;
mod policy;

pub use import::to_toml;

use std::net::Ipv4Addr;

use jsonc_parser::ast::Value;
use jsonc_parser::{CollectOptions, ParseOptions};

use self::json::{At, Obj};
use self::policy::Policy;
use super::error::{Diag, Source};
use super::raw::{RawEndpoint, RawNetwork, RawPort, RawPortMapping, RawRemoteEndpoint, S};

/// What HNS JSON files say, as the config file's tables would say it.
#[derive(Debug, Default)]
pub struct HnsObjects {
    pub(crate) networks: Vec<S<RawNetwork>>,
    pub(crate) endpoints: Vec<S<RawEndpoint>>,
    pub(crate) port_mappings: Vec<S<RawPortMapping>>,
    pub(crate) remote_endpoints: Vec<S<RawRemoteEndpoint>>,
}

/// Fields HNS reports about an object that podswitch has nothing to do
/// with: identity other than the name, state, versions, counters.
const INFORMATIONAL: &[&str] = &[
    "ID",
    "Id",
    "Version",
    "Resources",
    "State",
    "SchemaVersion",
    "Health",
    "SharedContainers",
    "CurrentEndpointCount",
    "TotalEndpoints",
    "MaxConcurrentEndpoints",
    "ManagementIP",
    "ManagementIPv6",
    "Extensions",
    "LayeredOn",
    "Flags",
    "PrefixLength",
    "HostComputeNamespace",
    "Namespace",
];

/// Reads one HNS JSON file (an object or an array of them, networks and
/// endpoints mixed) into `out`. `ports` are the config's `[[port]]`s: an
/// adapter name matches one by name or by iface. Errors go to `d`, at
/// places in `src`.
pub(crate) fn read(d: &mut Diag, src: &Source, ports: &[S<RawPort>], out: &mut HnsObjects) {
    let at = At { base: src.base };
    let options = ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    let parsed = match jsonc_parser::parse_to_ast(&src.text, &CollectOptions::default(), &options) {
        Ok(p) => p,
        Err(e) => {
            let r = e.range();
            d.at(
                at.base + r.start..at.base + r.end,
                format!("bad JSON: {}", e.kind()),
            );
            return;
        }
    };
    let Some(root) = parsed.value else {
        d.at(
            at.base..at.base,
            "the file holds no JSON value; expected an HNS object or an array of them",
        );
        return;
    };
    let objects: Vec<&Value> = match &root {
        Value::Array(a) => a.elements.iter().collect(),
        v => vec![v],
    };
    // Networks first: endpoints name theirs by ID as often as by name.
    let mut ids: Vec<(String, String)> = Vec::new();
    for v in &objects {
        if is_endpoint(v) {
            continue;
        }
        if let Some(n) = network(d, at, v, ports, &mut ids) {
            out.networks.push(n);
        }
    }
    for v in objects.iter().filter(|v| is_endpoint(v)) {
        endpoint(d, at, v, &ids, out);
    }
}

/// Endpoints name a network; networks have a Type.
fn is_endpoint(v: &Value) -> bool {
    let Value::Object(o) = v else { return false };
    o.properties.iter().any(|p| {
        [
            "VirtualNetwork",
            "VirtualNetworkName",
            "HostComputeNetwork",
            "IPAddress",
            "IpConfigurations",
            "IsRemoteEndpoint",
        ]
        .iter()
        .any(|k| p.name.as_str().eq_ignore_ascii_case(k))
    })
}

fn network(
    d: &mut Diag,
    at: At,
    v: &Value,
    ports: &[S<RawPort>],
    ids: &mut Vec<(String, String)>,
) -> Option<S<RawNetwork>> {
    let mut o = Obj::new(d, at, v, "an HNS network")?;
    let span = o.span();
    let name = o.string(d, "Name");
    if let (Some(n), Some(id)) = (&name, o.string(d, "ID")) {
        ids.push((id.get_ref().clone(), n.get_ref().clone()));
    }
    o.informational(INFORMATIONAL);
    let mode = o.string(d, "Type").and_then(|t| {
        let mode = match t.get_ref().to_ascii_lowercase().as_str() {
            "nat" => "nat",
            "overlay" => "overlay",
            "transparent" => "transparent",
            "l2bridge" => "l2bridge",
            "l2tunnel" => "l2tunnel",
            "ics" | "private" | "internal" => {
                d.at(
                    t.span(),
                    format!(
                        "HNS network type {:?} is not supported by podswitch (it emulates \
                         NAT, Overlay, Transparent, L2Bridge and L2Tunnel)",
                        t.get_ref()
                    ),
                );
                return None;
            }
            _ => {
                d.at(
                    t.span(),
                    format!(
                        "unknown HNS network type {:?}; expected NAT, Overlay, Transparent, \
                         L2Bridge or L2Tunnel",
                        t.get_ref()
                    ),
                );
                return None;
            }
        };
        Some(S::new(t.span(), mode.to_string()))
    });
    let mut uplink = o.string(d, "NetworkAdapterName");
    let mut local_pa: Option<S<String>> = None;
    for p in o.array(d, "Policies") {
        match policy::read(d, at, p, "network") {
            Some(Policy::NetAdapterName(a)) => uplink = Some(a),
            Some(Policy::ProviderAddress(a)) => local_pa = Some(a),
            _ => {}
        }
    }
    let uplink = match (uplink, local_pa) {
        (Some(a), _) => Some(port_named(ports, a)),
        // A v2 overlay names its local VTEP address, not the adapter.
        (None, Some(pa)) => Some(port_with_ip(ports, pa)),
        (None, None) => None,
    };

    let (mut subnet, mut gateway, mut vni) = (None, None, None);
    let subnets = o.array(d, "Subnets");
    for (i, s) in subnets.iter().enumerate() {
        let Some(mut so) = Obj::new(d, at, s, "an HNS subnet") else {
            continue;
        };
        if i > 0 {
            d.at(
                so.span(),
                "podswitch networks have one subnet; this is a second",
            );
        }
        subnet = so.string(d, "AddressPrefix").or(subnet);
        gateway = so.string(d, "GatewayAddress").or(gateway);
        for p in so.array(d, "Policies") {
            if let Some(Policy::Vsid(id)) = policy::read(d, at, p, "subnet") {
                vni = Some(S::new(id.span(), *id.get_ref() as u32));
            }
        }
        so.finish(d, "HNS subnet");
    }
    // v2: Ipams[{Subnets[{IpAddressPrefix, Policies, Routes}]}].
    for ipam in o.array(d, "Ipams") {
        let Some(mut io) = Obj::new(d, at, ipam, "an HNS IPAM") else {
            continue;
        };
        io.take("Type");
        for s in io.array(d, "Subnets") {
            let Some(mut so) = Obj::new(d, at, s, "an HNS subnet") else {
                continue;
            };
            if subnet.is_some() {
                d.at(
                    so.span(),
                    "podswitch networks have one subnet; this is a second",
                );
            }
            subnet = so.string(d, "IpAddressPrefix").or(subnet);
            for p in so.array(d, "Policies") {
                if let Some(Policy::Vsid(id)) = policy::read(d, at, p, "subnet") {
                    vni = Some(S::new(id.span(), *id.get_ref() as u32));
                }
            }
            for r in so.array(d, "Routes") {
                let Some(mut ro) = Obj::new(d, at, r, "an HNS subnet route") else {
                    continue;
                };
                let dest = ro.string(d, "DestinationPrefix");
                let hop = ro.string(d, "NextHop");
                ro.informational(&["Metric"]);
                match (dest, hop) {
                    (Some(dst), Some(hop)) if dst.get_ref() == "0.0.0.0/0" => gateway = Some(hop),
                    (Some(dst), _) => d.at(
                        dst.span(),
                        "podswitch networks route only the default route (0.0.0.0/0) via their gateway",
                    ),
                    _ => {}
                }
                ro.finish(d, "HNS subnet route");
            }
            so.finish(d, "HNS subnet");
        }
        io.finish(d, "HNS IPAM");
    }

    let mut mac_pool = None;
    let pools = o.array(d, "MacPools");
    let ranges: Vec<&Value> = if let Some(mp) = o.take("MacPool") {
        // v2: MacPool{Ranges[...]}.
        Obj::new(d, at, mp, "MacPool").map_or_else(Vec::new, |mut m| {
            let r = m.array(d, "Ranges").iter().collect();
            m.finish(d, "HNS MacPool");
            r
        })
    } else {
        pools.iter().collect()
    };
    for (i, p) in ranges.into_iter().enumerate() {
        let Some(mut po) = Obj::new(d, at, p, "an HNS MAC pool") else {
            continue;
        };
        if i > 0 {
            d.at(
                po.span(),
                "podswitch networks have one MAC pool; this is a second",
            );
        }
        let lo = po.string(d, "StartMacAddress");
        let hi = po.string(d, "EndMacAddress");
        if let (Some(lo), Some(hi)) = (lo, hi) {
            let text = format!("{}-{}", colons(lo.get_ref()), colons(hi.get_ref()));
            mac_pool = Some(S::new(lo.span().start..hi.span().end, text));
        } else {
            d.at(
                po.span(),
                "a MAC pool needs StartMacAddress and EndMacAddress",
            );
        }
        po.finish(d, "HNS MAC pool");
    }
    let dns = o.string(d, "DNSServerList").map(|l| {
        l.get_ref()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| S::new(l.span(), s.to_string()))
            .collect()
    });
    o.finish(d, "HNS network");

    let (Some(name), Some(mode)) = (name, mode) else {
        d.at(span, "an HNS network needs Name and Type");
        return None;
    };
    let Some(subnet) = subnet else {
        d.at(
            span,
            "an HNS network needs a subnet (Subnets[].AddressPrefix)",
        );
        return None;
    };
    Some(S::new(
        span,
        RawNetwork {
            name,
            mode: Some(mode),
            subnet,
            gateway,
            uplink,
            vni,
            mtu: None,
            vxlan_port: None,
            gateway_mac: None,
            reserved: None,
            mac_pool,
            dns,
            endpoint_link: None,
        },
    ))
}

fn endpoint(d: &mut Diag, at: At, v: &Value, ids: &[(String, String)], out: &mut HnsObjects) {
    let Some(mut o) = Obj::new(d, at, v, "an HNS endpoint") else {
        return;
    };
    let span = o.span();
    let name = o.string(d, "Name");
    o.informational(INFORMATIONAL);
    let network = ["VirtualNetworkName", "VirtualNetwork", "HostComputeNetwork"]
        .iter()
        .filter_map(|k| o.string(d, k))
        .next()
        .map(|n| {
            match ids
                .iter()
                .find(|(id, _)| id.eq_ignore_ascii_case(n.get_ref()))
            {
                Some((_, name)) => S::new(n.span(), name.clone()),
                None => n,
            }
        });
    let gateway = o.string(d, "GatewayAddress");
    let mut ip = o.string(d, "IPAddress");
    for c in o.array(d, "IpConfigurations") {
        let Some(mut co) = Obj::new(d, at, c, "an HNS IP configuration") else {
            continue;
        };
        let a = co.string(d, "IpAddress");
        co.informational(&["PrefixLength"]);
        co.finish(d, "HNS IP configuration");
        if ip.is_some() {
            if let Some(a) = a {
                d.at(
                    a.span(),
                    "podswitch endpoints have one address; this is a second",
                );
            }
        } else {
            ip = a;
        }
    }
    let mac = o
        .string(d, "MacAddress")
        .map(|m| S::new(m.span(), colons(m.get_ref())));
    let remote = o
        .boolean(d, "IsRemoteEndpoint")
        .is_some_and(|b| *b.get_ref())
        || remote_flag(v);
    if let Some(l) = o
        .string(d, "DNSServerList")
        .filter(|l| !l.get_ref().is_empty())
    {
        d.at(
            l.span(),
            "DNSServerList on an endpoint is not supported; give it to the network (its endpoints share it)",
        );
    }

    let mut raw = RawEndpoint {
        name: name
            .clone()
            .unwrap_or_else(|| S::new(span.clone(), String::new())),
        network: network
            .clone()
            .unwrap_or_else(|| S::new(span.clone(), String::new())),
        // An HNS endpoint does not say where its container is: podswitch
        // puts it in the `ip netns` of the endpoint's name.
        netns: name.clone(),
        port: None,
        ip: ip.clone(),
        mac: mac.clone(),
        allow_spoofing: None,
        acl: None,
        nat_exceptions: None,
        routes: None,
    };
    let mut vtep = None;
    for p in o.array(d, "Policies") {
        let Some(policy) = policy::read(d, at, p, "endpoint") else {
            continue;
        };
        let local_only = |d: &mut Diag, s: std::ops::Range<usize>| {
            if remote {
                d.at(
                    s,
                    "a remote endpoint takes only a PA (ProviderAddress) policy",
                );
            }
        };
        match policy {
            Policy::ProviderAddress(a) if remote => vtep = Some(a),
            Policy::ProviderAddress(a) => d.at(
                a.span(),
                "a PA policy is for remote endpoints (IsRemoteEndpoint: true)",
            ),
            Policy::PortMapping {
                protocol,
                internal,
                external,
                span: ps,
            } => {
                local_only(d, ps.clone());
                if let Some(n) = &name {
                    out.port_mappings.push(S::new(
                        ps,
                        RawPortMapping {
                            network: None,
                            protocol,
                            host_port: external,
                            endpoint: n.clone(),
                            port: internal,
                        },
                    ));
                }
            }
            Policy::OutboundNat(list) => {
                if let Some(first) = list.first() {
                    local_only(d, first.span());
                }
                raw.nat_exceptions.get_or_insert_with(Vec::new).extend(list);
            }
            Policy::Route(r) => {
                local_only(d, r.span());
                raw.routes.get_or_insert_with(Vec::new).push(r);
            }
            Policy::Acl(r) => {
                local_only(d, r.span());
                raw.acl.get_or_insert_with(Vec::new).push(*r);
            }
            Policy::Vsid(_) | Policy::NetAdapterName(_) => {}
        }
    }
    o.finish(d, "HNS endpoint");

    let Some(network) = network else {
        d.at(
            span,
            "an HNS endpoint needs VirtualNetwork or VirtualNetworkName",
        );
        return;
    };
    if let Some(gw) = gateway.filter(|g| !g.get_ref().is_empty()) {
        gateway_agrees(d, &gw, &network, out);
    }
    if remote {
        let (Some(ip), Some(vtep)) = (ip, vtep) else {
            d.at(
                span,
                "a remote endpoint needs IPAddress and a PA policy (the VTEP of its host)",
            );
            return;
        };
        out.remote_endpoints.push(S::new(
            span,
            RawRemoteEndpoint {
                network,
                ip,
                mac,
                vtep,
            },
        ));
        return;
    }
    if name.is_none() {
        d.at(
            span,
            "an HNS endpoint needs a Name (podswitch attaches it to the netns of that name)",
        );
        return;
    }
    out.endpoints.push(S::new(span, raw));
}

/// An endpoint's `GatewayAddress` repeats its network's; podswitch has
/// one gateway per network, so a different one is refused (checked against
/// a network of the JSON; a TOML network's gateway is the file's).
fn gateway_agrees(d: &mut Diag, gw: &S<String>, network: &S<String>, out: &HnsObjects) {
    let net = out
        .networks
        .iter()
        .find(|n| n.get_ref().name.get_ref() == network.get_ref());
    let Some(theirs) = net.and_then(|n| n.get_ref().gateway.as_ref()) else {
        return;
    };
    let same = match (
        gw.get_ref().parse::<Ipv4Addr>(),
        theirs.get_ref().parse::<Ipv4Addr>(),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => true, // a bad address is reported where it is checked
    };
    if !same {
        d.at(
            gw.span(),
            format!(
                "GatewayAddress {} is not the gateway of network {:?} ({}); podswitch networks have one gateway",
                gw.get_ref(),
                network.get_ref(),
                theirs.get_ref()
            ),
        );
    }
}

/// v2 marks a remote endpoint with bit 0 of Flags
/// (`EndpointFlagsRemoteEndpoint`).
fn remote_flag(v: &Value) -> bool {
    let Value::Object(o) = v else { return false };
    o.properties.iter().any(|p| {
        p.name.as_str().eq_ignore_ascii_case("Flags")
            && matches!(&p.value, Value::NumberLit(n) if n.value.parse::<u64>().is_ok_and(|f| f & 1 == 1))
    })
}

/// HNS writes MACs with dashes (`0E-2A-0a-f4-02-05`).
fn colons(mac: &str) -> String {
    mac.replace('-', ":")
}

/// The `[[port]]` an adapter name means: by name, else by iface; else the
/// name as given, for the checker to report.
fn port_named(ports: &[S<RawPort>], a: S<String>) -> S<String> {
    let by = |f: fn(&RawPort) -> &str| {
        ports
            .iter()
            .find(|p| f(p.get_ref()) == a.get_ref())
            .map(|p| S::new(a.span(), p.get_ref().name.get_ref().clone()))
    };
    by(|p| p.name.get_ref())
        .or_else(|| by(|p| p.iface.get_ref()))
        .unwrap_or(a)
}

/// The `[[port]]` whose ip is the provider address `pa`.
fn port_with_ip(ports: &[S<RawPort>], pa: S<String>) -> S<String> {
    ports
        .iter()
        .find(|p| {
            p.get_ref()
                .ip
                .as_ref()
                .and_then(|ip| ip.get_ref().split('/').next().map(|a| a == pa.get_ref()))
                .unwrap_or(false)
        })
        .map(|p| S::new(pa.span(), p.get_ref().name.get_ref().clone()))
        .unwrap_or(pa)
}
