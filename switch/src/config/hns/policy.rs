//! HNS policies in both shapes: v1 (`hns`, fields beside `Type`) and v2
//! (`hcn`, fields under `Settings`), as the Windows CNI plugins also wrap
//! them (`{"Name": "EndpointPolicy", "Value": {...}}`). Field names are
//! hcsshim's (`internal/hns/hnspolicy.go`, `hcn/hcnpolicy.go`).

use std::ops::Range;

use jsonc_parser::ast::Value;

use super::json::{string, At, Obj};
use crate::config::error::Diag;
use crate::config::raw::{RawAclRule, RawRoute, S};

/// A policy podswitch maps onto its model.
pub(super) enum Policy {
    /// Subnet: the overlay's VNI (v1 `VSID`, v2 `Settings.IsolationId`).
    Vsid(S<u64>),
    /// Remote endpoint: the VTEP of its host (v1 `PA`, v2
    /// `ProviderAddress`); on a network, the local VTEP.
    ProviderAddress(S<String>),
    /// Network (v2): the uplink.
    NetAdapterName(S<String>),
    /// Endpoint: v1 `NAT`, v2 `PortMapping`.
    PortMapping {
        protocol: S<String>,
        internal: S<u16>,
        external: S<u16>,
        span: Range<usize>,
    },
    /// Endpoint: `OutBoundNAT`'s exceptions.
    OutboundNat(Vec<S<String>>),
    /// Endpoint: v1 `ROUTE`, v2 `SDNRoute`.
    Route(S<RawRoute>),
    /// Endpoint: `ACL`.
    Acl(Box<S<RawAclRule>>),
}

/// Reads one policy of `place` ("subnet", "network", "endpoint"); an
/// unknown or unsupported type is an error naming it.
pub(super) fn read(d: &mut Diag, at: At, v: &Value, place: &str) -> Option<Policy> {
    let mut outer = Obj::new(d, at, v, &format!("an HNS {place} policy"))?;
    // The CNI config shape: {"Name": "EndpointPolicy", "Value": {...}}.
    if outer.has("Value") && !outer.has("Type") {
        outer.take("Name");
        let inner = outer.take("Value")?;
        outer.finish(d, &format!("{place} policy"));
        return read(d, at, inner, place);
    }
    let ty = outer.string(d, "Type");
    let Some(ty) = ty else {
        d.at(outer.span(), format!("an HNS {place} policy needs a Type"));
        return None;
    };
    let settings = outer.take("Settings");
    let v2 = settings.is_some();
    let mut o = match settings {
        Some(s) => {
            outer.finish(d, &format!("{place} policy {:?}", ty.get_ref()));
            Obj::new(d, at, s, "Settings")?
        }
        None => outer,
    };
    let t = ty.get_ref().as_str();
    let what = format!("{place} policy {t:?}");
    let policy = match (place, t.to_ascii_uppercase().as_str()) {
        ("subnet", "VSID") => {
            let key = if v2 { "IsolationId" } else { "VSID" };
            o.uint(d, key, 0xff_ffff).map(Policy::Vsid).or_else(|| {
                d.at(o.span(), format!("a VSID policy needs {key}"));
                None
            })
        }
        ("endpoint", "PA") | ("endpoint", "PROVIDERADDRESS") | ("network", "PROVIDERADDRESS") => {
            let key = if v2 { "ProviderAddress" } else { "PA" };
            o.string(d, key).map(Policy::ProviderAddress).or_else(|| {
                d.at(o.span(), format!("a {t} policy needs {key}"));
                None
            })
        }
        ("network", "NETADAPTERNAME") => o
            .string(d, "NetworkAdapterName")
            .map(Policy::NetAdapterName),
        ("endpoint", "NAT") | ("endpoint", "PORTMAPPING") => port_mapping(d, &mut o, v2),
        ("endpoint", "OUTBOUNDNAT") => outbound_nat(d, &mut o, v2),
        ("endpoint", "ROUTE") | ("endpoint", "SDNROUTE") => route(d, &mut o),
        ("endpoint", "ACL") => acl(d, &mut o, v2),
        _ => {
            d.at(
                ty.span(),
                format!("HNS {place} policy type {t:?} is not supported by podswitch"),
            );
            return None;
        }
    };
    o.finish(d, &what);
    policy
}

