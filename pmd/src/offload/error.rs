//! What can go wrong loading, attaching or writing the flow offload, said
//! so that the reader knows what to do about it.

/// Errors of the flow offload.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    /// The kernel refused the program or its map.
    #[error("loading the tc flow-offload program: {0} (needs root or CAP_BPF + CAP_NET_ADMIN, and a kernel with BTF; run podswitch without the offload otherwise)")]
    Load(String),
    /// The kernel has no tcx (Linux before 6.6) or refused the link.
    #[error("attaching the tc flow offload to ifindex {ifindex}: {reason}")]
    Attach {
        /// The device.
        ifindex: u32,
        /// What the kernel said, and what to do.
        reason: String,
    },
    /// The table holds its `capacity` flows: the flow stays on the switch's
    /// path (it still works, only slower).
    #[error("the flow-offload table is full ({capacity} flows): raise its capacity, or the flow stays on the switch's path")]
    Full {
        /// The table's size.
        capacity: u32,
    },
    /// A map operation failed otherwise.
    #[error("flow-offload table: {op}: {source}")]
    Map {
        /// What was being done.
        op: &'static str,
        /// The kernel's error.
        source: std::io::Error,
    },
}
