//! Networks spread over several PMD threads, RSS style.
//!
//! A group (an uplink with its `nat` networks and their endpoints, or a
//! network without uplink) that is given more than one core runs on each
//! of them at once: every thread has its own queue of each of the group's
//! ports (a TAP queue, a socket of an AF_PACKET fan-out group), its own
//! tables and its own slice of the NAT's port range. Frames still never
//! cross threads; the kernel picks the queue with a steering program
//! (`pmd::steer`) that sends both directions of a connection, and the
//! replies to a translated one, to the same thread. That is why only
//! ports the kernel can steer (TAPs, veth endpoints, AF_PACKET ports) and
//! only `nat` networks spread: an AF_XDP socket is bound to one queue of
//! its device (veth has one), and the L2 modes and the overlay learn
//! state from every frame of their segment, which one thread would miss.

use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use nat::NatConfig;
use pmd::steer::{split_range, MappedPort, NatSteer, Side, SteerPlan, SteerProgram};

/// What a port of a spread group opens: a queue per thread, which the
/// group's steering program picks between.
#[derive(Clone)]
pub struct Queues {
    /// Threads of the group, so queues per port.
    pub threads: usize,
    /// The program for the port's side (endpoints: inside; uplink:
    /// outside).
    pub steer: Arc<SteerProgram>,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} steered queues", self.threads)
    }
}

/// Which of a group's threads a pipeline is, and of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    /// This thread's place among the group's threads (the steering
    /// program's answer for its frames).
    pub index: u16,
    /// How many threads the group runs on.
    pub of: u16,
}

impl Default for Replica {
    fn default() -> Self {
        Replica { index: 0, of: 1 }
    }
}

impl Replica {
    /// The thread that answers for the group where one answer is wanted
    /// (ARP requests for the uplink address reach every thread).
    pub fn is_first(self) -> bool {
        self.index == 0
    }

    /// `cfg` with only this thread's slice of its port range: the ports
    /// its own connections are translated to, which the steering program
    /// sends back to it.
    pub fn nat_slice(self, mut cfg: NatConfig) -> NatConfig {
        if self.of > 1 {
            if let Some(r) = split_range(cfg.port_range, self.of).get(self.index as usize) {
                cfg.port_range = *r;
            }
        }
        cfg
    }
}

/// The steering programs of a group spread over several PMD threads: one
/// for its endpoints' side, one for its uplink's.
pub struct GroupSteer {
    /// The group's threads.
    pub threads: usize,
    /// The group's networks, by name (for messages).
    pub networks: Vec<String>,
    /// For the endpoints and the ports with endpoints behind them.
    pub inside: Arc<SteerProgram>,
    /// For the uplink, when the group has one.
    pub outside: Option<Arc<SteerProgram>>,
    /// What the programs were told: the group's subnets and gateways and
    /// its uplink's NAT (address, port range, mappings).
    known: Mutex<Known>,
}

/// What a group's steering programs were last told.
struct Known {
    subnets: Vec<(Ipv4Addr, u8)>,
    gateways: Vec<Ipv4Addr>,
    nat: Option<NatConfig>,
}

impl GroupSteer {
    /// Loads the programs for `threads` threads, `networks` (name, subnet,
    /// gateway) and, with an uplink, its NAT.
    pub fn load(
        threads: usize,
        networks: Vec<(String, Ipv4Net, Option<Ipv4Addr>)>,
        uplink: bool,
        nat: Option<&NatConfig>,
    ) -> Result<GroupSteer> {
        let subnets: Vec<(Ipv4Addr, u8)> = networks
            .iter()
            .map(|(_, s, _)| (s.network(), s.prefix_len()))
            .collect();
        let gateways: Vec<Ipv4Addr> = networks.iter().filter_map(|(_, _, g)| *g).collect();
        let names: Vec<String> = networks.into_iter().map(|(n, _, _)| n).collect();
        let known = Known {
            subnets,
            gateways,
            nat: nat.cloned(),
        };
        let what = || {
            format!(
                "networks {}: loading the steering program",
                names.join(", ")
            )
        };
        let inside = SteerProgram::load(&plan(threads, Side::Inside, &known)).with_context(what)?;
        let outside = match uplink {
            true => Some(Arc::new(
                SteerProgram::load(&plan(threads, Side::Outside, &known)).with_context(what)?,
            )),
            false => None,
        };
        Ok(GroupSteer {
            threads,
            networks: names,
            inside: Arc::new(inside),
            outside,
            known: Mutex::new(known),
        })
    }

