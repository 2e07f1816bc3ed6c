//! The client thread's async side: one session per connection to etcd,
//! retried with backoff until a stop (see the parent module's doc).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use etcd_client::{Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions};
use tokio::sync::{mpsc, oneshot};

use super::{
    decode_entry, encode_value, endpoint_key, ClusterError, ClusterSettings, ClusterView,
    Published, RemoteRecord, Stop,
};

/// One etcd request (or stream setup) at most.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Connecting to an endpoint at most.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The revoke on stop at most (within the caller's 3 s).
const REVOKE_TIMEOUT: Duration = Duration::from_millis(1500);
/// First and largest retry delay.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Why a session ended.
#[derive(Debug)]
enum SessionError {
    Etcd(&'static str, etcd_client::Error),
    Timeout(&'static str),
    Lost(String),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Etcd(what, e) => write!(f, "{what}: {e}"),
            SessionError::Timeout(what) => {
                write!(f, "{what}: no answer within {REQUEST_TIMEOUT:?}")
            }
            SessionError::Lost(why) => f.write_str(why),
        }
    }
}

/// Runs one etcd request with [`REQUEST_TIMEOUT`].
async fn timed<T>(
    what: &'static str,
    fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, SessionError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(SessionError::Etcd(what, e)),
        Err(_) => Err(SessionError::Timeout(what)),
    }
}

/// Sends views, keeping at most a few waiting (the newest).
pub(super) struct ViewSink {
    tx: Sender<ClusterView>,
    /// A receiver of the same channel, to drop stale views.
    rx: Receiver<ClusterView>,
    backlog: usize,
    last: Option<Vec<RemoteRecord>>,
}

impl ViewSink {
    pub(super) fn new(tx: Sender<ClusterView>, rx: Receiver<ClusterView>, backlog: usize) -> Self {
        ViewSink {
            tx,
            rx,
            backlog: backlog.max(1),
            last: None,
        }
    }

    /// Sends the view if it differs from the last one sent, or always when
    /// `force` (after a resynchronisation).
    fn send(&mut self, remote: &BTreeMap<String, RemoteRecord>, revision: i64, force: bool) {
        let mut endpoints: Vec<RemoteRecord> = remote.values().cloned().collect();
        endpoints.sort();
        if !force && self.last.as_ref() == Some(&endpoints) {
            return;
        }
        self.last = Some(endpoints.clone());
        while self.rx.len() >= self.backlog {
            let _ = self.rx.try_recv();
        }
        let _ = self.tx.send(ClusterView {
            endpoints,
            revision,
        });
    }
}

pub(super) struct Worker {
    cfg: ClusterSettings,
    local: Vec<Published>,
    /// The lease our keys are attached to, if one was granted.
    lease: Option<i64>,
    /// The last client, for the revoke on stop.
    client: Option<Client>,
    sink: ViewSink,
    /// The session reached its watch (for the backoff reset).
    synced: bool,
    /// A session failed since the last synchronisation (for the log).
    outage: bool,
}

enum Outcome {
    Stop(Stop),
    Ended(SessionError),
}

impl Worker {
    pub(super) fn new(cfg: ClusterSettings, local: Vec<Published>, sink: ViewSink) -> Worker {
        Worker {
            cfg,
            local,
            lease: None,
            client: None,
            sink,
            synced: false,
            outage: false,
        }
    }

    fn prefix(&self) -> String {
        format!("{}/endpoints/", self.cfg.prefix)
    }

