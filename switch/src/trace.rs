//! `ctl trace`: the path of one frame through the pipeline, stage by
//! stage, and its verdict (as `ofproto/trace` shows it).

use std::time::Duration;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::control::protocol::TraceRequest;
use crate::daemon::Switch;

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
    _private: (),
}

/// Arms a trace (or injects the hex frame).
pub fn arm(_switch: &Switch, _req: &TraceRequest) -> Result<TraceWait> {
    bail!("trace: not implemented yet")
}

impl TraceWait {
    /// Waits for the report, at most `timeout`; disarms on return.
    pub fn wait(self, _timeout: Duration) -> Result<TraceReport> {
        bail!("trace: not implemented yet")
    }
}
