//! `podswitch-cni`, a CNI plugin (spec 0.4.0, 1.0.0, 1.1.0) that attaches
//! containers through a running `podswitch run`: the runtime's
//! environment (`env`) and stdin config (`config`) become control-socket
//! requests (`daemon`) for endpoints named after the container
//! (`name`); ADD answers with a result in the config's version
//! (`result`), failures with the spec's error object (`error`).

pub mod commands;
pub mod config;
pub mod daemon;
pub mod env;
pub mod error;
pub mod name;
pub mod result;

use serde_json::Value;

use config::{version_of, NetConf};
use env::{CniEnv, Command};
use error::CniError;

/// What the plugin prints and how it exits.
#[derive(Debug)]
pub struct Outcome {
    /// JSON for stdout (a result, a version answer or an error), if any.
    pub stdout: Option<Value>,
    /// 0 on success.
    pub exit: u8,
}

/// Runs one call: `get` reads the environment, `stdin` is the config.
pub fn run(get: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    match dispatch(get, stdin) {
        Ok(stdout) => Outcome { stdout, exit: 0 },
        Err(e) => {
            let version = version_of(stdin)
                .filter(|v| config::SUPPORTED_VERSIONS.contains(&v.as_str()))
                .unwrap_or_else(|| config::SUPPORTED_VERSIONS[2].to_string());
            Outcome {
                stdout: Some(e.to_json(&version)),
                exit: 1,
            }
        }
    }
}

fn dispatch(get: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    let env = CniEnv::from_lookup(get)?;
    if env.command == Command::Version {
        return Ok(Some(result::version_result(&config::requested_version(
            stdin,
        ))));
    }
    let conf = NetConf::parse(stdin)?;
    match env.command {
        Command::Add => commands::add(&env, &conf).map(Some),
        Command::Del => commands::del(&env, &conf).map(|()| None),
        Command::Check => commands::check(&env, &conf).map(|()| None),
        Command::Status => commands::status(&conf).map(|()| None),
        Command::Gc => commands::gc(&conf).map(|()| None),
        Command::Version => unreachable!("answered above"),
    }
}
