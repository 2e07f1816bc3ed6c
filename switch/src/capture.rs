//! `ctl capture`: frames of one port, copied in the PMD loop without
//! stopping it, written as pcap.

use std::io::Write;

use anyhow::{bail, Result};

use crate::control::protocol::CaptureRequest;
use crate::daemon::Switch;

/// A capture in progress: armed under the runtime lock, streamed after it
/// is released (so a long capture blocks no other command).
pub struct CaptureStream {
    _private: (),
}

/// Arms a capture on the port `req.port` names.
pub fn start(_switch: &Switch, req: &CaptureRequest) -> Result<CaptureStream> {
    bail!("capture on {}: not implemented yet", req.port)
}

impl CaptureStream {
    /// Writes a pcap header, then every captured frame, until the count is
    /// reached or `out` fails (the client went away); disarms on return.
    pub fn write_to(self, _out: &mut dyn Write) -> Result<u64> {
        bail!("capture: not implemented yet")
    }
}
