//! A running data plane: PMD threads with their ports and pipelines, plus
//! the handles the control side reads (counters, FDB dumps) and writes
//! (topology swaps).
//!
//! Frames never cross PMD threads (see `pmd::thread`): a network, its
//! uplink and every network sharing that uplink are polled by one thread,
//! or, spread (`crate::spread`), each of their ports by the same several
//! threads, each with a queue of its own. `Dataplane::start` refuses a
//! thread plan that splits them otherwise.

use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{self, Sender};
use nat::{Nat, NatConfig, NatCounters};
use overlay::OverlayCounters;
use pmd::counters::{CounterSnapshot, PortCounters};
use pmd::perf::PerfSnapshot;
use pmd::thread::{Engine, PmdThread, PollMode, PortChangeError, ThreadReport};
use pmd::{Pool, Port, PortId};

use crate::flows::{KernelFlowTable, OffloadedFlows};
use crate::inspect::{ConntrackRow, NeighborRow, OverlayView};
use crate::pipeline::{Control, FdbRow, SwitchPipeline, SwitchSettings, TraceArm};
use crate::spread::Replica;
use crate::stats::{NetCounters, NetSnapshot, OffloadCounters, OffloadSnapshot, UplinkCounters};
use crate::topology::{NetId, Topology, UplinkId};

/// Why a data plane did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Two ports of one network (its members and its uplink) are polled
    /// by different PMD threads; frames never cross threads, so the
    /// network could not switch between them.
    #[error(
        "network {network}: port {port} is on PMD thread {thread} but port {other} is on thread {other_thread}; a network, its uplink and the networks sharing that uplink must be on the same PMD threads"
    )]
    SplitNetwork {
        /// The network.
        network: String,
        /// A port of it.
        port: String,
        /// The thread that polls `port`.
        thread: usize,
        /// Another port of it, on another thread.
        other: String,
        /// The thread that polls `other`.
        other_thread: usize,
    },
    /// A port of a network is polled by no PMD thread.
    #[error("network {network}: port {port} is polled by no PMD thread")]
    Unpolled {
        /// The network.
        network: String,
        /// The port.
        port: String,
    },
    /// One port id was given to one PMD thread twice.
    #[error("port {port} is given to PMD thread {thread} twice")]
    Twice {
        /// The port.
        port: String,
        /// The thread.
        thread: usize,
    },
    /// The threads could not be started (threads, epoll).
    #[error("starting PMD threads: {0}")]
    Io(#[from] std::io::Error),
}

/// One PMD thread to start: its core, pool and ports.
pub struct ThreadSpec {
    /// Core to pin to.
    pub core: Option<usize>,
    /// Poll mode.
    pub mode: PollMode,
    /// The thread's pool (its UMEM when it has AF_XDP ports).
    pub pool: Pool,
    /// Ports with their ids in the topology.
    pub ports: Vec<(PortId, Box<dyn Port>)>,
    /// The kernel's flow table, when the thread installs the flows it
    /// switches between offload ports (`crate::flows`).
    pub flows: Option<Box<dyn KernelFlowTable>>,
    /// Which of its group's threads this is (`crate::spread`).
    pub replica: Replica,
}

/// The NAT of one uplink, shared by its `nat` networks: the config, and
/// the network of each of its internal networks (`networks[i]` is
/// `config.networks[i]`).
#[derive(Debug, Clone, PartialEq)]
pub struct UplinkNat {
    /// What the NAT translates.
    pub config: NatConfig,
    /// The network of each internal network, in the config's order.
    pub networks: Vec<NetId>,
}

/// A handle to send control messages to every PMD thread from any thread
/// (they are applied between bursts, within `max_sleep_ms` when idle).
#[derive(Clone)]
pub struct ControlHandle {
    controls: Vec<Sender<Control>>,
}

impl ControlHandle {
    /// Sends one message per thread.
    pub fn send_all(&self, make: impl Fn() -> Control) {
        for c in &self.controls {
            let _ = c.send(make());
        }
    }
}

/// Running PMD threads and the control side's handles on them.
pub struct Dataplane {
    engine: Engine,
    topo: Arc<Topology>,
    /// By `PortId`: the counters of the port's queue on each thread
    /// that polls it.
    port_counters: Vec<Vec<Arc<PortCounters>>>,
    net_counters: Vec<Vec<Arc<NetCounters>>>,
    /// By `UplinkId`: the NAT counters of each thread that runs its NAT.
    nat_counters: Vec<Vec<Arc<NatCounters>>>,
    nat_networks: Vec<Vec<NetId>>,
    overlay_counters: Vec<Arc<OverlayCounters>>,
    /// By thread, then `UplinkId`.
    uplink_counters: Vec<Vec<Arc<UplinkCounters>>>,
    offload_counters: Vec<Arc<OffloadCounters>>,
    /// Some thread installs flows in the kernel.
    offloading: bool,
    controls: Vec<Sender<Control>>,
}

