//! The control socket's server: an accept thread hands each connection to
//! a thread of its own (at most [`MAX_CONNECTIONS`] at once), which reads
//! one JSON request per line and writes one reply per line.
//!
//! Only root and the daemon's own user are served: the socket file is
//! mode 0600, and each connection's peer credentials (SO_PEERCRED) are
//! checked too, so a chmod mistake on the file does not open the switch
//! to every user.
//!
//! Connection threads hold the runtime weakly and only while a request
//! runs, so the daemon can take the runtime back and stop the switch while
//! idle clients stay connected; at stop their sockets are shut down.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use serde::Serialize;

use super::protocol::Request;
use crate::runtime::Runtime;
use crate::{capture, inspect, trace};

/// Connections served at once; one more is told so and closed.
pub const MAX_CONNECTIONS: usize = 16;
/// Longest request line; a longer one gets an error and the connection is
/// closed (the rest of it cannot be told apart from a next request).
pub const MAX_REQUEST: usize = 64 * 1024;

/// Live connections by id, so a stop can shut them down.
type Live = Arc<Mutex<HashMap<u64, UnixStream>>>;

/// The accept loop's state.
pub(super) struct Server {
    listener: UnixListener,
    runtime: Weak<Runtime>,
    stop: Arc<AtomicBool>,
    live: Live,
    next_id: u64,
}

impl Server {
    pub(super) fn new(
        listener: UnixListener,
        runtime: Weak<Runtime>,
        stop: Arc<AtomicBool>,
    ) -> Server {
        Server {
            listener,
            runtime,
            stop,
            live: Arc::default(),
            next_id: 0,
        }
    }

