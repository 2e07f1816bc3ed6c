//! The running daemon as the control socket sees it: the switch, the
//! config in force and the file it came from. Run-time changes (endpoints,
//! mappings, reload) are applied here, one at a time, between bursts of
//! the PMD threads; queries read the switch under the same lock.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Result};

use crate::config::Config;
use crate::control::protocol::{EndpointAdd, EndpointInfo, MappingSpec, ReloadSummary};
use crate::daemon::Switch;

/// The daemon's state behind the control socket.
pub struct Runtime {
    state: Mutex<State>,
}

struct State {
    switch: Switch,
    config: Config,
    path: PathBuf,
}

/// Why a reload was refused; the running config stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new file does not pass `check` (FILE:LINE:COL lines).
    #[error("{0}")]
    Invalid(String),
    /// The new file is valid but could not be applied.
    #[error("{0:#}")]
    Apply(anyhow::Error),
}

impl Runtime {
    /// Wraps a started switch and the config (read from `path`) it runs.
    pub fn new(switch: Switch, config: Config, path: &Path) -> Runtime {
        Runtime {
            state: Mutex::new(State {
                switch,
                config,
                path: path.to_path_buf(),
            }),
        }
    }

    /// Runs `f` on the switch and the config in force.
    pub fn with_switch<R>(&self, f: impl FnOnce(&Switch, &Config) -> R) -> R {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&st.switch, &st.config)
    }

    /// Attaches an endpoint.
    pub fn endpoint_add(&self, _req: &EndpointAdd) -> Result<EndpointInfo> {
        bail!("endpoint add: not implemented yet")
    }

    /// Detaches an endpoint; `Ok(false)` when there was none of that name.
    pub fn endpoint_del(&self, _name: &str) -> Result<bool> {
        bail!("endpoint del: not implemented yet")
    }

    /// Adds a port mapping.
    pub fn mapping_add(&self, _m: &MappingSpec) -> Result<()> {
        bail!("mapping add: not implemented yet")
    }

    /// Removes a port mapping; `Ok(false)` when there was none.
    pub fn mapping_del(&self, _m: &MappingSpec) -> Result<bool> {
        bail!("mapping del: not implemented yet")
    }

    /// Re-reads the config file and applies the difference.
    pub fn reload(&self) -> Result<ReloadSummary, ReloadError> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Err(ReloadError::Apply(anyhow::anyhow!(
            "reload of {}: not implemented yet",
            st.path.display()
        )))
    }

    /// Stops the switch (leaves the cluster, closes ports).
    pub fn stop(self) -> Vec<pmd::thread::ThreadReport> {
        let st = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        st.switch.stop()
    }
}