impl Dataplane {
    /// Starts one PMD thread per spec, switching per `topo`.
    pub fn start(
        topo: Topology,
        settings: SwitchSettings,
        threads: Vec<ThreadSpec>,
    ) -> Result<Dataplane, StartError> {
        let nats = vec![None; topo.uplinks.len()];
        Dataplane::start_with_nat(topo, settings, threads, nats)
    }

    /// As `start`, with the NAT of each uplink that has `nat` networks (by
    /// `UplinkId`); each NAT runs on the thread that polls its uplink,
    /// which must also poll those networks' ports.
    pub fn start_with_nat(
        topo: Topology,
        settings: SwitchSettings,
        threads: Vec<ThreadSpec>,
        nats: Vec<Option<UplinkNat>>,
    ) -> Result<Dataplane, StartError> {
        check_placement(&topo, &threads)?;
        let topo = Arc::new(topo);
        let mut port_counters: Vec<Vec<Arc<PortCounters>>> = vec![Vec::new(); topo.ports.len()];
        for t in &threads {
            for (id, port) in &t.ports {
                port_counters[id.0 as usize].push(port.counters().clone());
            }
        }
        let nat_networks: Vec<Vec<NetId>> = (0..topo.uplinks.len())
            .map(|u| {
                nats.get(u)
                    .and_then(|n| n.as_ref())
                    .map_or_else(Vec::new, |n| n.networks.clone())
            })
            .collect();
        let mut net_counters = Vec::new();
        let mut controls = Vec::new();
        let mut pmd_threads = Vec::new();
        let mut offload_counters = Vec::new();
        let offloading = threads.iter().any(|t| t.flows.is_some());
        let mut nat_counters: Vec<Vec<Arc<NatCounters>>> = vec![Vec::new(); topo.uplinks.len()];
        // Only the uplink's thread writes them: an overlay never spreads.
        let overlay_counters: Vec<Arc<OverlayCounters>> =
            topo.uplinks.iter().map(|_| Arc::default()).collect();
        let mut all_uplink_counters = Vec::new();
        for t in threads {
            let uplink_counters: Vec<Arc<UplinkCounters>> =
                topo.uplinks.iter().map(|_| Arc::default()).collect();
            let counters: Vec<Arc<NetCounters>> =
                topo.networks.iter().map(|_| Arc::default()).collect();
            // This thread runs the NAT of every uplink it polls.
            let thread_nats: Vec<Option<(Nat, Vec<NetId>)>> = topo
                .uplinks
                .iter()
                .enumerate()
                .map(|(u, up)| {
                    t.ports.iter().any(|(id, _)| *id == up.port).then_some(())?;
                    let un = nats.get(u)?.clone()?;
                    let nat = Nat::new(t.replica.nat_slice(un.config));
                    nat_counters[u].push(nat.counters().clone());
                    Some((nat, un.networks))
                })
                .collect();
            let (tx, rx) = channel::unbounded();
            let mut pipeline = SwitchPipeline::new(
                topo.clone(),
                settings,
                counters.clone(),
                rx,
                thread_nats,
                overlay_counters.clone(),
                uplink_counters.clone(),
            )
            .with_replica(t.replica);
            all_uplink_counters.push(uplink_counters);
            let offloaded: Arc<OffloadCounters> = Arc::default();
            if let Some(table) = t.flows {
                pipeline = pipeline.with_offload(OffloadedFlows::new(table, offloaded.clone()));
            }
            offload_counters.push(offloaded);
            net_counters.push(counters);
            controls.push(tx);
            pmd_threads.push(PmdThread {
                core: t.core,
                mode: t.mode,
                pool: t.pool,
                ports: t.ports,
                pipeline: Box::new(pipeline),
            });
        }
        let engine = Engine::start(pmd_threads)?;
        Ok(Dataplane {
            engine,
            topo,
            port_counters,
            net_counters,
            nat_counters,
            nat_networks,
            overlay_counters,
            uplink_counters: all_uplink_counters,
            offload_counters,
            offloading,
            controls,
        })
    }

    /// The flow offload's counters, summed over threads; `None` when no
    /// thread runs it.
    pub fn offload_stats(&self) -> Option<OffloadSnapshot> {
        if !self.offloading {
            return None;
        }
        let mut s = OffloadSnapshot::default();
        for c in &self.offload_counters {
            c.add_to(&mut s);
        }
        Some(s)
    }

