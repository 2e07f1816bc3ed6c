//! Small system calls the AF_XDP setup needs: RLIMIT_MEMLOCK, bpffs, the
//! interface index and its receive queue count.

use std::ffi::CString;
use std::io;
use std::sync::Once;

use super::AfXdpError;

/// Raises RLIMIT_MEMLOCK to infinity, once per process.
///
/// UMEM registration charges locked memory unless the process has
/// CAP_IPC_LOCK (probe 1: a 16 MiB UMEM failed with ENOBUFS under the
/// default 8 MiB limit); BPF maps no longer need it on 6.x (memcg). A
/// failure is logged, not fatal: with CAP_IPC_LOCK the limit does not apply.
pub fn raise_memlock() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let lim = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit reads a valid rlimit struct we own.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            // Raising the hard limit needs CAP_SYS_RESOURCE; without it the
            // raise fails, which only matters without CAP_IPC_LOCK (and the
            // UMEM registration then says so itself).
            if has_cap_ipc_lock() {
                tracing::debug!("cannot raise RLIMIT_MEMLOCK ({err}); CAP_IPC_LOCK makes it moot");
            } else {
                tracing::warn!(
                    "cannot raise RLIMIT_MEMLOCK: {err} (UMEM registration may fail without CAP_IPC_LOCK)"
                );
            }
        }
    });
}

/// Mounts bpffs at /sys/fs/bpf when nothing is mounted there, once per
/// process. podswitch pins nothing (its link must die with it), but libxdp
/// looks for bpffs and logs when it is missing. Errors are ignored.
pub fn ensure_bpffs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mounted = std::fs::read_to_string("/proc/self/mounts")
            .map(|m| {
                m.lines()
                    .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf"))
            })
            .unwrap_or(true);
        if mounted || !std::path::Path::new("/sys/fs/bpf").is_dir() {
            return;
        }
        let (src, target, fstype) = (c"bpffs", c"/sys/fs/bpf", c"bpf");
        // SAFETY: all pointers are NUL-terminated static strings; data is
        // null, which bpffs accepts.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            tracing::debug!("mounting bpffs: {}", io::Error::last_os_error());
        }
    });
}

/// The interface index of `iface` in the calling thread's namespace.
pub(crate) fn ifindex(iface: &str) -> Result<i32, AfXdpError> {
    let name = CString::new(iface).map_err(|_| AfXdpError::NoSuchInterface {
        iface: iface.to_string(),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if idx == 0 {
        return Err(AfXdpError::NoSuchInterface {
            iface: iface.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(idx as i32)
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// `struct ethtool_channels`.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// `struct ifreq` with the `ifr_data` member, padded to the kernel's size.
#[repr(C)]
struct IfReqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// Receive queues of `iface` that traffic may arrive on: ethtool's channel
/// count (rx or combined, whichever is larger), else the `rx-*` entries in
/// sysfs, else 1.
///
/// The ioctl is asked first because it answers in the calling thread's
/// network namespace; /sys shows the namespace it was mounted from, which
/// differs after `setns` (notes/datapath-probes.md: `ip netns exec`
/// remounts /sys for that reason). veth has one rx queue per CPU by default
/// (`numrxqueues`), and a sender's queue picks the receiving queue.
pub fn rx_queue_count(iface: &str) -> u32 {
    if let Some(n) = ethtool_rx_queues(iface) {
        return n.max(1);
    }
    std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .max(1)
}

fn ethtool_rx_queues(iface: &str) -> Option<u32> {
    if iface.len() >= libc::IFNAMSIZ {
        return None;
    }
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut req = IfReqData {
        name: [0; libc::IFNAMSIZ],
        data: (&mut ch as *mut EthtoolChannels).cast(),
        _pad: [0; 16],
    };
    req.name[..iface.len()].copy_from_slice(iface.as_bytes());
    // SAFETY: a plain datagram socket, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: SIOCETHTOOL reads the ifreq and writes the ethtool_channels
    // it points to; both live on this stack frame for the call.
    let rc = unsafe { libc::ioctl(fd, SIOCETHTOOL as _, &mut req) };
    // SAFETY: fd is ours and not used afterwards.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return None;
    }
    let n = ch.rx_count.max(ch.combined_count);
    (n > 0).then_some(n)
}

/// True when the effective capability set has CAP_IPC_LOCK (bit 14), read
/// from /proc/self/status.
fn has_cap_ipc_lock() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 14) != 0)
}
