//! libnetwork's remote network driver protocol (moby/libnetwork
//! docs/remote.md) on top of [`Runtime`]: a Docker network is a podswitch
//! `nat` network, a Docker endpoint a podswitch endpoint whose TAP Docker
//! moves into the container itself, a published port a port mapping.
//!
//! Docker's ids mean nothing to podswitch, so the driver keeps them: the
//! NetworkID to the podswitch network's name, the EndpointID to its
//! endpoint, its TAP and the mappings it published. They last as long as
//! `podswitch run` (Docker's networks must be created again after a
//! restart of podswitch).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::control::protocol::{EndpointAdd, MappingSpec, NetworkAdd};
use crate::runtime::Runtime;

/// Where Docker puts the `-o KEY=VALUE` options of `docker network create`.
const GENERIC: &str = "com.docker.network.generic";
/// Where Docker puts a container's published ports.
const PORTMAP: &str = "com.docker.network.portmap";
/// The driver options `docker network create -o` takes.
const OPTIONS: [&str; 4] = ["uplink", "mode", "name", "vni"];
/// How many characters of a Docker id name things, as `docker ps` shows.
const SHORT_ID: usize = 12;

/// The Docker networks and endpoints this driver made.
#[derive(Debug, Default)]
pub struct Driver {
    networks: HashMap<String, Net>,
    endpoints: HashMap<String, Ep>,
}

#[derive(Debug)]
struct Net {
    name: String,
    gateway: Ipv4Addr,
}

#[derive(Debug)]
struct Ep {
    network_id: String,
    name: String,
    tap: String,
    mappings: Vec<MappingSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(default)]
    options: Option<HashMap<String, Value>>,
    #[serde(default, rename = "IPv4Data")]
    ipv4_data: Option<Vec<IpamData>>,
    #[serde(default, rename = "IPv6Data")]
    ipv6_data: Option<Vec<IpamData>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpamData {
    #[serde(default)]
    pool: String,
    #[serde(default)]
    gateway: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkRef {
    #[serde(rename = "NetworkID")]
    network_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointRef {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    #[serde(default)]
    interface: Option<Interface>,
    #[serde(default)]
    options: Option<HashMap<String, Value>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Interface {
    #[serde(default)]
    address: String,
    #[serde(default, rename = "AddressIPv6")]
    address_ipv6: String,
    #[serde(default)]
    mac_address: String,
}

/// One entry of `com.docker.network.portmap` (libnetwork's PortBinding).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PortBinding {
    proto: u8,
    port: u16,
    #[serde(default, rename = "HostIP")]
    host_ip: String,
    host_port: u16,
    #[serde(default)]
    host_port_end: u16,
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("bad request body: {e}"))
}

/// The address of `a.b.c.d/len` or `a.b.c.d`.
fn bare_ip(what: &str, s: &str) -> Result<Ipv4Addr, String> {
    s.split('/')
        .next()
        .unwrap_or("")
        .parse()
        .map_err(|_| format!("{what} {s:?} is not an IPv4 address"))
}

fn short(kind: &str, id: &str) -> Result<String, String> {
    if id.len() < SHORT_ID || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("{kind} {id:?} is not a Docker id"));
    }
    Ok(id[..SHORT_ID].to_string())
}

/// The methods of `NetworkDriver` this driver answers.
pub const METHODS: [&str; 12] = [
    "GetCapabilities",
    "CreateNetwork",
    "DeleteNetwork",
    "CreateEndpoint",
    "EndpointOperInfo",
    "DeleteEndpoint",
    "Join",
    "Leave",
    "ProgramExternalConnectivity",
    "RevokeExternalConnectivity",
    "DiscoverNew",
    "DiscoverDelete",
];

impl Driver {
    /// Answers `NetworkDriver.METHOD`; `None` when there is no such method.
    pub fn handle(
        &mut self,
        rt: &Runtime,
        method: &str,
        body: &[u8],
    ) -> Option<Result<Value, String>> {
        Some(match method {
            "GetCapabilities" => Ok(json!({"Scope": "local", "ConnectivityScope": "local"})),
            "CreateNetwork" => parse(body).and_then(|r| self.create_network(rt, r)),
            "DeleteNetwork" => parse(body).and_then(|r| self.delete_network(rt, r)),
            "CreateEndpoint" => parse(body).and_then(|r| self.create_endpoint(rt, r)),
            "EndpointOperInfo" => parse::<EndpointRef>(body).map(|_| json!({"Value": {}})),
            "DeleteEndpoint" => parse(body).and_then(|r| self.delete_endpoint(rt, r)),
            "Join" => parse(body).and_then(|r| self.join(r)),
            // The TAP stays attached until DeleteEndpoint, which Docker
            // sends after every Leave: closing it here would pull it from
            // under Docker while it takes the interface out of the
            // container.
            "Leave" => parse::<EndpointRef>(body).map(|_| json!({})),
            "ProgramExternalConnectivity" => parse(body).and_then(|r| self.program(rt, r)),
            "RevokeExternalConnectivity" => parse(body).and_then(|r| self.revoke(rt, r)),
            // Cluster membership: nothing to learn for a local driver.
            "DiscoverNew" | "DiscoverDelete" => Ok(json!({})),
            _ => return None,
        })
    }

