//! `podswitch-cni`: the CNI plugin binary. A runtime execs it with the
//! CNI_* environment and the network config on stdin; see `switch::cni`.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        let err = switch::cni::error::CniError::new(
            switch::cni::error::Code::Io,
            format!("reading stdin: {e}"),
        );
        println!(
            "{}",
            err.to_json(switch::cni::config::SUPPORTED_VERSIONS[2])
        );
        return ExitCode::from(1);
    }
    let out = switch::cni::run(|k| std::env::var(k).ok(), &stdin);
    if let Some(json) = out.stdout {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{json}");
        let _ = o.flush();
    }
    ExitCode::from(out.exit)
}
