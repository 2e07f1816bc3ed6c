//! TAP ports with virtio-net headers and offloads.
