//! `[[remote_endpoint]]`.

use super::*;

pub(super) fn check_remote_endpoints(
    d: &mut Diag,
    raw: &[S<RawRemoteEndpoint>],
    networks: &[Network],
) -> Vec<Option<RemoteEndpointCfg>> {
    let mut out = Vec::with_capacity(raw.len());
    for r in raw.iter().map(S::get_ref) {
        let net = find_network(networks, r.network.get_ref());
        match net {
            None => dangling_network(d, &r.network, networks),
            Some(n) if n.mode != NetworkMode::Overlay => d.at(
                r.network.span(),
                format!(
                    "remote endpoints belong to overlay networks; {:?} is {}",
                    n.name,
                    n.mode.as_str()
                ),
            ),
            Some(_) => {}
        }
        let ip = check_member_ip(d, &r.ip, net);
        let mac = match &r.mac {
            Some(m) => unicast_mac(d, m),
            None => ip.map(MacAddr::from_ipv4),
        };
        let vtep = ipv4(d, &r.vtep, "vtep");
        out.push(match (net, ip, mac, vtep) {
            (Some(_), Some(ip), Some(mac), Some(vtep)) => Some(RemoteEndpointCfg {
                network: r.network.get_ref().clone(),
                ip,
                mac,
                vtep,
            }),
            _ => None,
        });
    }
    out
}
