//! Endpoint names of CNI attachments: derived from CNI_CONTAINERID and
//! CNI_IFNAME alone, so DEL, CHECK and GC find what ADD made without any
//! state of their own.

/// Every attachment's endpoint name starts with this; GC touches no other.
pub const PREFIX: &str = "cni-";

/// `cni-<first 12 of the id>-<16 hex of a hash of id and ifname>`: at
/// most 33 characters (the daemon allows 64), readable in `ctl show`, and
/// distinct for two interfaces of one container.
pub fn endpoint_name(container_id: &str, ifname: &str) -> String {
    let short: String = container_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!("{PREFIX}{short}-{:016x}", fnv1a(container_id, ifname))
}

/// FNV-1a, because the name must stay the same across plugin builds
/// (std's hasher makes no such promise).
fn fnv1a(container_id: &str, ifname: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes().chain([0]).chain(ifname.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_short_and_differ_per_interface() {
        let id = "f".repeat(64);
        let a = endpoint_name(&id, "eth0");
        assert_eq!(a, endpoint_name(&id, "eth0"));
        assert_ne!(a, endpoint_name(&id, "eth1"));
        assert!(a.starts_with("cni-ffffffffffff-") && a.len() <= 64, "{a}");
        // A fixed value: a changed hash would orphan running attachments.
        assert_eq!(endpoint_name("abc", "eth0"), "cni-abc-540c4ae81be81b20");
    }
}
