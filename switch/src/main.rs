//! The `podswitch` binary: run a switch from a config, check a config,
//! bring a lab up or down, or run the built-in demo.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use switch::config::{self, Config};
use switch::control::client::Ctl;
use switch::control::protocol::ReloadSummary;
use switch::control::ControlSocket;
use switch::daemon::Switch;
use switch::docker::DockerPlugin;
use switch::logging::{self, LogFormat};
use switch::metrics::MetricsServer;
use switch::runtime::{ReloadError, Runtime};
use switch::{demo, lab};

#[derive(Parser)]
#[command(
    name = "podswitch",
    version,
    about = "Userspace virtual switch for container networks"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// How log lines on stderr look: `text`, or `json` for collectors.
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the switch in the foreground; prints `ready` once up, stops
    /// cleanly on SIGINT/SIGTERM.
    Run {
        /// The config file.
        config: PathBuf,
    },
    /// Validate a config; errors are printed as FILE:LINE:COL: message.
    Check {
        /// The config file.
        config: PathBuf,
    },
    /// Create or remove the namespaces of a lab config.
    Lab {
        #[command(subcommand)]
        cmd: LabCmd,
    },
    /// HNS JSON (Windows container networking).
    Hns {
        #[command(subcommand)]
        cmd: HnsCmd,
    },
    /// Build a small built-in lab, run traffic through it, show what
    /// happened, and remove everything.
    Demo,
    /// Ask a running switch (its control socket): show, stats, fdb,
    /// conntrack, neighbors, endpoint, mapping, reload, trace, capture.
    Ctl(Ctl),
}

#[derive(Subcommand)]
enum HnsCmd {
    /// Print the TOML that HNS network and endpoint objects map onto (the
    /// uplinks they name must be [[port]]s of the file it goes into);
    /// errors are printed as FILE:LINE:COL: message.
    Import {
        /// The config the tables go into: adapter names resolve to its
        /// [[port]]s by name or iface.
        #[arg(long)]
        config: Option<PathBuf>,
        /// HNS JSON files: an object or an array of them each.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LabCmd {
    /// Create the endpoints' namespaces, then run the switch; on exit the
    /// namespaces it created are removed.
    Up {
        /// The lab config.
        config: PathBuf,
    },
    /// Remove the endpoints' namespaces (after a lab that was killed).
    Down {
        /// The lab config.
        config: PathBuf,
    },
    /// Run a command where an endpoint lives: its namespace, the one it
    /// shares (`container:NAME`), or podswitch's (`host`).
    Exec {
        /// The lab config.
        config: PathBuf,
        /// The endpoint.
        endpoint: String,
        /// The command and its arguments (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        eprint!("{errors}");
        if !errors.to_string().ends_with('\n') {
            eprintln!();
        }
        ExitCode::from(2)
    })
}

/// `hns import`, with the text of `--config` when given.
fn import(config: Option<&Path>, files: &[PathBuf]) -> Result<String, config::ConfigErrors> {
    let text = match config {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
            config::ConfigErrors(vec![config::ConfigError {
                file: p.display().to_string(),
                line: 0,
                col: 0,
                message: format!("cannot read config file: {e}"),
            }])
        })?),
        None => None,
    };
    let name = config.map(|p| p.display().to_string()).unwrap_or_default();
    config::import_hns(files, text.as_deref().map(|t| (t, name.as_str())))
}

