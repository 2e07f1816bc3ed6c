//! Labs: namespaces for "containers", created and removed around a run,
//! and the traffic helpers that exercise them.

pub mod traffic;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, Result};
use pmd::netns;

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

/// Namespaces created or removed at once. Creating one costs the kernel
/// milliseconds of work outside any global lock (per-namespace sysctls,
/// loopback), so a few threads overlap it; more would only queue.
const WORKERS: usize = 8;

/// Runs `f` on every name on a few threads; returns the names `f`
/// succeeded for, and the errors of the others.
fn each_parallel(
    names: &[String],
    f: impl Fn(&str) -> std::io::Result<()> + Sync,
) -> (Vec<String>, Vec<anyhow::Error>) {
    let next = AtomicUsize::new(0);
    let done = Mutex::new((Vec::new(), Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..WORKERS.min(names.len()) {
            s.spawn(|| {
                while let Some(name) = names.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let r = f(name);
                    let mut done = done.lock().unwrap_or_else(|p| p.into_inner());
                    match r {
                        Ok(()) => done.0.push(name.clone()),
                        Err(e) => done.1.push(anyhow!(e)),
                    }
                }
            });
        }
    });
    done.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Creates the config's namespaces that do not exist yet (in parallel,
/// with loopback up); returns the ones the lab owns (created now, or by a
/// killed earlier run), to remove on exit with [`finish`].
pub fn up(cfg: &Config) -> Result<Vec<String>> {
    let state = state_file(cfg);
    let wanted = namespaces(cfg);
    let mut owned: Vec<String> = std::fs::read_to_string(&state)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default();
    owned.retain(|ns| wanted.contains(ns));
    let missing: Vec<String> = wanted.into_iter().filter(|ns| !netns::exists(ns)).collect();
    let (created, errors) = each_parallel(&missing, netns::create);
    owned.extend(created);
    if let Some(e) = errors.into_iter().next() {
        down_names(&owned);
        return Err(e);
    }
    std::fs::write(&state, owned.join("\n"))?;
    Ok(owned)
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
        .filter(|ns| netns::exists(ns))
        .collect();
    down_names(&names);
    let _ = std::fs::remove_file(state_file(cfg));
    names
}

/// Deletes the named namespaces, in parallel.
pub fn down_names(names: &[String]) {
    let (_, errors) = each_parallel(names, netns::delete);
    for e in errors {
        tracing::warn!("{e:#}");
    }
}
