//! Loading, configuring and attaching podswitch's XDP filter, and removing a
//! stale one a previous run left behind.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder};

use super::sys::{ensure_bpffs, ifindex, raise_memlock};
use super::{AfXdpError, L4Filter, XdpFilter};

/// The XDP object built from `pmd/bpf/pd_xdp.c` by `build.rs`.
static PD_XDP_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pd_xdp.o"));

/// The program's name, which is how a stale copy is recognised (the tag
/// changes with every code change; the name does not). At most 15 bytes:
/// the kernel truncates longer names.
pub const PROG_NAME: &str = "pd_xdp_filter";

/// Slots in the XSKMAP: the most receive queues a port can bind.
pub(crate) const XSKMAP_SIZE: u32 = 64;

/// How the program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (veth supports it; on veth it turns off TSO on the
    /// peer while attached).
    Native,
    /// The generic (skb) hook, used only when native attach fails.
    Generic,
}

/// The filter's own counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames redirected to an AF_XDP socket.
    pub to_xsk: u64,
    /// Frames passed to the kernel (not the switch's, or no socket bound
    /// on their queue).
    pub pass: u64,
}

/// `struct pd_cfg` in pd_xdp.c.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CfgValue {
    redirect_all: u32,
    ip_any_l4: u32,
    ip_icmp: u32,
    /// Network order.
    vxlan_port: u16,
    range_min: u16,
    range_max: u16,
    pad: u16,
}

impl CfgValue {
    fn bytes(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0..4].copy_from_slice(&self.redirect_all.to_ne_bytes());
        b[4..8].copy_from_slice(&self.ip_any_l4.to_ne_bytes());
        b[8..12].copy_from_slice(&self.ip_icmp.to_ne_bytes());
        b[12..14].copy_from_slice(&self.vxlan_port.to_ne_bytes());
        b[14..16].copy_from_slice(&self.range_min.to_ne_bytes());
        b[16..18].copy_from_slice(&self.range_max.to_ne_bytes());
        b
    }
}

/// podswitch's XDP filter, loaded and attached to one interface. Dropping
/// it closes the bpf_link, which detaches the program.
pub struct XdpProgram {
    // Field order: the link goes first so the program is detached before
    // its maps are released.
    link: OwnedFd,
    obj: Object,
    iface: String,
    ifindex: i32,
    mode: XdpMode,
}

impl std::fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpProgram")
            .field("iface", &self.iface)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .finish()
    }
}

impl XdpProgram {
    /// Loads the filter, fills its maps from `filter`, and attaches it to
    /// `iface` (native mode, generic if native fails) with an unpinned
    /// bpf_link. Removes a stale `pd_xdp_filter` first. The XSKMAP starts
    /// empty, so until sockets are added every frame goes to the kernel.
    pub fn attach(iface: &str, filter: &XdpFilter) -> Result<XdpProgram, AfXdpError> {
        raise_memlock();
        ensure_bpffs();
        let ifindex = ifindex(iface)?;
        let load_err = |reason: String| AfXdpError::Load {
            iface: iface.to_string(),
            reason,
        };
        let open = ObjectBuilder::default()
            .name(PROG_NAME)
            .map_err(|e| load_err(e.to_string()))?
            .open_memory(PD_XDP_OBJ)
            .map_err(|e| load_err(e.to_string()))?;
        let obj = open.load().map_err(|e| load_err(format!("{e:#}")))?;
        let prog_fd = obj
            .progs()
            .find(|p| p.name() == PROG_NAME)
            .map(|p| p.as_fd().as_raw_fd())
            .ok_or_else(|| load_err(format!("no program {PROG_NAME} in the object")))?;
        fill_maps(&obj, iface, filter)?;

        for o in remove_stale_program(iface)? {
            if let StaleOutcome::Foreign { id, name, .. } = o {
                tracing::warn!(iface, id, name, "leaving a foreign XDP program alone");
            }
        }
        let mut errors = Vec::new();
        for (mode, flags) in [
            (XdpMode::Native, libbpf_sys::XDP_FLAGS_DRV_MODE),
            (XdpMode::Generic, libbpf_sys::XDP_FLAGS_SKB_MODE),
        ] {
            match link_create(prog_fd, ifindex, flags) {
                Ok(link) => {
                    tracing::info!(iface, ?mode, "attached XDP filter");
                    return Ok(XdpProgram {
                        link,
                        obj,
                        iface: iface.to_string(),
                        ifindex,
                        mode,
                    });
                }
                Err(e) => errors.push(format!("{mode:?}: {e}")),
            }
        }
        Err(AfXdpError::Attach {
            iface: iface.to_string(),
            reason: errors.join("; "),
        })
    }

