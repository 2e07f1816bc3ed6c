//! The network config a runtime writes to stdin.

use std::path::PathBuf;

use serde::Deserialize;

use super::error::{CniError, Code};

/// The spec versions this plugin speaks; results come in the config's.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// Where `podswitch run` listens unless `[switch] control` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/podswitch.sock";

/// `{"cniVersion", "name", "type": "podswitch-cni", "network", "socket"}`
/// plus what runtimes add (runtimeConfig, prevResult, GC's attachments).
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// cniVersion, one of [`SUPPORTED_VERSIONS`].
    pub version: String,
    /// The CNI network's name.
    pub name: String,
    /// The podswitch network (default: `name`).
    pub network: String,
    /// The daemon's control socket.
    pub socket: PathBuf,
    /// `dns`, passed through to the result.
    pub dns: Option<serde_json::Value>,
    /// `runtimeConfig.portMappings`.
    pub port_mappings: Vec<PortMapping>,
    /// `prevResult` (CHECK, and DEL when the runtime kept it).
    pub prev_result: Option<serde_json::Value>,
    /// `cni.dev/valid-attachments` (GC): (container id, ifname).
    pub valid_attachments: Vec<(String, String)>,
}

/// One entry of the `portMappings` capability.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Port on the host (the uplink's address).
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default = "tcp")]
    pub protocol: String,
    /// Only empty or `0.0.0.0`: podswitch publishes on the uplink's address.
    #[serde(default, rename = "hostIP")]
    pub host_ip: String,
}

impl PortMapping {
    fn validate(&self) -> Result<(), CniError> {
        let bad = |msg: String| {
            Err(CniError::new(
                Code::InvalidConfig,
                format!("portMappings: {msg}"),
            ))
        };
        if !matches!(self.protocol.as_str(), "tcp" | "udp") {
            return bad(format!("protocol {:?} (tcp or udp)", self.protocol));
        }
        if !matches!(self.host_ip.as_str(), "" | "0.0.0.0") {
            return bad(format!(
                "hostIP {} is not supported; podswitch publishes on its uplink's address",
                self.host_ip
            ));
        }
        Ok(())
    }
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    cni_version: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    network: Option<String>,
    socket: Option<PathBuf>,
    dns: Option<serde_json::Value>,
    #[serde(default)]
    runtime_config: RuntimeConfig,
    prev_result: Option<serde_json::Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    valid_attachments: Vec<Attachment>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    #[serde(default)]
    port_mappings: Vec<PortMapping>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

/// The cniVersion of a config, if it has a readable one (for the version
/// of an error object when the rest does not parse).
pub fn version_of(stdin: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().map(String::from)
}

/// The cniVersion of a VERSION call's stdin (which may be empty).
pub fn requested_version(stdin: &[u8]) -> String {
    version_of(stdin).unwrap_or_else(|| SUPPORTED_VERSIONS[2].to_string())
}

impl NetConf {
    /// Parses stdin: not JSON is a decode error (6), JSON that is not a
    /// podswitch-cni config is an invalid config (7), an unknown
    /// cniVersion is incompatible (1).
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let raw: Raw = serde_json::from_slice(stdin).map_err(|e| {
            let code = if e.is_data() {
                Code::InvalidConfig
            } else {
                Code::Decode
            };
            CniError::new(code, "the network config on stdin does not parse").details(e.to_string())
        })?;
        let version = raw
            .cni_version
            .ok_or_else(|| CniError::new(Code::InvalidConfig, "the config has no cniVersion"))?;
        if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
            return Err(CniError::new(
                Code::IncompatibleVersion,
                format!("cniVersion {version} is not supported"),
            )
            .details(format!("supported: {}", SUPPORTED_VERSIONS.join(", "))));
        }
        let name = raw
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| CniError::new(Code::InvalidConfig, "the config has no name"))?;
        match raw.kind.as_deref() {
            Some("podswitch-cni") => {}
            other => {
                return Err(CniError::new(
                    Code::InvalidConfig,
                    format!("type {other:?} is not podswitch-cni"),
                ))
            }
        }
        for m in &raw.runtime_config.port_mappings {
            m.validate()?;
        }
        Ok(NetConf {
            version,
            network: raw
                .network
                .filter(|n| !n.is_empty())
                .unwrap_or(name.clone()),
            name,
            socket: raw.socket.unwrap_or_else(|| DEFAULT_SOCKET.into()),
            dns: raw.dns,
            port_mappings: raw.runtime_config.port_mappings,
            prev_result: raw.prev_result,
            valid_attachments: raw
                .valid_attachments
                .into_iter()
                .map(|a| (a.container_id, a.ifname))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_and_socket_have_defaults() {
        let c = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"front","type":"podswitch-cni"}"#)
            .unwrap();
        assert_eq!(c.network, "front");
        assert_eq!(c.socket, PathBuf::from("/run/podswitch.sock"));
    }

    #[test]
    fn runtime_config_port_mappings_and_gc_attachments_are_read() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","type":"podswitch-cni","network":"front",
                "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]},
                "cni.dev/valid-attachments":[{"containerID":"abc","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(c.network, "front");
        assert_eq!(c.port_mappings[0].host_port, 8080);
        assert_eq!(c.valid_attachments, [("abc".into(), "eth0".into())]);
    }

    #[test]
    fn broken_json_is_a_decode_error_and_a_wrong_shape_an_invalid_config() {
        assert_eq!(NetConf::parse(b"{nope").unwrap_err().code, Code::Decode);
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":1}"#).unwrap_err().code,
            Code::InvalidConfig
        );
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"bridge"}"#)
                .unwrap_err()
                .code,
            Code::InvalidConfig
        );
    }

    #[test]
    fn a_port_mapping_on_a_specific_host_ip_or_an_unknown_protocol_is_refused() {
        let conf = |ip: &str| {
            format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"podswitch-cni","runtimeConfig":
                   {{"portMappings":[{{"hostPort":80,"containerPort":80,"protocol":"tcp","hostIP":"{ip}"}}]}}}}"#
            )
        };
        assert!(NetConf::parse(conf("").as_bytes()).is_ok());
        assert!(NetConf::parse(conf("0.0.0.0").as_bytes()).is_ok());
        let e = NetConf::parse(conf("127.0.0.1").as_bytes()).unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig);
        assert!(e.msg.contains("127.0.0.1"), "{e}");
        let sctp = conf("").replace("\"tcp\"", "\"sctp\"");
        let e = NetConf::parse(sctp.as_bytes()).unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig);
        assert!(e.msg.contains("sctp"), "{e}");
    }

    #[test]
    fn an_unknown_version_is_incompatible() {
        let e = NetConf::parse(br#"{"cniVersion":"0.3.1","name":"n","type":"podswitch-cni"}"#)
            .unwrap_err();
        assert_eq!(e.code, Code::IncompatibleVersion);
    }

    #[test]
    fn the_example_configs_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/cni");
        let single = std::fs::read(format!("{dir}/podswitch.conf")).unwrap();
        assert_eq!(NetConf::parse(&single).unwrap().network, "front");
        // A runtime hands each plugin of a list its entry plus the list's
        // cniVersion and name.
        let list: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{dir}/podswitch.conflist")).unwrap())
                .unwrap();
        let mut entry = list["plugins"][0].clone();
        entry["cniVersion"] = list["cniVersion"].clone();
        entry["name"] = list["name"].clone();
        let c = NetConf::parse(entry.to_string().as_bytes()).unwrap();
        assert_eq!(c.socket, PathBuf::from("/run/podswitch.sock"));
        assert_eq!(list["plugins"][0]["capabilities"]["portMappings"], true);
    }
}
