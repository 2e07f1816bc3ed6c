//! `[nat]`.

use super::*;

pub(super) fn check_nat(d: &mut Diag, n: &RawNat) -> NatCfg {
    let def = NatCfg::default();
    let port_range = n.port_range.as_ref().map_or(def.port_range, |v| {
        let parsed = v.get_ref().split_once('-').and_then(|(lo, hi)| {
            Some((
                lo.trim().parse::<u16>().ok()?,
                hi.trim().parse::<u16>().ok()?,
            ))
        });
        match parsed {
            None => {
                d.at(
                    v.span(),
                    format!(
                        "port_range {:?} is not LOW-HIGH (like \"32768-60999\")",
                        v.get_ref()
                    ),
                );
                def.port_range
            }
            Some((lo, hi)) if lo > hi => {
                d.at(
                    v.span(),
                    format!("port_range {lo}-{hi} is empty: LOW must not exceed HIGH"),
                );
                def.port_range
            }
            Some((lo, hi)) if lo < NAT_PORT_MIN => {
                d.at(
                    v.span(),
                    format!("port_range {lo}-{hi} must lie within {NAT_PORT_MIN}-65535"),
                );
                def.port_range
            }
            Some(r) => r,
        }
    });
    let t = |d: &mut Diag, v: &Option<S<u32>>, key: &str, default: u32| {
        at_least(d, v.as_ref(), key, 1, default)
    };
    NatCfg {
        port_range,
        max_entries: t(d, &n.max_entries, "max_entries", def.max_entries),
        tcp_established: t(
            d,
            &n.tcp_established_timeout,
            "tcp_established_timeout",
            def.tcp_established,
        ),
        tcp_syn_sent: t(
            d,
            &n.tcp_syn_sent_timeout,
            "tcp_syn_sent_timeout",
            def.tcp_syn_sent,
        ),
        tcp_fin_wait: t(
            d,
            &n.tcp_fin_wait_timeout,
            "tcp_fin_wait_timeout",
            def.tcp_fin_wait,
        ),
        tcp_time_wait: t(
            d,
            &n.tcp_time_wait_timeout,
            "tcp_time_wait_timeout",
            def.tcp_time_wait,
        ),
        tcp_close: t(d, &n.tcp_close_timeout, "tcp_close_timeout", def.tcp_close),
        udp: t(d, &n.udp_timeout, "udp_timeout", def.udp),
        udp_stream: t(
            d,
            &n.udp_stream_timeout,
            "udp_stream_timeout",
            def.udp_stream,
        ),
        icmp: t(d, &n.icmp_timeout, "icmp_timeout", def.icmp),
    }
}
