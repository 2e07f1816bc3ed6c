//! Per-endpoint ACLs (HNS `ACL` policies), enforced in the data path.
//!
//! An endpoint's rules are compiled once into an [`Acl`], sorted by
//! priority. A frame is matched against the rules of its direction: `Out`
//! for frames the endpoint sends, `In` for frames delivered to it. The
//! first matching rule (lowest priority number, as VFP orders its rules;
//! file order among equals) decides; a frame no rule matches is allowed,
//! as an HNS endpoint without a default rule allows it.
//!
//! Only IPv4 is matched: ARP and other EtherTypes pass (HNS ACLs are IP
//! rules). A later fragment has no ports: it matches only rules without
//! ports, so a port rule does not see it (as a stateless VFP rule).

use ipnet::Ipv4Net;
use pmd::meta::PacketMeta;
use pmd::wire;

use crate::config::{AclAction, AclDirection, AclRule};
use crate::filter::l4_ports;

/// One endpoint's compiled rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    allow: bool,
    dir: AclDirection,
    protocols: Vec<u8>,
    local: Vec<Ipv4Net>,
    remote: Vec<Ipv4Net>,
    local_ports: Vec<(u16, u16)>,
    remote_ports: Vec<(u16, u16)>,
}

impl Acl {
    /// The ACL of `rules`; `None` when there are none, so the data path
    /// tests one `Option` for an endpoint without an ACL.
    pub fn compile(rules: &[AclRule]) -> Option<Acl> {
        if rules.is_empty() {
            return None;
        }
        let mut sorted: Vec<&AclRule> = rules.iter().collect();
        sorted.sort_by_key(|r| r.priority);
        Some(Acl {
            rules: sorted
                .into_iter()
                .map(|r| Rule {
                    allow: r.action == AclAction::Allow,
                    dir: r.direction,
                    protocols: r.protocols.clone(),
                    local: r.local_addresses.clone(),
                    remote: r.remote_addresses.clone(),
                    local_ports: r.local_ports.clone(),
                    remote_ports: r.remote_ports.clone(),
                })
                .collect(),
        })
    }

    /// Whether the frame `buf` (parsed as `meta`) may pass in direction
    /// `dir` of this endpoint.
    pub fn admits(&self, dir: AclDirection, buf: &[u8], meta: &PacketMeta) -> bool {
        if meta.ethertype != wire::ETHERTYPE_IPV4 {
            return true;
        }
        let (local, remote) = match dir {
            AclDirection::Out => (meta.ip_src, meta.ip_dst),
            AclDirection::In => (meta.ip_dst, meta.ip_src),
        };
        let ports = l4_ports(buf, meta).map(|(src, dst)| match dir {
            AclDirection::Out => (src, dst),
            AclDirection::In => (dst, src),
        });
        for r in self.rules.iter().filter(|r| r.dir == dir) {
            if r.matches(meta.ip_proto, local.into(), remote.into(), ports) {
                return r.allow;
            }
        }
        true
    }
}

impl Rule {
    fn matches(
        &self,
        proto: u8,
        local: std::net::Ipv4Addr,
        remote: std::net::Ipv4Addr,
        ports: Option<(u16, u16)>,
    ) -> bool {
        let in_nets = |nets: &[Ipv4Net], a| nets.is_empty() || nets.iter().any(|n| n.contains(&a));
        let in_ranges = |ranges: &[(u16, u16)], p: Option<u16>| {
            ranges.is_empty()
                || p.is_some_and(|p| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&p)))
        };
        (self.protocols.is_empty() || self.protocols.contains(&proto))
            && in_nets(&self.local, local)
            && in_nets(&self.remote, remote)
            && in_ranges(&self.local_ports, ports.map(|p| p.0))
            && in_ranges(&self.remote_ports, ports.map(|p| p.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: AclAction, dir: AclDirection, ports: &[(u16, u16)], priority: u16) -> AclRule {
        AclRule {
            action,
            direction: dir,
            protocols: vec![6],
            local_addresses: vec![],
            remote_addresses: vec![],
            local_ports: ports.to_vec(),
            remote_ports: vec![],
            priority,
        }
    }

    /// A TCP SYN from 10.0.0.9:40000 to 10.0.0.2:`dport`.
    fn tcp_to(dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&wire::ETHERTYPE_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 9]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[46] = 0x50;
        f[47] = 0x02;
        f
    }

    #[test]
    fn no_rules_compile_to_no_acl() {
        assert_eq!(Acl::compile(&[]), None);
    }

    #[test]
    fn a_block_rule_on_one_local_port_blocks_that_port_inbound_only() {
        let acl = Acl::compile(&[rule(
            AclAction::Block,
            AclDirection::In,
            &[(8080, 8080)],
            100,
        )])
        .unwrap();
        let blocked = tcp_to(8080);
        let meta = pmd::meta::parse(&blocked).unwrap();
        assert!(!acl.admits(AclDirection::In, &blocked, &meta));
        assert!(
            acl.admits(AclDirection::Out, &blocked, &meta),
            "an In rule says nothing about Out"
        );
        let other = tcp_to(9090);
        let meta = pmd::meta::parse(&other).unwrap();
        assert!(acl.admits(AclDirection::In, &other, &meta));
    }

    #[test]
    fn the_lowest_priority_number_decides() {
        let acl = Acl::compile(&[
            rule(AclAction::Block, AclDirection::In, &[], 200),
            rule(AclAction::Allow, AclDirection::In, &[(80, 80)], 100),
        ])
        .unwrap();
        let web = tcp_to(80);
        let meta = pmd::meta::parse(&web).unwrap();
        assert!(acl.admits(AclDirection::In, &web, &meta));
        let ssh = tcp_to(22);
        let meta = pmd::meta::parse(&ssh).unwrap();
        assert!(!acl.admits(AclDirection::In, &ssh, &meta));
    }
}
