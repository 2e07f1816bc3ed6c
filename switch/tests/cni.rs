//! `podswitch-cni` driven exactly as a runtime drives it (CNI_* variables
//! and the network config on stdin), as root, against a real `podswitch
//! run`: a `nat` network behind an uplink veth into an "outside"
//! namespace (10.99.0.1), the daemon in a "host" namespace of the test.
//! Then podman (CNI backend) runs a busybox-static container on it. Every
//! namespace, daemon and data root is the test's own and is removed by a
//! guard, also on failure.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pmd::netns::{in_netns, unique_name, NetnsGuard};
use serde_json::{json, Value};
use switch::lab::traffic::{ping, tcp_fetch, tcp_upload};
use test_support::wait_for;

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const UPLINK: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
const VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// The tests share fixed addresses and ports; one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Lab {
    daemon: Option<Daemon>,
    socket: String,
    _host: NetnsGuard,
    outside: NetnsGuard,
}

impl Lab {
    fn new() -> Lab {
        assert!(pmd::netns::is_root(), "the CNI tests need root");
        let host = NetnsGuard::new("pscni-h").unwrap();
        let outside = NetnsGuard::new("pscni-o").unwrap();
        uplink_veth(&host, &outside, "10.99.0.1/24");
        let socket = control_path();
        let text = format!(
            r#"
[switch]
control = "{socket}"

[[port]]
name = "up0"
iface = "up0"
kind = "packet"
ip = "10.99.0.2/24"
gateway = "10.99.0.1"

[[network]]
name = "front"
mode = "nat"
subnet = "172.30.0.0/24"
gateway = "172.30.0.1"
uplink = "up0"
"#
        );
        let daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
        Lab {
            daemon: Some(daemon),
            socket,
            _host: host,
            outside,
        }
    }

    fn conf(&self, version: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": version,
            "name": "front-cni",
            "type": "podswitch-cni",
            "network": "front",
            "socket": self.socket,
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    /// `podswitch ctl --json show`.
    fn show(&self) -> Value {
        ctl_json(&self.socket, &["show"])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The daemon goes before the namespaces it uses.
        self.daemon.take();
    }
}

/// What one plugin call printed and its exit status.
struct Call {
    code: i32,
    stdout: Value,
    stderr: String,
}

/// Runs the plugin as a runtime does: only the CNI_* variables given (and
/// PATH), the config on stdin.
fn cni(vars: &[(&str, &str)], stdin: &[u8]) -> Call {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podswitch-cni"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    Call {
        code: out.status.code().unwrap_or(-1),
        stdout: if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
        },
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

fn call(command: &str, id: &str, netns: Option<&str>, conf: &Value) -> Call {
    let mut vars = vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
        ("CNI_ARGS", "IgnoreUnknown=1"),
    ];
    if let Some(ns) = netns {
        vars.push(("CNI_NETNS", ns));
    }
    cni(&vars, conf.to_string().as_bytes())
}

fn ok(c: Call, what: &str) -> Value {
    assert_eq!(c.code, 0, "{what}: {} {}", c.stdout, c.stderr);
    c.stdout
}

