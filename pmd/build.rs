//! Builds podswitch's BPF programs with clang into OUT_DIR: the XDP filter
//! (`bpf/pd_xdp.c`, embedded by `src/afxdp/xdp.rs`) and the tc flow
//! offload (`bpf/pd_tc.c`, embedded by `src/offload/program.rs`) and the
//! steering program (`bpf/pd_steer.c`, embedded by `src/steer/program.rs`).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CLANG");
    build("bpf/pd_xdp.c", "pd_xdp.o");
    build("bpf/pd_tc.c", "pd_tc.o");
    build("bpf/pd_steer.c", "pd_steer.o");
}

fn build(src: &str, obj: &str) {
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join(obj);
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let status = Command::new(&clang)
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
            src,
            "-o",
        ])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!("running {clang} to build {src}: {e} (install clang, or set CLANG)")
        });
    assert!(
        status.success(),
        "{clang} failed to compile {src}; it needs clang and libbpf-dev (<bpf/bpf_helpers.h>)"
    );
}
