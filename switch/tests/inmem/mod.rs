//! Helpers for tests that run the data plane over in-memory ports: knowing,
//! without a quiet period, that the switch has finished with what it was
//! given.

#![allow(dead_code)]

use std::cell::Cell;
use std::time::Duration;

use pmd::memport::MemPeer;
use switch::dataplane::Dataplane;
use switch::pipeline::Control;
use test_support::wait_until;

/// Returns once every PMD thread of `dp` has finished with every frame it
/// took from its ports before the call (sent it on, dropped it, or holds it
/// waiting for ARP). A thread answers a control message between bursts,
/// after it has processed and sent what it took before; a frame stays on
/// the thread that received it.
pub fn settle(dp: &Dataplane) {
    let (tx, rx) = crossbeam::channel::unbounded();
    let threads = Cell::new(0);
    dp.control_handle().send_all(|| {
        threads.set(threads.get() + 1);
        Control::DumpFdb(tx.clone())
    });
    for _ in 0..threads.get() {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("every PMD thread answers a control message within 10 s");
    }
}

/// Waits until the switch took every frame offered on `peers`, lets it
/// finish with them, and returns what each port sent out, by port.
pub fn outputs(dp: &Dataplane, peers: &[MemPeer]) -> Vec<Vec<Vec<u8>>> {
    wait_until(
        "the switch to take every frame offered on its ports",
        Duration::from_secs(10),
        || peers.iter().all(|p| p.pending() == 0),
    );
    settle(dp);
    peers.iter().map(MemPeer::drain).collect()
}
