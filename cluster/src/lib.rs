//! The cluster store: overlay endpoints shared between hosts through etcd.
//! (A crate of its own so that `overlay` stays pure packet logic, without
//! tokio, gRPC or threads.)
//!
//! What it does: [`ClusterClient::start`] runs an etcd client (the
//! `etcd-client` crate, gRPC) on its own OS thread with a small tokio
//! current-thread runtime, never on a PMD thread. That thread
//!
//! - **publishes** this host's local overlay endpoints ([`Published`]), one
//!   key per endpoint, all attached to one lease that it keeps alive (a
//!   keep-alive every `lease_secs / 3`);
//! - **reads** every endpoint under the prefix (a `get` that returns a
//!   revision R) and then **watches** the prefix from R + 1, so no change
//!   between the read and the watch is lost;
//! - **delivers** a full snapshot of the *remote* endpoints (every host's
//!   but this one's, told apart by `host_id`) as a [`ClusterView`] on a
//!   channel each time that set changes, and once after every
//!   (re)synchronisation.
//!
//! What it does not: it does not touch the data path or the VTEP tables
//! (the switch turns a view into [`RemoteEndpoint`]s, compiles new
//! [`VtepTables`](overlay::VtepTables) from static config plus these
//! and swaps its snapshot, as a reload does); no consensus of its own (etcd
//! is the store); no TLS or etcd authentication yet (`http://` endpoints
//! only); no IPv6.
//!
//! # Why a lease, and why get-then-watch
//!
//! A host that stops cleanly revokes its lease ([`ClusterClient::stop`]):
//! etcd deletes its keys at once and every other host's watch sees the
//! deletes. A host that dies stops sending keep-alives, and etcd deletes
//! its keys when the lease runs out (`lease_secs`, plus up to about half a
//! second of etcd's expiry check). Either way no host has to decide that
//! another one is dead: etcd does, once, for all of them.
//!
//! A watch alone would miss what was there before it started, and a `get`
//! alone is a single moment; a `get` and then a watch from the `get`'s
//! revision + 1 is the exact history. If etcd has compacted that revision
//! away (a watch cancelled with a compact revision), the client does a
//! fresh `get` and watch, which is a resynchronisation.
//!
//! # etcd unreachable
//!
//! When etcd stops answering (a stream breaks, a request times out, the
//! keep-alive goes unanswered for a lease time), the client logs it,
//! delivers nothing (so the switch keeps its last view and keeps
//! forwarding), and retries with a backoff from 100 ms doubling up to 2 s.
//! On reconnect it keeps its lease if etcd still has it (an etcd restart on
//! the same data dir keeps leases and renews their time), otherwise grants
//! a new one; re-publishes its endpoints, re-reads the prefix, re-watches,
//! and delivers a fresh view.
//!
//! # Key layout and value format
//!
//! One key per local endpoint:
//!
//! ```text
//! {prefix}/endpoints/{network}/{ip}
//! /podswitch/endpoints/front/172.30.0.5
//! ```
//!
//! The value is a JSON object (so `etcdctl get --prefix /podswitch/` is
//! readable and other tools can write entries):
//!
//! ```json
//! {"host":"host-a","vni":4242,"mac":"02:00:ac:1e:00:05","vtep":"10.99.0.2"}
//! ```
//!
//! `host` is the publisher's host id (unique per host: the hostname by
//! default in the switch), `vni` the network's VNI, `mac` the endpoint's
//! MAC, `vtep` the underlay address of the publisher. Unknown fields are
//! ignored; a value that does not parse is skipped with a warning. The
//! network name and endpoint IP come from the key; a network name may not
//! contain `/`.
//!
//! One IP on one network is one key: two hosts that publish the same IP
//! (a configuration error) overwrite each other and the last writer wins;
//! the client logs the conflict. If a key this host publishes is deleted by
//! someone else while the client runs, it is put back.

mod worker;

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{Receiver, RecvTimeoutError};
use pmd::wire::MacAddr;

use overlay::RemoteEndpoint;

/// The smallest lease accepted, seconds (etcd's own minimum TTL is about
/// 1.5 s with default timings).
pub const MIN_LEASE_SECS: u32 = 2;

