//! What a test's peers look like: they keep the defaults users have.

use std::process::Command;

/// True when `dev` inside the namespace `netns` (an `ip netns` name)
/// checksums TCP/UDP by offload, veth's default, as `ethtool -k` reports
/// it. Tests assert it of the peers they build, so a peer that was quietly
/// reconfigured to suit podswitch fails the test.
pub fn tx_checksum_offload_on(netns: &str, dev: &str) -> bool {
    feature_on(netns, dev, "tx-checksumming")
}

/// True when `dev` inside `netns` segments TCP by offload (TSO), veth's
/// default. Any XDP program on the other end of a veth turns it off, so a
/// test asserts it of a peer while podswitch runs to show the switch left
/// the peer's kernel sending 64 KB segments.
pub fn tso_on(netns: &str, dev: &str) -> bool {
    feature_on(netns, dev, "tcp-segmentation-offload")
}

fn feature_on(netns: &str, dev: &str, feature: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "ethtool", "-k", dev])
        .output()
        .expect("ip netns exec ... ethtool -k");
    String::from_utf8_lossy(&out.stdout).contains(&format!("{feature}: on"))
}
