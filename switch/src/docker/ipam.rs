//! libnetwork's remote IPAM protocol (moby/libnetwork docs/ipam.md), for
//! `docker network create --ipam-driver podswitch`: pools are the
//! subnets Docker asks for (no default pool: podswitch has no address
//! plan to take one from), addresses the first free host or the one asked
//! for. State lives as long as `podswitch run`.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::ipam::Ipam;

/// The address space podswitch reports for local and global networks.
const ADDRESS_SPACE: &str = "podswitch";
/// `RequestAddress` option saying the address is the network's gateway.
const GATEWAY_REQUEST: &str = "com.docker.network.gateway";

/// The pools Docker requested, by pool id (the subnet in text).
#[derive(Debug, Default)]
pub struct Pools {
    pools: HashMap<String, Pool>,
}

#[derive(Debug)]
struct Pool {
    subnet: Ipv4Net,
    /// What is handed out, the gateway included.
    ipam: Ipam,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RequestPool {
    #[serde(default)]
    pool: String,
    #[serde(default)]
    sub_pool: String,
    #[serde(default, rename = "V6")]
    v6: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PoolRef {
    #[serde(rename = "PoolID")]
    pool_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddressRequest {
    #[serde(rename = "PoolID")]
    pool_id: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    options: Option<HashMap<String, String>>,
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("bad request body: {e}"))
}

impl Pools {
    /// Answers `IpamDriver.METHOD`; `None` when there is no such method.
    pub fn handle(&mut self, method: &str, body: &[u8]) -> Option<Result<Value, String>> {
        Some(match method {
            "GetCapabilities" => Ok(json!({"RequiresMACAddress": false})),
            "GetDefaultAddressSpaces" => Ok(json!({
                "LocalDefaultAddressSpace": ADDRESS_SPACE,
                "GlobalDefaultAddressSpace": ADDRESS_SPACE,
            })),
            "RequestPool" => parse(body).and_then(|r| self.request_pool(r)),
            "ReleasePool" => parse::<PoolRef>(body).map(|r| {
                self.pools.remove(&r.pool_id);
                json!({})
            }),
            "RequestAddress" => parse(body).and_then(|r| self.request_address(r)),
            "ReleaseAddress" => parse(body).and_then(|r| self.release_address(r)),
            _ => return None,
        })
    }

    fn request_pool(&mut self, r: RequestPool) -> Result<Value, String> {
        if r.v6 {
            return Err("podswitch networks are IPv4 only (leave --ipv6 off)".into());
        }
        if r.pool.is_empty() {
            return Err(
                "podswitch IPAM has no default pool; give one (docker network create --subnet 172.27.0.0/24)"
                    .into(),
            );
        }
        if !r.sub_pool.is_empty() {
            return Err(
                "podswitch IPAM takes no --ip-range; addresses come from the whole subnet".into(),
            );
        }
        let subnet: Ipv4Net = r
            .pool
            .parse()
            .map_err(|_| format!("pool {:?} is not an IPv4 prefix (172.27.0.0/24)", r.pool))?;
        let subnet = subnet.trunc();
        if subnet.prefix_len() > 30 {
            return Err(format!(
                "pool {subnet}: a /30 or wider leaves room for a gateway and endpoints"
            ));
        }
        if let Some(o) = self
            .pools
            .values()
            .find(|o| o.subnet.contains(&subnet.network()) || subnet.contains(&o.subnet.network()))
        {
            return Err(format!("pool {subnet} overlaps pool {} in use", o.subnet));
        }
        let id = subnet.to_string();
        self.pools.insert(
            id.clone(),
            Pool {
                subnet,
                ipam: Ipam::new(subnet),
            },
        );
        Ok(json!({"PoolID": id, "Pool": id, "Data": {}}))
    }

    fn request_address(&mut self, r: AddressRequest) -> Result<Value, String> {
        let pool = self
            .pools
            .get_mut(&r.pool_id)
            .ok_or_else(|| format!("unknown pool {:?}", r.pool_id))?;
        let gateway = r
            .options
            .as_ref()
            .and_then(|o| o.get("RequestAddressType"))
            .is_some_and(|t| t == GATEWAY_REQUEST);
        let ip = if r.address.is_empty() {
            pool.ipam
                .allocate()
                .ok_or_else(|| format!("pool {} has no free address left", pool.subnet))?
        } else {
            let ip: Ipv4Addr = r
                .address
                .parse()
                .map_err(|_| format!("address {:?} is not an IPv4 address", r.address))?;
            if !pool.ipam.is_host(ip) {
                return Err(format!(
                    "address {ip} is not a host address of {}",
                    pool.subnet
                ));
            }
            if !pool.ipam.reserve(ip) {
                return Err(format!("address {ip} is in use"));
            }
            ip
        };
        tracing::debug!("ipam: {ip} from {} (gateway: {gateway})", pool.subnet);
        Ok(json!({
            "Address": format!("{ip}/{}", pool.subnet.prefix_len()),
            "Data": {},
        }))
    }

    fn release_address(&mut self, r: AddressRequest) -> Result<Value, String> {
        if let Some(pool) = self.pools.get_mut(&r.pool_id) {
            // Docker sends the bare address; accept a prefix too.
            let bare = r.address.split('/').next().unwrap_or("");
            if let Ok(ip) = bare.parse::<Ipv4Addr>() {
                pool.ipam.release(ip);
            }
        }
        Ok(json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(p: &mut Pools, method: &str, body: Value) -> Result<Value, String> {
        p.handle(method, body.to_string().as_bytes())
            .expect("a known method")
    }

    #[test]
    fn a_pool_gives_its_gateway_then_the_next_free_hosts_and_a_released_one_comes_back() {
        let mut p = Pools::default();
        let pool = call(
            &mut p,
            "RequestPool",
            json!({"AddressSpace": "podswitch", "Pool": "172.27.0.0/24"}),
        )
        .unwrap();
        assert_eq!(pool["Pool"], "172.27.0.0/24");
        let id = pool["PoolID"].as_str().unwrap().to_string();
        let gw = call(
            &mut p,
            "RequestAddress",
            json!({"PoolID": id, "Address": "", "Options": {"RequestAddressType": GATEWAY_REQUEST}}),
        )
        .unwrap();
        assert_eq!(gw["Address"], "172.27.0.1/24");
        let a = call(&mut p, "RequestAddress", json!({"PoolID": id})).unwrap();
        assert_eq!(a["Address"], "172.27.0.2/24");
        let b = call(
            &mut p,
            "RequestAddress",
            json!({"PoolID": id, "Address": "172.27.0.9"}),
        )
        .unwrap();
        assert_eq!(b["Address"], "172.27.0.9/24");
        let again = call(
            &mut p,
            "RequestAddress",
            json!({"PoolID": id, "Address": "172.27.0.9"}),
        );
        assert_eq!(again.unwrap_err(), "address 172.27.0.9 is in use");
        call(
            &mut p,
            "ReleaseAddress",
            json!({"PoolID": id, "Address": "172.27.0.2"}),
        )
        .unwrap();
        let c = call(&mut p, "RequestAddress", json!({"PoolID": id})).unwrap();
        assert_eq!(c["Address"], "172.27.0.2/24");
    }

    #[test]
    fn pools_without_a_subnet_overlapping_or_ipv6_are_refused_with_the_reason() {
        let mut p = Pools::default();
        let none = call(&mut p, "RequestPool", json!({"Pool": ""})).unwrap_err();
        assert!(none.contains("--subnet"), "{none}");
        let v6 = call(
            &mut p,
            "RequestPool",
            json!({"Pool": "fd00::/64", "V6": true}),
        )
        .unwrap_err();
        assert!(v6.contains("IPv4 only"), "{v6}");
        call(&mut p, "RequestPool", json!({"Pool": "10.5.0.0/16"})).unwrap();
        let over = call(&mut p, "RequestPool", json!({"Pool": "10.5.3.0/24"})).unwrap_err();
        assert_eq!(over, "pool 10.5.3.0/24 overlaps pool 10.5.0.0/16 in use");
        let bad = call(
            &mut p,
            "RequestAddress",
            json!({"PoolID": "10.5.0.0/16", "Address": "10.6.0.1"}),
        )
        .unwrap_err();
        assert!(bad.contains("not a host address"), "{bad}");
        let garbage = p.handle("RequestPool", b"{not json").unwrap().unwrap_err();
        assert!(garbage.starts_with("bad request body"), "{garbage}");
    }

    #[test]
    fn a_released_pool_can_be_requested_again() {
        let mut p = Pools::default();
        call(&mut p, "RequestPool", json!({"Pool": "172.28.0.0/24"})).unwrap();
        call(&mut p, "ReleasePool", json!({"PoolID": "172.28.0.0/24"})).unwrap();
        call(&mut p, "RequestPool", json!({"Pool": "172.28.0.0/24"})).unwrap();
        assert!(p.handle("NoSuchMethod", b"{}").is_none());
    }
}
