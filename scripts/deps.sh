#!/usr/bin/env bash
# Installs what podswitch needs to build and test on Debian (run as root).
# Idempotent: packages already present are skipped quickly.
set -euo pipefail
# scripts/fresh-check.sh found two that a minimal Debian root lacks:
# ca-certificates (cargo fetches crates over HTTPS) and gcc (libxdp-sys
# builds xdp-tools, whose configure insists on gcc even with clang present).
pkgs=(clang llvm gcc libelf-dev zlib1g-dev pkg-config m4 make libbpf-dev
      iproute2 iputils-ping iperf3 nftables ethtool util-linux procps
      etcd-server protobuf-compiler libprotobuf-dev ca-certificates tcpdump
      # The CNI tests: podman (CNI backend, with runc: crun refuses hybrid
      # cgroups) and a registry-free busybox root filesystem.
      podman runc conmon containernetworking-plugins busybox-static
      # The Docker network plugin's test: dockerd from Debian.
      docker.io)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# AF_XDP UMEM registration counts against RLIMIT_MEMLOCK; podswitch raises
# it itself, but the shell may start tests that open UMEMs too.
ulimit -l unlimited 2>/dev/null || true
# libxdp looks for a bpffs; podswitch does not need one, but mount it so
# libxdp does not log a warning on every socket.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