    /// Puts an AF_XDP socket in the XSKMAP slot of receive queue `queue`.
    pub(crate) fn set_xsk(&self, queue: u32, fd: RawFd) -> Result<(), AfXdpError> {
        find_map(&self.obj, "pd_xsks", &self.iface)?
            .update(
                &queue.to_ne_bytes(),
                &(fd as u32).to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(|e| AfXdpError::Map {
                iface: self.iface.clone(),
                map: "pd_xsks",
                reason: e.to_string(),
            })
    }

    /// Empties the XSKMAP slot of `queue`: its frames go to the kernel.
    pub(crate) fn clear_xsk(&self, queue: u32) {
        if let Ok(map) = find_map(&self.obj, "pd_xsks", &self.iface) {
            let _ = map.delete(&queue.to_ne_bytes());
        }
    }

    /// The filter's counters, summed over CPUs.
    pub fn stats(&self) -> XdpStats {
        let mut stats = XdpStats::default();
        let Ok(map) = find_map(&self.obj, "pd_stats", &self.iface) else {
            return stats;
        };
        for (key, slot) in [(0u32, &mut stats.to_xsk), (1u32, &mut stats.pass)] {
            if let Ok(Some(per_cpu)) = map.lookup_percpu(&key.to_ne_bytes(), MapFlags::ANY) {
                *slot = per_cpu
                    .iter()
                    .filter_map(|v| {
                        v.get(..8)
                            .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
                    })
                    .sum();
            }
        }
        stats
    }

    /// How the program is attached.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The interface it is attached to.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The bpf_link's fd (for tests that leak it on purpose).
    pub fn link_fd(&self) -> RawFd {
        self.link.as_raw_fd()
    }
}

/// Fills the filter's maps from `filter`.
fn fill_maps(obj: &Object, iface: &str, filter: &XdpFilter) -> Result<(), AfXdpError> {
    let map_err = |map: &'static str, e: libbpf_rs::Error| AfXdpError::Map {
        iface: iface.to_string(),
        map,
        reason: e.to_string(),
    };
    let mut cfg = CfgValue::default();
    match filter {
        XdpFilter::All => cfg.redirect_all = 1,
        XdpFilter::Switch {
            macs,
            ips,
            l4,
            vxlan_port,
        } => {
            cfg.vxlan_port = vxlan_port.unwrap_or(0).to_be();
            match l4 {
                L4Filter::Any => cfg.ip_any_l4 = 1,
                L4Filter::Only { ports, range, icmp } => {
                    cfg.ip_icmp = u32::from(*icmp);
                    if let Some((lo, hi)) = range {
                        cfg.range_min = *lo;
                        cfg.range_max = *hi;
                    }
                    let map = find_map(obj, "pd_l4ports", iface)?;
                    for (proto, port) in ports {
                        let mut key = [0u8; 4];
                        key[0] = proto.number();
                        key[2..4].copy_from_slice(&port.to_be_bytes());
                        map.update(&key, &[1], MapFlags::ANY)
                            .map_err(|e| map_err("pd_l4ports", e))?;
                    }
                }
            }
            let map = find_map(obj, "pd_ips", iface)?;
            for ip in ips {
                map.update(&ip.octets(), &[1], MapFlags::ANY)
                    .map_err(|e| map_err("pd_ips", e))?;
            }
            let map = find_map(obj, "pd_macs", iface)?;
            for mac in macs {
                let mut key = [0u8; 8];
                key[..6].copy_from_slice(mac);
                map.update(&key, &[1], MapFlags::ANY)
                    .map_err(|e| map_err("pd_macs", e))?;
            }
        }
    }
    find_map(obj, "pd_cfg", iface)?
        .update(&0u32.to_ne_bytes(), &cfg.bytes(), MapFlags::ANY)
        .map_err(|e| map_err("pd_cfg", e))?;
    Ok(())
}

fn find_map<'a>(
    obj: &'a Object,
    name: &'static str,
    iface: &str,
) -> Result<libbpf_rs::Map<'a>, AfXdpError> {
    obj.maps()
        .find(|m| m.name() == name)
        .ok_or_else(|| AfXdpError::Map {
            iface: iface.to_string(),
            map: name,
            reason: "not in the XDP object".into(),
        })
}