    /// The topology in force.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// The counters of one port's queues (one per thread that polls it),
    /// each with its capture mirror.
    pub fn port_counters(&self, port: PortId) -> Option<&[Arc<PortCounters>]> {
        self.port_counters
            .get(port.0 as usize)
            .map(Vec::as_slice)
            .filter(|c| !c.is_empty())
    }

    /// Counters of every port, summed over its queues, by `PortId`.
    pub fn port_stats(&self) -> Vec<CounterSnapshot> {
        self.port_counters
            .iter()
            .map(|queues| {
                let mut sum = CounterSnapshot::default();
                for q in queues {
                    sum += &q.snapshot();
                }
                sum
            })
            .collect()
    }

    /// Counters of every network summed over threads, by `NetId`.
    pub fn net_stats(&self) -> Vec<NetSnapshot> {
        let mut out = vec![NetSnapshot::default(); self.topo.networks.len()];
        for per_thread in &self.net_counters {
            for (i, c) in per_thread.iter().enumerate() {
                c.add_to(&mut out[i]);
            }
        }
        out
    }

    /// NAT counters of each uplink that has NAT networks, summed over the
    /// threads that run it, by `UplinkId`.
    pub fn nat_stats(&self) -> Vec<Option<NatCounters>> {
        self.nat_counters
            .iter()
            .map(|per_thread| {
                if per_thread.is_empty() {
                    return None;
                }
                let sum = NatCounters::default();
                for c in per_thread {
                    c.add_to(&sum);
                }
                Some(sum)
            })
            .collect()
    }

    /// The networks that share uplink `up`'s NAT.
    pub fn nat_networks(&self, up: UplinkId) -> &[NetId] {
        self.nat_networks.get(up.0 as usize).map_or(&[], |v| v)
    }

    /// Echo counters of each uplink, summed over threads, by `UplinkId`.
    pub fn uplink_stats(&self) -> Vec<UplinkCounters> {
        let sum: Vec<UplinkCounters> = self
            .topo
            .uplinks
            .iter()
            .map(|_| UplinkCounters::default())
            .collect();
        for per_thread in &self.uplink_counters {
            for (c, into) in per_thread.iter().zip(&sum) {
                c.add_to(into);
            }
        }
        sum
    }

    /// Overlay counters of each uplink, by `UplinkId`.
    pub fn overlay_stats(&self) -> &[Arc<OverlayCounters>] {
        &self.overlay_counters
    }

    /// Publishes a new topology to every thread (between bursts; learned
    /// state of networks that stay is kept).
    pub fn set_topology(&mut self, topo: Topology) {
        self.topo = Arc::new(topo);
        let topo = &self.topo;
        for (c, counters) in self.controls.iter().zip(&mut self.net_counters) {
            counters.resize_with(topo.networks.len(), Arc::default);
            let _ = c.send(Control::Swap(topo.clone(), counters.clone()));
        }
        self.engine.wake();
    }

    /// Records which networks share uplink `up`'s NAT now (for reports).
    pub fn set_nat_networks(&mut self, up: UplinkId, nets: Vec<NetId>) {
        if let Some(slot) = self.nat_networks.get_mut(up.0 as usize) {
            *slot = nets;
        }
    }

    /// Sends one control message to every thread and wakes them.
    pub fn control(&self, make: impl Fn() -> Control) {
        for c in &self.controls {
            let _ = c.send(make());
        }
        self.engine.wake();
    }

    /// Makes PMD thread `thread` poll `port` as `id`.
    pub fn add_port(
        &mut self,
        thread: usize,
        id: PortId,
        port: Box<dyn Port>,
    ) -> Result<(), PortChangeError> {
        let i = id.0 as usize;
        if self.port_counters.len() <= i {
            self.port_counters.resize_with(i + 1, Vec::new);
        }
        let counters = port.counters().clone();
        self.engine.add_port(thread, id, port)?;
        self.port_counters[i].push(counters);
        Ok(())
    }

    /// Stops PMD thread `thread` polling port `id` and returns it.
    pub fn remove_port(
        &mut self,
        thread: usize,
        id: PortId,
    ) -> Result<Option<Box<dyn Port>>, PortChangeError> {
        let port = self.engine.remove_port(thread, id)?;
        if let (Some(p), Some(queues)) = (&port, self.port_counters.get_mut(id.0 as usize)) {
            queues.retain(|c| !Arc::ptr_eq(c, p.counters()));
        }
        Ok(port)
    }

    /// A handle for other control threads (the cluster store).
    pub fn control_handle(&self) -> ControlHandle {
        ControlHandle {
            controls: self.controls.clone(),
        }
    }

    /// Hands a trace to every PMD thread and wakes them; returns how many
    /// threads got it (each acknowledges on `arm.ack`).
    pub fn arm_trace(&self, arm: &Arc<TraceArm>) -> usize {
        let sent = self
            .controls
            .iter()
            .filter(|c| c.send(Control::Trace(arm.clone())).is_ok())
            .count();
        self.engine.wake();
        sent
    }

