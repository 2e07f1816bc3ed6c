//! What a test needs from the machine. A missing prerequisite fails the
//! test with a message that says what is missing and how to get it: a test
//! that did not run must not count as a pass.
//!
//! On a developer machine without root or etcd, `PODSWITCH_ALLOW_SKIP=1`
//! turns that failure into a printed `SKIPPED` line and an early return.
//! `./test.sh` never allows it.

use std::path::Path;
use std::process::{Command, Stdio};

/// The environment variable that lets a test skip instead of failing.
pub const ALLOW_SKIP: &str = "PODSWITCH_ALLOW_SKIP";

fn skips_allowed() -> bool {
    std::env::var(ALLOW_SKIP).is_ok_and(|v| v == "1")
}

/// True when `test` may go on: `present` holds. Otherwise fails the test
/// (panics) naming what is `missing`, or, with `PODSWITCH_ALLOW_SKIP=1`,
/// prints a skip notice and returns false so the test returns early.
pub fn require(test: &str, present: bool, missing: &str) -> bool {
    decide(test, present, missing, skips_allowed())
}

fn decide(test: &str, present: bool, missing: &str, skips_allowed: bool) -> bool {
    if present {
        return true;
    }
    if skips_allowed {
        println!("SKIPPED {test}: {missing} ({ALLOW_SKIP}=1)");
        return false;
    }
    panic!(
        "{test} cannot run: {missing}. Run ./test.sh as root (it installs what \
         the tests need), or set {ALLOW_SKIP}=1 to skip such tests on this machine"
    );
}

/// True when the process runs as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Root: network namespaces, TAPs, veths, XDP programs, AF_XDP sockets.
pub fn require_root(test: &str) -> bool {
    require(
        test,
        is_root(),
        "needs root (network namespaces, TAP, XDP, AF_XDP)",
    )
}

/// Root and `/dev/net/tun`, for TAP devices.
pub fn require_tun(test: &str) -> bool {
    require_root(test)
        && require(
            test,
            Path::new("/dev/net/tun").exists(),
            "/dev/net/tun is missing (modprobe tun)",
        )
}

/// `cmd` runs (`cmd --version` succeeds): iperf3, ethtool and the like.
pub fn require_command(test: &str, cmd: &str) -> bool {
    let runs = Command::new(cmd)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(
        test,
        runs,
        &format!("`{cmd} --version` does not run (scripts/deps.sh installs it)"),
    )
}

/// Debian's `etcd` server, for the cluster tests.
pub fn require_etcd(test: &str) -> bool {
    require_command(test, "etcd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "t cannot run: needs a unicorn")]
    fn a_missing_prerequisite_fails_the_test() {
        decide("t", false, "needs a unicorn", false);
    }

    #[test]
    fn only_the_explicit_opt_out_turns_it_into_a_skip() {
        assert!(!decide("t", false, "needs a unicorn", true));
        assert!(decide("t", true, "needs a unicorn", false));
    }
}