    /// Accepts until stopped, then shuts every live connection down.
    pub(super) fn run(mut self) {
        while !self.stop.load(Ordering::Acquire) {
            match self.listener.accept() {
                Ok((conn, _)) => self.admit(conn),
                // Non-blocking accept: nothing pending (or a transient
                // error); look at the stop flag again soon.
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        for conn in live.values() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    fn admit(&mut self, mut conn: UnixStream) {
        let _ = conn.set_nonblocking(false);
        if let Err(e) = check_peer(&conn) {
            let _ = write_reply::<()>(&mut conn, Err(e));
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            if live.len() >= MAX_CONNECTIONS {
                drop(live);
                let msg = format!(
                    "too many control connections ({MAX_CONNECTIONS} open); try again later"
                );
                let _ = write_reply::<()>(&mut conn, Err(msg));
                return;
            }
            match conn.try_clone() {
                Ok(c) => live.insert(id, c),
                Err(e) => {
                    tracing::warn!("control connection: {e}");
                    return;
                }
            };
        }
        let runtime = self.runtime.clone();
        let live = self.live.clone();
        let spawned = std::thread::Builder::new()
            .name("control-conn".into())
            .spawn(move || {
                serve_connection(conn, &runtime);
                live.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            });
        if let Err(e) = spawned {
            tracing::warn!("control connection thread: {e}");
            self.live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
}

/// Root, or the user the daemon runs as.
fn check_peer(conn: &UnixStream) -> Result<(), String> {
    let cred = getsockopt(conn, PeerCredentials)
        .map_err(|e| format!("reading the peer's credentials: {e}"))?;
    let own = nix::unistd::geteuid().as_raw();
    let uid = cred.uid();
    if uid == 0 || uid == own {
        Ok(())
    } else {
        Err(format!(
            "permission denied: uid {uid} may not use the podswitch control socket (root or uid {own} only)"
        ))
    }
}

/// One reply line.
#[derive(Serialize)]
struct Reply<T> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The reply line: `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}`.
fn write_reply<T: Serialize>(out: &mut dyn Write, r: Result<T, String>) -> std::io::Result<()> {
    let reply = match r {
        Ok(data) => Reply {
            ok: true,
            data: Some(data),
            error: None,
        },
        Err(error) => Reply {
            ok: false,
            data: None,
            error: Some(error),
        },
    };
    let mut line = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// One line of at most [`MAX_REQUEST`] bytes, without its newline;
/// `Ok(None)` at the end of the stream.
fn read_request(reader: &mut impl BufRead) -> Result<Option<Vec<u8>>, String> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_REQUEST as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("reading the request: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_REQUEST {
        return Err(format!(
            "request longer than {MAX_REQUEST} bytes; closing the connection"
        ));
    }
    Ok(Some(line))
}

/// True once the client closed its end of `conn` (`POLLHUP`: a client
/// that only shut its writing side down is still reading).
fn peer_hung_up(conn: &UnixStream) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(conn.as_fd(), PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
        _ => false,
    }
}

fn serve_connection(conn: UnixStream, runtime: &Weak<Runtime>) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let line = match read_request(&mut reader) {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                let _ = write_reply::<()>(&mut out, Err(e));
                return;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let req: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                if write_reply::<()>(&mut out, Err(format!("bad request: {e}"))).is_err() {
                    return;
                }
                continue;
            }
        };
        let Some(rt) = runtime.upgrade() else {
            let _ = write_reply::<()>(&mut out, Err("podswitch is stopping".into()));
            return;
        };
        let done = match req {
            Request::Capture(c) => {
                let armed = rt.with_switch(|s, _| capture::start(s, &c));
                // The stream runs without the runtime: a long capture
                // must not keep the daemon from stopping.
                drop(rt);
                match armed {
                    Ok(stream) => {
                        if write_reply(&mut out, Ok(())).is_err() {
                            return;
                        }
                        let hung_up = || peer_hung_up(reader.get_ref());
                        if let Err(e) = stream.write_to(&mut out, &hung_up) {
                            tracing::debug!("capture on {}: {e:#}", c.port);
                        }
                        // The pcap stream ends with the connection.
                        return;
                    }
                    Err(e) => write_reply::<()>(&mut out, Err(format!("capture: {e:#}"))),
                }
            }
            Request::Trace(t) => {
                let armed = rt.with_switch(|s, _| trace::arm(s, &t));
                drop(rt);
                let r = armed
                    .and_then(|w| w.wait(Duration::from_millis(t.timeout_ms)))
                    .map_err(|e| format!("trace: {e:#}"));
                write_reply(&mut out, r)
            }
            other => {
                let r = dispatch(&rt, other);
                drop(rt);
                write_reply(&mut out, r)
            }
        };
        if done.is_err() {
            return;
        }
    }
}

/// `message` naming the command, unless it does already.
fn named(cmd: &str, e: anyhow::Error) -> String {
    let msg = format!("{e:#}");
    if msg.starts_with(cmd) || msg.starts_with(&cmd.replace('-', " ")) {
        msg
    } else {
        format!("{cmd}: {msg}")
    }
}

fn json<T: Serialize>(v: T) -> Result<serde_json::Value, String> {
    serde_json::to_value(v).map_err(|e| format!("encoding the reply: {e}"))
}

/// Every request but `capture` and `trace`.
fn dispatch(rt: &Runtime, req: Request) -> Result<serde_json::Value, String> {
    match req {
        Request::Show => json(rt.with_switch(inspect::show)),
        Request::Stats => json(rt.with_switch(inspect::stats)),
        Request::Fdb { network } => {
            json(rt.with_switch(|s, _| inspect::fdb(s, network.as_deref()))?)
        }
        Request::Conntrack { network, limit } => {
            json(rt.with_switch(|s, _| inspect::conntrack(s, network.as_deref(), limit))?)
        }
        Request::Neighbors => json(rt.with_switch(|s, _| inspect::neighbors(s))),
        Request::EndpointAdd(e) => json(rt.endpoint_add(&e).map_err(|e| named("endpoint-add", e))?),
        Request::EndpointDel { name } => {
            let deleted = rt
                .endpoint_del(&name)
                .map_err(|e| named("endpoint-del", e))?;
            json(serde_json::json!({ "deleted": deleted }))
        }
        Request::MappingAdd(m) => {
            rt.mapping_add(&m).map_err(|e| named("mapping-add", e))?;
            json(serde_json::json!({}))
        }
        Request::MappingDel(m) => {
            let deleted = rt.mapping_del(&m).map_err(|e| named("mapping-del", e))?;
            json(serde_json::json!({ "deleted": deleted }))
        }
        Request::NetworkAdd(n) => {
            let n = rt.network_add(&n).map_err(|e| named("network-add", e))?;
            json(serde_json::json!({
                "name": n.name,
                "subnet": n.subnet.to_string(),
                "gateway": n.gateway,
                "uplink": n.uplink,
            }))
        }
        Request::NetworkDel { name } => {
            let deleted = rt.network_del(&name).map_err(|e| named("network-del", e))?;
            json(serde_json::json!({ "deleted": deleted }))
        }
        Request::Reload => json(rt.reload().map_err(|e| named("reload", e.into()))?),
        Request::Capture(_) | Request::Trace(_) => Err("internal: streamed request".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_over_the_bound_is_refused_and_one_at_the_bound_is_read() {
        let mut long = vec![b'x'; MAX_REQUEST + 10];
        long.push(b'\n');
        let mut r = BufReader::new(&long[..]);
        assert!(read_request(&mut r).unwrap_err().contains("longer than"));

        let mut exact = vec![b'y'; MAX_REQUEST];
        exact.push(b'\n');
        exact.extend_from_slice(b"{}\n");
        let mut r = BufReader::new(&exact[..]);
        assert_eq!(read_request(&mut r).unwrap().unwrap().len(), MAX_REQUEST);
        assert_eq!(read_request(&mut r).unwrap().unwrap(), b"{}");
        assert_eq!(read_request(&mut r).unwrap(), None);
    }

    #[test]
    fn a_reply_is_one_json_line_with_ok_and_data_or_error() {
        let mut out = Vec::new();
        write_reply(&mut out, Ok(vec![1, 2])).unwrap();
        write_reply::<()>(&mut out, Err("no".into())).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"ok":true,"data":[1,2]}"#,
                r#"{"ok":false,"error":"no"}"#
            ]
        );
    }
}
