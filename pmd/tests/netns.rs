//! Namespaces and links through netlink, as root: what `ip netns`, `ip
//! link` and `ip addr` show after each. Every namespace and link is
//! uniquely named and removed by a guard even when the test fails.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use pmd::netlink::{LinkChange, Rtnl};
use pmd::netns::{self, in_netns, netns_path, unique_name, NetnsGuard};
use pmd::wire::MacAddr;

/// `ip ARGS` inside `ns`, its stdout (the independent view of the result).
fn ip_in(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("running ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deletes the namespace on drop, for a test that creates one by name.
struct Named(String);

impl Drop for Named {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}

#[test]
fn a_namespace_created_without_ip_is_listed_by_ip_netns_with_loopback_up_and_deleted_without_trace()
{
    assert!(test_support::require_root("netns create/delete"));
    let name = unique_name("pnc");
    let _guard = Named(name.clone());
    netns::create(&name).unwrap();
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&name),
        "ip netns list shows it"
    );
    let lo = ip_in(&name, &["link", "show", "lo"]);
    assert!(lo.contains("UP"), "loopback is up: {lo}");
    let err = netns::create(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");

    netns::delete(&name).unwrap();
    assert!(!netns::exists(&name));
    assert!(
        !Path::new(&netns_path(&name)).exists(),
        "the name is gone from /run/netns"
    );
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&name));
}

#[test]
fn a_namespace_name_with_a_slash_is_refused_before_anything_is_made() {
    let err = netns::create("a/b").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

#[test]
fn a_veth_pair_made_through_netlink_is_up_at_both_ends_and_deleting_one_end_removes_both() {
    assert!(test_support::require_root("veth through netlink"));
    let ns = NetnsGuard::new("pnv").unwrap();
    in_netns(ns.name(), || Rtnl::open()?.add_veth("va", "vb"))
        .unwrap()
        .unwrap();
    let links = ip_in(ns.name(), &["-br", "link", "show"]);
    let up = |n: &str| {
        links
            .lines()
            .any(|l| l.starts_with(&format!("{n}@")) && l.contains("UP"))
    };
    assert!(up("va") && up("vb"), "both ends up: {links}");

    in_netns(ns.name(), || Rtnl::open()?.del_link("va"))
        .unwrap()
        .unwrap();
    let links = ip_in(ns.name(), &["-br", "link", "show"]);
    assert!(
        !links.contains("va@") && !links.contains("vb@"),
        "both ends gone: {links}"
    );
}

#[test]
fn a_link_moved_into_a_namespace_takes_its_name_mac_mtu_address_and_default_route() {
    assert!(test_support::require_root("link setup through netlink"));
    let host = NetnsGuard::new("pnh").unwrap();
    let ctr = NetnsGuard::new("pnt").unwrap();
    let ctr_file = std::fs::File::open(netns_path(ctr.name())).unwrap();
    let mac = MacAddr([0x02, 0, 0xac, 0x1e, 0, 0x0a]);
    in_netns(host.name(), move || -> std::io::Result<()> {
        let mut here = Rtnl::open()?;
        here.add_veth("hx", "hy")?;
        let index = here.link_index("hy")?.expect("hy exists");
        here.set_link(
            index,
            &LinkChange {
                netns: Some(&ctr_file),
                name: Some("eth0"),
                mac: Some(mac),
                mtu: Some(1450),
                up: true,
                ..LinkChange::default()
            },
        )?;
        assert_eq!(here.link_index("hy")?, None, "hy left the host namespace");
        let mut there = Rtnl::open_in(&ctr_file)?;
        let index = there.link_index("eth0")?.expect("eth0 in the container");
        there.add_ipv4(index, Ipv4Addr::new(172, 30, 0, 10), 24)?;
        there.replace_default_route(Ipv4Addr::new(172, 30, 0, 1))
    })
    .unwrap()
    .unwrap();
    let link = ip_in(ctr.name(), &["link", "show", "eth0"]);
    assert!(link.contains("02:00:ac:1e:00:0a"), "MAC: {link}");
    assert!(link.contains("mtu 1450"), "MTU: {link}");
    assert!(link.contains(",UP"), "up: {link}");
    let addr = ip_in(ctr.name(), &["-4", "addr", "show", "eth0"]);
    assert!(
        addr.contains("inet 172.30.0.10/24 brd 172.30.0.255"),
        "address: {addr}"
    );
    let route = ip_in(ctr.name(), &["route", "show", "default"]);
    assert!(
        route.contains("default via 172.30.0.1 dev eth0"),
        "route: {route}"
    );
    // Adding the same address twice is the kernel's EEXIST, not a panic.
    let again = in_netns(ctr.name(), || {
        let mut nl = Rtnl::open()?;
        let index = nl.link_index("eth0")?.expect("eth0");
        nl.add_ipv4(index, Ipv4Addr::new(172, 30, 0, 10), 24)
    })
    .unwrap();
    assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
}

#[test]
fn a_command_in_a_namespace_runs_there() {
    assert!(test_support::require_root("command in a namespace"));
    let ns = NetnsGuard::new("pnx").unwrap();
    in_netns(ns.name(), || {
        Rtnl::open()?.add_veth("only-here", "peer-here")
    })
    .unwrap()
    .unwrap();
    let out = ns
        .command("ip")
        .args(["-br", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&out.stdout);
    assert!(links.contains("only-here@"), "{links}");
    let here = Command::new("ip")
        .args(["-br", "link", "show"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&here.stdout).contains("only-here@"));
}
