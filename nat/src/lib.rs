//! Connection tracking, SNAT port allocation, DNAT port mappings and in-place
//! header rewrite with incremental checksums, as pure packet logic over byte
//! slices. It knows nothing of threads or ports; `switch` composes it.
//! The translation itself lands with the NAT issue.