/// How long [`ClusterClient::stop`] waits for the client thread, at most.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Views kept waiting on the channel at most; older ones are dropped first
/// (each view is a full snapshot, so only the newest matters).
const VIEW_BACKLOG: usize = 4;

/// What the client needs to know; the switch fills it from `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// etcd endpoints, `http://host:port` (or `host:port`).
    pub endpoints: Vec<String>,
    /// Key prefix, e.g. `/podswitch` (a trailing `/` is ignored).
    pub prefix: String,
    /// Lease of this host's keys, seconds (at least [`MIN_LEASE_SECS`]).
    pub lease_secs: u32,
    /// This host's id, unique in the cluster: entries with this id are
    /// this host's and never appear in a [`ClusterView`].
    pub host_id: String,
}

/// One local endpoint this host publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The overlay network's name (no `/`).
    pub network: String,
    /// The network's VNI.
    pub vni: u32,
    /// The endpoint's IP.
    pub ip: Ipv4Addr,
    /// The endpoint's MAC.
    pub mac: MacAddr,
    /// This host's VTEP address (the uplink's `ip`).
    pub vtep: Ipv4Addr,
}

/// One endpoint of another host, as read from the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RemoteRecord {
    /// The overlay network's name.
    pub network: String,
    /// The network's VNI.
    pub vni: u32,
    /// The endpoint's IP.
    pub ip: Ipv4Addr,
    /// The endpoint's MAC.
    pub mac: MacAddr,
    /// The VTEP of the host it lives on.
    pub vtep: Ipv4Addr,
    /// The id of the host that published it.
    pub host: String,
}

impl RemoteRecord {
    /// The record as the VTEP tables take it.
    pub fn to_remote_endpoint(&self) -> RemoteEndpoint {
        RemoteEndpoint {
            vni: self.vni,
            ip: self.ip,
            mac: self.mac,
            vtep: self.vtep,
        }
    }
}

/// Every remote endpoint known to the store at one revision: a full
/// snapshot, not a delta. The switch replaces its cluster-learned remote
/// endpoints with these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// Remote endpoints sorted by network, then IP; none of this host's.
    pub endpoints: Vec<RemoteRecord>,
    /// The etcd revision this view reflects.
    pub revision: i64,
}

impl ClusterView {
    /// The endpoints as the VTEP tables take them.
    pub fn remote_endpoints(&self) -> Vec<RemoteEndpoint> {
        self.endpoints
            .iter()
            .map(RemoteRecord::to_remote_endpoint)
            .collect()
    }
}

/// Why the cluster client could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `[cluster] etcd = []`.
    #[error("[cluster] etcd lists no endpoints: give at least one etcd URL, e.g. etcd = [\"http://127.0.0.1:2379\"]")]
    NoEndpoints,
    /// An endpoint the etcd client refuses.
    #[error("[cluster] etcd endpoint {endpoint:?} is not usable ({reason}): use http://HOST:PORT (TLS is not supported yet)")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What the etcd client said.
        reason: String,
    },
    /// A prefix that is empty, relative or has an empty segment.
    #[error("[cluster] prefix {0:?} is not a key prefix: it must start with '/' and have no empty segment, e.g. \"/podswitch\"")]
    BadPrefix(String),
    /// A lease too short for etcd.
    #[error("[cluster] lease = {0} is too short: use at least {MIN_LEASE_SECS} seconds (10 is the default)")]
    LeaseTooShort(u32),
    /// No host id.
    #[error(
        "the cluster host id is empty: every host needs a unique id (the hostname by default)"
    )]
    EmptyHostId,
    /// A network name that cannot be part of a key.
    #[error(
        "overlay network name {0:?} cannot be published: it must be non-empty and contain no '/'"
    )]
    BadNetworkName(String),
    /// A VNI above 24 bits.
    #[error(
        "VNI {vni} of network {network:?} is out of range (VXLAN VNIs are 24 bits: 0..=16777215)"
    )]
    BadVni {
        /// The network.
        network: String,
        /// The VNI.
        vni: u32,
    },
    /// Two local endpoints with one key.
    #[error("endpoint {ip} is published twice on network {network:?}: each IP of a network must be unique")]
    DuplicateLocal {
        /// The network.
        network: String,
        /// The IP.
        ip: Ipv4Addr,
    },
    /// The thread or its runtime could not be created.
    #[error("could not start the cluster client thread: {0}")]
    Thread(std::io::Error),
    /// The client thread has ended (stopped, or it failed).
    #[error("the cluster client has stopped; start a new one")]
    Stopped,
    /// The lease could not be revoked on stop.
    #[error("could not revoke this host's lease on stop ({0}): its endpoints stay in etcd until the lease expires")]
    RevokeFailed(String),
    /// The thread did not end in time.
    #[error("the cluster client thread did not stop within {STOP_TIMEOUT:?}; it is left to finish on its own")]
    StopTimedOut,
}