    fn create_network(&mut self, rt: &Runtime, r: CreateNetwork) -> Result<Value, String> {
        if r.ipv6_data.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err("podswitch networks are IPv4 only (leave --ipv6 off)".into());
        }
        let v4 = r.ipv4_data.unwrap_or_default();
        let [data] = v4.as_slice() else {
            return Err(format!(
                "a podswitch network has one IPv4 subnet, not {} (docker network create --subnet 172.27.0.0/24)",
                v4.len()
            ));
        };
        let mut opts: HashMap<String, String> = HashMap::new();
        if let Some(generic) = r.options.as_ref().and_then(|o| o.get(GENERIC)) {
            let Some(map) = generic.as_object() else {
                return Err(format!("{GENERIC} is not an object"));
            };
            for (k, v) in map {
                if !OPTIONS.contains(&k.as_str()) {
                    return Err(format!(
                        "unknown option {k:?} (podswitch takes -o {})",
                        OPTIONS.join(", -o ")
                    ));
                }
                let Some(v) = v.as_str() else {
                    return Err(format!("option {k} is not a string"));
                };
                opts.insert(k.clone(), v.to_string());
            }
        }
        let name = match opts.remove("name") {
            Some(n) => n,
            None => format!("docker-{}", short("NetworkID", &r.network_id)?),
        };
        let gateway = match data.gateway.as_str() {
            "" => None,
            g => Some(bare_ip("gateway", g)?),
        };
        let vni = match opts.remove("vni") {
            Some(v) => Some(
                v.parse::<u32>()
                    .map_err(|_| format!("option vni={v:?} is not a number"))?,
            ),
            None => None,
        };
        let added = rt
            .network_add(&NetworkAdd {
                name,
                vni,
                mode: opts.remove("mode"),
                subnet: data.pool.clone(),
                gateway,
                uplink: opts.remove("uplink"),
                // Docker's endpoints are TAPs it moves itself.
                endpoint_link: None,
            })
            .map_err(|e| format!("{e:#}"))?;
        let gateway = added
            .gateway
            .expect("a network added at run time has a gateway");
        self.networks.insert(
            r.network_id,
            Net {
                name: added.name,
                gateway,
            },
        );
        Ok(json!({}))
    }

    fn delete_network(&mut self, rt: &Runtime, r: NetworkRef) -> Result<Value, String> {
        let Some(net) = self.networks.get(&r.network_id) else {
            return Ok(json!({}));
        };
        rt.network_del(&net.name).map_err(|e| format!("{e:#}"))?;
        self.networks.remove(&r.network_id);
        Ok(json!({}))
    }

    fn create_endpoint(&mut self, rt: &Runtime, r: EndpointRef) -> Result<Value, String> {
        let net = self
            .networks
            .get(&r.network_id)
            .ok_or_else(|| format!("unknown network {:?}", r.network_id))?;
        if self.endpoints.contains_key(&r.endpoint_id) {
            return Err(format!("endpoint {} exists already", r.endpoint_id));
        }
        let id = short("EndpointID", &r.endpoint_id)?;
        let iface = r.interface.unwrap_or_default();
        if !iface.address_ipv6.is_empty() {
            return Err("podswitch networks are IPv4 only".into());
        }
        if iface.address.is_empty() {
            return Err("Docker gave the endpoint no IPv4 address".into());
        }
        let ip = bare_ip("address", &iface.address)?;
        let given_mac = !iface.mac_address.is_empty();
        let tap = format!("ps{id}");
        let info = rt
            .endpoint_add_host_tap(&EndpointAdd {
                name: format!("docker-{id}"),
                network: net.name.clone(),
                netns: String::new(),
                ip: Some(ip),
                mac: given_mac.then(|| iface.mac_address.clone()),
                ifname: Some(tap.clone()),
                allow_spoofing: false,
            })
            .map_err(|e| format!("{e:#}"))?;
        self.endpoints.insert(
            r.endpoint_id,
            Ep {
                network_id: r.network_id,
                name: info.name,
                tap,
                mappings: Vec::new(),
            },
        );
        // Docker takes back only what it did not give.
        Ok(match given_mac {
            true => json!({"Interface": {}}),
            false => json!({"Interface": {"MacAddress": info.mac}}),
        })
    }

    fn delete_endpoint(&mut self, rt: &Runtime, r: EndpointRef) -> Result<Value, String> {
        let Some(ep) = self.endpoints.get(&r.endpoint_id) else {
            return Ok(json!({}));
        };
        // Its mappings go with it (Runtime::endpoint_del).
        rt.endpoint_del(&ep.name).map_err(|e| format!("{e:#}"))?;
        self.endpoints.remove(&r.endpoint_id);
        Ok(json!({}))
    }

    fn join(&mut self, r: EndpointRef) -> Result<Value, String> {
        let ep = self
            .endpoints
            .get(&r.endpoint_id)
            .ok_or_else(|| format!("unknown endpoint {:?}", r.endpoint_id))?;
        let net = self
            .networks
            .get(&ep.network_id)
            .ok_or_else(|| format!("unknown network {:?}", ep.network_id))?;
        if ep.network_id != r.network_id {
            return Err(format!(
                "endpoint {} is not on network {}",
                r.endpoint_id, r.network_id
            ));
        }
        Ok(json!({
            "InterfaceName": {"SrcName": ep.tap, "DstPrefix": "eth"},
            "Gateway": net.gateway.to_string(),
            // The switch is the container's gateway to the outside:
            // Docker must not add a docker_gwbridge for it.
            "DisableGatewayService": true,
        }))
    }

    fn program(&mut self, rt: &Runtime, r: EndpointRef) -> Result<Value, String> {
        let ep = self
            .endpoints
            .get_mut(&r.endpoint_id)
            .ok_or_else(|| format!("unknown endpoint {:?}", r.endpoint_id))?;
        let bindings: Vec<PortBinding> = match r.options.as_ref().and_then(|o| o.get(PORTMAP)) {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("{PORTMAP}: {e}"))?,
        };
        let wanted = mappings(&ep.name, &bindings)?;
        let mut done = Vec::new();
        for m in wanted {
            if let Err(e) = rt.mapping_add(&m) {
                for d in &done {
                    let _ = rt.mapping_del(d);
                }
                return Err(format!("{e:#}"));
            }
            done.push(m);
        }
        ep.mappings.extend(done);
        Ok(json!({}))
    }

    fn revoke(&mut self, rt: &Runtime, r: EndpointRef) -> Result<Value, String> {
        let Some(ep) = self.endpoints.get_mut(&r.endpoint_id) else {
            return Ok(json!({}));
        };
        for m in std::mem::take(&mut ep.mappings) {
            rt.mapping_del(&m).map_err(|e| format!("{e:#}"))?;
        }
        Ok(json!({}))
    }
}