    /// Asks every thread one question (answered between bursts) and
    /// collects the answers; a thread that does not answer within 2 s is
    /// left out.
    fn ask<T: Send + 'static>(&self, make: impl Fn(Sender<T>) -> Control) -> Vec<T> {
        let mut answers = Vec::new();
        for c in &self.controls {
            let (tx, rx) = channel::bounded(1);
            if c.send(make(tx)).is_err() {
                continue;
            }
            self.engine.wake();
            if let Ok(a) = rx.recv_timeout(Duration::from_secs(2)) {
                answers.push(a);
            }
        }
        answers
    }

    /// Waits (up to 2 s a thread) until every thread has the messages
    /// sent so far in force: a port added to several threads (a spread
    /// network) gets frames on each at once, and a thread still on the
    /// old topology would drop them as `filtered`.
    pub fn settle(&self) {
        self.ask(Control::Applied);
    }

    /// Every live FDB entry, merged over threads (newest wins).
    pub fn fdb(&self) -> Vec<FdbRow> {
        let mut rows: Vec<FdbRow> = self.ask(Control::DumpFdb).concat();
        rows.sort_by(|a, b| {
            (a.network.as_str(), a.mac)
                .cmp(&(b.network.as_str(), b.mac))
                .then(a.age_secs.total_cmp(&b.age_secs))
        });
        rows.dedup_by(|b, a| a.network == b.network && a.mac == b.mac);
        rows
    }

    /// Up to `limit` live NAT connections (of one network when given).
    pub fn conntrack(&self, network: Option<&str>, limit: usize) -> Vec<ConntrackRow> {
        let mut rows: Vec<ConntrackRow> = self
            .ask(|reply| Control::DumpConntrack {
                network: network.map(str::to_string),
                limit,
                reply,
            })
            .concat();
        rows.truncate(limit);
        rows
    }

    /// The neighbour cache of every uplink (each uplink is answered by the
    /// thread that polls it; the others' caches for it are empty).
    pub fn neighbors(&self) -> Vec<NeighborRow> {
        let mut rows: Vec<NeighborRow> = self.ask(Control::DumpNeighbors).concat();
        rows.sort_by(|a, b| (&a.uplink, a.ip).cmp(&(&b.uplink, b.ip)));
        rows.dedup_by(|b, a| a.uplink == b.uplink && a.ip == b.ip);
        rows
    }

    /// The overlay tables in force (every thread holds the same ones).
    pub fn overlay_view(&self) -> OverlayView {
        self.ask(Control::DumpOverlay)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// How each PMD thread spends its time, by thread index.
    pub fn perf(&self) -> Vec<PerfSnapshot> {
        self.engine.perf()
    }

    /// Stops the threads; reports say whether any frame leaked.
    pub fn stop(self) -> Vec<ThreadReport> {
        self.engine.stop()
    }
}

/// Checks the invariant that lets frames stay on their thread: every port
/// of a network, and its uplink, is polled by one and the same set of
/// threads (networks sharing an uplink then share its threads too), and
/// no thread polls one port twice.
fn check_placement(topo: &Topology, threads: &[ThreadSpec]) -> Result<(), StartError> {
    let name = |p: PortId| {
        topo.ports
            .get(p.0 as usize)
            .map_or_else(|| format!("#{}", p.0), |i| i.name.clone())
    };
    let mut threads_of: Vec<Vec<usize>> = vec![Vec::new(); topo.ports.len()];
    for (t, spec) in threads.iter().enumerate() {
        for (id, _) in &spec.ports {
            let Some(slot) = threads_of.get_mut(id.0 as usize) else {
                continue;
            };
            if slot.contains(&t) {
                return Err(StartError::Twice {
                    port: name(*id),
                    thread: t,
                });
            }
            slot.push(t);
        }
    }
    for net in &topo.networks {
        let uplink = net.uplink.map(|u| topo.uplink(u).port);
        let mut placed: Option<(PortId, &[usize])> = None;
        for port in net.members.iter().copied().chain(uplink) {
            let ts = threads_of
                .get(port.0 as usize)
                .map_or(&[][..], Vec::as_slice);
            if ts.is_empty() {
                return Err(StartError::Unpolled {
                    network: net.name.clone(),
                    port: name(port),
                });
            }
            match placed {
                None => placed = Some((port, ts)),
                Some((other, other_ts)) if other_ts != ts => {
                    return Err(StartError::SplitNetwork {
                        network: net.name.clone(),
                        port: name(port),
                        thread: ts[0],
                        other: name(other),
                        other_thread: other_ts[0],
                    })
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}