/// What the caller asks of the thread.
#[derive(Debug)]
enum Stop {
    /// Revoke the lease, then end.
    Revoke,
    /// End without revoking (a crash, for tests).
    Abandon,
}

/// The running cluster client: owns its thread; stop it with
/// [`ClusterClient::stop`] (dropping it stops it too, the same way).
pub struct ClusterClient {
    views: Receiver<ClusterView>,
    updates: tokio::sync::mpsc::UnboundedSender<Vec<Published>>,
    stop: Option<tokio::sync::oneshot::Sender<Stop>>,
    /// The thread's result, sent as it ends.
    done: Receiver<Result<(), ClusterError>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterClient")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl ClusterClient {
    /// Checks the settings and the local endpoints, then starts the client
    /// thread. It does not wait for etcd: if etcd is unreachable, the
    /// client keeps retrying in the background and the first view comes
    /// when it answers.
    pub fn start(
        cfg: ClusterSettings,
        local: Vec<Published>,
    ) -> Result<ClusterClient, ClusterError> {
        let cfg = check_settings(cfg)?;
        check_local(&local)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClusterError::Thread)?;
        // The etcd client connects lazily: this only checks the URLs.
        for ep in &cfg.endpoints {
            runtime
                .block_on(etcd_client::Client::connect([ep], None))
                .map_err(|e| ClusterError::BadEndpoint {
                    endpoint: ep.clone(),
                    reason: e.to_string(),
                })?;
        }
        let (view_tx, views) = crossbeam::channel::unbounded();
        let (updates, updates_rx) = tokio::sync::mpsc::unbounded_channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let (done_tx, done) = crossbeam::channel::bounded(1);
        let sink = worker::ViewSink::new(view_tx, views.clone(), VIEW_BACKLOG);
        let thread = std::thread::Builder::new()
            .name("podswitch-cluster".into())
            .spawn(move || {
                let mut w = worker::Worker::new(cfg, local, sink);
                let result = runtime.block_on(w.run(updates_rx, stop_rx));
                let _ = done_tx.send(result);
            })
            .map_err(ClusterError::Thread)?;
        Ok(ClusterClient {
            views,
            updates,
            stop: Some(stop),
            done,
            thread: Some(thread),
        })
    }

    /// The views, newest last. Each is a full snapshot; a consumer that
    /// falls behind may drain with `try_iter().last()`. At most a few are
    /// kept waiting: older ones are dropped first.
    pub fn views(&self) -> &Receiver<ClusterView> {
        &self.views
    }

    /// Replaces this host's published endpoints (a reload): keys no longer
    /// local are deleted, new or changed ones are put. Applied at once if
    /// etcd is reachable, else at the next reconnect.
    pub fn update_local(&self, local: Vec<Published>) -> Result<(), ClusterError> {
        check_local(&local)?;
        self.updates.send(local).map_err(|_| ClusterError::Stopped)
    }

    /// Stops the client: revokes the lease (other hosts drop this host's
    /// endpoints at once) and ends the thread, within [`STOP_TIMEOUT`]
    /// even if etcd is gone. An error says the lease could not be revoked
    /// (the endpoints then go when it expires) or the thread was left
    /// behind; either way the client is stopped.
    pub fn stop(mut self) -> Result<(), ClusterError> {
        self.shutdown(Stop::Revoke)
    }

    /// Ends the thread without revoking the lease, as a crash would: this
    /// host's endpoints stay until the lease expires. For tests of lease
    /// expiry; a real shutdown uses [`ClusterClient::stop`].
    pub fn abandon(mut self) {
        let _ = self.shutdown(Stop::Abandon);
    }

    fn shutdown(&mut self, how: Stop) -> Result<(), ClusterError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(how);
        }
        match self.done.recv_timeout(STOP_TIMEOUT) {
            Ok(result) => {
                let _ = thread.join();
                result
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
                Ok(())
            }
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!("cluster client thread did not stop in time; leaving it");
                Err(ClusterError::StopTimedOut)
            }
        }
    }
}