fn cni_endpoints(show: &Value) -> Vec<String> {
    show["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .filter(|n| n.starts_with("cni-"))
        .collect()
}

/// An HTTP server on `OUTSIDE:port` in the outside namespace that answers
/// every request with `text`, until the guard is dropped.
struct TextServer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TextServer {
    fn start(ns: &str, port: u16, text: &'static str) -> TextServer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let ns = ns.to_string();
        std::thread::spawn(move || {
            let _ = in_netns(&ns, move || {
                let l = TcpListener::bind((OUTSIDE, port)).unwrap();
                l.set_nonblocking(true).unwrap();
                let _ = tx.send(());
                while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut s, _)) => {
                            // Read the request first: closing with unread
                            // bytes would reset the connection.
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                            let mut req = Vec::new();
                            let mut buf = [0u8; 1024];
                            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                                match s.read(&mut buf) {
                                    Ok(n) if n > 0 => req.extend_from_slice(&buf[..n]),
                                    _ => break,
                                }
                            }
                            let _ = write!(
                                s,
                                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                                text.len()
                            );
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            });
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the outside server started");
        TextServer { stop }
    }
}

impl Drop for TextServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn add_gives_each_cni_version_a_working_interface_check_passes_and_del_removes_everything() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    for (i, version) in VERSIONS.iter().enumerate() {
        let i = i as u16;
        let c = NetnsGuard::new("pscni-c").unwrap();
        let netns = format!("/run/netns/{}", c.name());
        let id = format!("{}{}", unique_name("ctr"), "0123456789abcdef".repeat(3));
        let host_port = 8080 + i;
        let conf = lab.conf(
            version,
            json!({"runtimeConfig": {"portMappings": [
                {"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]}}),
        );

        // VERSION lists all three.
        let v = ok(
            cni(
                &[("CNI_COMMAND", "VERSION")],
                json!({"cniVersion": version}).to_string().as_bytes(),
            ),
            "VERSION",
        );
        assert_eq!(v["cniVersion"], *version);
        assert_eq!(v["supportedVersions"], json!(VERSIONS));

        // ADD: a result in this version's shape.
        let r = ok(call("ADD", &id, Some(&netns), &conf), "ADD");
        eprintln!("ADD {version}: {r}");
        assert_eq!(r["cniVersion"], *version, "{r:#}");
        let iface = &r["interfaces"][0];
        assert_eq!(iface["name"], "eth0");
        assert_eq!(iface["sandbox"], netns.as_str());
        let ip = &r["ips"][0];
        assert_eq!(ip["interface"], 0);
        assert_eq!(ip["gateway"], GATEWAY.to_string());
        assert_eq!(
            ip.get("version").cloned(),
            (*version == "0.4.0").then(|| json!("4")),
            "ips[].version only in 0.4.0: {r:#}"
        );
        assert_eq!(
            iface.get("mtu").is_some(),
            *version == "1.1.0",
            "interfaces[].mtu only in 1.1.0: {r:#}"
        );
        assert_eq!(
            r["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": GATEWAY.to_string()}])
        );
        assert_eq!(r["dns"], json!({}));
        let address = ip["address"].as_str().unwrap();
        assert!(address.starts_with("172.30.0.") && address.ends_with("/24"));
        let cip: Ipv4Addr = address.trim_end_matches("/24").parse().unwrap();

        // The interface as the result says: its MAC and address in the netns.
        let mac = iface["mac"].as_str().unwrap().to_string();
        let link = ip_in(c.name(), &["-br", "addr", "show", "eth0"]);
        assert!(link.contains(&format!("{cip}/24")), "{link}");
        let l2 = ip_in(c.name(), &["-br", "link", "show", "eth0"]);
        assert!(l2.contains(&mac), "{l2} lacks {mac}");
        let route = ip_in(c.name(), &["route", "show", "default"]);
        assert!(route.contains(&format!("via {GATEWAY}")), "{route}");

        // It works: the gateway answers, the outside serves it through NAT.
        let p = ping(c.name(), GATEWAY, 3).unwrap();
        assert_eq!(p.received, 3, "{version}: ping the gateway");
        let (t, peer) = tcp_fetch(
            lab.outside.name(),
            OUTSIDE,
            7000 + i,
            c.name(),
            SocketAddr::from((OUTSIDE, 7000 + i)),
            100_000,
        )
        .unwrap();
        assert!(t.exact, "{version}: fetch through NAT");
        assert_eq!(
            peer.ip(),
            std::net::IpAddr::V4(UPLINK),
            "the outside sees the uplink address"
        );

        // CHECK passes with the prevResult the runtime keeps.
        let mut checked = conf.clone();
        checked["prevResult"] = r.clone();
        ok(call("CHECK", &id, Some(&netns), &checked), "CHECK");

        // The mapping from runtimeConfig reaches a listener in the container.
        let t = tcp_upload(
            c.name(),
            cip,
            80,
            lab.outside.name(),
            SocketAddr::from((UPLINK, host_port)),
            50_000,
        )
        .unwrap();
        assert!(t.exact, "{version}: {UPLINK}:{host_port} -> {cip}:80");
        let show = lab.show();
        assert_eq!(cni_endpoints(&show).len(), 1, "{show:#}");
        assert_eq!(show["mappings"][0]["host_port"], host_port);

        // DEL removes the interface, the endpoint and the mapping.
        ok(call("DEL", &id, Some(&netns), &checked), "DEL");
        assert!(
            in_netns(c.name(), || pmd::netdev::ifindex("eth0"))
                .unwrap()
                .is_none(),
            "eth0 is gone from the container"
        );
        let show = lab.show();
        assert!(cni_endpoints(&show).is_empty(), "{show:#}");
        assert_eq!(show["mappings"], json!([]), "{show:#}");
        // CHECK now fails; DEL again, and DEL without a netns, succeed.
        let c2 = call("CHECK", &id, Some(&netns), &checked);
        assert_eq!(c2.code, 1, "CHECK after DEL fails: {}", c2.stdout);
        assert_eq!(c2.stdout["code"], 101);
        ok(call("DEL", &id, Some(&netns), &conf), "second DEL");
        ok(call("DEL", &id, None, &conf), "DEL without a netns");
    }
}

#[test]
fn bad_input_gets_the_cni_error_codes_and_status_and_gc_answer() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let c = NetnsGuard::new("pscni-c").unwrap();
    let netns = format!("/run/netns/{}", c.name());
    let conf = lab.conf("1.1.0", json!({}));
    let code = |c: &Call| (c.code, c.stdout["code"].as_u64().unwrap_or(0));

    // No CNI_COMMAND: 4; the error object is in the config's version.
    let e = cni(&[("CNI_CONTAINERID", "x")], conf.to_string().as_bytes());
    assert_eq!(code(&e), (1, 4), "{}", e.stdout);
    assert_eq!(e.stdout["cniVersion"], "1.1.0");
    assert!(e.stdout["msg"].as_str().unwrap().contains("CNI_COMMAND"));
    // ADD without CNI_NETNS: 4.
    let e = call("ADD", "x", None, &conf);
    assert_eq!(code(&e), (1, 4), "{}", e.stdout);
    // Not JSON: 6.
    let e = cni(
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "x"),
            ("CNI_NETNS", &netns),
            ("CNI_IFNAME", "eth0"),
        ],
        b"{\"cniVersion\": \"1.0.0\", nope",
    );
    assert_eq!(code(&e), (1, 6), "{}", e.stdout);
    // A network the daemon does not have: 7, naming the ones it has.
    let mut unknown = conf.clone();
    unknown["network"] = json!("nosuch");
    let e = call("ADD", "x", Some(&netns), &unknown);
    assert_eq!(code(&e), (1, 7), "{}", e.stdout);
    assert!(e.stdout["details"].as_str().unwrap().contains("front"));
    // An unsupported version: 1.
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.3.1");
    assert_eq!(code(&call("ADD", "x", Some(&netns), &old)), (1, 1));
    // Nothing was attached by any of these.
    assert!(cni_endpoints(&lab.show()).is_empty());

    // STATUS: ready; 51 for an unknown network.
    ok(
        cni(&[("CNI_COMMAND", "STATUS")], conf.to_string().as_bytes()),
        "STATUS",
    );
    let e = cni(&[("CNI_COMMAND", "STATUS")], unknown.to_string().as_bytes());
    assert_eq!(code(&e), (1, 51), "{}", e.stdout);

    // GC keeps the attachments the runtime names and removes the others.
    let c2 = NetnsGuard::new("pscni-c").unwrap();
    let netns2 = format!("/run/netns/{}", c2.name());
    ok(call("ADD", "keep", Some(&netns), &conf), "ADD keep");
    ok(call("ADD", "stale", Some(&netns2), &conf), "ADD stale");
    assert_eq!(cni_endpoints(&lab.show()).len(), 2);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    ok(
        cni(&[("CNI_COMMAND", "GC")], gc.to_string().as_bytes()),
        "GC",
    );
    let left = cni_endpoints(&lab.show());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with("cni-keep-"), "{left:?}");
    assert!(
        in_netns(c2.name(), || pmd::netdev::ifindex("eth0"))
            .unwrap()
            .is_none(),
        "GC removed the stale container's interface"
    );
    // CHECK notices an interface that lost its address.
    let kept = ok(call("ADD", "check", Some(&netns2), &conf), "ADD check");
    let mut checked = conf.clone();
    checked["prevResult"] = kept;
    ok(call("CHECK", "check", Some(&netns2), &checked), "CHECK");
    c2.exec("ip", &["addr", "flush", "dev", "eth0"]).unwrap();
    let e = call("CHECK", "check", Some(&netns2), &checked);
    assert_eq!(code(&e), (1, 101), "{}", e.stdout);
    ok(call("DEL", "check", Some(&netns2), &conf), "DEL check");
    ok(call("DEL", "keep", Some(&netns), &conf), "DEL keep");

    // With the daemon stopped: ADD is 11 (try again later), STATUS 50,
    // and DEL still succeeds (run-time endpoints ended with the daemon).
    let mut lab = lab;
    lab.daemon.take();
    let e = call("ADD", "x", Some(&netns), &conf);
    assert_eq!(code(&e), (1, 11), "{}", e.stdout);
    let e = cni(&[("CNI_COMMAND", "STATUS")], conf.to_string().as_bytes());
    assert_eq!(code(&e), (1, 50), "{}", e.stdout);
    ok(
        call("DEL", "x", Some(&netns), &conf),
        "DEL without a daemon",
    );
}

