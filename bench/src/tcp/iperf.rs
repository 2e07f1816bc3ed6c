//! One iperf3 transfer between two namespaces, with the CPU it cost.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use pmd::netns::NetnsGuard;

use super::child::{all_of, lines_of, wait_line, ChildGuard};
use super::cpu::{CpuUse, Sample};

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub secs: u32,
    /// Parallel TCP streams (`-P`).
    pub streams: u32,
    /// The server sends and the client receives (`-R`).
    pub reverse: bool,
}

/// What one transfer moved.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// Bytes the receiver got.
    pub bytes: u64,
    /// Bits per second the receiver got.
    pub bps: f64,
    /// TCP retransmits the sender counted.
    pub retransmits: u64,
    pub cpu: CpuUse,
}

impl Transfer {
    pub fn gbit(&self) -> f64 {
        self.bytes as f64 * 8.0 / 1e9
    }
}

/// iperf3 from `client` to `server_ip` (in `server`); `switch_pids` are
/// the podswitch daemons whose CPU time is counted.
pub fn transfer(
    server: &NetnsGuard,
    client: &NetnsGuard,
    server_ip: &str,
    load: Load,
    switch_pids: &[i32],
) -> Result<Transfer> {
    let before = Sample::now(switch_pids)?;
    let mut srv = ChildGuard::spawn(
        server
            .command("iperf3")
            // --forceflush: stdout is a pipe, and we wait for "listening".
            .args(["-s", "-1", "-B", server_ip, "--forceflush"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        Duration::from_secs(2),
    )
    .context("starting iperf3 -s")?;
    let rx = lines_of(srv.take_stdout().expect("piped stdout"));
    wait_line(&rx, "listening", Duration::from_secs(5)).context("iperf3 server")?;
    let mut args = vec![
        "-c".to_string(),
        server_ip.to_string(),
        "-t".to_string(),
        load.secs.to_string(),
        "-P".to_string(),
        load.streams.to_string(),
        "-J".to_string(),
    ];
    if load.reverse {
        args.push("-R".to_string());
    }
    let mut cli = ChildGuard::spawn(
        client
            .command("iperf3")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        Duration::from_secs(2),
    )
    .context("starting iperf3 -c")?;
    let out = all_of(cli.take_stdout().expect("piped stdout"));
    // iperf3 gives up on a dead path by itself well within this.
    let within = Duration::from_secs(u64::from(load.secs) + 30);
    if cli.wait_exit(within).is_none() {
        bail!("iperf3 -c still running after {within:?}");
    }
    // `-1`: the server exits after its one test; it is reaped here so
    // that its CPU time is in the sample.
    srv.wait_exit(Duration::from_secs(5));
    srv.stop();
    let after = Sample::now(switch_pids)?;
    let stdout = out
        .recv_timeout(Duration::from_secs(5))
        .context("reading iperf3 -c output")?;
    let (bytes, bps, retransmits) = parse(&stdout)?;
    Ok(Transfer {
        bytes,
        bps,
        retransmits,
        cpu: before.until(&after),
    })
}

/// (bytes received, bits/s received, retransmits) from `iperf3 -J`.
fn parse(stdout: &[u8]) -> Result<(u64, f64, u64)> {
    let json: serde_json::Value = serde_json::from_slice(stdout).with_context(|| {
        format!(
            "iperf3 -c output is not JSON: {}",
            String::from_utf8_lossy(&stdout[..stdout.len().min(300)])
        )
    })?;
    if let Some(e) = json.get("error") {
        bail!("iperf3: {e}");
    }
    let field = |p: &str| {
        json.pointer(p)
            .ok_or_else(|| anyhow!("iperf3 JSON has no {p}"))
    };
    let bytes = field("/end/sum_received/bytes")?
        .as_u64()
        .ok_or_else(|| anyhow!("iperf3 sum_received.bytes is not a count"))?;
    let bps = field("/end/sum_received/bits_per_second")?
        .as_f64()
        .ok_or_else(|| anyhow!("iperf3 sum_received.bits_per_second is not a number"))?;
    // With -R the server is the sender; iperf3 still reports its
    // retransmits in the client's sum_sent.
    let retransmits = field("/end/sum_sent/retransmits")?.as_u64().unwrap_or(0);
    Ok((bytes, bps, retransmits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_bytes_rate_and_sender_retransmits_are_read_from_iperf3_json() {
        let j = br#"{"end":{"sum_sent":{"bytes":1000,"retransmits":7},
            "sum_received":{"bytes":900,"bits_per_second":1.5e9}}}"#;
        assert_eq!(parse(j).unwrap(), (900, 1.5e9, 7));
    }

    #[test]
    fn an_iperf3_error_is_reported_not_read_as_zero() {
        let j = br#"{"start":{},"error":"unable to connect to server"}"#;
        let e = parse(j).unwrap_err().to_string();
        assert!(e.contains("unable to connect"), "{e}");
        assert!(parse(b"not json").is_err());
    }
}
