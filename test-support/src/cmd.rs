//! Commands a test runs to build or inspect its fixtures (`ip`), with
//! stderr as the error. podswitch itself never forks them.

use std::io;
use std::process::Command;

/// Runs `ip ARGS`, returning stderr as the error on failure.
pub fn ip(args: &[&str]) -> io::Result<()> {
    run("ip", args)
}

/// Runs a command, returning stderr as the error on failure.
pub fn run(cmd: &str, args: &[&str]) -> io::Result<()> {
    let out = Command::new(cmd).args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
