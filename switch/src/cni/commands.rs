//! ADD, DEL, CHECK, STATUS and GC against the daemon.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::control::protocol::{EndpointAdd, MappingSpec};
use crate::inspect::{EndpointRow, Show};

use super::config::NetConf;
use super::daemon::Daemon;
use super::env::CniEnv;
use super::error::{CniError, Code};
use super::name::{endpoint_name, PREFIX};
use super::result::add_result;

fn require_network(show: &Show, conf: &NetConf, code: Code) -> Result<(), CniError> {
    if show.networks.iter().any(|n| n.name == conf.network) {
        return Ok(());
    }
    let known: Vec<&str> = show.networks.iter().map(|n| n.name.as_str()).collect();
    Err(
        CniError::new(code, format!("podswitch has no network {:?}", conf.network)).details(
            format!(
                "networks of the running daemon: {} (set \"network\" in the CNI config)",
                known.join(", ")
            ),
        ),
    )
}

/// Attaches the container and publishes its runtimeConfig ports; a
/// failed mapping takes the endpoint away again, so a failed ADD leaves
/// nothing behind.
pub fn add(env: &CniEnv, conf: &NetConf) -> Result<Value, CniError> {
    let mut d = Daemon::connect(&conf.socket)?;
    require_network(&d.show()?, conf, Code::InvalidConfig)?;
    let name = endpoint_name(env.container_id(), env.ifname());
    let netns = env.netns.clone().unwrap_or_default();
    let ep = d.endpoint_add(EndpointAdd {
        name: name.clone(),
        network: conf.network.clone(),
        netns: netns.clone(),
        ip: None,
        mac: None,
        ifname: Some(env.ifname().to_string()),
        allow_spoofing: false,
    })?;
    for m in &conf.port_mappings {
        let spec = MappingSpec {
            endpoint: name.clone(),
            protocol: m.protocol.clone(),
            host_port: m.host_port,
            port: m.container_port,
        };
        if let Err(e) = d.mapping_add(spec) {
            let _ = d.endpoint_del(&name);
            return Err(e);
        }
    }
    Ok(add_result(&conf.version, &ep, &netns, conf.dns.as_ref()))
}

/// Detaches the container (its mappings go with the endpoint). Succeeds
/// when there is nothing to remove, and when the daemon is not running:
/// run-time endpoints do not outlive it.
pub fn del(env: &CniEnv, conf: &NetConf) -> Result<(), CniError> {
    let mut d = match Daemon::connect(&conf.socket) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("podswitch-cni: DEL: {e}; nothing to remove");
            return Ok(());
        }
    };
    d.endpoint_del(&endpoint_name(env.container_id(), env.ifname()))
}

/// Verifies that the endpoint exists on the network and that the
/// interface is in the namespace with the endpoint's address and MAC.
pub fn check(env: &CniEnv, conf: &NetConf) -> Result<(), CniError> {
    let mut d = Daemon::connect(&conf.socket)?;
    let show = d.show()?;
    let name = endpoint_name(env.container_id(), env.ifname());
    let failed = |msg: String| CniError::new(Code::CheckFailed, msg);
    let ep: &EndpointRow = show
        .endpoints
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| failed(format!("podswitch has no endpoint {name}")))?;
    if ep.network != conf.network {
        return Err(failed(format!(
            "endpoint {name} is on network {}, not {}",
            ep.network, conf.network
        )));
    }
    if let Some(prev) = prev_address(conf) {
        if prev != ep.ip {
            return Err(failed(format!(
                "prevResult has {prev}, podswitch gave {name} {}",
                ep.ip
            )));
        }
    }
    let ifname = env.ifname().to_string();
    let netns = env.netns.clone().unwrap_or_default();
    let seen = pmd::netns::in_netns(&netns, move || {
        Ok::<_, std::io::Error>((pmd::netdev::mac(&ifname)?, pmd::netdev::ipv4(&ifname)?))
    })
    .and_then(|r| r)
    .map_err(|e| failed(format!("interface {} in {netns}: {e}", env.ifname())))?;
    if seen.1 != ep.ip || !seen.0.to_string().eq_ignore_ascii_case(&ep.mac) {
        return Err(failed(format!(
            "interface {} in {netns} has {} {}, podswitch expects {} {}",
            env.ifname(),
            seen.0,
            seen.1,
            ep.mac,
            ep.ip
        )));
    }
    Ok(())
}

fn prev_address(conf: &NetConf) -> Option<Ipv4Addr> {
    let addr = conf.prev_result.as_ref()?["ips"][0]["address"].as_str()?;
    addr.split('/').next()?.parse().ok()
}

/// Ready when the daemon answers (else 50) and has the network (else 51).
pub fn status(conf: &NetConf) -> Result<(), CniError> {
    let mut d = Daemon::connect(&conf.socket).map_err(|e| CniError {
        code: Code::NotAvailable,
        ..e
    })?;
    require_network(&d.show()?, conf, Code::NotAvailableForAdd)
}

/// Removes this network's `cni-` endpoints that no valid attachment
/// names; endpoints of the daemon's config file are never touched.
pub fn gc(conf: &NetConf) -> Result<(), CniError> {
    let mut d = Daemon::connect(&conf.socket)?;
    let valid: HashSet<String> = conf
        .valid_attachments
        .iter()
        .map(|(id, ifname)| endpoint_name(id, ifname))
        .collect();
    let stale: Vec<String> = d
        .show()?
        .endpoints
        .into_iter()
        .filter(|e| e.network == conf.network && e.name.starts_with(PREFIX))
        .filter(|e| !valid.contains(&e.name))
        .map(|e| e.name)
        .collect();
    for name in stale {
        d.endpoint_del(&name)?;
    }
    Ok(())
}
