//! The Docker network plugin with a real dockerd (Debian's docker.io), as
//! root: dockerd and `podswitch run` share a "host" namespace of the test
//! (podswitch's uplink is a veth into an "outside" namespace, 10.99.0.1),
//! so Docker's containers and links are the test's own and nothing touches
//! the machine's interfaces. dockerd has its own data root, exec root,
//! pidfile and socket under a temp dir, no iptables, no bridge; the image
//! is a busybox-static root filesystem (`docker import`, no registry).
//! dockerd and every child are stopped by PID and the dirs removed, also
//! when the test fails.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pmd::netns::{in_netns, unique_name, NetnsGuard};
use serde_json::Value;
use test_support::wait_until;

const DOCKERD: &str = "/usr/sbin/dockerd";
/// Debian's client: a newer one may come first on PATH (runtimes.md).
const DOCKER: &str = "/usr/bin/docker";
const OUTSIDE_PORT: u16 = 8000;
const UPLINK_IP: &str = "10.99.0.2";

/// A directory removed on drop, after unmounting what is mounted below
/// it (a dockerd that was killed leaves its overlay mounts).
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let below = format!("{}/", self.0.display());
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&below))
            .collect();
        // Deepest first.
        points.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in points {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child stopped by PID on drop: SIGTERM, then SIGKILL after 20 s.
struct Proc {
    child: Child,
    what: &'static str,
}

impl Proc {
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.what);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// dockerd in namespace `ns`, with everything it writes under `dir`.
/// Dropping it removes every container, stops dockerd (which stops its
/// containerd) and removes the dir.
struct Dockerd {
    proc: Option<Proc>,
    sock: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Dockerd {
    fn start(ns: &str) -> Dockerd {
        let dir = TempDir::new("psdk");
        let d = |s: &str| dir.0.join(s).display().to_string();
        let sock = d("docker.sock");
        let log = dir.0.join("dockerd.log");
        let out = std::fs::File::create(&log).unwrap();
        // nsenter, not `ip netns exec`: that one mounts a fresh /sys,
        // which hides the cgroup mounts ("Devices cgroup isn't mounted").
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .arg(DOCKERD)
            .args(["--data-root", &d("data"), "--exec-root", &d("exec")])
            .args([
                "--pidfile",
                &d("dockerd.pid"),
                "-H",
                &format!("unix://{sock}"),
            ])
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--userland-proxy=false", "--log-level=debug"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting dockerd");
        let mut dockerd = Dockerd {
            proc: Some(Proc {
                child,
                what: "dockerd",
            }),
            sock,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if dockerd.docker(&["version"]).status.success() {
                break;
            }
            let exited = dockerd.proc.as_mut().unwrap().child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "dockerd did not come up ({exited:?}); its log:\n{}",
                    dockerd.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        dockerd
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .args(["-H", &format!("unix://{}", self.sock)])
            .args(args)
            .output()
            .expect("running the docker client")
    }

    /// `docker ARGS` that must succeed; its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\n{}\ndockerd log (tail):\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            tail(&self.log_text(), 40)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A busybox-static root filesystem with a page at /www, as a tarball.
fn rootfs_tar(dir: &Path, page: &str) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "www", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static installed");
    for tool in ["sh", "ip", "ping", "httpd", "sleep", "cat", "nc"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(tool)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    std::fs::write(root.join("www/index.html"), page).unwrap();
    let tar = dir.join("rootfs.tar");
    let st = Command::new("tar")
        .args([
            "-C",
            &root.display().to_string(),
            "-cf",
            &tar.display().to_string(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(st.success(), "tar of the root filesystem");
    tar
}

/// `podswitch ctl --json show`.
fn show(socket: &str) -> Value {
    ctl_json(socket, &["show"])
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The stdout of the first run of `get` that succeeds within 20 s; else
/// a failure with the last error and what `context` tells.
fn fetch(what: &str, mut get: impl FnMut() -> Output, context: impl Fn() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = get();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: failed for 20 s, last: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET /` to `ip:port` from namespace `ns`, as an [`Output`]: the whole
/// reply on stdout, or the error on stderr.
fn http_get(ns: &NetnsGuard, ip: &str, port: u16) -> Output {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let got = in_netns(ns.name(), move || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })
    .unwrap();
    let (ok, stdout, stderr) = match got {
        Ok(t) => (0, t, String::new()),
        Err(e) => (1, String::new(), e.to_string()),
    };
    Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(ok << 8),
        stdout: stdout.into_bytes(),
        stderr: stderr.into_bytes(),
    }
}

fn links(ns: &NetnsGuard) -> String {
    ip_in(ns.name(), &["-o", "link", "show"])
}

/// podswitch serving the plugin and dockerd in a "host" namespace of the
/// test, podswitch's uplink up0 (10.99.0.2) a veth into an "outside"
/// namespace (10.99.0.1), and image `psbox:1` imported. Fields drop in
/// order: Docker, podswitch, the files, the namespaces.
struct Stage {
    docker: Dockerd,
    daemon: Daemon,
    /// The driver's name: the plugin socket's file name.
    driver: String,
    /// podswitch's control socket.
    socket: String,
    work: TempDir,
    outside: NetnsGuard,
    host: NetnsGuard,
}

impl Stage {
    fn new() -> Stage {
        assert!(
            Path::new(DOCKERD).exists() && Path::new(DOCKER).exists(),
            "{DOCKERD} and {DOCKER} are missing: scripts/deps.sh installs docker.io"
        );
        let host = NetnsGuard::new("psd-h").unwrap();
        let outside = NetnsGuard::new("psd-o").unwrap();
        uplink_veth(&host, &outside, "10.99.0.1/24");
        let work = TempDir::new("psdw");
        // Unique, so that no other Docker or podswitch on the machine can
        // answer for it.
        let driver = unique_name("podswitch");
        let plugin = format!("/run/docker/plugins/{driver}.sock");
        let socket = control_path();
        let text = format!(
            "[switch]\ncontrol = \"{socket}\"\ndocker_plugin = \"{plugin}\"\n\n\
             [[port]]\nname = \"up0\"\niface = \"up0\"\nip = \"{UPLINK_IP}/24\"\ngateway = \"10.99.0.1\"\n"
        );
        let daemon = Daemon::start_in(Some(host.name()), &["run"], &text);
        assert!(Path::new(&plugin).exists(), "podswitch serves {plugin}");
        let docker = Dockerd::start(host.name());
        let tar = rootfs_tar(&work.0, "hello from the container\n");
        docker.ok(&["import", &tar.display().to_string(), "psbox:1"]);
        Stage {
            docker,
            daemon,
            driver,
            socket,
            work,
            outside,
            host,
        }
    }
}

#[test]
fn a_docker_container_on_a_podswitch_network_reaches_the_outside_and_is_reached_on_its_published_port(
) {
    if skip_unless_root("docker") {
        return;
    }
    let stage = Stage::new();
    let (docker, socket, driver) = (&stage.docker, &stage.socket, &stage.driver);
    let (host, outside) = (&stage.host, &stage.outside);

    // A web server outside, for the container to reach through NAT.
    let www = stage.work.0.join("outside");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from the outside\n").unwrap();
    let _outside_httpd = Proc {
        child: Command::new("ip")
            .args([
                "netns",
                "exec",
                outside.name(),
                "/bin/busybox",
                "httpd",
                "-f",
            ])
            .args(["-p", &format!("10.99.0.1:{OUTSIDE_PORT}"), "-h"])
            .arg(&www)
            .spawn()
            .unwrap(),
        what: "outside httpd",
    };

    let net_id = docker.ok(&[
        "network",
        "create",
        "-d",
        driver,
        "--subnet",
        "172.27.0.0/24",
        "front",
    ]);
    let net_name = format!("docker-{}", &net_id[..12]);
    let nets = show(socket);
    let row = nets["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == net_name.as_str())
        .unwrap_or_else(|| panic!("podswitch has network {net_name}: {nets}"));
    assert_eq!(row["subnet"], "172.27.0.0/24");
    assert_eq!(row["gateway"], "172.27.0.1");

    let cid = docker.ok(&[
        "run",
        "-d",
        "--network",
        "front",
        "-p",
        "8080:80",
        "psbox:1",
        "/bin/httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    // What a user checks first: the container's interface and route.
    let addr = docker.ok(&["exec", &cid, "ip", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains("inet 172.27.0.2/24"), "{addr}");
    let route = docker.ok(&["exec", &cid, "ip", "route"]);
    assert!(route.contains("default via 172.27.0.1 dev eth0"), "{route}");
    let eps = show(socket);
    assert_eq!(names(&eps, "endpoints").len(), 1, "one endpoint: {eps}");
    assert_eq!(eps["endpoints"][0]["ip"], "172.27.0.2");
    assert!(
        !links(host).contains("docker_gwbridge"),
        "Docker added no gateway bridge: {}",
        links(host)
    );

    // busybox-static's wget crashes in a container (glibc's static NSS
    // finds no libnss there); its nc does not resolve anything.
    let request = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 10.99.0.1 {OUTSIDE_PORT}");
    let got = fetch(
        "the container fetches from the outside",
        || docker.docker(&["exec", &cid, "sh", "-c", &request]),
        || format!("ctl show: {}", show(socket)),
    );
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    assert!(got.ends_with("\r\n\r\nhello from the outside\n"), "{got}");

    let got = fetch(
        "the outside fetches from the published port",
        || http_get(outside, UPLINK_IP, 8080),
        || format!("ctl show: {}", show(socket)),
    );
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    assert!(got.ends_with("\r\n\r\nhello from the container\n"), "{got}");
    let mapped = show(socket);
    assert_eq!(mapped["mappings"].as_array().unwrap().len(), 1, "{mapped}");

    docker.ok(&["rm", "-f", &cid]);
    let after_rm = show(socket);
    assert!(names(&after_rm, "endpoints").is_empty(), "{after_rm}");
    assert!(
        after_rm["mappings"].as_array().unwrap().is_empty(),
        "{after_rm}"
    );
    wait_until("the endpoint's TAP is gone", Duration::from_secs(5), || {
        !links(host).contains(": ps")
    });
    docker.ok(&["network", "rm", "front"]);
    let after = show(socket);
    assert!(!names(&after, "networks").contains(&net_name), "{after}");

    let Stage {
        docker, mut daemon, ..
    } = stage;
    drop(docker);
    let err = daemon.stop_clean();
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn podswitch_ipam_gives_docker_its_addresses_and_bad_requests_fail_with_podswitchs_reason() {
    if skip_unless_root("docker_ipam") {
        return;
    }
    let stage = Stage::new();
    let (docker, socket, driver) = (&stage.docker, &stage.socket, stage.driver.as_str());

    docker.ok(&[
        "network",
        "create",
        "-d",
        driver,
        "--ipam-driver",
        driver,
        "--subnet",
        "172.28.0.0/24",
        "-o",
        "name=back",
        "back",
    ]);
    let nets = show(socket);
    assert_eq!(names(&nets, "networks"), ["back"], "{nets}");
    assert_eq!(nets["networks"][0]["gateway"], "172.28.0.1", "{nets}");
    let cid = docker.ok(&[
        "run",
        "-d",
        "--network",
        "back",
        "psbox:1",
        "/bin/sleep",
        "600",
    ]);
    let addr = docker.ok(&["exec", &cid, "ip", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains("inet 172.28.0.2/24"), "{addr}");
    let pong = fetch(
        "the container pings its gateway",
        || docker.docker(&["exec", &cid, "ping", "-c", "1", "-W", "1", "172.28.0.1"]),
        || format!("ctl show: {}", show(socket)),
    );
    assert!(pong.contains("1 packets received"), "{pong}");

    let refused = |args: &[&str], why: &str| {
        let out = docker.docker(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "docker {args:?} succeeded");
        assert!(err.contains(why), "docker {args:?}: {err}");
    };
    refused(
        &[
            "network",
            "create",
            "-d",
            driver,
            "--ipam-driver",
            driver,
            "nosubnet",
        ],
        "podswitch IPAM has no default pool",
    );
    refused(
        &[
            "network",
            "create",
            "-d",
            driver,
            "--subnet",
            "172.29.0.0/24",
            "-o",
            "colour=blue",
            "x",
        ],
        "unknown option \"colour\"",
    );
    refused(
        &[
            "network",
            "create",
            "-d",
            driver,
            "--subnet",
            "172.28.0.0/16",
            "wide",
        ],
        "overlaps subnet 172.28.0.0/24 of network back",
    );
    refused(
        &[
            "run",
            "-d",
            "--network",
            "back",
            "-p",
            "80",
            "psbox:1",
            "/bin/sleep",
            "600",
        ],
        "needs a host port (-p HOST:80)",
    );
    let left = show(socket);
    assert_eq!(
        names(&left, "endpoints").len(),
        1,
        "the refused container left nothing: {left}"
    );
    assert_eq!(names(&left, "networks"), ["back"], "{left}");

    refused(
        &[
            "network",
            "create",
            "-d",
            driver,
            "--subnet",
            "10.210.0.0/24",
            "-o",
            "mode=overlay",
            "ov",
        ],
        "an overlay network needs a vni",
    );
    // -o mode=overlay with a vni: an overlay network on the uplink (its
    // address is the VTEP), with the overlay MTU for its containers.
    docker.ok(&[
        "network",
        "create",
        "-d",
        driver,
        "--subnet",
        "10.210.0.0/24",
        "-o",
        "mode=overlay",
        "-o",
        "vni=77",
        "-o",
        "name=ov",
        "ov",
    ]);
    let nets = show(socket);
    let ov = nets["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "ov")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (ov["mode"].as_str(), ov["vni"].as_u64()),
        (Some("overlay"), Some(77)),
        "{nets}"
    );
    let on_ov = docker.ok(&[
        "run",
        "-d",
        "--network",
        "ov",
        "psbox:1",
        "/bin/sleep",
        "600",
    ]);
    let link = docker.ok(&["exec", &on_ov, "ip", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1450"), "{link}");
    docker.ok(&["rm", "-f", &on_ov]);
    docker.ok(&["network", "rm", "ov"]);

    docker.ok(&["rm", "-f", &cid]);
    docker.ok(&["network", "rm", "back"]);
    let after = show(socket);
    assert!(names(&after, "networks").is_empty(), "{after}");
    assert!(names(&after, "endpoints").is_empty(), "{after}");
}
