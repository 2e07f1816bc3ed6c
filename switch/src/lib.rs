//! The virtual switches of podswitch and everything around them.
//!
//! One virtual switch per `[[network]]` (as Windows HNS does): MAC learning
//! with aging, flooding within the network only, and a gateway the switch
//! owns (ARP and ICMP echo). The pipeline implements `pmd::thread::Pipeline`
//! and composes `nat` and `overlay`. Around it: the config model and its
//! checker, endpoint setup (TAPs moved into namespaces), the lab, the
//! daemon, and the `podswitch` binary. Called by the binary and by `bench`.

pub mod acl;
pub mod arp;
pub mod attach;
pub mod capture;
pub mod cluster;
pub mod cni;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod demo;
pub mod describe;
pub mod docker;
pub mod echo;
pub mod endpoint;
pub mod fdb;
pub mod filter;
pub mod flows;
pub mod gateway;
pub mod hostmac;
pub mod inspect;
pub mod lab;
pub mod logging;
pub mod metrics;
pub mod neighbor;
pub mod offload_ports;
pub mod persist;
pub mod pipeline;
pub mod render;
pub mod report;
pub mod resolv;
pub mod route;
pub mod runtime;
pub mod spoof;
pub mod spread;
pub mod stats;
pub mod topology;
pub mod trace;
