//! `ctl trace`: the path of one frame through the pipeline, stage by
//! stage, and its verdict (as `ofproto/trace` shows it).
//!
//! The control side arms every PMD thread (`Control::Trace`) and waits
//! until each has it, so a frame sent after `arm` returns is seen; the
//! thread that receives the first matching frame runs it through the
//! pipeline and reports (see `pipeline::traced`). A frame given in hex is
//! instead run at once by the thread that polls its input port, as if
//! that port had received it: its outputs are really sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use crossbeam::channel::{self, Receiver};
use serde::{Deserialize, Serialize};

use crate::control::protocol::TraceRequest;
use crate::daemon::Switch;
use crate::filter::FrameMatch;
use crate::pipeline::TraceArm;

/// How long the PMD threads have to take a trace (an idle thread sleeps
/// at most `max_sleep_ms`, and is woken anyway).
const ARM_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest frame that can be injected: a 64 KB segment and its headers.
const MAX_INJECT: usize = 65_536 + 128;

/// One traced frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceReport {
    /// The port it came in on.
    pub in_port: String,
    /// Every stage it went through, in order, with what it decided.
    pub stages: Vec<String>,
    /// The end: sent out of which port(s), or dropped and why.
    pub verdict: String,
}

/// A trace armed on the PMD threads, waiting for its frame.
pub struct TraceWait {
    arm: Arc<TraceArm>,
    rx: Receiver<TraceReport>,
}

/// Arms a trace (or injects the hex frame).
pub fn arm(switch: &Switch, req: &TraceRequest) -> Result<TraceWait> {
    let filter = FrameMatch::new(&req.filter)?;
    let port = match &req.port {
        Some(name) => Some(
            switch
                .port_named(name)
                .with_context(|| format!("trace: no port or endpoint named {name:?}"))?,
        ),
        None => None,
    };
    let inject = match &req.hex {
        Some(_) if port.is_none() => {
            bail!("trace: a frame in hex needs the port to inject it on")
        }
        Some(h) => Some(parse_hex(h)?),
        None => None,
    };
    let (reply, rx) = channel::bounded(1);
    let (ack, acks) = channel::unbounded();
    let arm = Arc::new(TraceArm {
        port,
        filter,
        inject,
        done: AtomicBool::new(false),
        reply,
        ack,
    });
    let threads = switch.dataplane().arm_trace(&arm);
    let deadline = Instant::now() + ARM_TIMEOUT;
    for _ in 0..threads {
        acks.recv_deadline(deadline).map_err(|_| {
            arm.done.store(true, Ordering::Release);
            anyhow!("trace: the PMD threads did not take the trace within {ARM_TIMEOUT:?}")
        })?;
    }
    Ok(TraceWait { arm, rx })
}

impl TraceWait {
    /// Waits for the report, at most `timeout`; disarms on return.
    pub fn wait(self, timeout: Duration) -> Result<TraceReport> {
        let got = self.rx.recv_timeout(timeout);
        self.arm.done.store(true, Ordering::Release);
        match got {
            Ok(report) => Ok(report),
            Err(_) if self.arm.inject.is_some() => {
                bail!("trace: the injected frame was not run (its port is polled by no PMD thread)")
            }
            Err(_) => bail!("trace: no matching frame within {} ms", timeout.as_millis()),
        }
    }
}

impl Drop for TraceWait {
    fn drop(&mut self) {
        // A wait that never happened (the client went away) disarms too.
        self.arm.done.store(true, Ordering::Release);
    }
}

/// Bytes from hex digits; spaces, newlines, `:` and `-` between them are
/// ignored (as `xxd -p` and Wireshark's "copy as hex" write them).
pub fn parse_hex(text: &str) -> Result<Vec<u8>> {
    let digits: Vec<(usize, char)> = text
        .char_indices()
        .filter(|(_, c)| !c.is_whitespace() && *c != ':' && *c != '-')
        .collect();
    if let Some((at, c)) = digits.iter().find(|(_, c)| !c.is_ascii_hexdigit()) {
        bail!("hex: {c:?} at offset {at} is not a hex digit");
    }
    if digits.len() % 2 == 1 {
        bail!("hex: an odd number of digits ({})", digits.len());
    }
    let bytes: Vec<u8> = digits
        .chunks(2)
        .map(|p| {
            let hi = p[0].1.to_digit(16).unwrap_or(0);
            let lo = p[1].1.to_digit(16).unwrap_or(0);
            (hi * 16 + lo) as u8
        })
        .collect();
    if bytes.is_empty() {
        bail!("hex: no bytes given");
    }
    if bytes.len() > MAX_INJECT {
        bail!(
            "hex: a frame of {} bytes; at most {MAX_INJECT}",
            bytes.len()
        );
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_read_with_or_without_separators() {
        assert_eq!(parse_hex("0a0B ff").unwrap(), vec![0x0a, 0x0b, 0xff]);
        assert_eq!(parse_hex("02:00\n-ac").unwrap(), vec![2, 0, 0xac]);
    }

    #[test]
    fn bad_hex_is_an_error_that_says_where() {
        let e = parse_hex("0a0g").unwrap_err().to_string();
        assert!(e.contains("'g' at offset 3"), "{e}");
        assert!(parse_hex("abc").unwrap_err().to_string().contains("odd"));
        assert!(parse_hex("  ")
            .unwrap_err()
            .to_string()
            .contains("no bytes"));
    }
}
