//! Where the daemon's log lines go and how they look: plain text on stderr
//! (ANSI colours only when stderr is a terminal, so a log file or the
//! journal gets no escape sequences), or one JSON object per line for log
//! collectors. The level comes from `RUST_LOG`, else `[switch] log`, else
//! warn; the config is read after logging starts, so its level is applied
//! later through a reload handle.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use crate::config::LogLevel;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Lets the config's level take over once the config is loaded.
#[derive(Clone)]
pub struct LogLevelHandle {
    handle: reload::Handle<EnvFilter, Registry>,
    from_env: bool,
}

/// The format `init` chose, for text the daemon writes to stderr itself.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The level handle `init` made, for a reload's new `[switch] log`.
static LEVEL: OnceLock<LogLevelHandle> = OnceLock::new();

/// Starts logging to stderr in `format`, at `RUST_LOG`'s level or warn.
pub fn init(format: LogFormat) -> LogLevelHandle {
    let _ = FORMAT.set(format);
    let env = EnvFilter::try_from_default_env().ok();
    let from_env = env.is_some();
    let (filter, handle) = reload::Layer::new(env.unwrap_or_else(|| EnvFilter::new("warn")));
    let registry = tracing_subscriber::registry().with(filter);
    let writer = std::io::stderr;
    let result = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(writer)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(writer))
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("podswitch: logging not started: {e}");
    }
    let level = LogLevelHandle { handle, from_env };
    let _ = LEVEL.set(level.clone());
    level
}

/// Applies a reloaded config's `[switch] log` (see
/// [`LogLevelHandle::apply_config`]); nothing when logging was not started
/// by [`init`] (a library user's own subscriber).
pub fn apply_config(level: Option<LogLevel>) {
    if let Some(h) = LEVEL.get() {
        h.apply_config(level);
    }
}

impl LogLevelHandle {
    /// Applies the config's `[switch] log`, warn when it has none, unless
    /// `RUST_LOG` was set (the environment wins: an operator debugging one
    /// run need not edit the file).
    pub fn apply_config(&self, level: Option<LogLevel>) {
        if self.from_env {
            return;
        }
        let level = level.map_or("warn", LogLevel::as_str);
        if let Err(e) = self.handle.reload(EnvFilter::new(level)) {
            tracing::warn!("log level {level} not applied: {e}");
        }
    }
}

/// Writes a block of text meant for the operator (the exit report) to
/// stderr: as it is in text format; in JSON format as one object
/// `{"report": TEXT}`, so every line of stderr still parses as JSON.
pub fn print_block(text: &str) {
    if text.is_empty() {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => err.write_all(text.as_bytes()),
        LogFormat::Json => writeln!(err, "{}", serde_json::json!({ "report": text })),
    };
}