impl Drop for ClusterClient {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown(Stop::Revoke) {
            tracing::warn!("cluster client: {e}");
        }
    }
}

/// The prefix without a trailing `/`, checked.
fn check_settings(mut cfg: ClusterSettings) -> Result<ClusterSettings, ClusterError> {
    if cfg.endpoints.is_empty() {
        return Err(ClusterError::NoEndpoints);
    }
    if cfg.lease_secs < MIN_LEASE_SECS {
        return Err(ClusterError::LeaseTooShort(cfg.lease_secs));
    }
    if cfg.host_id.trim().is_empty() {
        return Err(ClusterError::EmptyHostId);
    }
    let trimmed = cfg.prefix.trim_end_matches('/');
    if !trimmed.starts_with('/') || trimmed[1..].split('/').any(str::is_empty) {
        return Err(ClusterError::BadPrefix(cfg.prefix));
    }
    cfg.prefix = trimmed.to_string();
    Ok(cfg)
}

fn check_local(local: &[Published]) -> Result<(), ClusterError> {
    let mut seen = BTreeSet::new();
    for p in local {
        if p.network.is_empty() || p.network.contains('/') {
            return Err(ClusterError::BadNetworkName(p.network.clone()));
        }
        if p.vni > overlay::vxlan::VNI_MAX {
            return Err(ClusterError::BadVni {
                network: p.network.clone(),
                vni: p.vni,
            });
        }
        if !seen.insert((p.network.as_str(), p.ip)) {
            return Err(ClusterError::DuplicateLocal {
                network: p.network.clone(),
                ip: p.ip,
            });
        }
    }
    Ok(())
}

/// The key of one endpoint: `{prefix}/endpoints/{network}/{ip}`.
pub fn endpoint_key(prefix: &str, network: &str, ip: Ipv4Addr) -> String {
    format!("{}/endpoints/{network}/{ip}", prefix.trim_end_matches('/'))
}

/// The value stored for one endpoint (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Value {
    host: String,
    vni: u32,
    mac: String,
    vtep: Ipv4Addr,
}

/// The JSON value of one local endpoint.
pub fn encode_value(host_id: &str, p: &Published) -> String {
    let v = Value {
        host: host_id.to_string(),
        vni: p.vni,
        mac: p.mac.to_string(),
        vtep: p.vtep,
    };
    // Serialising a struct of strings and numbers cannot fail.
    serde_json::to_string(&v).unwrap_or_default()
}

