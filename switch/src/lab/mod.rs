//! Labs: namespaces for "containers", created and removed around a run,
//! and the traffic helpers that exercise them.

pub mod traffic;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};
use pmd::netns;

use crate::config::{Attach, Config, EndpointMode, EndpointNetns};

/// Namespace names (not paths) the config's endpoints live in, in order:
/// those of switched endpoints, then those of `none` endpoints (`host` and
/// `container:NAME` have none of their own).
pub fn namespaces(cfg: &Config) -> Vec<String> {
    let switched = cfg.endpoints.iter().filter_map(|e| match &e.attach {
        Attach::Netns(ns) => Some(ns),
        Attach::Port(_) | Attach::HostTap(_) => None,
    });
    let none = cfg.endpoint_modes.iter().filter_map(|m| match &m.mode {
        EndpointMode::None(ns) => Some(ns),
        EndpointMode::Host | EndpointMode::Container(_) => None,
    });
    let mut v: Vec<String> = Vec::new();
    for ns in switched.chain(none) {
        if !ns.starts_with('/') && !v.contains(ns) {
            v.push(ns.clone());
        }
    }
    v
}

/// Runs `argv` where endpoint `name` lives (`lab exec`): in its
/// namespace, in the namespace of the endpoint it shares
/// (`container:NAME`), or in podswitch's own (`host`). Returns its exit
/// status.
pub fn exec(cfg: &Config, name: &str, argv: &[String]) -> Result<std::process::ExitStatus> {
    let Some((cmd, args)) = argv.split_first() else {
        anyhow::bail!("lab exec: no command given");
    };
    let run = {
        let (cmd, args) = (cmd.clone(), args.to_vec());
        move || std::process::Command::new(&cmd).args(&args).status()
    };
    let status = match cfg.netns_of(name) {
        Some(EndpointNetns::Host) => run(),
        Some(EndpointNetns::Netns(ns)) => netns::in_netns(&ns, run)?,
        None if cfg.endpoint(name).is_some() => {
            anyhow::bail!("endpoint {name} sits behind a [[port]] or a runtime's TAP: no namespace")
        }
        None => anyhow::bail!("no endpoint {name} in the config"),
    };
    status.with_context(|| format!("running {cmd} for endpoint {name}"))
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

/// Runs `f` on every item on a few threads; returns the items `f`
/// succeeded for, and the errors of the others.
fn each_parallel<T: Clone + Sync + Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<()> + Sync,
) -> (Vec<T>, Vec<anyhow::Error>) {
    let next = AtomicUsize::new(0);
    let done = Mutex::new((Vec::new(), Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..WORKERS.min(items.len()) {
            s.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let r = f(item);
                    let mut done = done.lock().unwrap_or_else(|p| p.into_inner());
                    match r {
                        Ok(()) => done.0.push(item.clone()),
                        Err(e) => done.1.push(e),
                    }
                }
            });
        }
    });
    done.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Every endpoint namespace of the config with its network's gateway.
pub fn gateways(cfg: &Config) -> Vec<(String, Ipv4Addr)> {
    cfg.endpoints
        .iter()
        .filter_map(|e| match &e.attach {
            Attach::Netns(ns) => {
                let gw = cfg.network(&e.network)?.gateway?;
                Some((ns.clone(), gw))
            }
            Attach::Port(_) | Attach::HostTap(_) => None,
        })
        .collect()
}

/// The lab's traffic check: every container pings its gateway (one echo
/// request each, all containers at once). Returns one error per container
/// that got no reply.
pub fn ping_gateways(cfg: &Config) -> Vec<anyhow::Error> {
    let (_, errors) = each_parallel(&gateways(cfg), |(ns, gw)| {
        let r = traffic::ping(ns, *gw, 1)?;
        anyhow::ensure!(
            r.received == 1,
            "netns {ns}: no reply from its gateway {gw}"
        );
        Ok(())
    });
    errors
}

/// The config's namespaces that exist (after `lab down`: none).
pub fn leftovers(cfg: &Config) -> Vec<String> {
    namespaces(cfg)
        .into_iter()
        .filter(|ns| netns::exists(ns))
        .collect()
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
    let (created, errors) = each_parallel(&missing, |ns| Ok(netns::create(ns)?));
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
    let names = leftovers(cfg);
    down_names(&names);
    let _ = std::fs::remove_file(state_file(cfg));
    names
}

/// Deletes the named namespaces, in parallel.
pub fn down_names(names: &[String]) {
    let (_, errors) = each_parallel(names, |ns| Ok(netns::delete(ns)?));
    for e in errors {
        tracing::warn!("{e:#}");
    }
}
