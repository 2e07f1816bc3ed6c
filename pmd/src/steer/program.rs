//! Loading the steering program and writing its configuration.
//!
//! The program is shared by reference: a TAP (TUNSETSTEERINGEBPF) and a
//! fan-out group (PACKET_FANOUT_DATA) each take their own hold on it, so
//! it stays loaded until the last of them and this handle are gone. A
//! reload rewrites the configuration map in place and every user sees it
//! on its next frame, with no re-attaching.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder};

use super::plan::{chunk, prefix_mask, SteerPlan, MAX_MAPPED, MAX_SUBNETS};
use super::Side;
use crate::afxdp::raise_memlock;

/// The object built from `pmd/bpf/pd_steer.c` by `build.rs`.
static PD_STEER_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pd_steer.o"));

/// The program's name (the kernel keeps 15 bytes of it).
pub const PROG_NAME: &str = "pd_steer";

const MAP_NAME: &str = "pd_steer_cfg";
const MAPPED_MAP: &str = "pd_steer_mapped";

/// What can go wrong loading or configuring the steering program.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    /// The plan cannot be steered as it stands.
    #[error("steering plan: {0}")]
    Plan(String),
    /// The kernel refused the program or its map.
    #[error("loading the steering program: {0} (needs root or CAP_BPF + CAP_NET_ADMIN, and a kernel with BTF)")]
    Load(String),
    /// BPF_PROG_TEST_RUN refused the frame (the kernel wants at least an
    /// Ethernet header, and a whole IPv6 header behind an IPv6 ethertype).
    #[error("test run of the steering program: {0}")]
    TestRun(std::io::Error),
    /// Writing the configuration map failed.
    #[error("writing the steering program's configuration: {0}")]
    Map(String),
}

/// `struct pd_steer_cfg` of `pd_steer.c`, field for field, host order.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Config {
    threads: u32,
    inside: u32,
    has_nat: u32,
    nat_ip: u32,
    nat_lo: u32,
    nat_hi: u32,
    chunk: u32,
    subnets: u32,
    subnet: [[u32; 2]; MAX_SUBNETS],
    gateways: u32,
    gateway: [u32; MAX_SUBNETS],
}

const _: () = assert!(std::mem::size_of::<Config>() == 32 + 8 * MAX_SUBNETS + 4 + 4 * MAX_SUBNETS);

impl Config {
    fn of(plan: &SteerPlan) -> Result<Config, SteerError> {
        if plan.threads == 0 {
            return Err(SteerError::Plan("zero threads".into()));
        }
        if plan.subnets.len() > MAX_SUBNETS {
            return Err(SteerError::Plan(format!(
                "{} subnets in one group; the steering program checks at most {MAX_SUBNETS}",
                plan.subnets.len()
            )));
        }
        if plan.gateways.len() > MAX_SUBNETS {
            return Err(SteerError::Plan(format!(
                "{} gateways in one group; the steering program checks at most {MAX_SUBNETS}",
                plan.gateways.len()
            )));
        }
        if plan.mapped.len() > MAX_MAPPED {
            return Err(SteerError::Plan(format!(
                "{} port mappings on one uplink; the steering program knows at most {MAX_MAPPED}",
                plan.mapped.len()
            )));
        }
        if let Some((a, l)) = plan.subnets.iter().find(|(_, l)| *l > 32) {
            return Err(SteerError::Plan(format!(
                "subnet {a}/{l}: a prefix is at most 32 bits"
            )));
        }
        let mut c = Config {
            threads: u32::from(plan.threads),
            inside: u32::from(plan.side == Side::Inside),
            subnets: plan.subnets.len() as u32,
            gateways: plan.gateways.len() as u32,
            ..Config::default()
        };
        if let Some(nat) = &plan.nat {
            c.has_nat = 1;
            c.nat_ip = u32::from(nat.ip);
            c.nat_lo = u32::from(nat.ports.0);
            c.nat_hi = u32::from(nat.ports.1);
            c.chunk = chunk(nat.ports, plan.threads);
        }
        for (slot, (net, len)) in c.subnet.iter_mut().zip(&plan.subnets) {
            let mask = prefix_mask(*len);
            *slot = [u32::from(*net) & mask, mask];
        }
        for (slot, gw) in c.gateway.iter_mut().zip(&plan.gateways) {
            *slot = u32::from(*gw);
        }
        Ok(c)
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: Config is repr(C), all u32 with no padding (checked by
        // the size assertion above), so every byte is initialised.
        unsafe {
            std::slice::from_raw_parts(
                (self as *const Config).cast(),
                std::mem::size_of::<Config>(),
            )
        }
    }
}

/// `struct pd_steer_mapped_key` of `pd_steer.c`: one end of a mapping.
/// Kind 0 is the host port (ip 0), kind 1 the endpoint's address and port.
fn mapped_keys(plan: &SteerPlan) -> Vec<[u8; 8]> {
    let key = |ip: u32, port: u16, proto: u8, kind: u8| {
        let mut k = [0u8; 8];
        k[0..4].copy_from_slice(&ip.to_ne_bytes());
        k[4..6].copy_from_slice(&port.to_ne_bytes());
        k[6] = proto;
        k[7] = kind;
        k
    };
    plan.mapped
        .iter()
        .flat_map(|m| {
            [
                key(0, m.host_port, m.proto, 0),
                key(u32::from(m.internal_ip), m.internal_port, m.proto, 1),
            ]
        })
        .collect()
}

/// The loaded steering program and its configuration map. Dropping it
/// unloads the program once no TAP or fan-out group holds it any more.
pub struct SteerProgram {
    obj: Object,
    /// A second fd of the program, so it can be lent out for as long as
    /// `self` lives (libbpf's program handles are borrowed per call).
    prog_fd: OwnedFd,
    threads: u16,
}

impl std::fmt::Debug for SteerProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SteerProgram")
            .field("threads", &self.threads)
            .finish()
    }
}

