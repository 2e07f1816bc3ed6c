//! The cluster client against a real etcd (Debian's `etcd-server`) on
//! loopback: its own data dir, free ports, stopped by PID. Fails when
//! `etcd` is not installed. Root is not needed.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cluster::{ClusterClient, ClusterSettings, ClusterView, Published};
use pmd::wire::MacAddr;
use test_support::etcd::EtcdServer as Etcd;
use test_support::require_etcd;

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("overlay=info")
        .try_init();
}

fn settings(etcd: &Etcd, host: u8, lease_secs: u32) -> ClusterSettings {
    ClusterSettings {
        endpoints: vec![etcd.url()],
        prefix: "/podswitch".into(),
        lease_secs,
        host_id: format!("host-{host}"),
    }
}

/// Endpoint `n` of host `host`: 172.30.<host>.<n> on "front" (VNI 4242).
fn ep(host: u8, n: u8) -> Published {
    Published {
        network: "front".into(),
        vni: 4242,
        ip: Ipv4Addr::new(172, 30, host, n),
        mac: MacAddr([2, 0, 0, 0, host, n]),
        vtep: Ipv4Addr::new(10, 99, 0, host),
    }
}

fn ips(v: &ClusterView) -> Vec<Ipv4Addr> {
    v.endpoints.iter().map(|r| r.ip).collect()
}

/// Receives views until one has exactly `want` (sorted) IPs; returns the
/// time it took and every view seen on the way.
fn wait_for(
    c: &ClusterClient,
    want: &[Ipv4Addr],
    within: Duration,
    who: &str,
) -> (Duration, Vec<ClusterView>) {
    let t0 = Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = within.saturating_sub(t0.elapsed());
        match c.views().recv_timeout(left) {
            Ok(v) => {
                let done = ips(&v) == want;
                seen.push(v);
                if done {
                    return (t0.elapsed(), seen);
                }
            }
            Err(_) => panic!(
                "{who}: no view with {want:?} within {within:?}; views seen: {:?}",
                seen.iter().map(ips).collect::<Vec<_>>()
            ),
        }
    }
}

/// Watches the views of `clients` for `period` (the span of time a test is
/// about, such as longer than a lease) and fails at the first view that
/// `ok` refuses, saying `what` should have held.
fn views_hold(
    what: &str,
    clients: &[(&str, &ClusterClient)],
    period: Duration,
    ok: impl Fn(&ClusterView) -> bool,
) {
    let until = Instant::now() + period;
    let mut sel = crossbeam::channel::Select::new();
    for (_, c) in clients {
        sel.recv(c.views());
    }
    while let Ok(op) = sel.select_deadline(until) {
        let (who, c) = clients[op.index()];
        let v = op
            .recv(c.views())
            .expect("the client's view channel is open");
        assert!(ok(&v), "{who}: {what}, but got a view with {:?}", ips(&v));
    }
}

fn ip(host: u8, n: u8) -> Ipv4Addr {
    ep(host, n).ip
}

#[test]
fn three_hosts_see_each_other_and_a_stopped_host_goes_at_once() {
    if !require_etcd("cluster client") {
        return;
    }
    logs();
    let t = Instant::now();
    let etcd = Etcd::start();
    let a = ClusterClient::start(settings(&etcd, 1, 10), vec![ep(1, 1)]).unwrap();
    let b = ClusterClient::start(settings(&etcd, 2, 10), vec![ep(2, 1)]).unwrap();
    let c = ClusterClient::start(settings(&etcd, 3, 10), vec![ep(3, 1)]).unwrap();

    let (ta, _) = wait_for(&a, &[ip(2, 1), ip(3, 1)], Duration::from_secs(3), "A");
    let (tb, _) = wait_for(&b, &[ip(1, 1), ip(3, 1)], Duration::from_secs(3), "B");
    let (tc, seen) = wait_for(&c, &[ip(1, 1), ip(2, 1)], Duration::from_secs(3), "C");
    println!("all three see each other: A {ta:?}, B {tb:?}, C {tc:?}");
    let r = &seen.last().unwrap().endpoints[0];
    assert_eq!(
        (r.network.as_str(), r.vni, r.mac, r.vtep, r.host.as_str()),
        ("front", 4242, ep(1, 1).mac, ep(1, 1).vtep, "host-1")
    );

    // A clean stop revokes the lease: gone from A and C at once.
    let t0 = Instant::now();
    b.stop().expect("B stops and revokes its lease");
    let stop_time = t0.elapsed();
    let (ta, _) = wait_for(&a, &[ip(3, 1)], Duration::from_secs(1), "A after B stopped");
    let (tc, _) = wait_for(&c, &[ip(1, 1)], Duration::from_secs(1), "C after B stopped");
    println!("B stopped in {stop_time:?}; gone from A in {ta:?}, from C in {tc:?}");

    // A reload on A: one endpoint replaced by two.
    a.update_local(vec![ep(1, 2), ep(1, 3)]).unwrap();
    let (tc, _) = wait_for(
        &c,
        &[ip(1, 2), ip(1, 3)],
        Duration::from_secs(2),
        "C after A's reload",
    );
    println!("A's reload seen by C in {tc:?}");

    a.stop().unwrap();
    c.stop().unwrap();
    println!("test took {:?}", t.elapsed());
}

