//! Loading the flow-offload program and attaching it to devices as tcx
//! ingress links.
//!
//! A tcx link is an fd: it lives as long as the process holds it, so a
//! killed podswitch leaves no program behind (unlike a netlink clsact
//! filter, which survives its owner) and nothing stale has to be swept at
//! start. tcx keeps a chain per device, so other users' tc/tcx programs
//! stay attached beside it.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::{MapCore, Object, ObjectBuilder};

use super::{FlowTable, OffloadError};
use crate::afxdp::raise_memlock;

/// The object built from `pmd/bpf/pd_tc.c` by `build.rs`.
static PD_TC_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pd_tc.o"));

/// The program's name (at most 15 bytes: the kernel truncates longer ones).
pub const PROG_NAME: &str = "pd_tc_flows";

/// Flows the table holds unless told otherwise.
pub const DEFAULT_CAPACITY: u32 = 65536;

const MAP_NAME: &str = "pd_flows";

/// The loaded program and its flow table; attach it to each offload port.
pub struct FlowOffload {
    obj: Object,
    capacity: u32,
}

impl std::fmt::Debug for FlowOffload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowOffload")
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// The program attached to one device's ingress. Dropping it detaches.
#[derive(Debug)]
pub struct TcLink {
    link: OwnedFd,
    ifindex: u32,
}

impl TcLink {
    /// The device it is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The link's fd (closing it detaches the program).
    pub fn link_fd(&self) -> RawFd {
        self.link.as_raw_fd()
    }
}

impl FlowOffload {
    /// Loads the program with a table of `capacity` flows (at least 1).
    pub fn load(capacity: u32) -> Result<FlowOffload, OffloadError> {
        raise_memlock();
        let capacity = capacity.max(1);
        let load_err = |e: libbpf_rs::Error| OffloadError::Load(format!("{e:#}"));
        let mut open = ObjectBuilder::default()
            .name(PROG_NAME)
            .map_err(load_err)?
            .open_memory(PD_TC_OBJ)
            .map_err(load_err)?;
        let mut map = open
            .maps_mut()
            .find(|m| m.name() == MAP_NAME)
            .ok_or_else(|| OffloadError::Load(format!("no map {MAP_NAME} in the object")))?;
        map.set_max_entries(capacity).map_err(load_err)?;
        let obj = open.load().map_err(load_err)?;
        if !obj.progs().any(|p| p.name() == PROG_NAME) {
            return Err(OffloadError::Load(format!(
                "no program {PROG_NAME} in the object"
            )));
        }
        Ok(FlowOffload { obj, capacity })
    }

    /// How many flows the table holds.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Attaches the program to the ingress of device `ifindex` (in the
    /// calling thread's namespace), after the programs already there.
    pub fn attach(&self, ifindex: u32) -> Result<TcLink, OffloadError> {
        let prog = self
            .obj
            .progs()
            .find(|p| p.name() == PROG_NAME)
            .ok_or_else(|| OffloadError::Load(format!("no program {PROG_NAME} in the object")))?;
        // SAFETY: an all-zero bpf_link_create_opts is its documented empty
        // value (LIBBPF_OPTS does the same); sz is set below.
        let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _;
        // SAFETY: the program fd is a loaded program's; opts lives for the call.
        let fd = unsafe {
            libbpf_sys::bpf_link_create(
                prog.as_fd().as_raw_fd(),
                ifindex as i32,
                libbpf_sys::BPF_TCX_INGRESS,
                &opts,
            )
        };
        if fd < 0 {
            let err = std::io::Error::from_raw_os_error(-fd);
            let reason = match -fd {
                libc::EINVAL if !tcx_supported() => format!(
                    "{err}: this kernel has no tcx links (needs Linux 6.6 or later); run without the offload"
                ),
                libc::ENODEV => format!("{err}: no such device in this namespace"),
                libc::EPERM => format!("{err}: needs CAP_NET_ADMIN and CAP_BPF"),
                _ => err.to_string(),
            };
            return Err(OffloadError::Attach { ifindex, reason });
        }
        // SAFETY: the kernel just returned this fd to us; nothing else owns it.
        let link = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(TcLink { link, ifindex })
    }

    /// An independent handle on the flow table (its own map fd), for PMD
    /// threads; it keeps the table alive after `self` is dropped.
    pub fn table(&self) -> Result<FlowTable, OffloadError> {
        let map = self
            .obj
            .maps()
            .find(|m| m.name() == MAP_NAME)
            .ok_or_else(|| OffloadError::Load(format!("no map {MAP_NAME} in the object")))?;
        let handle = libbpf_rs::MapHandle::try_from(&map).map_err(|e| OffloadError::Map {
            op: "duplicating the table's fd",
            source: std::io::Error::other(e.to_string()),
        })?;
        debug_assert_eq!(handle.value_size() as usize, super::table::VALUE_SIZE);
        Ok(FlowTable::new(handle, self.capacity))
    }
}

/// Whether the kernel knows tcx: querying tcx ingress of the loopback
/// device fails with EINVAL where the attach type is unknown.
fn tcx_supported() -> bool {
    tcx_query(1).is_ok()
}

/// The ids of the tcx ingress programs on device `ifindex` (in the calling
/// thread's namespace), in chain order.
pub fn tcx_ingress_programs(ifindex: u32) -> std::io::Result<Vec<u32>> {
    tcx_query(ifindex)
}

fn tcx_query(ifindex: u32) -> std::io::Result<Vec<u32>> {
    let mut ids = [0u32; 64];
    // SAFETY: an all-zero bpf_prog_query_opts is its empty value.
    let mut q: libbpf_sys::bpf_prog_query_opts = unsafe { std::mem::zeroed() };
    q.sz = std::mem::size_of::<libbpf_sys::bpf_prog_query_opts>() as _;
    q.prog_ids = ids.as_mut_ptr();
    q.__bindgen_anon_1.count = ids.len() as u32;
    // SAFETY: q points at `ids` for `count` entries; both live for the call.
    let rc = unsafe {
        libbpf_sys::bpf_prog_query_opts(ifindex as i32, libbpf_sys::BPF_TCX_INGRESS, &mut q)
    };
    if rc < 0 {
        return Err(std::io::Error::from_raw_os_error(-rc));
    }
    // SAFETY: the kernel wrote count (prog_cnt and count share the word).
    let n = (unsafe { q.__bindgen_anon_1.count } as usize).min(ids.len());
    Ok(ids[..n].to_vec())
}