    /// Sessions until a stop; the result is the stop's.
    pub(super) async fn run(
        &mut self,
        mut updates: mpsc::UnboundedReceiver<Vec<Published>>,
        mut stop: oneshot::Receiver<Stop>,
    ) -> Result<(), ClusterError> {
        let mut backoff = BACKOFF_MIN;
        let mut failing = false;
        loop {
            self.synced = false;
            let outcome = tokio::select! {
                biased;
                s = &mut stop => Outcome::Stop(s.unwrap_or(Stop::Revoke)),
                e = self.session(&mut updates) => Outcome::Ended(e),
            };
            match outcome {
                Outcome::Stop(how) => return self.finish(how).await,
                Outcome::Ended(e) => {
                    if self.synced {
                        backoff = BACKOFF_MIN;
                        failing = false;
                    }
                    // Once per outage at warn level, each retry at debug.
                    if failing {
                        tracing::debug!(
                            "cluster: etcd still unreachable: {e}; retrying in {backoff:?}"
                        );
                    } else {
                        tracing::warn!(
                            "cluster: etcd {:?}: {e}; keeping the last view, retrying every {BACKOFF_MAX:?} at most",
                            self.cfg.endpoints
                        );
                    }
                    failing = true;
                    self.outage = true;
                }
            }
            tokio::select! {
                biased;
                s = &mut stop => return self.finish(s.unwrap_or(Stop::Revoke)).await,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn finish(&mut self, how: Stop) -> Result<(), ClusterError> {
        let (Stop::Revoke, Some(mut client), Some(lease)) = (how, self.client.take(), self.lease)
        else {
            return Ok(());
        };
        match tokio::time::timeout(REVOKE_TIMEOUT, client.lease_revoke(lease)).await {
            Ok(Ok(_)) => {
                tracing::info!("cluster: lease {lease:x} revoked");
                Ok(())
            }
            Ok(Err(e)) => Err(ClusterError::RevokeFailed(e.to_string())),
            Err(_) => Err(ClusterError::RevokeFailed(format!(
                "no answer within {REVOKE_TIMEOUT:?}"
            ))),
        }
    }

    /// One connection's life: lease, publish, read, watch, until an error.
    async fn session(
        &mut self,
        updates: &mut mpsc::UnboundedReceiver<Vec<Published>>,
    ) -> SessionError {
        match self.session_inner(updates).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn session_inner(
        &mut self,
        updates: &mut mpsc::UnboundedReceiver<Vec<Published>>,
    ) -> Result<std::convert::Infallible, SessionError> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(1));
        let mut client = timed("connect", Client::connect(&self.cfg.endpoints, Some(opts))).await?;
        self.client = Some(client.clone());
        while let Ok(local) = updates.try_recv() {
            self.local = local;
        }

        // The lease: keep ours if etcd still has it, else a new one.
        let ttl = i64::from(self.cfg.lease_secs);
        let kept = match self.lease {
            Some(id) => {
                timed("lease check", client.lease_time_to_live(id, None))
                    .await?
                    .ttl()
                    > 0
            }
            None => false,
        };
        let lease = if kept {
            self.lease.unwrap_or_default()
        } else {
            let id = timed("lease grant", client.lease_grant(ttl, None))
                .await?
                .id();
            tracing::info!("cluster: lease {id:x} granted ({ttl} s)");
            id
        };
        self.lease = Some(lease);

        // Publish (again: a lease kept across an etcd restart keeps its
        // keys, but keys may have been deleted meanwhile).
        let mut published: BTreeMap<String, String> = BTreeMap::new();
        let local = self.local.clone();
        self.publish(&mut client, lease, &local, &mut published)
            .await?;

        // Read, then watch from the next revision.
        let prefix = self.prefix();
        let resp = timed(
            "read",
            client.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
        )
        .await?;
        let mut revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let mut remote: BTreeMap<String, RemoteRecord> = BTreeMap::new();
        let mut stale = Vec::new();
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            match decode_entry(&self.cfg.prefix, kv.key(), kv.value()) {
                Ok(r) if r.host == self.cfg.host_id => {
                    if !published.contains_key(&key) {
                        // Ours from an earlier run, no longer local.
                        stale.push(key);
                    }
                }
                Ok(r) => {
                    if published.contains_key(&key) {
                        tracing::warn!(
                            "cluster: {key} is published by host {:?} too; the last writer wins",
                            r.host
                        );
                    } else {
                        remote.insert(key, r);
                    }
                }
                Err(why) => tracing::warn!("cluster: skipping an entry: {why}"),
            }
        }
        for key in stale {
            tracing::info!("cluster: deleting {key}, left from an earlier run");
            timed("delete", client.delete(key, None)).await?;
        }
        let mut watch = timed(
            "watch",
            client.watch(
                prefix.clone(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            ),
        )
        .await?;
        let (mut keeper, mut keepalives) =
            timed("lease keep-alive", client.lease_keep_alive(lease)).await?;
        self.synced = true;
        tracing::info!(
            "cluster: {} at revision {revision}: {} local, {} remote endpoints",
            if std::mem::take(&mut self.outage) {
                "etcd reachable again, resynchronised"
            } else {
                "synchronised"
            },
            published.len(),
            remote.len()
        );
        self.sink.send(&remote, revision, true);

        let period = Duration::from_millis(u64::from(self.cfg.lease_secs) * 1000 / 3);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_alive = Instant::now();
        let lease_time = Duration::from_secs(u64::from(self.cfg.lease_secs));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if last_alive.elapsed() > lease_time {
                        return Err(SessionError::Lost(format!(
                            "no keep-alive answer for {lease_time:?}"
                        )));
                    }
                    timed("lease keep-alive", keeper.keep_alive()).await?;
                }
                msg = keepalives.message() => {
                    match msg {
                        Ok(Some(r)) if r.ttl() > 0 => last_alive = Instant::now(),
                        Ok(Some(_)) => {
                            return Err(SessionError::Lost(format!("lease {lease:x} expired")));
                        }
                        Ok(None) => {
                            return Err(SessionError::Lost("keep-alive stream closed".into()));
                        }
                        Err(e) => return Err(SessionError::Etcd("lease keep-alive", e)),
                    }
                }
                msg = watch.message() => {
                    let resp = match msg {
                        Ok(Some(r)) => r,
                        Ok(None) => return Err(SessionError::Lost("watch stream closed".into())),
                        Err(e) => return Err(SessionError::Etcd("watch", e)),
                    };
                    if resp.canceled() {
                        return Err(SessionError::Lost(format!(
                            "watch cancelled (compacted at revision {}: {})",
                            resp.compact_revision(),
                            resp.cancel_reason()
                        )));
                    }
                    if let Some(h) = resp.header() {
                        revision = revision.max(h.revision());
                    }
                    let mut lost_own = BTreeSet::new();
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let key = String::from_utf8_lossy(kv.key()).into_owned();
                        match ev.event_type() {
                            EventType::Delete => {
                                remote.remove(&key);
                                if published.contains_key(&key) {
                                    lost_own.insert(key);
                                }
                            }
                            EventType::Put => {
                                lost_own.remove(&key);
                                match decode_entry(&self.cfg.prefix, kv.key(), kv.value()) {
                                    Ok(r) if r.host == self.cfg.host_id => {
                                        remote.remove(&key);
                                    }
                                    Ok(r) => {
                                        if published.contains_key(&key) {
                                            tracing::warn!(
                                                "cluster: {key} is now published by host {:?} too; the last writer wins",
                                                r.host
                                            );
                                        }
                                        remote.insert(key, r);
                                    }
                                    Err(why) => {
                                        tracing::warn!("cluster: skipping an entry: {why}");
                                        remote.remove(&key);
                                    }
                                }
                            }
                        }
                    }
                    self.sink.send(&remote, revision, false);
                    // Put back our keys someone else deleted.
                    for key in lost_own {
                        if let Some(value) = published.get(&key) {
                            tracing::info!("cluster: {key} was deleted; publishing it again");
                            timed(
                                "publish",
                                client.put(key, value.clone(), Some(PutOptions::new().with_lease(lease))),
                            )
                            .await?;
                        }
                    }
                }
                local = updates.recv() => {
                    let Some(local) = local else {
                        // The handle is gone; the stop branch ends us.
                        std::future::pending::<()>().await;
                        continue;
                    };
                    self.local = local.clone();
                    self.publish(&mut client, lease, &local, &mut published).await?;
                }
            }
        }
    }

    /// Makes the keys this host publishes those of `local`: deletes the
    /// ones no longer local, puts the rest (a put of an unchanged value
    /// only re-attaches it to the lease).
    async fn publish(
        &self,
        client: &mut Client,
        lease: i64,
        local: &[Published],
        published: &mut BTreeMap<String, String>,
    ) -> Result<(), SessionError> {
        let want: BTreeMap<String, String> = local
            .iter()
            .map(|p| {
                (
                    endpoint_key(&self.cfg.prefix, &p.network, p.ip),
                    encode_value(&self.cfg.host_id, p),
                )
            })
            .collect();
        let gone: Vec<String> = published
            .keys()
            .filter(|k| !want.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            timed("unpublish", client.delete(key.clone(), None)).await?;
            published.remove(&key);
        }
        for (key, value) in want {
            timed(
                "publish",
                client.put(
                    key.clone(),
                    value.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                ),
            )
            .await?;
            published.insert(key, value);
        }
        Ok(())
    }
}
