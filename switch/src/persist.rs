//! What `ctl` (and the CNI and Docker plugins through it) attached at run
//! time, kept in a file so that a restarted podswitch attaches it again.
//!
//! A runtime does not repeat its requests when podswitch restarts: podman
//! and kubelet called ADD once, and a container whose TAP closed with the
//! old process would stay cut off. So after every run-time change the
//! daemon writes the requests that rebuild its run-time part (networks,
//! then endpoints with the address and MAC they got, then mappings), and
//! replays them on start. The file is written whole to a temporary name
//! and renamed, so a crash leaves the old state or the new one, never a
//! torn one. Its default place is next to the control socket, in `/run`:
//! a reboot, which takes the containers' namespaces with it, also takes the
//! state.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::control::protocol::{EndpointAdd, MappingSpec, NetworkAdd};

/// The run-time part of the config in force, as the requests that rebuild
/// it, in the order they must be replayed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    /// Networks `ctl network add` created.
    #[serde(default)]
    pub networks: Vec<NetworkAdd>,
    /// Endpoints attached at run time, with the address, MAC and
    /// interface name they got.
    #[serde(default)]
    pub endpoints: Vec<EndpointAdd>,
    /// Mappings added at run time.
    #[serde(default)]
    pub mappings: Vec<MappingSpec>,
}

impl Saved {
    /// True when nothing was added at run time.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.endpoints.is_empty() && self.mappings.is_empty()
    }
}

/// Writes `saved` to `path` atomically (mode 0600: it names namespaces
/// and addresses); an empty state removes the file.
pub fn save(path: &Path, saved: &Saved) -> Result<()> {
    if saved.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        };
    }
    let tmp = path.with_extension("state.tmp");
    let text = serde_json::to_vec_pretty(saved).context("encoding the run-time state")?;
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("writing {}", path.display()))
}

/// Reads the state at `path`: `None` when there is none.
pub fn load(path: &Path) -> Result<Option<Saved>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .with_context(|| format!("{} is not a podswitch state file", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str) -> EndpointAdd {
        EndpointAdd {
            name: name.into(),
            network: "front".into(),
            netns: "/run/netns/c1".into(),
            ip: Some("10.0.0.5".parse().unwrap()),
            mac: Some("02:00:0a:00:00:05".into()),
            ifname: Some("eth0".into()),
        }
    }

    /// A path no other test uses.
    fn scratch(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("podswitch-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_saved_state_reads_back_the_same_and_an_empty_one_removes_the_file() {
        let path = scratch("p.state");
        assert_eq!(load(&path).unwrap(), None, "no file, no state");
        let saved = Saved {
            endpoints: vec![endpoint("web")],
            mappings: vec![MappingSpec {
                endpoint: "web".into(),
                protocol: "tcp".into(),
                host_port: 8080,
                port: 80,
            }],
            ..Saved::default()
        };
        save(&path, &saved).unwrap();
        assert_eq!(load(&path).unwrap(), Some(saved));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only root reads it");
        save(&path, &Saved::default()).unwrap();
        assert!(!path.exists(), "nothing added, no file");
    }

    #[test]
    fn a_file_that_is_not_a_state_is_an_error_naming_it() {
        let path = scratch("bad.state");
        std::fs::write(&path, "{\"endpoints\": 3}").unwrap();
        let err = load(&path).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(
            format!("{err:#}").contains("bad.state is not a podswitch state file"),
            "{err:#}"
        );
    }
}
