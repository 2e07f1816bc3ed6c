//! Kernel steering for a network spread over several PMD threads.
//!
//! Each thread of a spread group owns its own queue of every port (a TAP
//! queue, a packet socket in a fan-out group) and its own tables and NAT,
//! with a slice of the SNAT port range ([`split_range`]). Frames never
//! cross threads, so the kernel has to hand each frame to the thread that
//! holds its connection's state. The steering program (`bpf/pd_steer.c`,
//! loaded by [`SteerProgram`]) picks the thread; [`SteerPlan::thread_of`]
//! is the same function in Rust, the reference the program is tested
//! against.
//!
//! The choice agrees across the switch: a container's flow through NAT
//! goes by its own address and port (so that pair keeps one NAT port for
//! every destination, RFC 4787's endpoint-independent mapping), and the
//! NAT reply comes back to the NAT address on a port (or echo id) of the
//! slice of the thread that chose it; east-west flows go by a hash of
//! both ends, the same for both directions; a connection to a mapped port
//! is steered by its remote end on both sides (its source on the outside,
//! the destination of the container's replies on the inside), and so is
//! a hairpin to it from a container; an ICMP error goes with the flow of
//! the packet it quotes. Only a datagram's first
//! fragment carries its ports: the program remembers where each first
//! fragment went, and the later ones follow it (a NAT translates them by
//! what it recorded of the first).
//!
//! For the caller: a TAP's queues and a fan-out group's members are
//! numbered in the order they were opened and renumbered when one goes
//! (the kernel moves the last into the gap), so a group's ports are made
//! together and dropped together; the program's thread count is theirs.

mod plan;
mod program;

pub use plan::{
    mix, split_range, FragmentThreads, MappedPort, NatSteer, Side, SteerPlan, MAX_FRAGMENTED,
    MAX_MAPPED, MAX_SUBNETS,
};
pub use program::{SteerError, SteerProgram, PROG_NAME};
