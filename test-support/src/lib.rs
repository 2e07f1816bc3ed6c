//! Fixtures for podswitch's own tests, and nothing else: every crate of
//! the workspace takes this one as a dev-dependency only, so no library
//! ships a test helper or panics on a test's behalf. It is not published.
//!
//! - [`require`]: what a test needs (root, `/dev/net/tun`, etcd, a
//!   command). A missing prerequisite fails the test; it is never a silent
//!   pass.
//! - [`wait`]: waiting on a condition with a deadline, in place of a fixed
//!   sleep, failing with what was awaited.
//! - [`etcd`]: a real etcd server on loopback, stopped by PID.
//! - [`cmd`]: `ip` and other commands that build or inspect a fixture.
//! - [`offload`]: that a peer keeps its default checksum and segmentation
//!   offloads.
//!
//! Namespaces and veths come from `pmd::netns`: `podswitch demo` and
//! `podbench tcp` create theirs with the same guards, so those are product
//! code, not fixtures.

pub mod cmd;
pub mod etcd;
pub mod offload;
pub mod require;
pub mod wait;

pub use cmd::ip;
pub use offload::{tso_on, tx_checksum_offload_on};
pub use require::{require, require_command, require_etcd, require_root, require_tun};
pub use wait::{wait_for, wait_until};