impl SteerProgram {
    /// Loads the program configured for `plan`.
    pub fn load(plan: &SteerPlan) -> Result<SteerProgram, SteerError> {
        let config = Config::of(plan)?;
        raise_memlock();
        let load_err = |e: libbpf_rs::Error| SteerError::Load(format!("{e:#}"));
        let open = ObjectBuilder::default()
            .name(PROG_NAME)
            .map_err(load_err)?
            .open_memory(PD_STEER_OBJ)
            .map_err(load_err)?;
        let obj = open.load().map_err(load_err)?;
        let prog_fd = obj
            .progs()
            .find(|p| p.name() == PROG_NAME)
            .ok_or_else(|| SteerError::Load(format!("no program {PROG_NAME} in the object")))?
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| SteerError::Load(format!("duplicating the program's fd: {e}")))?;
        let prog = SteerProgram {
            obj,
            prog_fd,
            threads: plan.threads,
        };
        prog.write(&config, &mapped_keys(plan))?;
        Ok(prog)
    }

    /// Reconfigures the program for `plan` (a reload: new NAT or subnets).
    /// The thread count is fixed: the queues and sockets are made for it.
    /// A frame steered while the map is being written may see part of the
    /// old plan and part of the new.
    pub fn update(&self, plan: &SteerPlan) -> Result<(), SteerError> {
        if plan.threads != self.threads {
            return Err(SteerError::Plan(format!(
                "the thread count cannot change from {} to {} on a reload",
                self.threads, plan.threads
            )));
        }
        self.write(&Config::of(plan)?, &mapped_keys(plan))
    }

    /// The program's fd, for TUNSETSTEERINGEBPF and PACKET_FANOUT_DATA.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.prog_fd.as_fd()
    }

    /// The kernel's id of the program (as `bpftool prog` lists it).
    pub fn id(&self) -> Result<u32, SteerError> {
        libbpf_rs::Program::id_from_fd(self.fd()).map_err(|e| SteerError::Load(format!("{e:#}")))
    }

    /// Runs the program once over `frame` (BPF_PROG_TEST_RUN) and returns
    /// the thread it picks; for tests, which compare it with
    /// [`SteerPlan::thread_of`].
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, SteerError> {
        // SAFETY: an all-zero bpf_test_run_opts is its empty value; sz is
        // set below.
        let mut opts: libbpf_sys::bpf_test_run_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _;
        opts.data_in = frame.as_ptr().cast();
        opts.data_size_in = frame.len() as u32;
        // SAFETY: data_in points at `frame` for data_size_in bytes, which
        // the kernel only reads; opts lives for the call.
        let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(self.prog_fd.as_raw_fd(), &mut opts) };
        if rc < 0 {
            return Err(SteerError::TestRun(std::io::Error::from_raw_os_error(-rc)));
        }
        Ok(opts.retval)
    }

    /// Writes the mappings (the new ones first, then the old ones that
    /// went) and then the configuration.
    fn write(&self, config: &Config, mapped: &[[u8; 8]]) -> Result<(), SteerError> {
        let map_err = |e: libbpf_rs::Error| SteerError::Map(format!("{e:#}"));
        let map = |name: &str| {
            self.obj
                .maps()
                .find(|m| m.name() == name)
                .ok_or_else(|| SteerError::Load(format!("no map {name} in the object")))
        };
        let m = map(MAPPED_MAP)?;
        for k in mapped {
            m.update(k, &[1u8], MapFlags::ANY).map_err(map_err)?;
        }
        let gone: Vec<Vec<u8>> = m
            .keys()
            .filter(|k| !mapped.iter().any(|n| n[..] == k[..]))
            .collect();
        for k in gone {
            m.delete(&k).map_err(map_err)?;
        }
        map(MAP_NAME)?
            .update(&0u32.to_ne_bytes(), config.bytes(), MapFlags::ANY)
            .map_err(map_err)
    }
}
