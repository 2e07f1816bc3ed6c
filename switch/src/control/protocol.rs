//! The control socket's JSON-lines protocol: one request object per line
//! (`{"cmd": "endpoint-add", ...}`), one reply object per line
//! (`{"ok": true, "data": ...}` or `{"ok": false, "error": "..."}`).
//! A `capture` request is the exception: after its `ok` line the socket
//! carries a pcap byte stream until the count is reached or the client
//! closes.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// One request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Networks, modes, endpoints, ports, addresses, mappings, peers.
    Show,
    /// Counters per port, network and PMD thread.
    Stats,
    /// Learned MACs, of one network or all.
    Fdb {
        /// Only this network.
        #[serde(default)]
        network: Option<String>,
    },
    /// NAT connection-tracking entries.
    Conntrack {
        /// Only flows of this network.
        #[serde(default)]
        network: Option<String>,
        /// At most this many entries.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Next hops the uplinks resolved (ARP).
    Neighbors,
    /// Attach a container at run time.
    EndpointAdd(EndpointAdd),
    /// Detach a container; deleting an unknown endpoint succeeds.
    EndpointDel {
        /// The endpoint's name.
        name: String,
    },
    /// Publish a container port on the uplink.
    MappingAdd(MappingSpec),
    /// Withdraw a published port; deleting an unknown mapping succeeds.
    MappingDel(MappingSpec),
    /// Create a network at run time (the Docker plugin's CreateNetwork).
    NetworkAdd(NetworkAdd),
    /// Remove a network that has no endpoints; removing an unknown one
    /// succeeds.
    NetworkDel {
        /// The network's name.
        name: String,
    },
    /// Re-read the config file and apply the difference.
    Reload,
    /// Show the path of one frame through the pipeline.
    Trace(TraceRequest),
    /// Stream frames of a port as pcap.
    Capture(CaptureRequest),
}

/// `ctl endpoint add` (also its command line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct EndpointAdd {
    /// Unique endpoint name.
    pub name: String,
    /// The network it joins.
    #[arg(long)]
    pub network: String,
    /// `ip netns` name or absolute path of the namespace.
    #[arg(long)]
    pub netns: String,
    /// Its address; IPAM picks the next free one when absent.
    #[serde(default)]
    #[arg(long)]
    pub ip: Option<Ipv4Addr>,
    /// Its MAC (`aa:bb:cc:dd:ee:ff`); derived from the address when absent.
    #[serde(default)]
    #[arg(long)]
    pub mac: Option<String>,
    /// Interface name inside the namespace (default `eth0`).
    #[serde(default)]
    #[arg(long)]
    pub ifname: Option<String>,
    /// Let it send with source MACs and IPs not its own (a container that
    /// routes); anti-spoofing drops such frames otherwise.
    #[serde(default)]
    #[arg(long)]
    pub allow_spoofing: bool,
}

/// `ctl network add` (also its command line): a `nat` network on an
/// uplink that runs a NAT already, or a network without uplink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct NetworkAdd {
    /// Unique network name.
    pub name: String,
    /// `nat` (the default) or `overlay`.
    #[serde(default)]
    #[arg(long)]
    pub mode: Option<String>,
    /// Overlay only: the VXLAN network identifier.
    #[serde(default)]
    #[arg(long)]
    pub vni: Option<u32>,
    /// Its subnet, e.g. 172.27.0.0/24.
    #[arg(long)]
    pub subnet: String,
    /// The switch's address on it (default: the subnet's first host).
    #[serde(default)]
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// The `[[port]]` it leaves through (default: the only port with an
    /// `ip`, when there is exactly one).
    #[serde(default)]
    #[arg(long)]
    pub uplink: Option<String>,
    /// `tap` (the default) or `veth`: what its endpoints get as eth0
    /// (`[[network]] endpoint_link`).
    #[serde(default)]
    #[arg(long)]
    pub endpoint_link: Option<String>,
}

/// What an attached endpoint got (the reply to `endpoint-add`; the CNI
/// plugin builds its result from it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// Endpoint name.
    pub name: String,
    /// Its network.
    pub network: String,
    /// Its namespace.
    pub netns: String,
    /// Interface name inside the namespace.
    pub ifname: String,
    /// Address.
    pub ip: Ipv4Addr,
    /// Prefix length of the network's subnet.
    pub prefix: u8,
    /// MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Default route via this address, if the network has a gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Interface MTU.
    pub mtu: u32,
}

/// A port mapping (`ctl mapping add|del`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// The endpoint the mapping leads to.
    pub endpoint: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Port on the uplink's address.
    pub host_port: u16,
    /// Port inside the container.
    pub port: u16,
}

/// What a reload changed, one line per item ("endpoint web added").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadSummary {
    /// Items added.
    pub added: Vec<String>,
    /// Items removed.
    pub removed: Vec<String>,
    /// Items changed (removed and added again).
    pub changed: Vec<String>,
}

/// Which frames a trace or capture takes; every given field must match.
/// (Also the filter flags of `ctl trace` and `ctl capture`.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct FrameFilter {
    /// Source or destination MAC.
    #[serde(default)]
    #[arg(long)]
    pub mac: Option<String>,
    /// Source or destination IPv4 address.
    #[serde(default)]
    #[arg(long)]
    pub ip: Option<Ipv4Addr>,
    /// `tcp`, `udp`, `icmp` or `arp`.
    #[serde(default)]
    #[arg(long)]
    pub proto: Option<String>,
    /// Source or destination TCP/UDP port.
    #[serde(default)]
    #[arg(long)]
    pub l4_port: Option<u16>,
}

/// `ctl trace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    /// The input port (for `hex`, required: the frame is injected there).
    #[serde(default)]
    pub port: Option<String>,
    /// Which live frame to trace.
    #[serde(default)]
    pub filter: FrameFilter,
    /// Trace this frame (hex) instead of waiting for a live one.
    #[serde(default)]
    pub hex: Option<String>,
    /// How long to wait for a matching frame.
    #[serde(default = "default_trace_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_trace_timeout_ms() -> u64 {
    10_000
}

/// `ctl capture`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// Port or endpoint name.
    pub port: String,
    /// Stop after this many frames.
    #[serde(default)]
    pub count: Option<u64>,
    /// Which frames.
    #[serde(default)]
    pub filter: FrameFilter,
}
