//! The cluster store: overlay state shared through etcd. Not built yet;
//! this is the plan, so the switch can be written against it.
//!
//! - Client: the `etcd-client` crate (gRPC; builds with Debian's
//!   `protobuf-compiler`), on its own thread with its own tokio runtime,
//!   never on a PMD thread.
//! - Publish: each podswitch puts its local endpoints of every overlay
//!   network under a key prefix, one key per endpoint, e.g.
//!   `/podswitch/overlay/<vni>/<vtep>/<ip>` = `{ mac, vtep }`, all attached
//!   to one lease kept alive by the client; a host that dies or stops loses
//!   its keys when the lease expires.
//! - Watch: a `get` of the prefix followed by a `watch` from the returned
//!   revision turns puts and deletes into added and removed
//!   [`RemoteEndpoint`](crate::vtep::RemoteEndpoint)s; the switch compiles
//!   new [`VtepTables`](crate::vtep::VtepTables) from static config plus
//!   these and publishes them as a new snapshot, as a reload does.
//! - etcd unreachable: the last known remote endpoints stay and traffic
//!   keeps flowing; the client retries with backoff, and on reconnect
//!   re-creates its lease and keys and resynchronises with a fresh `get` +
//!   `watch` (a compacted revision also means a fresh `get`).
