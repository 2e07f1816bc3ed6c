//! Labs: namespaces for "containers", created and removed around a run,
//! and the traffic helpers that exercise them.

pub mod traffic;

use std::path::Path;

use anyhow::Result;
use pmd::netns::ip;

use crate::config::{Attach, Config};

/// Namespace names (not paths) the config's endpoints live in, in order.
pub fn namespaces(cfg: &Config) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for e in &cfg.endpoints {
        if let Attach::Netns(ns) = &e.attach {
            if !ns.starts_with('/') && !v.contains(ns) {
                v.push(ns.clone());
            }
        }
    }
    v
}

/// Where a lab records the namespaces it created, next to the control
/// socket, so a run after a SIGKILL knows they are the lab's to remove.
fn state_file(cfg: &Config) -> std::path::PathBuf {
    let mut p = cfg.switch.control.clone().into_os_string();
    p.push(".lab");
    p.into()
}

/// Creates the config's namespaces that do not exist yet; returns the ones
/// the lab owns (created now, or by a killed earlier run), to remove on
/// exit with [`finish`].
pub fn up(cfg: &Config) -> Result<Vec<String>> {
    let state = state_file(cfg);
    let mut created: Vec<String> = std::fs::read_to_string(&state)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default();
    created.retain(|ns| namespaces(cfg).contains(ns));
    for ns in namespaces(cfg) {
        if Path::new("/run/netns").join(&ns).exists() {
            continue;
        }
        if let Err(e) = ip(&["netns", "add", &ns]) {
            down_names(&created);
            return Err(e.into());
        }
        let _ = ip(&["-n", &ns, "link", "set", "lo", "up"]);
        created.push(ns);
    }
    std::fs::write(&state, created.join("\n"))?;
    Ok(created)
}

/// Removes the namespaces a lab owns and its state file.
pub fn finish(cfg: &Config, owned: &[String]) {
    down_names(owned);
    let _ = std::fs::remove_file(state_file(cfg));
}

/// Removes the config's namespaces (after a lab that was killed).
pub fn down(cfg: &Config) -> Vec<String> {
    let names: Vec<String> = namespaces(cfg)
        .into_iter()
        .filter(|ns| Path::new("/run/netns").join(ns).exists())
        .collect();
    down_names(&names);
    let _ = std::fs::remove_file(state_file(cfg));
    names
}

/// Deletes the named namespaces.
pub fn down_names(names: &[String]) {
    for ns in names {
        if let Err(e) = ip(&["netns", "del", ns]) {
            tracing::warn!("removing netns {ns}: {e}");
        }
    }
}