/// Runs until SIGINT or SIGTERM.
fn serve(cfg: &Config, path: &Path) -> Result<()> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    switch::control::claim(&cfg.switch.control)?;
    let switch = Switch::start(cfg)?;
    let runtime = Arc::new(Runtime::new(switch, cfg.clone(), path));
    let restored = runtime.restore(&cfg.switch.state);
    if restored != Default::default() {
        tracing::warn!(
            "restored from {}: {} networks, {} endpoints, {} mappings; left out: {:?}",
            cfg.switch.state.display(),
            restored.networks,
            restored.endpoints,
            restored.mappings,
            restored.skipped
        );
    }
    let control = ControlSocket::bind(&cfg.switch.control, &runtime)?;
    let metrics = match cfg.switch.metrics {
        Some(addr) => Some(MetricsServer::start(addr, &runtime)?),
        None => None,
    };
    let docker = match &cfg.switch.docker_plugin {
        Some(path) => Some(DockerPlugin::bind(path, &runtime)?),
        None => None,
    };
    println!("ready");
    std::io::stdout().flush().ok();
    for sig in signals.forever() {
        match sig {
            SIGHUP => log_reload(runtime.reload()),
            _ => break,
        }
    }
    drop(docker);
    drop(metrics);
    drop(control);
    let runtime = take_back(runtime)?;
    // Final counters on stderr: what moved and what was dropped, and why.
    runtime.with_switch(|switch, _| {
        let dp = switch.dataplane();
        logging::print_block(&format!(
            "{}{}{}{}{}",
            switch::report::ports(dp),
            switch::report::nat(dp),
            switch::report::uplinks(dp),
            switch::report::overlay(dp),
            switch::report::offload(dp)
        ));
    });
    let reports = runtime.stop();
    let leaked: usize = reports.iter().map(|r| r.leaked).sum();
    if leaked > 0 {
        tracing::error!("{leaked} buffers were not returned to their pools");
    }
    Ok(())
}

/// Logs what a SIGHUP reload did (at warn, the default level: an
/// operator who sent the signal sees the outcome).
fn log_reload(r: Result<ReloadSummary, ReloadError>) {
    match r {
        Ok(s) => tracing::warn!(
            "reloaded on SIGHUP: added {:?}, removed {:?}, changed {:?}",
            s.added,
            s.removed,
            s.changed
        ),
        Err(e) => tracing::error!("reload on SIGHUP refused: {e}"),
    }
}

/// The runtime, once no control or metrics request holds it (their
/// threads hold it only while a request runs).
fn take_back(mut runtime: Arc<Runtime>) -> Result<Runtime> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match Arc::try_unwrap(runtime) {
            Ok(r) => return Ok(r),
            Err(shared) if Instant::now() < deadline => {
                runtime = shared;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => anyhow::bail!("a control request did not finish within 3 s of the stop"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = logging::init(cli.log_format);
    let result = match cli.cmd {
        Cmd::Check { config } => match load(&config) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({} networks, {} endpoints, {} ports)",
                    config.display(),
                    cfg.networks.len(),
                    cfg.endpoints.len() + cfg.endpoint_modes.len(),
                    cfg.ports.len()
                );
                Ok(())
            }
            Err(code) => return code,
        },
        Cmd::Run { config } => match load(&config) {
            Ok(cfg) => {
                log.apply_config(cfg.switch.log);
                serve(&cfg, &config)
            }
            Err(code) => return code,
        },
        Cmd::Lab {
            cmd: LabCmd::Up { config },
        } => match load(&config) {
            Ok(cfg) => {
                log.apply_config(cfg.switch.log);
                lab::up(&cfg).and_then(|created| {
                    let r = serve(&cfg, &config);
                    lab::finish(&cfg, &created);
                    r
                })
            }
            Err(code) => return code,
        },
        Cmd::Lab {
            cmd: LabCmd::Down { config },
        } => match load(&config) {
            Ok(cfg) => {
                for ns in lab::down(&cfg) {
                    println!("removed netns {ns}");
                }
                Ok(())
            }
            Err(code) => return code,
        },
        Cmd::Lab {
            cmd:
                LabCmd::Exec {
                    config,
                    endpoint,
                    command,
                },
        } => match load(&config) {
            Ok(cfg) => match lab::exec(&cfg, &endpoint, &command) {
                Ok(status) => return ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
                Err(e) => Err(e),
            },
            Err(code) => return code,
        },
        Cmd::Hns {
            cmd: HnsCmd::Import { config, files },
        } => match import(config.as_deref(), &files) {
            Ok(toml) => {
                print!("{toml}");
                Ok(())
            }
            Err(errors) => {
                eprintln!("{errors}");
                return ExitCode::from(2);
            }
        },
        Cmd::Demo => demo::run(),
        Cmd::Ctl(ctl) => return ctl.run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podswitch: {e:#}");
            ExitCode::FAILURE
        }
    }
}
