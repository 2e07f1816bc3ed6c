//! `[switch]`.

use super::*;

pub(super) fn check_switch(d: &mut Diag, raw: Option<&RawSwitch>) -> SwitchCfg {
    let mut cfg = SwitchCfg::default();
    let Some(raw) = raw else { return cfg };
    if let Some(cores) = &raw.cores {
        let mut seen: HashMap<usize, Range<usize>> = HashMap::new();
        for c in cores {
            if let Some(first) = seen.get(c.get_ref()) {
                let line = d.line(first);
                d.at(
                    c.span(),
                    format!(
                        "core {} is listed twice (first at line {line})",
                        c.get_ref()
                    ),
                );
            } else {
                seen.insert(*c.get_ref(), c.span());
                cfg.cores.push(*c.get_ref());
            }
        }
    }
    if let Some(c) = &raw.control {
        if c.get_ref().is_empty() {
            d.at(c.span(), "control is empty; give the control socket's path");
        } else {
            cfg.control = PathBuf::from(c.get_ref());
        }
    }
    cfg.state = cfg.control.with_extension("state");
    if let Some(p) = &raw.state {
        let path = PathBuf::from(p.get_ref());
        if path.is_absolute() && path.file_name().is_some() {
            cfg.state = path;
        } else {
            d.at(
                p.span(),
                format!(
                    "state {:?} is not an absolute file path (like /run/podswitch.state)",
                    p.get_ref()
                ),
            );
        }
    }
    if let Some(m) = &raw.metrics {
        match m.get_ref().parse::<SocketAddr>() {
            Ok(a) => cfg.metrics = Some(a),
            Err(_) => d.at(
                m.span(),
                format!(
                    "metrics {:?} is not ADDRESS:PORT (like 127.0.0.1:9464)",
                    m.get_ref()
                ),
            ),
        }
    }
    if let Some(p) = &raw.docker_plugin {
        let path = PathBuf::from(p.get_ref());
        let named = path.extension().is_some_and(|e| e == "sock")
            && path.file_stem().is_some_and(|s| !s.is_empty());
        if named && path.is_absolute() {
            cfg.docker_plugin = Some(path);
        } else {
            d.at(
                p.span(),
                format!(
                    "docker_plugin {:?} is not an absolute path to NAME.sock (Docker names the driver NAME; \
                     like /run/docker/plugins/podswitch.sock)",
                    p.get_ref()
                ),
            );
        }
    }
    if let Some(p) = &raw.poll {
        match p.get_ref().as_str() {
            "adaptive" => cfg.poll = PollCfg::Adaptive,
            "busy" => cfg.poll = PollCfg::Busy,
            other => d.at(
                p.span(),
                format!("unknown poll {other:?}; expected \"adaptive\" or \"busy\""),
            ),
        }
    }
    cfg.mac_aging_secs = at_least(
        d,
        raw.mac_aging.as_ref(),
        "mac_aging",
        1,
        cfg.mac_aging_secs,
    );
    cfg.fdb_size = at_least(d, raw.fdb_size.as_ref(), "fdb_size", 1, cfg.fdb_size);
    if let Some(o) = &raw.offload {
        cfg.offload = *o.get_ref();
    }
    if let Some(l) = &raw.log {
        match LogLevel::parse(l.get_ref()) {
            Some(level) => cfg.log = Some(level),
            None => d.at(
                l.span(),
                format!(
                    "unknown log level {:?}; expected one of {}",
                    l.get_ref(),
                    LogLevel::NAMES.join(", ")
                ),
            ),
        }
    }
    cfg
}