/// A private podman setup in a temp dir: storage, run root, containers.conf
/// (CNI backend, runc, cgroupfs, the rlimits this machine allows), the CNI
/// config dir with a podswitch conflist and a plugin dir holding
/// `podswitch-cni`, and a busybox-static root filesystem. Removed on drop.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new(socket: &str, network: &str) -> Podman {
        let dir = std::env::temp_dir().join(unique_name("pscni-pm"));
        let sub = |p: &str| dir.join(p);
        for d in ["rootfs/bin", "rootfs/etc", "net.d", "plugins", "tmp"] {
            std::fs::create_dir_all(sub(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", sub("rootfs/bin/busybox"))
            .expect("busybox-static installed (scripts/deps.sh)");
        for tool in ["sh", "wget", "nc", "echo", "cat", "ip", "sleep"] {
            std::os::unix::fs::symlink("busybox", sub("rootfs/bin").join(tool)).unwrap();
        }
        std::fs::write(sub("rootfs/etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_podswitch-cni"),
            sub("plugins/podswitch-cni"),
        )
        .unwrap();
        let conflist = json!({
            "cniVersion": "1.0.0",
            "name": network,
            "plugins": [{
                "type": "podswitch-cni",
                "network": "front",
                "socket": socket,
                "capabilities": {"portMappings": true},
            }],
        });
        std::fs::write(
            sub(&format!("net.d/{network}.conflist")),
            conflist.to_string(),
        )
        .unwrap();
        let conf = format!(
            r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
network_backend = "cni"
network_config_dir = "{net}"
cni_plugin_dirs = ["{plugins}", "/usr/lib/cni"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{tmp}"
"#,
            net = sub("net.d").display(),
            plugins = sub("plugins").display(),
            tmp = sub("tmp").display(),
        );
        std::fs::write(sub("containers.conf"), conf).unwrap();
        Podman { dir }
    }

    /// `podman` with the private conf, storage and run root; every flag
    /// goes before `--rootfs`, whose path is the first positional argument.
    fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--storage-driver", "overlay"]);
        c
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Containers a failed test left behind (their DEL and mounts).
        let _ = self.command().args(["rm", "-af", "-t", "0"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process ended by PID on drop.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
            let _ = self.0.wait();
        }
    }
}

fn read_all(p: &mut Option<impl Read>) -> String {
    let mut s = String::new();
    if let Some(r) = p.as_mut() {
        let _ = r.read_to_string(&mut s);
    }
    s
}

#[test]
fn podman_runs_a_busybox_container_on_a_podswitch_network_that_reaches_out_and_is_reached_on_a_published_port(
) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let _web = TextServer::start(lab.outside.name(), 7100, "hello-from-outside");
    let pm = Podman::new(&lab.socket, "psfront");
    let script = format!(
        "wget -q -O - http://{OUTSIDE}:7100/ && echo && ip -4 addr show eth0 && \
         echo hello-from-container | nc -l -p 80"
    );
    let child = pm
        .command()
        .args([
            "run",
            "--rm",
            "--network",
            "psfront",
            "-p",
            "8090:80",
            "--rootfs",
        ])
        .arg(pm.rootfs())
        .args(["/bin/sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running podman (scripts/deps.sh installs it)");
    let mut child = ChildGuard(child);

    // Reached: the published port leads to the container's listener. Until
    // the container listens, connections fail; podman failing ends the wait.
    let got = wait_for(
        "the container answering on 10.99.0.2:8090",
        Duration::from_secs(90),
        || {
            if let Ok(Some(status)) = child.0.try_wait() {
                let err = read_all(&mut child.0.stderr);
                let out = read_all(&mut child.0.stdout);
                panic!("podman exited ({status}) before the container was reached:\n{err}\n{out}");
            }
            in_netns(lab.outside.name(), || {
                let mut s = TcpStream::connect_timeout(
                    &SocketAddr::from((UPLINK, 8090)),
                    Duration::from_secs(1),
                )
                .ok()?;
                s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                let mut buf = [0u8; 64];
                let n = s.read(&mut buf).ok()?;
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                text.contains("hello-from-container").then_some(text)
            })
            .unwrap()
        },
    );
    assert!(got.contains("hello-from-container"));

    // The container ends after that one connection; it reached the outside.
    let status = wait_for("podman to exit", Duration::from_secs(60), || {
        child.0.try_wait().unwrap()
    });
    let out = read_all(&mut child.0.stdout);
    let err = read_all(&mut child.0.stderr);
    eprintln!("podman run printed:\n{out}");
    assert!(status.success(), "podman: {status}\n{err}\n{out}");
    assert!(
        out.contains("hello-from-outside"),
        "the container fetched from the outside through NAT:\n{out}\n{err}"
    );
    assert!(
        out.contains("inet 172.30.0."),
        "podswitch's address:\n{out}"
    );

    // podman's DEL took the endpoint and its mapping away.
    wait_for(
        "DEL to detach the container",
        Duration::from_secs(30),
        || {
            let show = lab.show();
            (cni_endpoints(&show).is_empty() && show["mappings"] == json!([])).then_some(())
        },
    );
}