#[test]
fn an_abandoned_host_goes_when_its_lease_expires() {
    if !require_etcd("cluster client") {
        return;
    }
    logs();
    let t = Instant::now();
    let etcd = Etcd::start();
    let a = ClusterClient::start(settings(&etcd, 1, 2), vec![ep(1, 1)]).unwrap();
    let b = ClusterClient::start(settings(&etcd, 2, 2), vec![ep(2, 1)]).unwrap();
    wait_for(&a, &[ip(2, 1)], Duration::from_secs(3), "A");
    wait_for(&b, &[ip(1, 1)], Duration::from_secs(3), "B");
    // Keep-alives hold B's lease past its first TTL: for 1.5 leases A
    // sees no view without B.
    views_hold(
        "B stays while it keeps its lease alive",
        &[("A", &a)],
        Duration::from_secs(3),
        |v| ips(v) == [ip(2, 1)],
    );

    let t0 = Instant::now();
    b.abandon();
    let (gone, _) = wait_for(&a, &[], Duration::from_secs(6), "A after B died");
    println!("B died; gone from A after {gone:?} (lease 2 s)");
    // Not a revoke: it took about a lease time.
    assert!(t0.elapsed() > Duration::from_millis(1000), "{gone:?}");
    a.stop().unwrap();
    println!("test took {:?}", t.elapsed());
}

#[test]
fn an_etcd_outage_keeps_the_last_view_and_resynchronises() {
    if !require_etcd("cluster client") {
        return;
    }
    logs();
    let t = Instant::now();
    let mut etcd = Etcd::start();
    let a = ClusterClient::start(settings(&etcd, 1, 3), vec![ep(1, 1)]).unwrap();
    let b = ClusterClient::start(settings(&etcd, 2, 3), vec![ep(2, 1)]).unwrap();
    let c = ClusterClient::start(settings(&etcd, 3, 3), vec![ep(3, 1)]).unwrap();
    wait_for(&a, &[ip(2, 1), ip(3, 1)], Duration::from_secs(3), "A");
    wait_for(&b, &[ip(1, 1), ip(3, 1)], Duration::from_secs(3), "B");
    wait_for(&c, &[ip(1, 1), ip(2, 1)], Duration::from_secs(3), "C");

    // etcd gone for longer than the lease: nothing that erases the view.
    etcd.stop();
    let down = Instant::now();
    a.update_local(vec![ep(1, 1), ep(1, 2)]).unwrap();
    views_hold(
        "no view while etcd is down",
        &[("A", &a), ("B", &b), ("C", &c)],
        Duration::from_secs(4),
        |_| false,
    );

    // Back on the same data dir and ports: everyone resynchronises and
    // sees A's endpoint published during the outage.
    etcd.run();
    println!("etcd was down {:?}", down.elapsed());
    let back = Instant::now();
    let (tb, seen_b) = wait_for(
        &b,
        &[ip(1, 1), ip(1, 2), ip(3, 1)],
        Duration::from_secs(8),
        "B after etcd came back",
    );
    let (tc, seen_c) = wait_for(
        &c,
        &[ip(1, 1), ip(1, 2), ip(2, 1)],
        Duration::from_secs(8),
        "C after etcd came back",
    );
    let (ta, seen_a) = wait_for(&a, &[ip(2, 1), ip(3, 1)], Duration::from_secs(8), "A");
    println!(
        "resynchronised {:?} after etcd restart (B {tb:?}, then C {tc:?}, A {ta:?} more)",
        back.elapsed()
    );
    // No view on the way lost an endpoint that never left.
    for v in seen_b.iter() {
        assert!(
            ips(v).contains(&ip(1, 1)) && ips(v).contains(&ip(3, 1)),
            "B saw {v:?}"
        );
    }
    for v in seen_c.iter() {
        assert!(
            ips(v).contains(&ip(1, 1)) && ips(v).contains(&ip(2, 1)),
            "C saw {v:?}"
        );
    }
    for v in seen_a.iter() {
        assert_eq!(ips(v), [ip(2, 1), ip(3, 1)], "A saw {v:?}");
    }

    // And after the restart, changes flow again.
    b.update_local(vec![ep(2, 1), ep(2, 7)]).unwrap();
    wait_for(
        &a,
        &[ip(2, 1), ip(2, 7), ip(3, 1)],
        Duration::from_secs(2),
        "A after B's update",
    );
    for cl in [a, b, c] {
        cl.stop().unwrap();
    }
    println!("test took {:?}", t.elapsed());
}

#[test]
fn a_client_waits_for_etcd_and_stops_in_bounded_time_without_it() {
    if !require_etcd("cluster client") {
        return;
    }
    logs();
    let t = Instant::now();
    let mut etcd = Etcd::prepare();
    // Started before etcd: no error, no view, until etcd answers.
    let a = ClusterClient::start(settings(&etcd, 1, 4), vec![ep(1, 1)]).unwrap();
    let b = ClusterClient::start(settings(&etcd, 2, 4), vec![ep(2, 1)]).unwrap();
    assert!(a.views().recv_timeout(Duration::from_millis(500)).is_err());
    etcd.run();
    let (ta, _) = wait_for(&a, &[ip(2, 1)], Duration::from_secs(5), "A");
    println!("A synchronised {ta:?} after etcd came up");

    // etcd gone: stop still ends within 3 s (the revoke cannot be done).
    // Stopped: its process has exited, so nothing answers the revoke.
    etcd.stop();
    let t0 = Instant::now();
    let r = a.stop();
    let took = t0.elapsed();
    println!("stop without etcd took {took:?}: {r:?}");
    assert!(took <= Duration::from_secs(3), "{took:?}");
    assert!(r.is_err(), "the revoke cannot have worked");
    let t0 = Instant::now();
    drop(b);
    assert!(t0.elapsed() <= Duration::from_secs(3));
    println!("test took {:?}", t.elapsed());
}
