//! The ADD result in the config's cniVersion: 0.4.0 carries
//! `ips[].version`, 1.0.0 dropped it, 1.1.0 adds the interface `mtu`.

use serde_json::{json, Value};

use crate::control::protocol::EndpointInfo;

/// The result for an attached endpoint; `sandbox` is CNI_NETNS.
pub fn add_result(version: &str, ep: &EndpointInfo, sandbox: &str, dns: Option<&Value>) -> Value {
    let mut iface = json!({"name": ep.ifname, "mac": ep.mac, "sandbox": sandbox});
    if version == "1.1.0" {
        iface["mtu"] = json!(ep.mtu);
    }
    let mut ip = json!({"address": format!("{}/{}", ep.ip, ep.prefix), "interface": 0});
    if version == "0.4.0" {
        ip["version"] = json!("4");
    }
    let mut routes = Vec::new();
    if let Some(gw) = ep.gateway {
        ip["gateway"] = json!(gw.to_string());
        routes.push(json!({"dst": "0.0.0.0/0", "gw": gw.to_string()}));
    }
    json!({
        "cniVersion": version,
        "interfaces": [iface],
        "ips": [ip],
        "routes": routes,
        "dns": dns.cloned().unwrap_or_else(|| json!({})),
    })
}

/// The answer to VERSION.
pub fn version_result(version: &str) -> Value {
    json!({
        "cniVersion": version,
        "supportedVersions": super::config::SUPPORTED_VERSIONS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> EndpointInfo {
        EndpointInfo {
            name: "cni-x".into(),
            network: "front".into(),
            netns: "/run/netns/c".into(),
            ifname: "eth0".into(),
            ip: "172.30.0.2".parse().unwrap(),
            prefix: 24,
            mac: "02:00:ac:1e:00:02".into(),
            gateway: Some("172.30.0.1".parse().unwrap()),
            mtu: 1500,
        }
    }

    #[test]
    fn version_0_4_0_carries_the_ip_version_and_1_0_0_does_not() {
        let old = add_result("0.4.0", &ep(), "/run/netns/c", None);
        assert_eq!(old["ips"][0]["version"], "4");
        let new = add_result("1.0.0", &ep(), "/run/netns/c", None);
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["ips"][0]["address"], "172.30.0.2/24");
        assert_eq!(new["ips"][0]["gateway"], "172.30.0.1");
        assert_eq!(new["routes"][0]["gw"], "172.30.0.1");
        assert_eq!(new["interfaces"][0]["sandbox"], "/run/netns/c");
        assert!(new["interfaces"][0].get("mtu").is_none());
        assert_eq!(
            add_result("1.1.0", &ep(), "/x", None)["interfaces"][0]["mtu"],
            1500
        );
    }
}
