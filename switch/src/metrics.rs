//! Prometheus at `[switch] metrics`: `GET /metrics` in the text format,
//! from the same numbers as `ctl stats` (`crate::inspect::stats`), read at
//! each scrape. A small HTTP/1.1 server on one std thread: one request per
//! connection, bounded in size and time, `404` for any other path.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::inspect::Stats;
use crate::runtime::Runtime;

/// Longest request head read; a scraper's is a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// How long one client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

type Labels = Vec<(&'static str, String)>;

/// The running endpoint; stopped on drop.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `addr` and serves `runtime`'s counters.
    pub fn start(addr: SocketAddr, runtime: &Arc<Runtime>) -> Result<MetricsServer> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("binding the metrics endpoint on {addr}"))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let runtime = Arc::downgrade(runtime);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                while !stop2.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            if let Err(e) = serve(conn, &runtime) {
                                tracing::debug!("metrics request: {e}");
                            }
                        }
                        // Nothing pending: look at the stop flag again soon.
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads the request head (up to the blank line, at most `MAX_REQUEST`
/// bytes) and returns its request line.
fn request_line(conn: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST {
            return Ok(None);
        }
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    Ok(text.lines().next().map(str::to_string))
}

fn serve(mut conn: TcpStream, runtime: &Weak<Runtime>) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    conn.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let line = request_line(&mut conn)?;
    let mut parts = line.as_deref().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next(), parts.next());
    let (status, ctype, body) = match (line.is_some(), method, path) {
        (false, ..) => (
            "431 Request Header Fields Too Large",
            "text/plain",
            String::new(),
        ),
        (true, Some("GET"), Some("/metrics")) => match runtime.upgrade() {
            Some(rt) => {
                let stats = rt.with_switch(crate::inspect::stats);
                drop(rt);
                (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    render(&stats),
                )
            }
            None => ("503 Service Unavailable", "text/plain", "stopping\n".into()),
        },
        _ => (
            "404 Not Found",
            "text/plain",
            "only GET /metrics is served\n".into(),
        ),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

fn counters(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    reg.register(name, help, f.clone());
    f
}

fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// The text exposition of `s`.
pub fn render(s: &Stats) -> String {
    let mut reg = Registry::with_prefix("podswitch");
    let packets = counters(&mut reg, "port_packets", "Frames per port and direction");
    let bytes = counters(&mut reg, "port_bytes", "Bytes per port and direction");
    let drops = counters(
        &mut reg,
        "port_drops",
        "Frames dropped, by the port they came in on and reason",
    );
    let offloaded = counters(
        &mut reg,
        "port_offloaded_packets",
        "Frames received on a port that the kernel carried (flow offload; also in port_packets)",
    );
    let flows = Family::<Labels, Gauge>::default();
    reg.register(
        "offload_flows",
        "Flows in the kernel's flow table",
        flows.clone(),
    );
    let flow_events = counters(
        &mut reg,
        "offload_flow_events",
        "Flow-table entries installed, removed, refused (table_full, errors)",
    );
    for p in &s.ports {
        for (dir, n, b) in [
            ("rx", p.rx_packets, p.rx_bytes),
            ("tx", p.tx_packets, p.tx_bytes),
        ] {
            packets
                .get_or_create(&labels([("port", &p.port), ("direction", dir)]))
                .inc_by(n);
            bytes
                .get_or_create(&labels([("port", &p.port), ("direction", dir)]))
                .inc_by(b);
        }
        for (reason, n) in &p.drops {
            drops
                .get_or_create(&labels([("port", &p.port), ("reason", reason)]))
                .inc_by(*n);
        }
        if s.offload.is_some() {
            offloaded
                .get_or_create(&labels([("port", &p.port)]))
                .inc_by(p.offloaded_packets);
        }
    }
    if let Some(o) = &s.offload {
        flows.get_or_create(&labels([])).set(o.active as i64);
        for (event, v) in [
            ("installed", o.installed),
            ("removed", o.removed),
            ("table_full", o.table_full),
            ("errors", o.errors),
        ] {
            flow_events
                .get_or_create(&labels([("event", event)]))
                .inc_by(v);
        }
    }
    let net = counters(&mut reg, "network_frames", "Switching events per network (unicast, flooded, learned, fdb_full, arp_replies, echo_replies)");
    for n in &s.networks {
        for (event, v) in [
            ("unicast", n.counters.unicast),
            ("flooded", n.counters.flooded),
            ("learned", n.counters.learned),
            ("fdb_full", n.counters.fdb_full),
            ("arp_replies", n.counters.arp_replies),
            ("echo_replies", n.counters.echo_replies),
        ] {
            net.get_or_create(&labels([("network", &n.network), ("event", event)]))
                .inc_by(v);
        }
    }
    let translated = counters(
        &mut reg,
        "nat_translated",
        "Frames NAT translated, per uplink and direction",
    );
    let nat_drops = counters(
        &mut reg,
        "nat_drops",
        "Frames NAT dropped, per uplink and reason",
    );
    let conns = Family::<Labels, Gauge>::default();
    reg.register(
        "nat_connections",
        "Connections in the NAT table",
        conns.clone(),
    );
    let max = Family::<Labels, Gauge>::default();
    reg.register("nat_connections_max", "The NAT table's bound", max.clone());
    for n in &s.nat {
        let up = [("uplink", n.uplink.as_str())];
        for (dir, v) in [("out", n.translated_out), ("in", n.translated_in)] {
            translated
                .get_or_create(&labels([("uplink", &n.uplink), ("direction", dir)]))
                .inc_by(v);
        }
        for (reason, v) in &n.drops {
            nat_drops
                .get_or_create(&labels([("uplink", &n.uplink), ("reason", reason)]))
                .inc_by(*v);
        }
        conns.get_or_create(&labels(up)).set(n.connections as i64);
        max.get_or_create(&labels(up)).set(n.max_connections as i64);
    }
    let busy = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    reg.register(
        "pmd_busy_ratio",
        "Share of wall time a PMD thread spent in iterations that moved frames",
        busy.clone(),
    );
    let sleeps = counters(
        &mut reg,
        "pmd_sleeps",
        "Times a PMD thread slept on its ports",
    );
    let slept = Family::<Labels, Counter<f64, AtomicU64>>::default();
    reg.register(
        "pmd_sleep_seconds",
        "Time a PMD thread slept",
        slept.clone(),
    );
    let frames = counters(&mut reg, "pmd_frames", "Frames a PMD thread received");
    let iterations = counters(
        &mut reg,
        "pmd_iterations",
        "Poll loop iterations of a PMD thread",
    );
    for t in &s.threads {
        let th = labels([("thread", &format!("pmd{}", t.thread))]);
        busy.get_or_create(&th).set(t.busy_share);
        sleeps.get_or_create(&th).inc_by(t.sleeps);
        slept.get_or_create(&th).inc_by(t.sleep_secs);
        frames.get_or_create(&th).inc_by(t.frames);
        iterations.get_or_create(&th).inc_by(t.iterations);
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}
