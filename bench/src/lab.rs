//! `podbench lab`: how long `podswitch lab up` takes to its `ready` line
//! and until every container has pinged its gateway, and how long `lab
//! down` (SIGTERM until the process is gone) takes, with a check that
//! nothing is left (no namespace of the lab, no TAP of the run). Several
//! binaries run in turn (A B A B ...) so the machine's noise hits each
//! alike; each column is the median of the runs.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use pmd::netlink::Rtnl;
use switch::config::Config;

use crate::tcp::child::{lines_of, wait_line, ChildGuard, TempFile};

/// One `lab up` / `lab down` cycle.
#[derive(Debug, Clone)]
pub struct LabRun {
    /// Start to the `ready` line.
    pub ready: Duration,
    /// Start until every container got its gateway's echo reply.
    pub pinged: Duration,
    /// SIGTERM until the process exited.
    pub down: Duration,
    /// Containers that got no reply.
    pub unanswered: usize,
    /// Namespaces and TAPs still there after the exit.
    pub left: Vec<String>,
}

/// Runs `bin lab up CONFIG`, pings, stops it, and looks for leftovers.
pub fn run_once(bin: &Path, config: &Path, cfg: &Config) -> Result<LabRun> {
    let stale = switch::lab::leftovers(cfg);
    ensure!(
        stale.is_empty(),
        "{} namespaces of this lab exist already (run `podswitch lab down {}`)",
        stale.len(),
        config.display()
    );
    let log =
        TempFile(std::env::temp_dir().join(format!("{}.log", pmd::netns::unique_name("pblab"))));
    let start = Instant::now();
    let mut child = ChildGuard::spawn(
        Command::new(bin)
            .arg("lab")
            .arg("up")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log.0)?),
        Duration::from_secs(60),
    )
    .with_context(|| format!("starting {}", bin.display()))?;
    let rx = lines_of(child.take_stdout().context("piped stdout")?);
    if let Err(e) = wait_line(&rx, "ready", Duration::from_secs(300)) {
        child.stop();
        bail!(
            "{} lab up: {e}; its log:\n{}",
            bin.display(),
            std::fs::read_to_string(&log.0).unwrap_or_default()
        );
    }
    let ready = start.elapsed();
    let errors = switch::lab::ping_gateways(cfg);
    let pinged = start.elapsed();
    for e in errors.iter().take(3) {
        eprintln!("  {e:#}");
    }
    let taps = format!("pst{}e", child.pid() % 100_000);
    let stopping = Instant::now();
    let status = child.stop();
    let down = stopping.elapsed();
    ensure!(
        status.is_some_and(|s| s.success()),
        "{} did not exit cleanly on SIGTERM ({status:?})",
        bin.display()
    );
    let mut left = switch::lab::leftovers(cfg);
    left.extend(
        Rtnl::open()?
            .link_names()?
            .into_iter()
            .filter(|n| n.starts_with(&taps)),
    );
    Ok(LabRun {
        ready,
        pinged,
        down,
        unanswered: errors.len(),
        left,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Runs every binary `runs` times in turn on `config`; prints progress on
/// stderr and returns a markdown table. Fails if any run left something
/// behind or a container got no reply.
pub fn run(bins: &[PathBuf], config: &Path, runs: u32) -> Result<String> {
    let cfg = switch::config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let containers = switch::lab::gateways(&cfg).len();
    let mut all: Vec<Vec<LabRun>> = vec![Vec::new(); bins.len()];
    for r in 0..runs {
        for (b, bin) in bins.iter().enumerate() {
            let run = run_once(bin, config, &cfg)?;
            eprintln!(
                "run {r} {}: ready {:.3} s, all pinged {:.3} s, down {:.3} s, unanswered {}, left {}",
                bin.display(),
                run.ready.as_secs_f64(),
                run.pinged.as_secs_f64(),
                run.down.as_secs_f64(),
                run.unanswered,
                run.left.len()
            );
            all[b].push(run);
        }
    }
    let mut out = String::from(
        "| binary | containers | ready (s) | every container pinged its gateway (s) | down (s) |\n|---|---|---|---|---|\n",
    );
    let mut bad = Vec::new();
    for (bin, runs) in bins.iter().zip(&all) {
        let m = |f: fn(&LabRun) -> Duration| median(runs.iter().map(f).collect()).as_secs_f64();
        out.push_str(&format!(
            "| {} | {containers} | {:.3} | {:.3} | {:.3} |\n",
            bin.display(),
            m(|r| r.ready),
            m(|r| r.pinged),
            m(|r| r.down)
        ));
        for r in runs {
            if r.unanswered > 0 || !r.left.is_empty() {
                bad.push(format!(
                    "{}: {} containers unanswered, left behind: {:?}",
                    bin.display(),
                    r.unanswered,
                    r.left
                ));
            }
        }
    }
    ensure!(bad.is_empty(), "{out}\n{}", bad.join("\n"));
    Ok(out)
}
