//! `[cluster]`.

use super::*;

pub(super) fn check_cluster(d: &mut Diag, c: &RawCluster) -> ClusterCfg {
    if c.etcd.get_ref().is_empty() {
        d.at(
            c.etcd.span(),
            "etcd needs at least one endpoint URL (like \"http://127.0.0.1:2379\")",
        );
    }
    for u in c.etcd.get_ref() {
        let s = u.get_ref();
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"));
        if rest.unwrap_or_default().is_empty() {
            d.at(
                u.span(),
                format!("etcd endpoint {s:?} is not an http:// or https:// URL"),
            );
        }
    }
    let prefix = match &c.prefix {
        Some(p) if !p.get_ref().starts_with('/') => {
            d.at(
                p.span(),
                format!("prefix {:?} must start with '/'", p.get_ref()),
            );
            String::new()
        }
        Some(p) => p.get_ref().clone(),
        None => "/podswitch".to_string(),
    };
    ClusterCfg {
        etcd: c
            .etcd
            .get_ref()
            .iter()
            .map(|u| u.get_ref().clone())
            .collect(),
        prefix,
        lease_secs: at_least(d, c.lease.as_ref(), "lease", 1, 10),
    }
}
