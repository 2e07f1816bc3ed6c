//! Single values: addresses, subnets, MACs, bounded numbers, interface and
//! namespace names, unique names.

use super::*;

pub(super) fn ipv4(d: &mut Diag, v: &S<String>, key: &str) -> Option<Ipv4Addr> {
    match v.get_ref().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            d.at(
                v.span(),
                format!(
                    "{key} {:?} is not an IPv4 address (like 10.0.0.1)",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

pub(super) fn ipv4_net(d: &mut Diag, v: &S<String>, key: &str, example: &str) -> Option<Ipv4Net> {
    match v.get_ref().parse() {
        Ok(n) => Some(n),
        Err(_) => {
            d.at(
                v.span(),
                format!(
                    "{key} {:?} is not an IPv4 address with a prefix length (like {example})",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

pub(super) fn unicast_mac(d: &mut Diag, v: &S<String>) -> Option<MacAddr> {
    match v.get_ref().parse::<MacAddr>() {
        Ok(m) if m.is_multicast() => {
            d.at(
                v.span(),
                format!("mac {m} is a multicast address; an interface needs a unicast MAC"),
            );
            None
        }
        Ok(m) if m == MacAddr::ZERO => {
            d.at(v.span(), "mac 00:00:00:00:00:00 is not a usable address");
            None
        }
        Ok(m) => Some(m),
        Err(e) => {
            d.at(v.span(), format!("mac {:?}: {e}", v.get_ref()));
            None
        }
    }
}

/// A number that must be at least `min`.
pub(super) fn at_least(d: &mut Diag, v: Option<&S<u32>>, key: &str, min: u32, default: u32) -> u32 {
    match v {
        Some(v) if *v.get_ref() < min => {
            d.at(v.span(), format!("{key} must be at least {min}"));
            default
        }
        Some(v) => *v.get_ref(),
        None => default,
    }
}

/// Where `ip` stands in `subnet`: `None` for a host address, else why not.
pub(super) fn not_a_host(ip: Ipv4Addr, subnet: Ipv4Net) -> Option<String> {
    if !subnet.contains(&ip) {
        Some(format!("is outside subnet {subnet}"))
    } else if subnet.prefix_len() < 31 && ip == subnet.network() {
        Some(format!("is the network address of {subnet}"))
    } else if subnet.prefix_len() < 31 && ip == subnet.broadcast() {
        Some(format!("is the broadcast address of {subnet}"))
    } else {
        None
    }
}

/// Why `s` is not a Linux interface name (dev_valid_name in the kernel).
pub(super) fn iface_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        Some("is empty".into())
    } else if s.len() > IFNAME_MAX {
        Some(format!(
            "is {} bytes long; Linux interface names have at most {IFNAME_MAX}",
            s.len()
        ))
    } else if s == "." || s == ".." {
        Some("is not a valid interface name".into())
    } else if s.contains(['/', ':', '\0']) || s.chars().any(char::is_whitespace) {
        Some("contains '/', ':', NUL or whitespace, which Linux interface names cannot".into())
    } else {
        None
    }
}

/// Why `s` is neither an absolute path nor an `ip netns` name (iproute2's
/// is_valid_netns_name, plus the file name length limit).
pub(super) fn netns_problem(s: &str) -> Option<String> {
    if s.contains('\0') {
        Some("contains NUL".into())
    } else if s.starts_with('/') {
        None
    } else if s.is_empty() {
        Some("is empty".into())
    } else if s == "." || s == ".." || s.contains('/') {
        Some(
            "is not an `ip netns` name (no '/', not . or ..) nor an absolute path \
             (like /proc/PID/ns/net)"
                .into(),
        )
    } else if s.len() > NETNS_NAME_MAX {
        Some(format!(
            "is longer than {NETNS_NAME_MAX} bytes, the limit of an `ip netns` name"
        ))
    } else {
        None
    }
}

/// Records each name once; a second use of a name is an error at it.
/// Returns name -> index of its first definition.
pub(super) fn unique_names<'r>(
    d: &mut Diag,
    names: impl Iterator<Item = &'r S<String>>,
    what: &str,
) -> HashMap<&'r str, usize> {
    let mut seen: HashMap<&str, (usize, Range<usize>)> = HashMap::new();
    for (i, n) in names.enumerate() {
        if n.get_ref().is_empty() {
            d.at(n.span(), format!("{what} name is empty"));
            continue;
        }
        if let Some((_, first)) = seen.get(n.get_ref().as_str()) {
            let line = d.line(first);
            d.at(
                n.span(),
                format!(
                    "duplicate {what} name {:?} (first defined at line {line})",
                    n.get_ref()
                ),
            );
        } else {
            seen.insert(n.get_ref(), (i, n.span()));
        }
    }
    seen.into_iter().map(|(k, (i, _))| (k, i)).collect()
}

pub(super) fn known_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<_> = names.collect();
    if v.is_empty() {
        "none is defined".into()
    } else {
        format!("defined: {}", v.join(", "))
    }
}
