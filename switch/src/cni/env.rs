//! The CNI_* environment a runtime sets for each call.

use super::error::{CniError, Code};

/// The operation asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach the container.
    Add,
    /// Detach it (idempotent).
    Del,
    /// Verify an attachment.
    Check,
    /// Which spec versions this plugin speaks.
    Version,
    /// Whether the plugin can take ADDs now (1.1.0).
    Status,
    /// Remove attachments the runtime no longer knows (1.1.0).
    Gc,
}

/// The variables of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    /// CNI_COMMAND.
    pub command: Command,
    /// CNI_CONTAINERID (required for ADD, DEL, CHECK).
    pub container_id: Option<String>,
    /// CNI_NETNS (required for ADD and CHECK; DEL may come without it).
    pub netns: Option<String>,
    /// CNI_IFNAME (required for ADD, DEL, CHECK).
    pub ifname: Option<String>,
    /// CNI_ARGS, split at `;` into `KEY=VALUE` pairs.
    pub args: Vec<(String, String)>,
    /// CNI_PATH, split at `:`; podswitch-cni delegates to no other plugin,
    /// so it only reads it.
    pub path: Vec<String>,
}

impl CniEnv {
    /// Reads the variables through `get` (the process environment, or a
    /// map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<CniEnv, CniError> {
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty());
        let command = match nonempty("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some("STATUS") => Command::Status,
            Some("GC") => Command::Gc,
            Some(other) => {
                return Err(CniError::new(
                    Code::InvalidEnv,
                    format!("unknown CNI_COMMAND {other:?}"),
                )
                .details("expected ADD, DEL, CHECK, VERSION, STATUS or GC"))
            }
            None => return Err(CniError::new(Code::InvalidEnv, "CNI_COMMAND is not set")),
        };
        let env = CniEnv {
            command,
            container_id: nonempty("CNI_CONTAINERID"),
            netns: nonempty("CNI_NETNS"),
            ifname: nonempty("CNI_IFNAME"),
            args: parse_args(&get("CNI_ARGS").unwrap_or_default())?,
            path: get("CNI_PATH")
                .unwrap_or_default()
                .split(':')
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect(),
        };
        env.check_required()?;
        Ok(env)
    }

    fn check_required(&self) -> Result<(), CniError> {
        let need: &[(&str, bool)] = match self.command {
            Command::Add | Command::Check => &[
                ("CNI_CONTAINERID", self.container_id.is_some()),
                ("CNI_NETNS", self.netns.is_some()),
                ("CNI_IFNAME", self.ifname.is_some()),
            ],
            Command::Del => &[
                ("CNI_CONTAINERID", self.container_id.is_some()),
                ("CNI_IFNAME", self.ifname.is_some()),
            ],
            Command::Version | Command::Status | Command::Gc => &[],
        };
        let missing: Vec<&str> = need.iter().filter(|(_, ok)| !ok).map(|(k, _)| *k).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(CniError::new(
            Code::InvalidEnv,
            format!("{} not set for {:?}", missing.join(", "), self.command),
        ))
    }

    /// CNI_CONTAINERID, checked present by [`CniEnv::from_lookup`].
    pub fn container_id(&self) -> &str {
        self.container_id.as_deref().unwrap_or_default()
    }

    /// CNI_IFNAME, checked present by [`CniEnv::from_lookup`].
    pub fn ifname(&self) -> &str {
        self.ifname.as_deref().unwrap_or_default()
    }
}

fn parse_args(text: &str) -> Result<Vec<(String, String)>, CniError> {
    text.split(';')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CniError::new(
                Code::InvalidEnv,
                format!("CNI_ARGS: {kv:?} is not KEY=VALUE"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CniEnv::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn a_missing_command_is_an_environment_error() {
        assert_eq!(env(&[]).unwrap_err().code, Code::InvalidEnv);
    }

    #[test]
    fn add_without_a_netns_is_an_environment_error_naming_it() {
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "x"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert_eq!(e.code, Code::InvalidEnv);
        assert!(e.msg.contains("CNI_NETNS"), "{e}");
    }

    #[test]
    fn del_needs_no_netns_and_args_split_into_pairs() {
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        ])
        .unwrap();
        assert_eq!(e.netns, None);
        assert_eq!(e.args[1], ("K8S_POD_NAME".into(), "web".into()));
        assert_eq!(e.path.len(), 2);
    }

    #[test]
    fn malformed_args_are_an_environment_error() {
        let e = env(&[("CNI_COMMAND", "VERSION"), ("CNI_ARGS", "novalue")]).unwrap_err();
        assert_eq!(e.code, Code::InvalidEnv);
    }
}
