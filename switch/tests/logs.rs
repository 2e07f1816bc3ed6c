//! The daemon's log as an operator's tools get it: stderr to a file (not a
//! terminal) carries no ANSI escape codes, `--log-format json` makes every
//! line of stderr a JSON object, and the level comes from `RUST_LOG`, else
//! `[switch] log`, else warn.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A config whose only port has no endpoints: the switch warns that it
/// does not open it, a log line at a known level on every start.
fn config(log: Option<&str>) -> String {
    config_at(&control_path(), log)
}

/// As `config`, with the control socket at `socket`.
fn config_at(socket: &str, log: Option<&str>) -> String {
    let log = log.map_or(String::new(), |l| format!("log = \"{l}\"\n"));
    format!("[switch]\ncontrol = \"{socket}\"\n{log}\n[[port]]\nname = \"idle\"\niface = \"lo\"\n")
}

/// A `podswitch` child with stderr in a file, stopped by PID on drop.
struct Run {
    child: Child,
    stderr: std::path::PathBuf,
    config: TempConfig,
}

impl Run {
    /// `podswitch ARGS CONFIG` with `RUST_LOG` set or removed; waits for
    /// `ready`.
    fn start(args: &[&str], rust_log: Option<&str>, text: &str) -> Run {
        let config = TempConfig::new(text);
        let stderr = config.path.with_extension("stderr");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_podswitch"));
        cmd.args(args)
            .arg(&config.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap());
        match rust_log {
            Some(l) => cmd.env("RUST_LOG", l),
            None => cmd.env_remove("RUST_LOG"),
        };
        let mut child = cmd.spawn().expect("starting podswitch");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "ready" {
                    let _ = tx.send(());
                }
            }
        });
        let mut run = Run {
            child,
            stderr,
            config,
        };
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let err = run.stop();
            panic!("podswitch did not print ready; stderr:\n{err}");
        }
        run
    }

    /// SIGTERM, a wait of at most 10 s (then SIGKILL), and the stderr file.
    fn stop(&mut self) -> String {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
        let _ = std::fs::remove_file(&self.stderr);
    }
}

const WARNING: &str = "has no endpoints and is no uplink";

#[test]
fn a_log_written_to_a_file_has_no_ansi_escape_codes() {
    if skip_unless_root("control socket under /run") {
        return;
    }
    let err = Run::start(&["run"], None, &config(None)).stop();
    assert!(err.contains(WARNING), "the warning is logged:\n{err}");
    assert!(
        !err.contains('\u{1b}'),
        "an escape byte in a log file:\n{err:?}"
    );
}

#[test]
fn with_log_format_json_every_line_of_stderr_is_a_json_object() {
    if skip_unless_root("control socket under /run") {
        return;
    }
    let err = Run::start(&["--log-format", "json", "run"], None, &config(None)).stop();
    let mut levels = Vec::new();
    for line in err.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nstderr:\n{err}"));
        assert!(v.is_object(), "not an object: {line}");
        if let Some(l) = v.get("level").and_then(|l| l.as_str()) {
            levels.push(l.to_string());
        }
    }
    assert!(
        err.contains(WARNING) && levels.iter().any(|l| l == "WARN"),
        "the warning is a JSON line with its level: {levels:?}\n{err}"
    );
    assert!(
        err.lines().any(|l| l.contains("\"report\"")),
        "the exit report is a JSON line too:\n{err}"
    );
}

#[test]
fn the_level_comes_from_rust_log_else_the_config_else_warn() {
    if skip_unless_root("control socket under /run") {
        return;
    }
    let quiet = Run::start(&["run"], None, &config(Some("error"))).stop();
    assert!(
        !quiet.contains(WARNING),
        "log = error hides warnings:\n{quiet}"
    );
    let env_wins = Run::start(&["run"], Some("warn"), &config(Some("error"))).stop();
    assert!(
        env_wins.contains(WARNING),
        "RUST_LOG=warn wins over log = error:\n{env_wins}"
    );
    let default = Run::start(&["run"], None, &config(None)).stop();
    assert!(default.contains(WARNING), "warn by default:\n{default}");
    assert!(
        !default.contains(" INFO "),
        "no info by default:\n{default}"
    );
}

#[test]
fn a_reload_applies_a_new_log_level_without_a_restart() {
    if skip_unless_root("control socket under /run") {
        return;
    }
    let socket = control_path();
    let mut run = Run::start(&["run"], None, &config_at(&socket, None));
    std::fs::write(&run.config.path, config_at(&socket, Some("info"))).unwrap();
    kill(Pid::from_raw(run.child.id() as i32), Signal::SIGHUP).unwrap();
    // The runtime's reload line is at info: it shows only once the new
    // level is in force (the SIGHUP handler's own summary is a warning).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&run.stderr)
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains(" INFO ") && l.contains("[switch] log"))
    {
        if Instant::now() > deadline {
            panic!(
                "no info line naming the reloaded [switch] log within 10 s:\n{}",
                run.stop()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = run.stop();
    assert!(!err.contains("restart"), "the reload was refused:\n{err}");
}