    /// Tells the programs of a network added at run time.
    pub fn add_network(&self, subnet: Ipv4Net, gateway: Option<Ipv4Addr>) -> Result<()> {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.subnets.push((subnet.network(), subnet.prefix_len()));
        known.gateways.extend(gateway);
        self.update(&known)
    }

    /// Tells the programs the uplink's NAT as it is now (a reload, or a
    /// mapping added at run time).
    pub fn set_nat(&self, nat: Option<&NatConfig>) -> Result<()> {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.nat = nat.cloned();
        self.update(&known)
    }

    fn update(&self, known: &Known) -> Result<()> {
        self.inside
            .update(&plan(self.threads, Side::Inside, known))
            .context("updating the steering program")?;
        if let Some(out) = &self.outside {
            out.update(&plan(self.threads, Side::Outside, known))
                .context("updating the steering program")?;
        }
        Ok(())
    }

    /// What an endpoint of the group opens.
    pub fn inside_queues(&self) -> Queues {
        Queues {
            threads: self.threads,
            steer: self.inside.clone(),
        }
    }
}

/// The steering plan of one side: the NAT's address and port range,
/// whose slices say which thread a reply belongs to, and its mappings,
/// whose connections are steered by the remote end on both sides.
fn plan(threads: usize, side: Side, known: &Known) -> SteerPlan {
    let nat = known.nat.as_ref();
    SteerPlan {
        threads: threads as u16,
        side,
        nat: nat.map(|n| NatSteer {
            ip: n.external_ip,
            ports: n.port_range,
        }),
        subnets: known.subnets.clone(),
        gateways: known.gateways.clone(),
        mapped: nat
            .map(|n| {
                n.mappings
                    .iter()
                    .map(|m| MappedPort {
                        proto: m.proto.number(),
                        host_port: m.host_port,
                        internal_ip: m.internal_ip,
                        internal_port: m.internal_port,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The PMD threads of each group, given `cores` threads and whether each
/// group can spread: one thread per group, round robin, while there are no
/// more cores than groups (as before spreading existed); the cores beyond
/// one per group go to the groups that can spread, evenly, each group's
/// threads next to each other.
pub fn thread_ranges(cores: usize, spreadable: &[bool]) -> Vec<Range<usize>> {
    let cores = cores.max(1);
    let groups = spreadable.len();
    if cores <= groups {
        return (0..groups).map(|g| g % cores..g % cores + 1).collect();
    }
    let wide = spreadable.iter().filter(|s| **s).count();
    let spare = cores - groups;
    let mut next = 0;
    let mut nth_wide = 0;
    spreadable
        .iter()
        .map(|s| {
            let mut n = 1;
            if *s && wide > 0 {
                n += spare / wide + usize::from(nth_wide < spare % wide);
                nth_wide += 1;
            }
            let r = next..next + n;
            next += n;
            r
        })
        .collect()
}

/// The number of threads `thread_ranges` starts.
pub fn thread_count(ranges: &[Range<usize>]) -> usize {
    ranges.iter().map(|r| r.end).max().unwrap_or(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_at_least_as_many_as_cores_get_one_thread_each_round_robin() {
        assert_eq!(
            thread_ranges(2, &[true, true, true]),
            vec![0..1, 1..2, 0..1]
        );
        assert_eq!(thread_ranges(1, &[true]), vec![0..1]);
    }

    #[test]
    fn spare_cores_go_to_the_groups_that_can_spread() {
        assert_eq!(thread_ranges(2, &[true]), vec![0..2]);
        assert_eq!(thread_ranges(4, &[false, true]), vec![0..1, 1..4]);
        assert_eq!(
            thread_ranges(5, &[true, false, true]),
            vec![0..2, 2..3, 3..5]
        );
        assert_eq!(thread_ranges(3, &[false]), vec![0..1]);
        assert_eq!(thread_count(&thread_ranges(3, &[false])), 1);
    }

    #[test]
    fn each_replica_translates_to_its_own_slice_of_the_port_range() {
        let cfg = NatConfig::new(
            "192.0.2.1".parse().unwrap(),
            "10.0.0.0/24".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
        );
        let a = Replica { index: 0, of: 2 }.nat_slice(cfg.clone());
        let b = Replica { index: 1, of: 2 }.nat_slice(cfg.clone());
        assert_eq!(a.port_range.0, cfg.port_range.0);
        assert_eq!(b.port_range.1, cfg.port_range.1);
        assert_eq!(a.port_range.1 + 1, b.port_range.0, "no gap, no overlap");
        assert_eq!(Replica::default().nat_slice(cfg.clone()), cfg);
    }
}
