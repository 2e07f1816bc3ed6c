//! CNI errors: a code from the spec's table and a message, written to
//! stdout as the spec's error object.

use serde::Serialize;

/// The well-known codes of the CNI spec ("Error" section); 100 and up are
/// the plugin's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: the config's cniVersion is not one this plugin speaks.
    IncompatibleVersion = 1,
    /// 4: a required CNI_* variable is missing or malformed.
    InvalidEnv = 4,
    /// 5: reading stdin or a namespace failed.
    Io = 5,
    /// 6: stdin is not the JSON it should be.
    Decode = 6,
    /// 7: the network config is wrong (e.g. an unknown network).
    InvalidConfig = 7,
    /// 11: the daemon is not up; the runtime may retry.
    TryAgainLater = 11,
    /// 50: STATUS: the plugin cannot serve any request.
    NotAvailable = 50,
    /// 51: STATUS: the plugin cannot serve new ADDs.
    NotAvailableForAdd = 51,
    /// 100: the daemon refused the request (its message says why).
    Refused = 100,
    /// 101: CHECK found the container's network not as ADD left it.
    CheckFailed = 101,
}

/// A failed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// Which kind.
    pub code: Code,
    /// One line for the user.
    pub msg: String,
    /// More context, when there is any.
    pub details: String,
}

impl CniError {
    /// An error without details.
    pub fn new(code: Code, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Adds details.
    pub fn details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// The spec's error object in `version`.
    pub fn to_json(&self, version: &str) -> serde_json::Value {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_value(Wire {
            cni_version: version,
            code: self.code as u32,
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or_default()
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code as u32)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}
