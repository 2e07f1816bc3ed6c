//! Addresses and MACs in a network: who holds which.

use super::*;

/// Who holds which address and MAC in each network, and its allocator.
pub(super) struct Addresses {
    pub(super) ipam: HashMap<String, Ipam>,
    /// (network, ip) -> (holder, line).
    pub(super) ips: HashMap<(String, Ipv4Addr), (String, usize)>,
    /// (network, mac) -> (holder, line).
    pub(super) macs: HashMap<(String, MacAddr), (String, usize)>,
}

impl Addresses {
    pub(super) fn new(networks: &[Network]) -> Addresses {
        let mut a = Addresses {
            ipam: HashMap::new(),
            ips: HashMap::new(),
            macs: HashMap::new(),
        };
        for cfg in networks.iter().filter_map(|n| n.cfg.as_ref()) {
            let ipam = Ipam::for_network(cfg);
            // A duplicate network name keeps its first definition.
            a.ipam.entry(cfg.name.clone()).or_insert(ipam);
        }
        a
    }

    /// Claims `ip` in `network` for `holder`; if someone has it, returns
    /// who and where.
    pub(super) fn claim_ip(
        &mut self,
        network: &str,
        ip: Ipv4Addr,
        holder: String,
        line: usize,
    ) -> Result<(), (String, usize)> {
        let key = (network.to_string(), ip);
        if let Some(h) = self.ips.get(&key) {
            return Err(h.clone());
        }
        self.ips.insert(key, (holder, line));
        if let Some(ipam) = self.ipam.get_mut(network) {
            ipam.reserve(ip);
        }
        Ok(())
    }

    pub(super) fn claim_mac(
        &mut self,
        network: &str,
        mac: MacAddr,
        holder: String,
        line: usize,
    ) -> Result<(), (String, usize)> {
        let key = (network.to_string(), mac);
        if let Some(h) = self.macs.get(&key) {
            return Err(h.clone());
        }
        self.macs.insert(key, (holder, line));
        Ok(())
    }
}

/// In an L2 network the uplink's ip, when it is on the network's subnet,
/// is the host's (or the switch's) address on the same segment as the
/// endpoints: IPAM must not hand it out, and an endpoint that names it is
/// told whose it is.
pub(super) fn claim_uplink_ips(
    d: &mut Diag,
    networks: &[Network],
    raw_ports: &[S<RawPort>],
    addrs: &mut Addresses,
) {
    for cfg in networks.iter().filter_map(|n| n.cfg.as_ref()) {
        let Some(up) = cfg.uplink.as_deref().filter(|_| cfg.mode.is_l2()) else {
            continue;
        };
        let Some(rp) = raw_ports.iter().find(|p| p.get_ref().name.get_ref() == up) else {
            continue;
        };
        let Some(v) = rp.get_ref().ip.as_ref() else {
            continue;
        };
        let Some(ip) = v
            .get_ref()
            .parse::<Ipv4Net>()
            .ok()
            .map(|n| n.addr())
            .filter(|a| cfg.subnet.contains(a))
        else {
            continue;
        };
        let line = d.line(&v.span());
        // The first claim of the file: nothing holds it yet.
        let _ = addrs.claim_ip(&cfg.name, ip, format!("uplink {up:?}"), line);
    }
}

/// Checks an address given for an endpoint or remote endpoint against its
/// network: a host address of the subnet, not the gateway.
pub(super) fn check_member_ip(
    d: &mut Diag,
    v: &S<String>,
    net: Option<&Network>,
) -> Option<Ipv4Addr> {
    let ip = ipv4(d, v, "ip")?;
    let cfg = net.and_then(|n| n.cfg.as_ref())?;
    if let Some(why) = not_a_host(ip, cfg.subnet) {
        d.at(v.span(), format!("ip {ip} {why} of network {:?}", cfg.name));
        return None;
    }
    if cfg.gateway == Some(ip) {
        d.at(
            v.span(),
            format!("ip {ip} is the gateway of network {:?}", cfg.name),
        );
        return None;
    }
    if Ipam::for_network(cfg).is_reserved(ip) {
        d.at(
            v.span(),
            format!(
                "ip {ip} is in the reserved addresses of network {:?}",
                cfg.name
            ),
        );
        return None;
    }
    Some(ip)
}