/// Creates an XDP bpf_link (not pinned: closing the fd detaches).
fn link_create(prog_fd: RawFd, ifindex: i32, flags: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: an all-zero bpf_link_create_opts is its documented empty
    // value (libbpf's LIBBPF_OPTS does the same); sz is set below.
    let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _;
    opts.flags = flags;
    // SAFETY: prog_fd is a loaded program's fd, opts lives for the call.
    let fd = unsafe { libbpf_sys::bpf_link_create(prog_fd, ifindex, libbpf_sys::BPF_XDP, &opts) };
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What [`remove_stale_program`] found on one attach mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleOutcome {
    /// A `pd_xdp_filter` attached through netlink was detached.
    Removed {
        /// Its program id.
        id: u32,
        /// The mode it was attached in.
        mode: XdpMode,
    },
    /// A `pd_xdp_filter` held by a bpf_link (a live podswitch, or a pinned
    /// link) cannot be detached through netlink; left in place.
    Busy {
        /// Its program id.
        id: u32,
        /// The mode it is attached in.
        mode: XdpMode,
    },
    /// Another program: never touched.
    Foreign {
        /// Its program id.
        id: u32,
        /// Its name.
        name: String,
        /// The mode it is attached in.
        mode: XdpMode,
    },
}

/// Removes a `pd_xdp_filter` a previous run left attached to `iface` (a
/// netlink attach survives SIGKILL; see notes/datapath-probes.md, probe 1c).
///
/// Looks at the native and generic slots; detaches only a program named
/// [`PROG_NAME`], with XDP_FLAGS_REPLACE and its fd, so a program attached
/// by someone else in the meantime is never removed. Foreign programs are
/// logged and left alone. A program held by a bpf_link is reported
/// `Busy` (netlink cannot detach a link, and a live link belongs to a live
/// process). The daemon calls this at start, after taking its pidfile.
pub fn remove_stale_program(iface: &str) -> Result<Vec<StaleOutcome>, AfXdpError> {
    let ifindex = ifindex(iface)?;
    let stale_err = |reason: String| AfXdpError::Stale {
        iface: iface.to_string(),
        reason,
    };
    // SAFETY: zeroed is the empty value of this plain C options struct.
    let mut q: libbpf_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    q.sz = std::mem::size_of::<libbpf_sys::bpf_xdp_query_opts>() as _;
    // SAFETY: q lives for the call and has its size set.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex, 0, &mut q) };
    if rc < 0 {
        return Err(stale_err(format!(
            "querying XDP programs: {}",
            std::io::Error::from_raw_os_error(-rc)
        )));
    }
    let mut out = Vec::new();
    for (id, mode, flag) in [
        (
            q.drv_prog_id,
            XdpMode::Native,
            libbpf_sys::XDP_FLAGS_DRV_MODE,
        ),
        (
            q.skb_prog_id,
            XdpMode::Generic,
            libbpf_sys::XDP_FLAGS_SKB_MODE,
        ),
    ] {
        if id == 0 {
            continue;
        }
        // SAFETY: plain syscall wrapper; the result is checked.
        let fd = unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) };
        if fd < 0 {
            // Detached between the query and now.
            continue;
        }
        // SAFETY: a fresh fd the kernel returned to us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = prog_name(fd.as_raw_fd())
            .map_err(|e| stale_err(format!("reading program {id}: {e}")))?;
        if name != PROG_NAME {
            tracing::warn!(iface, id, name, ?mode, "foreign XDP program, left alone");
            out.push(StaleOutcome::Foreign { id, name, mode });
            continue;
        }
        // SAFETY: zeroed is the empty value of this plain C options struct.
        let mut opts: libbpf_sys::bpf_xdp_attach_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<libbpf_sys::bpf_xdp_attach_opts>() as _;
        opts.old_prog_fd = fd.as_raw_fd();
        // SAFETY: opts lives for the call; REPLACE with old_prog_fd makes the
        // kernel detach only if `fd` is still the attached program.
        let rc = unsafe {
            libbpf_sys::bpf_xdp_detach(ifindex, flag | libbpf_sys::XDP_FLAGS_REPLACE, &opts)
        };
        match rc {
            0 => {
                tracing::info!(iface, id, ?mode, "removed a stale {PROG_NAME}");
                out.push(StaleOutcome::Removed { id, mode });
            }
            e if -e == libc::EBUSY => {
                tracing::warn!(iface, id, ?mode, "{PROG_NAME} is held by a bpf_link (another podswitch, or a pinned link); left alone");
                out.push(StaleOutcome::Busy { id, mode });
            }
            e if -e == libc::EEXIST => {
                // Replaced by someone else after our query: not ours any more.
                continue;
            }
            e => {
                return Err(stale_err(format!(
                    "detaching program {id}: {}",
                    std::io::Error::from_raw_os_error(-e)
                )))
            }
        }
    }
    Ok(out)
}

/// The name of a loaded program.
fn prog_name(fd: RawFd) -> std::io::Result<String> {
    // SAFETY: zeroed is a valid bpf_prog_info (plain integers and pointers
    // the kernel fills only when asked through them; all null here).
    let mut info: libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: info and len live for the call; len says how much to write.
    let rc = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd, &mut info, &mut len) };
    if rc < 0 {
        return Err(std::io::Error::from_raw_os_error(-rc));
    }
    let bytes: Vec<u8> = info.name.iter().map(|c| *c as u8).collect();
    let name = CStr::from_bytes_until_nul(&bytes)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
    Ok(name)
}
