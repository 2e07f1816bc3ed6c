//! The flow table as PMD threads write it: one map fd per handle, so any
//! thread can install and remove flows while others do the same (the
//! kernel's hash map locks per bucket).

use std::os::fd::{AsFd, AsRawFd};

use libbpf_rs::libbpf_sys;

use super::{FlowAction, FlowKey, FlowStats, OffloadError};

/// The map value: the action, then `packets`, `bytes`, `last_ns`
/// (`struct pd_flow_value` in pd_tc.c).
pub(super) const VALUE_SIZE: usize = 120;
const ACTION_SIZE: usize = std::mem::size_of::<FlowAction>();

/// A handle on the offload's flow table. `Send + Sync`: the map is the
/// kernel's, every call is one system call on the handle's own fd.
#[derive(Debug)]
pub struct FlowTable {
    map: libbpf_rs::MapHandle,
    capacity: u32,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<FlowTable>();
    send_sync::<super::FlowOffload>();
};

fn key_bytes(key: &FlowKey) -> [u8; 32] {
    // SAFETY: FlowKey is repr(C), 32 bytes of integers and byte arrays
    // without padding (pad is an explicit field), so every byte is defined.
    unsafe { std::mem::transmute::<FlowKey, [u8; 32]>(*key) }
}

fn action_bytes(action: &FlowAction) -> [u8; ACTION_SIZE] {
    // SAFETY: FlowAction is repr(C), 96 bytes without implicit padding
    // (every gap is an explicit pad field; sizes asserted in mod.rs).
    unsafe { std::mem::transmute::<FlowAction, [u8; ACTION_SIZE]>(*action) }
}

fn stats_of(value: &[u8; VALUE_SIZE]) -> FlowStats {
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&value[at..at + 8]);
        u64::from_ne_bytes(b)
    };
    FlowStats {
        packets: word(ACTION_SIZE),
        bytes: word(ACTION_SIZE + 8),
        last_used_ns: word(ACTION_SIZE + 16),
    }
}

impl FlowTable {
    pub(super) fn new(map: libbpf_rs::MapHandle, capacity: u32) -> FlowTable {
        FlowTable { map, capacity }
    }

    fn fd(&self) -> i32 {
        self.map.as_fd().as_raw_fd()
    }

    /// Installs (or replaces) the flow `key` -> `action`, with its counters
    /// at zero. A full table is [`OffloadError::Full`].
    pub fn insert(&self, key: &FlowKey, action: &FlowAction) -> Result<(), OffloadError> {
        let k = key_bytes(key);
        let mut v = [0u8; VALUE_SIZE];
        v[..ACTION_SIZE].copy_from_slice(&action_bytes(action));
        // SAFETY: k and v are the map's key and value sizes and live for
        // the call; the kernel only reads them.
        let rc = unsafe {
            libbpf_sys::bpf_map_update_elem(
                self.fd(),
                k.as_ptr().cast(),
                v.as_ptr().cast(),
                libbpf_sys::BPF_ANY as u64,
            )
        };
        match -rc {
            0 => Ok(()),
            libc::E2BIG => Err(OffloadError::Full {
                capacity: self.capacity,
            }),
            errno => Err(OffloadError::Map {
                op: "installing a flow",
                source: std::io::Error::from_raw_os_error(errno),
            }),
        }
    }

    /// Removes the flow `key`; its counters at removal, `None` when it was
    /// not there.
    pub fn remove(&self, key: &FlowKey) -> Result<Option<FlowStats>, OffloadError> {
        let k = key_bytes(key);
        let mut v = [0u8; VALUE_SIZE];
        // SAFETY: k and v are the map's key and value sizes and live for
        // the call; the kernel writes at most VALUE_SIZE bytes into v.
        let rc = unsafe {
            libbpf_sys::bpf_map_lookup_and_delete_elem(
                self.fd(),
                k.as_ptr().cast(),
                v.as_mut_ptr().cast(),
            )
        };
        match -rc {
            0 => Ok(Some(stats_of(&v))),
            libc::ENOENT => Ok(None),
            errno => Err(OffloadError::Map {
                op: "removing a flow",
                source: std::io::Error::from_raw_os_error(errno),
            }),
        }
    }

    /// The counters of flow `key`, `None` when it is not installed.
    pub fn stats(&self, key: &FlowKey) -> Result<Option<FlowStats>, OffloadError> {
        let k = key_bytes(key);
        let mut v = [0u8; VALUE_SIZE];
        // SAFETY: as in `remove`.
        let rc = unsafe {
            libbpf_sys::bpf_map_lookup_elem(self.fd(), k.as_ptr().cast(), v.as_mut_ptr().cast())
        };
        match -rc {
            0 => Ok(Some(stats_of(&v))),
            libc::ENOENT => Ok(None),
            errno => Err(OffloadError::Map {
                op: "reading a flow's counters",
                source: std::io::Error::from_raw_os_error(errno),
            }),
        }
    }

    /// How many flows the table holds at most.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }
}