fn port_mapping(d: &mut Diag, o: &mut Obj, v2: bool) -> Option<Policy> {
    let span = o.span();
    let at = o.at();
    let protocol = match o.take("Protocol") {
        // v1 writes "TCP"/"UDP"; v2 the IP protocol number.
        Some(Value::StringLit(s)) => Some(S::new(at.span(s), s.value.to_ascii_lowercase())),
        Some(v @ Value::NumberLit(n)) => match n.value {
            "6" => Some(S::new(at.span(v), "tcp".to_string())),
            "17" => Some(S::new(at.span(v), "udp".to_string())),
            other => {
                d.at(
                    at.span(v),
                    format!("port mapping protocol {other} is neither 6 (TCP) nor 17 (UDP)"),
                );
                None
            }
        },
        Some(v) => {
            d.at(at.span(v), "Protocol must be \"TCP\", \"UDP\", 6 or 17");
            None
        }
        // HNS's default.
        None => Some(S::new(span.clone(), "tcp".to_string())),
    };
    let port = |d: &mut Diag, o: &mut Obj, key| {
        let p = o.uint(d, key, 65535);
        if p.is_none() && !o.has(key) {
            d.at(o.span(), format!("a port mapping needs {key}"));
        }
        p.map(|p| S::new(p.span(), *p.get_ref() as u16))
    };
    let internal = port(d, o, "InternalPort");
    let external = port(d, o, "ExternalPort");
    for key in ["VIP"] {
        if let Some(v) = o.string(d, key).filter(|v| !v.get_ref().is_empty()) {
            d.at(
                v.span(),
                format!("{key} on a port mapping is not supported: podswitch maps on the uplink's address"),
            );
        }
    }
    if v2 {
        if let Some(f) = o
            .uint(d, "Flags", u32::MAX as u64)
            .filter(|f| *f.get_ref() != 0)
        {
            d.at(f.span(), "port mapping Flags are not supported (only 0)");
        }
    }
    Some(Policy::PortMapping {
        protocol: protocol?,
        internal: internal?,
        external: external?,
        span,
    })
}

fn outbound_nat(d: &mut Diag, o: &mut Obj, v2: bool) -> Option<Policy> {
    let at = o.at();
    let key = if v2 { "Exceptions" } else { "ExceptionList" };
    let exceptions = o
        .array(d, key)
        .iter()
        .filter_map(|v| string(d, at, v, key))
        .collect();
    let vip = if v2 { "VirtualIP" } else { "VIP" };
    for k in [vip, "Destinations"] {
        if let Some(v) = o.take(k) {
            let empty = matches!(v, Value::Array(a) if a.elements.is_empty())
                || matches!(v, Value::StringLit(s) if s.value.is_empty());
            if !empty {
                d.at(
                    at.span(v),
                    format!("OutBoundNAT {k} is not supported: podswitch masquerades to the uplink's address, for every destination"),
                );
            }
        }
    }
    Some(Policy::OutboundNat(exceptions))
}

fn route(d: &mut Diag, o: &mut Obj) -> Option<Policy> {
    let span = o.span();
    let destination = o.string(d, "DestinationPrefix");
    if destination.is_none() && !o.has("DestinationPrefix") {
        d.at(span.clone(), "a route policy needs DestinationPrefix");
    }
    let next_hop = o.string(d, "NextHop").filter(|h| !h.get_ref().is_empty());
    // Every route podswitch installs goes through the switch, which
    // encapsulates on an overlay: NeedEncap says nothing more here.
    o.boolean(d, "NeedEncap");
    Some(Policy::Route(S::new(
        span,
        RawRoute {
            destination: destination?,
            next_hop,
        },
    )))
}

fn acl(d: &mut Diag, o: &mut Obj, v2: bool) -> Option<Policy> {
    let span = o.span();
    let at = o.at();
    let action = o.string(d, "Action");
    let direction = o.string(d, "Direction");
    for (key, v) in [("Action", &action), ("Direction", &direction)] {
        if v.is_none() && !o.has(key) {
            d.at(span.clone(), format!("an ACL policy needs {key}"));
        }
    }
    let mut protocols = o.string(d, "Protocols");
    let mut local_ports = o.string(d, "LocalPorts");
    let mut remote_ports = o.string(d, "RemotePorts");
    if !v2 {
        // v1's single-number forms.
        let mut single = |d: &mut Diag, key, into: &mut Option<S<String>>| {
            if let Some(n) = o.uint(d, key, 65535).filter(|n| *n.get_ref() != 0) {
                if into.is_some() {
                    d.at(n.span(), format!("{key} and its list form are both given"));
                }
                *into = Some(S::new(n.span(), n.get_ref().to_string()));
            }
        };
        single(d, "Protocol", &mut protocols);
        single(d, "LocalPort", &mut local_ports);
        single(d, "RemotePort", &mut remote_ports);
        if let Some(p) = o
            .uint(d, "InternalPort", 65535)
            .filter(|n| *n.get_ref() != 0)
        {
            d.at(
                p.span(),
                "ACL InternalPort is not supported; use LocalPorts",
            );
        }
        if let Some(s) = o
            .string(d, "ServiceName")
            .filter(|s| !s.get_ref().is_empty())
        {
            d.at(s.span(), "ACL ServiceName is not supported");
        }
        o.take("Id");
    }
    // Host (WFP) and Switch (VFP) rules are both enforced by the switch.
    if let Some(r) = o.take("RuleType") {
        match string(d, at, r, "RuleType") {
            Some(s) if matches!(s.get_ref().as_str(), "Host" | "Switch" | "") => {}
            Some(s) => d.at(
                s.span(),
                format!("ACL RuleType {:?} is neither Host nor Switch", s.get_ref()),
            ),
            None => {}
        }
    }
    let local_addresses = o.string(d, "LocalAddresses");
    let remote_addresses = o.string(d, "RemoteAddresses");
    let priority = o
        .uint(d, "Priority", 65535)
        .map(|p| S::new(p.span(), *p.get_ref() as u16));
    Some(Policy::Acl(Box::new(S::new(
        span,
        RawAclRule {
            action: action?,
            direction: direction?,
            protocols,
            local_addresses,
            remote_addresses,
            local_ports,
            remote_ports,
            priority,
        },
    ))))
}