/// Parses one key and value under `{prefix}/endpoints/` into a record, or
/// says why it cannot.
pub fn decode_entry(prefix: &str, key: &[u8], value: &[u8]) -> Result<RemoteRecord, String> {
    let key = std::str::from_utf8(key).map_err(|_| "key is not UTF-8".to_string())?;
    let base = format!("{}/endpoints/", prefix.trim_end_matches('/'));
    let rest = key
        .strip_prefix(&base)
        .ok_or_else(|| format!("key {key:?} is not under {base:?}"))?;
    let (network, ip) = rest
        .split_once('/')
        .ok_or_else(|| format!("key {key:?} is not {base}NETWORK/IP"))?;
    if network.is_empty() {
        return Err(format!("key {key:?} has an empty network name"));
    }
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("key {key:?} does not end in an IPv4 address"))?;
    let v: Value = serde_json::from_slice(value).map_err(|e| format!("value of {key:?}: {e}"))?;
    let mac: MacAddr = v
        .mac
        .parse()
        .map_err(|_| format!("value of {key:?}: bad mac {:?}", v.mac))?;
    if v.vni > overlay::vxlan::VNI_MAX {
        return Err(format!("value of {key:?}: VNI {} out of range", v.vni));
    }
    Ok(RemoteRecord {
        network: network.to_string(),
        vni: v.vni,
        ip,
        mac,
        vtep: v.vtep,
        host: v.host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        ClusterSettings {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/podswitch/".into(),
            lease_secs: 10,
            host_id: "a".into(),
        }
    }

    fn ep(net: &str, ip: [u8; 4]) -> Published {
        Published {
            network: net.into(),
            vni: 42,
            ip: ip.into(),
            mac: MacAddr([2, 0, 0, 0, 0, ip[3]]),
            vtep: Ipv4Addr::new(10, 99, 0, 2),
        }
    }

    #[test]
    fn a_value_round_trips_through_its_key_and_json() {
        let p = ep("front", [172, 30, 0, 5]);
        let key = endpoint_key("/podswitch", &p.network, p.ip);
        assert_eq!(key, "/podswitch/endpoints/front/172.30.0.5");
        let value = encode_value("host-a", &p);
        assert_eq!(
            value,
            r#"{"host":"host-a","vni":42,"mac":"02:00:00:00:00:05","vtep":"10.99.0.2"}"#
        );
        let r = decode_entry("/podswitch", key.as_bytes(), value.as_bytes()).unwrap();
        assert_eq!(
            r,
            RemoteRecord {
                network: "front".into(),
                vni: 42,
                ip: p.ip,
                mac: p.mac,
                vtep: p.vtep,
                host: "host-a".into()
            }
        );
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        let ok = br#"{"host":"b","vni":1,"mac":"02:00:00:00:00:01","vtep":"10.0.0.1"}"#;
        for (key, value) in [
            ("/podswitch/endpoints/front", &ok[..]),
            ("/podswitch/endpoints/front/notanip", &ok[..]),
            ("/podswitch/endpoints//10.0.0.1", &ok[..]),
            ("/other/endpoints/front/10.0.0.1", &ok[..]),
            ("/podswitch/endpoints/front/10.0.0.1", b"{}"),
            (
                "/podswitch/endpoints/front/10.0.0.1",
                br#"{"host":"b","vni":1,"mac":"zz","vtep":"10.0.0.1"}"#,
            ),
            (
                "/podswitch/endpoints/front/10.0.0.1",
                br#"{"host":"b","vni":16777216,"mac":"02:00:00:00:00:01","vtep":"10.0.0.1"}"#,
            ),
        ] {
            assert!(
                decode_entry("/podswitch", key.as_bytes(), value).is_err(),
                "{key} {:?}",
                std::str::from_utf8(value)
            );
        }
    }

    #[test]
    fn settings_and_local_endpoints_are_checked() {
        assert_eq!(check_settings(settings()).unwrap().prefix, "/podswitch");
        for bad in ["", "podswitch", "/", "/a//b"] {
            let mut s = settings();
            s.prefix = bad.into();
            assert!(
                matches!(check_settings(s), Err(ClusterError::BadPrefix(_))),
                "{bad}"
            );
        }
        let mut s = settings();
        s.lease_secs = 1;
        assert!(matches!(
            check_settings(s),
            Err(ClusterError::LeaseTooShort(1))
        ));
        let mut s = settings();
        s.endpoints.clear();
        assert!(matches!(check_settings(s), Err(ClusterError::NoEndpoints)));
        let mut s = settings();
        s.host_id = " ".into();
        assert!(matches!(check_settings(s), Err(ClusterError::EmptyHostId)));

        assert!(check_local(&[ep("a", [1, 1, 1, 1]), ep("b", [1, 1, 1, 1])]).is_ok());
        assert!(matches!(
            check_local(&[ep("a", [1, 1, 1, 1]), ep("a", [1, 1, 1, 1])]),
            Err(ClusterError::DuplicateLocal { .. })
        ));
        assert!(matches!(
            check_local(&[ep("a/b", [1, 1, 1, 1])]),
            Err(ClusterError::BadNetworkName(_))
        ));
    }

    #[test]
    fn a_bad_endpoint_url_is_refused_at_start() {
        let mut s = settings();
        s.endpoints = vec!["https://127.0.0.1:2379".into()];
        let e = ClusterClient::start(s, vec![]).unwrap_err();
        assert!(matches!(e, ClusterError::BadEndpoint { .. }), "{e}");
    }
}
