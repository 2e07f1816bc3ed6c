//! Docker's endpoint modes, as root, through `podswitch lab up` and
//! `podswitch lab exec`: `none` (loopback only, up), `host` (podswitch's
//! own namespace) and `container:NAME` (NAME's namespace and interface,
//! also down a chain). podswitch runs in a "host" namespace of the test
//! that holds a veth pair of its own; every namespace is the test's
//! own and is removed by a guard, also on failure.

mod common;

use std::process::{Command, Output};

use common::*;
use pmd::netns::NetnsGuard;

struct Lab {
    daemon: Option<Daemon>,
    host: NetnsGuard,
    _guards: Vec<NetnsGuard>,
}

impl Lab {
    fn new() -> Lab {
        let host = NetnsGuard::new("psm-h").unwrap();
        host.exec(
            "ip",
            &[
                "link",
                "add",
                "hostlink0",
                "type",
                "veth",
                "peer",
                "name",
                "hostlink1",
            ],
        )
        .unwrap();
        // The none endpoint's namespace exists with loopback down:
        // podswitch is the one that brings it up.
        let iso = NetnsGuard::new("psm-i").unwrap();
        iso.exec("ip", &["link", "set", "lo", "down"]).unwrap();
        assert!(
            !link_up(&ip_in(iso.name(), &["-o", "link", "show", "lo"])),
            "the fixture's lo is down"
        );
        // Made here, not by `lab up`: podswitch runs under `ip netns exec`,
        // whose private mount namespace would hide the namespaces it made.
        let (web, router) = (
            NetnsGuard::new("psm-w").unwrap(),
            NetnsGuard::new("psm-r").unwrap(),
        );
        // configs/endpoint-modes.toml, with the test's own namespaces and
        // control socket.
        let example = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../configs/endpoint-modes.toml"
        ))
        .unwrap();
        for ns in ["modes-web", "modes-router", "modes-batch"] {
            assert!(
                example.contains(&format!("\"{ns}\"")),
                "the example names {ns}"
            );
        }
        let text = format!("[switch]\ncontrol = \"{}\"\n", control_path())
            + &example
                .replace("\"modes-web\"", &format!("\"{}\"", web.name()))
                .replace("\"modes-router\"", &format!("\"{}\"", router.name()))
                .replace("\"modes-batch\"", &format!("\"{}\"", iso.name()));
        let guards = vec![iso, web, router];
        let daemon = Daemon::start_in(Some(host.name()), &["lab", "up"], &text);
        Lab {
            daemon: Some(daemon),
            host,
            _guards: guards,
        }
    }

    /// `podswitch lab exec CONFIG ENDPOINT -- ARGV`, run from podswitch's
    /// namespace (where `host` endpoints live).
    fn exec(&self, endpoint: &str, argv: &[&str]) -> Output {
        let d = self.daemon.as_ref().unwrap();
        Command::new("ip")
            .args([
                "netns",
                "exec",
                self.host.name(),
                env!("CARGO_BIN_EXE_podswitch"),
            ])
            .args(["lab", "exec"])
            .arg(&d.config.path)
            .arg(endpoint)
            .arg("--")
            .args(argv)
            .output()
            .unwrap()
    }

    /// The link names `ip -o link` lists where `endpoint` lives.
    fn links(&self, endpoint: &str) -> Vec<String> {
        let out = self.exec(endpoint, &["ip", "-o", "link", "show"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap().to_string())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The daemon goes before the namespaces it uses.
        self.daemon.take();
    }
}

/// Whether an `ip -o link show DEV` line says the link is up.
fn link_up(line: &str) -> bool {
    line.split(['<', '>'])
        .nth(1)
        .is_some_and(|f| f.split(',').any(|x| x == "UP"))
}

#[test]
fn a_none_endpoint_has_only_loopback_and_it_is_up() {
    if skip_unless_root("none endpoint") {
        return;
    }
    let lab = Lab::new();
    assert_eq!(lab.links("batch"), ["lo"]);
    let lo = lab.exec("batch", &["ip", "-o", "link", "show", "lo"]);
    assert!(link_up(&String::from_utf8_lossy(&lo.stdout)), "{lo:?}");
    let ping = lab.exec("batch", &["ping", "-c", "1", "-W", "2", "127.0.0.1"]);
    assert!(ping.status.success(), "loopback answers: {ping:?}");
    let out = lab.exec("batch", &["ping", "-c", "1", "-W", "1", "172.29.0.10"]);
    assert!(!out.status.success(), "nothing else is reachable: {out:?}");
}

#[test]
fn a_host_endpoint_sees_the_hosts_interfaces() {
    if skip_unless_root("host endpoint") {
        return;
    }
    let lab = Lab::new();
    let links = lab.links("monitor");
    assert!(links.contains(&"hostlink0".to_string()), "{links:?}");
    assert!(!links.contains(&"eth0".to_string()), "{links:?}");
}

#[test]
fn a_container_endpoint_sees_its_containers_eth0_and_reaches_what_it_reaches() {
    if skip_unless_root("container endpoint") {
        return;
    }
    let lab = Lab::new();
    let web_mac = "00:15:5d:1d:00:00";
    for e in ["web", "sidecar", "sidecar2"] {
        assert_eq!(lab.links(e), ["lo", "eth0"], "{e}");
        let eth0 = lab.exec(e, &["ip", "-o", "link", "show", "eth0"]);
        let eth0 = String::from_utf8_lossy(&eth0.stdout);
        assert!(
            eth0.contains(web_mac),
            "{e} has web's eth0, with the pool's first MAC: {eth0}"
        );
        let addr = lab.exec(e, &["ip", "-o", "-4", "addr", "show", "eth0"]);
        let addr = String::from_utf8_lossy(&addr.stdout);
        assert!(
            addr.contains("172.29.0.10/24"),
            "{e}: past the reserved range: {addr}"
        );
        // router (172.29.0.11) and the gateway.
        for dst in ["172.29.0.11", "172.29.0.1"] {
            let ping = lab.exec(e, &["ping", "-c", "1", "-W", "2", dst]);
            assert!(ping.status.success(), "{e} reaches {dst}: {ping:?}");
        }
    }
    let unknown = lab.exec("nobody", &["true"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no endpoint nobody"),
        "{unknown:?}"
    );
}