/// The podswitch mappings of Docker's port bindings for `endpoint`: one
/// per protocol, host port and container port. A binding to an IPv6 host
/// address is left out (the uplink is IPv4); a port range or a host port
/// Docker would pick itself is refused, as podswitch allocates none.
fn mappings(endpoint: &str, bindings: &[PortBinding]) -> Result<Vec<MappingSpec>, String> {
    let mut out: Vec<MappingSpec> = Vec::new();
    for b in bindings {
        if b.host_ip.contains(':') {
            continue;
        }
        let protocol = match b.proto {
            6 => "tcp",
            17 => "udp",
            p => {
                return Err(format!(
                    "published port {}: protocol {p} is not tcp or udp",
                    b.port
                ))
            }
        };
        if b.host_port == 0 {
            return Err(format!(
                "published port {}/{protocol} needs a host port (-p HOST:{})",
                b.port, b.port
            ));
        }
        if b.host_port_end != 0 && b.host_port_end != b.host_port {
            return Err(format!(
                "host port range {}-{}: podswitch publishes single ports",
                b.host_port, b.host_port_end
            ));
        }
        let m = MappingSpec {
            endpoint: endpoint.to_string(),
            protocol: protocol.to_string(),
            host_port: b.host_port,
            port: b.port,
        };
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings(v: Value) -> Vec<PortBinding> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn docker_port_bindings_become_one_mapping_each_and_ipv6_twins_are_left_out() {
        let b = bindings(json!([
            {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080},
            {"Proto": 6, "IP": "", "Port": 80, "HostIP": "::", "HostPort": 8080, "HostPortEnd": 8080},
            {"Proto": 17, "IP": "", "Port": 53, "HostIP": "0.0.0.0", "HostPort": 5353, "HostPortEnd": 0},
        ]));
        let m = mappings("docker-abc", &b).unwrap();
        let show: Vec<String> = m
            .iter()
            .map(|m| format!("{} {}/{}->{}", m.endpoint, m.protocol, m.host_port, m.port))
            .collect();
        assert_eq!(show, ["docker-abc tcp/8080->80", "docker-abc udp/5353->53"]);
    }

    #[test]
    fn a_host_port_docker_would_choose_a_range_or_sctp_are_refused_with_the_reason() {
        let none = bindings(json!([{"Proto": 6, "Port": 80, "HostPort": 0}]));
        assert_eq!(
            mappings("e", &none).unwrap_err(),
            "published port 80/tcp needs a host port (-p HOST:80)"
        );
        let range =
            bindings(json!([{"Proto": 6, "Port": 80, "HostPort": 8080, "HostPortEnd": 8081}]));
        assert!(mappings("e", &range).unwrap_err().contains("single ports"));
        let sctp = bindings(json!([{"Proto": 132, "Port": 80, "HostPort": 8080}]));
        assert!(mappings("e", &sctp).unwrap_err().contains("not tcp or udp"));
    }

    #[test]
    fn ids_too_short_or_with_odd_characters_are_not_docker_ids() {
        assert_eq!(
            short("EndpointID", "0123456789abcdef").unwrap(),
            "0123456789ab"
        );
        assert!(short("EndpointID", "abc").is_err());
        assert!(short("EndpointID", "../../etc/passwd").is_err());
    }
}
