//! `[[endpoint]]`s in Docker's endpoint modes: `network = "none"`,
//! `"host"` or `"container:NAME"`. Nothing of them is switched, so they
//! take no address, MAC, port or anti-spoofing setting.

use super::*;

pub(super) fn check_endpoint_modes(
    d: &mut Diag,
    raw: &[S<RawEndpoint>],
    raw_networks: &[S<RawNetwork>],
    switched: &[Endpoint],
) -> Vec<EndpointModeCfg> {
    for n in raw_networks {
        let name = &n.get_ref().name;
        if EndpointMode::word(name.get_ref()).is_some() {
            d.at(
                name.span(),
                format!(
                    "network name {:?} is Docker's endpoint mode; name the network otherwise",
                    name.get_ref()
                ),
            );
        }
    }
    let moded: Vec<&S<RawEndpoint>> = raw
        .iter()
        .filter(|e| EndpointMode::word(e.get_ref().network.get_ref()).is_some())
        .collect();
    let mut out = Vec::new();
    for re in &moded {
        let e = re.get_ref();
        let name = e.name.get_ref();
        let network = e.network.get_ref().as_str();
        let mut ok = true;
        let no = |d: &mut Diag, span: Range<usize>, key: &str| {
            d.at(
                span,
                format!("endpoint {name:?} has network {network:?}: it takes no {key}"),
            );
        };
        for (key, span) in [
            ("ip", e.ip.as_ref().map(|v| v.span())),
            ("mac", e.mac.as_ref().map(|v| v.span())),
            ("port", e.port.as_ref().map(|v| v.span())),
            (
                "allow_spoofing",
                e.allow_spoofing.as_ref().map(|v| v.span()),
            ),
        ] {
            if let Some(span) = span {
                no(d, span, key);
                ok = false;
            }
        }
        let mode = match (network, &e.netns) {
            ("none", Some(ns)) => match netns_problem(ns.get_ref()) {
                Some(why) => {
                    d.at(ns.span(), format!("netns {:?} {why}", ns.get_ref()));
                    None
                }
                None => Some(EndpointMode::None(ns.get_ref().clone())),
            },
            ("none", None) => {
                d.at(
                    re.span(),
                    format!(
                        "endpoint {name:?} has network \"none\": it needs netns (its own \
                         namespace, with loopback only)"
                    ),
                );
                None
            }
            (_, Some(ns)) => {
                no(d, ns.span(), "netns (it shares one)");
                None
            }
            ("host", None) => Some(EndpointMode::Host),
            (_, None) => container(d, re, &moded, switched),
        };
        if let (true, Some(mode)) = (ok, mode) {
            out.push(EndpointModeCfg {
                name: name.clone(),
                mode,
            });
        }
    }
    out
}

/// `container:NAME`: NAME is another endpoint, and following the chain
/// from it ends at an endpoint with a namespace, not back here.
fn container(
    d: &mut Diag,
    re: &S<RawEndpoint>,
    moded: &[&S<RawEndpoint>],
    switched: &[Endpoint],
) -> Option<EndpointMode> {
    let e = re.get_ref();
    let span = e.network.span();
    let target = EndpointMode::word(e.network.get_ref())?;
    let exists = |n: &str| {
        switched.iter().any(|s| s.raw.name.get_ref() == n)
            || moded.iter().any(|m| m.get_ref().name.get_ref() == n)
    };
    if !exists(target) {
        let names = switched
            .iter()
            .map(|s| s.raw.name.get_ref().as_str())
            .chain(moded.iter().map(|m| m.get_ref().name.get_ref().as_str()));
        d.at(
            span,
            format!(
                "container {target:?} is not an [[endpoint]]; {}",
                known_list(names)
            ),
        );
        return None;
    }
    let mut path = vec![e.name.get_ref().as_str()];
    let mut at = target;
    loop {
        if path.contains(&at) {
            path.push(at);
            d.at(
                span,
                format!(
                    "endpoints share namespaces in a cycle: {}",
                    path.join(" -> ")
                ),
            );
            return None;
        }
        path.push(at);
        let next = moded
            .iter()
            .find(|m| m.get_ref().name.get_ref() == at)
            .and_then(|m| m.get_ref().network.get_ref().strip_prefix("container:"));
        match next {
            Some(n) if exists(n) => at = n,
            // A switched endpoint, none, host, or a dangling name (reported
            // at its own endpoint): the chain ends.
            _ => break,
        }
    }
    let behind_port = switched
        .iter()
        .any(|s| s.raw.name.get_ref() == at && s.raw.port.is_some());
    if behind_port {
        d.at(
            span,
            format!("endpoint {at:?} sits behind a [[port]]: it has no namespace to share"),
        );
        return None;
    }
    Some(EndpointMode::Container(target.to_string()))
}
