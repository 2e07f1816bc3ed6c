//! `podswitch hns import`: HNS objects as the TOML tables they map onto,
//! for a config file that no longer needs the JSON.

use std::fmt::Write;

use super::HnsObjects;
use crate::config::raw::{RawAclRule, S};

/// A TOML string, quoted and escaped as TOML wants it.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn key(out: &mut String, k: &str, v: Option<&S<String>>) {
    if let Some(v) = v {
        let _ = writeln!(out, "{k} = {}", q(v.get_ref()));
    }
}

/// The TOML of `objs`: `[[network]]`, `[[endpoint]]`, `[[port_mapping]]`
/// and `[[remote_endpoint]]` tables, in file order. The uplinks they name
/// are `[[port]]`s the importing file must have.
pub fn to_toml(objs: &HnsObjects) -> String {
    let mut out = String::new();
    for n in &objs.networks {
        let n = n.get_ref();
        out.push_str("[[network]]\n");
        key(&mut out, "name", Some(&n.name));
        key(&mut out, "mode", n.mode.as_ref());
        key(&mut out, "subnet", Some(&n.subnet));
        key(&mut out, "gateway", n.gateway.as_ref());
        key(&mut out, "uplink", n.uplink.as_ref());
        if let Some(v) = &n.vni {
            let _ = writeln!(out, "vni = {}", v.get_ref());
        }
        key(&mut out, "mac_pool", n.mac_pool.as_ref());
        if let Some(dns) = &n.dns {
            let list: Vec<_> = dns.iter().map(|s| q(s.get_ref())).collect();
            let _ = writeln!(out, "dns = [{}]", list.join(", "));
        }
        out.push('\n');
    }
    for e in &objs.endpoints {
        let e = e.get_ref();
        out.push_str("[[endpoint]]\n");
        key(&mut out, "name", Some(&e.name));
        key(&mut out, "network", Some(&e.network));
        key(&mut out, "netns", e.netns.as_ref());
        key(&mut out, "ip", e.ip.as_ref());
        key(&mut out, "mac", e.mac.as_ref());
        if let Some(list) = &e.nat_exceptions {
            let list: Vec<_> = list.iter().map(|s| q(s.get_ref())).collect();
            let _ = writeln!(out, "nat_exceptions = [{}]", list.join(", "));
        }
        if let Some(routes) = &e.routes {
            let items: Vec<_> = routes
                .iter()
                .map(|r| {
                    let r = r.get_ref();
                    match &r.next_hop {
                        Some(h) => format!(
                            "{{ destination = {}, next_hop = {} }}",
                            q(r.destination.get_ref()),
                            q(h.get_ref())
                        ),
                        None => format!("{{ destination = {} }}", q(r.destination.get_ref())),
                    }
                })
                .collect();
            let _ = writeln!(out, "routes = [{}]", items.join(", "));
        }
        if let Some(acl) = &e.acl {
            out.push_str("acl = [\n");
            for r in acl {
                let _ = writeln!(out, "  {},", acl_rule(r.get_ref()));
            }
            out.push_str("]\n");
        }
        out.push('\n');
    }
    for m in &objs.port_mappings {
        let m = m.get_ref();
        out.push_str("[[port_mapping]]\n");
        key(&mut out, "endpoint", Some(&m.endpoint));
        key(&mut out, "protocol", Some(&m.protocol));
        let _ = writeln!(out, "host_port = {}", m.host_port.get_ref());
        let _ = writeln!(out, "port = {}\n", m.port.get_ref());
    }
    for r in &objs.remote_endpoints {
        let r = r.get_ref();
        out.push_str("[[remote_endpoint]]\n");
        key(&mut out, "network", Some(&r.network));
        key(&mut out, "ip", Some(&r.ip));
        key(&mut out, "mac", r.mac.as_ref());
        key(&mut out, "vtep", Some(&r.vtep));
        out.push('\n');
    }
    out
}

fn acl_rule(r: &RawAclRule) -> String {
    let mut parts = vec![
        format!("action = {}", q(&r.action.get_ref().to_ascii_lowercase())),
        format!(
            "direction = {}",
            q(&r.direction.get_ref().to_ascii_lowercase())
        ),
    ];
    for (k, v) in [
        ("protocols", &r.protocols),
        ("local_addresses", &r.local_addresses),
        ("remote_addresses", &r.remote_addresses),
        ("local_ports", &r.local_ports),
        ("remote_ports", &r.remote_ports),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k} = {}", q(v.get_ref())));
        }
    }
    if let Some(p) = &r.priority {
        parts.push(format!("priority = {}", p.get_ref()));
    }
    format!("{{ {} }}", parts.join(", "))
}
