//! An `[[endpoint]]`'s policies (`acl`, `nat_exceptions`, `routes`) and a
//! `[[network]]`'s `mac_pool` and `dns`: the keys HNS JSON maps onto.

use super::*;
use crate::config::raw::{RawAclRule, RawRoute};
use crate::config::{AclAction, AclDirection, AclRule, EndpointPolicy, RouteCfg};

pub(super) fn check_policy(
    d: &mut Diag,
    e: &RawEndpoint,
    net: Option<&NetworkCfg>,
) -> Option<EndpointPolicy> {
    let before = d.count();
    let acl = e
        .acl
        .iter()
        .flatten()
        .filter_map(|r| acl_rule(d, r))
        .collect();
    let nat_exceptions = e
        .nat_exceptions
        .iter()
        .flatten()
        .filter_map(|v| ipv4_net(d, v, "nat_exceptions entry", "10.0.0.0/8").map(|n| n.trunc()))
        .collect::<Vec<_>>();
    if let (Some(first), Some(n)) = (e.nat_exceptions.as_ref().and_then(|v| v.first()), net) {
        if n.mode != NetworkMode::Nat && !nat_exceptions.is_empty() {
            d.at(
                first.span(),
                format!(
                    "nat_exceptions are for endpoints of nat networks; {:?} is {}",
                    n.name, n.mode
                ),
            );
        }
    }
    let routes = e
        .routes
        .iter()
        .flatten()
        .filter_map(|r| route(d, r, net))
        .collect();
    (d.count() == before).then_some(EndpointPolicy {
        acl,
        nat_exceptions,
        routes,
    })
}

const PROTOCOL: &str = "a protocol (tcp, udp, icmp or a number)";

fn acl_rule(d: &mut Diag, r: &S<RawAclRule>) -> Option<AclRule> {
    let raw = r.get_ref();
    let action = match raw.action.get_ref().to_ascii_lowercase().as_str() {
        "allow" => Some(AclAction::Allow),
        "block" => Some(AclAction::Block),
        _ => {
            d.at(
                raw.action.span(),
                format!(
                    "acl action {:?} is neither \"allow\" nor \"block\"",
                    raw.action.get_ref()
                ),
            );
            None
        }
    };
    let direction = match raw.direction.get_ref().to_ascii_lowercase().as_str() {
        "in" => Some(AclDirection::In),
        "out" => Some(AclDirection::Out),
        _ => {
            d.at(
                raw.direction.span(),
                format!(
                    "acl direction {:?} is neither \"in\" (to the endpoint) nor \"out\"",
                    raw.direction.get_ref()
                ),
            );
            None
        }
    };
    let protocols = list(
        d,
        raw.protocols.as_ref(),
        "protocols",
        PROTOCOL,
        |s| match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(6),
            "udp" => Some(17),
            "icmp" => Some(1),
            n => n.parse::<u8>().ok(),
        },
    );
    let nets = |d: &mut Diag, v: Option<&S<String>>, key| {
        list(d, v, key, "an IPv4 address or CIDR", |s| {
            if s.contains('/') {
                s.parse::<Ipv4Net>().ok().map(|n| n.trunc())
            } else {
                s.parse::<Ipv4Addr>().ok().map(Ipv4Net::from)
            }
        })
    };
    let local_addresses = nets(d, raw.local_addresses.as_ref(), "local_addresses");
    let remote_addresses = nets(d, raw.remote_addresses.as_ref(), "remote_addresses");
    let ports = |d: &mut Diag, v: Option<&S<String>>, key| {
        list(d, v, key, "a port or a LOW-HIGH range", |s| {
            let (lo, hi) = s.split_once('-').unwrap_or((s, s));
            let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
            (lo <= hi).then_some((lo, hi))
        })
    };
    let local_ports = ports(d, raw.local_ports.as_ref(), "local_ports");
    let remote_ports = ports(d, raw.remote_ports.as_ref(), "remote_ports");
    Some(AclRule {
        action: action?,
        direction: direction?,
        protocols: protocols?,
        local_addresses: local_addresses?,
        remote_addresses: remote_addresses?,
        local_ports: local_ports?,
        remote_ports: remote_ports?,
        priority: raw.priority.as_ref().map_or(0, |p| *p.get_ref()),
    })
}

/// A comma-separated HNS list ("6,17", "80,8000-8100", "10.0.0.0/8");
/// missing or empty means any. `None` after reporting a bad item.
fn list<T>(
    d: &mut Diag,
    v: Option<&S<String>>,
    key: &str,
    what: &str,
    item: impl Fn(&str) -> Option<T>,
) -> Option<Vec<T>> {
    let Some(v) = v else { return Some(Vec::new()) };
    let mut out = Vec::new();
    for s in v
        .get_ref()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match item(s) {
            Some(x) => out.push(x),
            None => {
                d.at(
                    v.span(),
                    format!("acl {key} {:?}: {s:?} is not {what}", v.get_ref()),
                );
                return None;
            }
        }
    }
    Some(out)
}

fn route(d: &mut Diag, r: &S<RawRoute>, net: Option<&NetworkCfg>) -> Option<RouteCfg> {
    let raw = r.get_ref();
    let destination = ipv4_net(d, &raw.destination, "route destination", "10.96.0.0/12")?;
    let next_hop = match &raw.next_hop {
        Some(v) => {
            let hop = ipv4(d, v, "next_hop")?;
            if let Some(n) = net.filter(|n| !n.subnet.contains(&hop)) {
                d.at(
                    v.span(),
                    format!(
                        "next_hop {hop} is not on the endpoint's subnet {} (network {:?})",
                        n.subnet, n.name
                    ),
                );
                return None;
            }
            Some(hop)
        }
        None => {
            if let Some(n) = net.filter(|n| n.gateway.is_none()) {
                d.at(
                    r.span(),
                    format!(
                        "a route without next_hop goes via the gateway, and network {:?} has none",
                        n.name
                    ),
                );
                return None;
            }
            None
        }
    };
    Some(RouteCfg {
        destination: destination.trunc(),
        next_hop,
    })
}

/// `mac_pool = "FIRST-LAST"`, inclusive, both unicast.
pub(super) fn mac_pool(d: &mut Diag, v: &S<String>) -> Option<(MacAddr, MacAddr)> {
    let Some((lo, hi)) = v.get_ref().split_once('-') else {
        d.at(
            v.span(),
            format!(
                "mac_pool {:?} is not FIRST-LAST (like \"00:15:5d:00:00:00-00:15:5d:00:ff:ff\")",
                v.get_ref()
            ),
        );
        return None;
    };
    let lo = unicast_mac(d, &S::new(v.span(), lo.trim().to_string()))?;
    let hi = unicast_mac(d, &S::new(v.span(), hi.trim().to_string()))?;
    if lo.0 > hi.0 {
        d.at(
            v.span(),
            format!("mac_pool {lo}-{hi} is empty: FIRST must not exceed LAST"),
        );
        return None;
    }
    Some((lo, hi))
}

/// `dns = ["10.0.0.10", ...]`.
pub(super) fn dns(d: &mut Diag, v: Option<&Vec<S<String>>>) -> Vec<Ipv4Addr> {
    v.into_iter()
        .flatten()
        .filter_map(|s| ipv4(d, s, "dns server"))
        .collect()
}
