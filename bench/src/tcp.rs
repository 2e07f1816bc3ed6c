//! TCP throughput between two "containers" (network namespaces): through
//! podswitch (`podswitch run` with a `nat` network and two netns endpoints)
//! and through a Linux bridge, in the same run, with iperf3.
//!
//! Everything it creates (namespaces, the config file, the daemon, iperf3)
//! is removed by guards on drop, also when a step fails. Traffic stays
//! inside the namespaces it creates.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use pmd::netns::{unique_name, NetnsGuard};

/// What to run.
#[derive(Debug, Clone)]
pub struct TcpOpts {
    /// The `podswitch` binary.
    pub podswitch: PathBuf,
    /// Seconds per iperf3 run.
    pub secs: u32,
}

/// Throughput of both paths, bits per second received.
#[derive(Debug, Clone, Copy)]
pub struct TcpReport {
    /// Through podswitch.
    pub podswitch_bps: f64,
    /// Through a Linux bridge.
    pub bridge_bps: f64,
}

/// Runs both measurements, podswitch first.
pub fn run(opts: &TcpOpts) -> Result<TcpReport> {
    if !pmd::netns::is_root() {
        bail!("podbench tcp needs root (namespaces, TAPs)");
    }
    let podswitch_bps = through_podswitch(opts).context("podswitch")?;
    eprintln!("podswitch: {:.2} Gbit/s", podswitch_bps / 1e9);
    let bridge_bps = through_bridge(opts.secs).context("Linux bridge")?;
    eprintln!("bridge:    {:.2} Gbit/s", bridge_bps / 1e9);
    Ok(TcpReport {
        podswitch_bps,
        bridge_bps,
    })
}

/// A file removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A child process stopped on drop: SIGTERM, up to `grace` to exit, then
/// SIGKILL; always reaped.
struct ChildGuard {
    child: Child,
    grace: Duration,
}

impl ChildGuard {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM and wait; the exit status, or None if it had to be killed.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        // SAFETY: kill(2) on the PID of our own unreaped child, which
        // cannot have been reused; no memory is involved.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lines of a child's stdout, read on a helper thread.
fn lines_of(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line that contains `what`.
fn wait_line(rx: &mpsc::Receiver<String>, what: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(what) => return Ok(()),
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => bail!("no {what:?} line within {timeout:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("exited before {what:?}"),
        }
    }
}

fn through_podswitch(opts: &TcpOpts) -> Result<f64> {
    // Declared before the daemon so they are dropped after it: the daemon
    // removes its TAPs from the namespaces before they go.
    let a = NetnsGuard::new("pbta").context("creating namespace")?;
    let b = NetnsGuard::new("pbtb").context("creating namespace")?;
    let id = unique_name("podbench");
    let control = TempFile(PathBuf::from(format!("/run/{id}.sock")));
    let config = TempFile(std::env::temp_dir().join(format!("{id}.toml")));
    let log = TempFile(std::env::temp_dir().join(format!("{id}.log")));
    std::fs::write(
        &config.0,
        format!(
            r#"# podbench tcp: two netns endpoints on one nat network
[switch]
control = "{control}"

[[network]]
name = "tcp"
mode = "nat"
subnet = "10.201.0.0/24"
gateway = "10.201.0.1"

[[endpoint]]
name = "a"
network = "tcp"
netns = "{a}"

[[endpoint]]
name = "b"
network = "tcp"
netns = "{b}"
"#,
            control = control.0.display(),
            a = a.name(),
            b = b.name()
        ),
    )
    .with_context(|| format!("writing {}", config.0.display()))?;

    let stderr = File::create(&log.0)?;
    let mut daemon = ChildGuard {
        child: Command::new(&opts.podswitch)
            .arg("run")
            .arg(&config.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", opts.podswitch.display()))?,
        grace: Duration::from_secs(6),
    };
    let out = daemon.child.stdout.take().expect("piped stdout");
    let rx = lines_of(out);
    if let Err(e) = wait_line(&rx, "ready", Duration::from_secs(30)) {
        daemon.stop();
        bail!("podswitch run: {e}; its log:\n{}", read_tail(&log.0));
    }
    let ip = eth0_ip(&b)?;
    let bps = iperf(&b, &a, &ip, opts.secs)?;
    match daemon.stop() {
        Some(st) if st.success() => {}
        other => eprintln!(
            "warning: podswitch did not exit cleanly on SIGTERM ({other:?}); log:\n{}",
            read_tail(&log.0)
        ),
    }
    Ok(bps)
}

fn through_bridge(secs: u32) -> Result<f64> {
    let br = NetnsGuard::new("pbtbr").context("creating namespace")?;
    let a = NetnsGuard::new("pbta").context("creating namespace")?;
    let b = NetnsGuard::new("pbtb").context("creating namespace")?;
    br.exec("ip", &["link", "add", "br0", "type", "bridge"])?;
    br.exec("ip", &["link", "set", "br0", "up"])?;
    for (i, ns) in [&a, &b].into_iter().enumerate() {
        let port = format!("p{i}");
        // The veth's far end goes straight into the container's namespace
        // as eth0; everything lives in namespaces we delete.
        br.exec(
            "ip",
            &[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ],
        )?;
        br.exec("ip", &["link", "set", &port, "master", "br0", "up"])?;
        let addr = format!("10.202.0.{}/24", 10 + i);
        ns.exec("ip", &["addr", "add", &addr, "dev", "eth0"])?;
        ns.exec("ip", &["link", "set", "eth0", "up"])?;
    }
    iperf(&b, &a, "10.202.0.11", secs)
}

/// The IPv4 address of eth0 in a namespace.
fn eth0_ip(ns: &NetnsGuard) -> Result<String> {
    let out = ns
        .command("ip")
        .args(["-4", "-o", "addr", "show", "dev", "eth0"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no IPv4 address on eth0 in {}: {text}", ns.name()))
}

/// iperf3 from `client` to `server_ip` (in `server`); bits/s received.
fn iperf(server: &NetnsGuard, client: &NetnsGuard, server_ip: &str, secs: u32) -> Result<f64> {
    let mut srv = ChildGuard {
        child: server
            .command("iperf3")
            // --forceflush: stdout is a pipe, and we wait for "listening".
            .args(["-s", "-1", "-B", server_ip, "--forceflush"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting iperf3 -s")?,
        grace: Duration::from_secs(2),
    };
    let rx = lines_of(srv.child.stdout.take().expect("piped stdout"));
    wait_line(&rx, "listening", Duration::from_secs(5)).context("iperf3 server")?;
    let out = client
        .command("iperf3")
        .args(["-c", server_ip, "-t", &secs.to_string(), "-J"])
        .stdin(Stdio::null())
        .output()
        .context("running iperf3 -c")?;
    srv.stop();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "iperf3 -c output is not JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if let Some(e) = json.get("error") {
        bail!("iperf3: {e}");
    }
    json.pointer("/end/sum_received/bits_per_second")
        .and_then(|v| v.as_f64())
        .ok_or_else(|| anyhow!("iperf3 JSON has no end.sum_received.bits_per_second"))
}

fn read_tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
