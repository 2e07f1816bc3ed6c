//! Builds podswitch's XDP filter (`bpf/pd_xdp.c`) with clang into OUT_DIR;
//! `src/afxdp/xdp.rs` embeds the object with `include_bytes!`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/pd_xdp.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("pd_xdp.o");
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
            panic!("running {clang} to build the XDP filter: {e} (install clang, or set CLANG)")
        });
    assert!(
        status.success(),
        "{clang} failed to compile {src}; it needs clang and libbpf-dev (<bpf/bpf_helpers.h>)"
    );
}
