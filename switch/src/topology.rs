//! The tables the data path reads, compiled from the config into one
//! immutable snapshot shared by every PMD thread (DESIGN.md, data path 4).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use pmd::wire::MacAddr;
use pmd::PortId;

use crate::gateway::Gateway;

/// Index of a network in the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetId(pub u16);

/// One virtual switch.
#[derive(Debug, Clone)]
pub struct Network {
    /// The config name.
    pub name: String,
    /// The subnet.
    pub subnet: Ipv4Net,
    /// The gateway the switch owns, if any.
    pub gateway: Option<Gateway>,
    /// Ports that take part in this network's switching (flood domain).
    pub members: Vec<PortId>,
}

/// What a port is to the switch.
#[derive(Debug, Clone)]
pub struct PortInfo {
    /// Display name: the endpoint or `[[port]]` name.
    pub name: String,
    /// The network the port switches in; `None` for a port that belongs to
    /// no network (frames from it are dropped).
    pub network: Option<NetId>,
}

/// Every table the pipeline reads.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Ports by `PortId`.
    pub ports: Vec<PortInfo>,
    /// Networks by `NetId`.
    pub networks: Vec<Network>,
}

impl Topology {
    /// Adds a network and returns its id.
    pub fn add_network(&mut self, name: &str, subnet: Ipv4Net, gateway: Option<Ipv4Addr>) -> NetId {
        let id = NetId(self.networks.len() as u16);
        self.networks.push(Network {
            name: name.to_string(),
            subnet,
            gateway: gateway.map(|ip| Gateway {
                ip,
                mac: gateway_mac(ip),
            }),
            members: Vec::new(),
        });
        id
    }

    /// Adds a port switched in `network` and returns its id.
    pub fn add_port(&mut self, name: &str, network: Option<NetId>) -> PortId {
        let id = PortId(self.ports.len() as u16);
        self.ports.push(PortInfo {
            name: name.to_string(),
            network,
        });
        if let Some(n) = network {
            self.networks[n.0 as usize].members.push(id);
        }
        id
    }

    /// The network a port switches in.
    #[inline]
    pub fn network_of(&self, port: PortId) -> Option<NetId> {
        self.ports.get(port.0 as usize)?.network
    }

    /// A network by id.
    #[inline]
    pub fn network(&self, id: NetId) -> &Network {
        &self.networks[id.0 as usize]
    }

    /// A network id by name.
    pub fn network_id(&self, name: &str) -> Option<NetId> {
        self.networks
            .iter()
            .position(|n| n.name == name)
            .map(|i| NetId(i as u16))
    }
}

/// The MAC the switch uses for a gateway IP: locally administered and
/// distinct from the `02:00:` MACs derived for endpoints.
pub fn gateway_mac(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x02, 0x50, o[0], o[1], o[2], o[3]])
}
