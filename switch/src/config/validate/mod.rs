//! The rules a config must follow, from the raw file to the model.
//!
//! The checker walks the whole file and records every violation at the
//! place of the offending key or value, then returns them all. It goes on
//! past a bad value (a bad subnet, a dangling name) by leaving out only the
//! checks that depend on it, so one mistake is one message, not a cascade.
//! One module per table; `values` holds the checks of single values.

mod addresses;
mod cluster;
mod endpoints;
mod mappings;
mod modes;
mod nat;
mod networks;
mod policy;
mod ports;
mod remote;
mod switch;
mod values;

use addresses::*;
use cluster::*;
use endpoints::*;
use mappings::*;
use modes::*;
use nat::*;
use networks::*;
use policy::*;
use ports::*;
use remote::*;
use switch::*;
use values::*;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use pmd::wire::MacAddr;

use super::error::{ConfigErrors, Diag};
use super::ipam::Ipam;
use super::raw::{
    RawCluster, RawEndpoint, RawFile, RawNat, RawNetwork, RawPort, RawPortMapping,
    RawRemoteEndpoint, RawSwitch, S,
};
use super::{
    Attach, ClusterCfg, Config, EndpointCfg, EndpointLink, EndpointMode, EndpointModeCfg, LogLevel,
    NatCfg, NetworkCfg, NetworkMode, PollCfg, PortCfg, PortKind, PortMappingCfg, Protocol,
    RemoteEndpointCfg, SwitchCfg,
};

/// Linux's IFNAMSIZ (16) less the terminating NUL.
const IFNAME_MAX: usize = 15;
/// Linux's NAME_MAX: an `ip netns` name is a file name under /run/netns.
const NETNS_NAME_MAX: usize = 255;
/// 24 bits (RFC 7348 section 5).
const VNI_MAX: u32 = 0x00ff_ffff;
/// The smallest MTU an IPv4 host must accept (RFC 791).
const MTU_MIN: u32 = 68;
/// SNAT never takes a port below this: those are the host's services'.
const NAT_PORT_MIN: u16 = 1024;

/// Checks `raw`; `d` may hold errors found on the way in (an unreadable
/// or bad included file).
pub(crate) fn validate(raw: RawFile, mut d: Diag) -> Result<Config, ConfigErrors> {
    let switch = check_switch(&mut d, raw.switch.as_ref().map(|s| s.get_ref()));
    let ports = check_ports(&mut d, &raw.port);
    let networks = check_networks(&mut d, &raw.network, &raw.port, &ports);
    let mut addrs = Addresses::new(&networks);
    claim_uplink_ips(&mut d, &networks, &raw.port, &mut addrs);
    let remote_endpoints = check_remote_endpoints(&mut d, &raw.remote_endpoint, &networks);
    let endpoints = check_endpoints(
        &mut d,
        &raw.endpoint,
        &raw.remote_endpoint,
        &remote_endpoints,
        &networks,
        &ports,
        &mut addrs,
    );
    let endpoint_modes = check_endpoint_modes(&mut d, &raw.endpoint, &raw.network, &endpoints);
    let port_mappings = check_port_mappings(&mut d, &raw.port_mapping, &endpoints, &networks);
    let cluster = raw
        .cluster
        .as_ref()
        .map(|c| check_cluster(&mut d, c.get_ref()));
    let nat = raw
        .nat
        .as_ref()
        .map_or_else(NatCfg::default, |n| check_nat(&mut d, n.get_ref()));

    if !d.is_empty() {
        return Err(d.finish());
    }
    Ok(Config {
        switch,
        ports: ports.into_iter().map(|p| p.cfg).collect(),
        networks: networks
            .into_iter()
            .map(|n| n.cfg.expect("a network without errors has a subnet"))
            .collect(),
        endpoints: endpoints
            .into_iter()
            .map(|e| e.cfg.expect("an endpoint without errors is resolved"))
            .collect(),
        endpoint_modes,
        port_mappings,
        remote_endpoints: remote_endpoints
            .into_iter()
            .map(|r| r.expect("a remote endpoint without errors is resolved"))
            .collect(),
        cluster,
        nat,
    })
}
