//! An endpoint's name servers (a network's `dns`, HNS `DNSServerList`):
//! `/etc/netns/NETNS/resolv.conf`, the file `ip netns exec NETNS` binds
//! over `/etc/resolv.conf`, written while the endpoint is attached.
//!
//! Only an endpoint attached by an `ip netns` name has such a file; one in
//! a namespace given by path belongs to a runtime that writes its own.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, Result};

/// The file written for one endpoint; removed on drop (with its
/// directory, when this made it and it is empty).
#[derive(Debug)]
pub struct ResolvConf {
    file: PathBuf,
    made_dir: bool,
}

impl ResolvConf {
    /// Writes `servers` for namespace `netns`; `None` when there are none
    /// or the namespace is a path.
    pub fn write(netns: &str, servers: &[Ipv4Addr]) -> Result<Option<ResolvConf>> {
        if servers.is_empty() || netns.starts_with('/') {
            return Ok(None);
        }
        let dir = PathBuf::from("/etc/netns").join(netns);
        let made_dir = !dir.exists();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let file = dir.join("resolv.conf");
        let text: String = servers
            .iter()
            .map(|s| format!("nameserver {s}\n"))
            .collect();
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
        Ok(Some(ResolvConf { file, made_dir }))
    }
}

impl Drop for ResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        if self.made_dir {
            if let Some(dir) = self.file.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}
