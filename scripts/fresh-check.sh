#!/usr/bin/env bash
# Proves the package list of the two commands (README) on a fresh machine:
# builds a minimal Debian bookworm root, mounts in only the repository
# (read-only) and the host's rustup toolchain (read-only), runs
# scripts/deps.sh there as root, then `cargo build --workspace --all-targets`
# with an empty CARGO_HOME, so every crate comes from crates.io. A host where
# someone once installed a package cannot hide its absence here, as it hid
# libprotobuf-dev (issue 8). Run as root; it takes a while (a full build).
#
# Each stage runs in its own mount and PID namespace, so whatever it mounts
# and whatever process it leaves behind are gone when the stage ends, even if
# it is killed; removing the root afterwards cannot reach through a bind
# mount into the repository or the host's /dev.
set -euo pipefail

suite=bookworm
mirror=http://deb.debian.org/debian
security=http://deb.debian.org/debian-security
chroot_path=/opt/cargo-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "fresh-check: $*" >&2; exit 1; }

bind_ro() {
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mount -o remount,bind,ro "$2"
}

# Mounts what a build in the root needs, with the repository at /src and the
# toolchain under /opt. Only the stage's own namespace sees these mounts.
mount_root() {
  local root=$FRESH_ROOT
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --rbind /dev "$root/dev"
  bind_ro "$FRESH_REPO" "$root/src"
  bind_ro "$FRESH_RUSTUP_HOME" "$root/opt/rustup"
  bind_ro "$FRESH_CARGO_BIN" "$root/opt/cargo-bin"
  mkdir -p "$root/build"
}

# Runs a command in /src as root in the root. CARGO_HOME and the target dir
# live in the root, so nothing is written to the repository or the host's
# ~/.cargo, and crates come from crates.io.
in_root() {
  local env=(HOME=/root PATH="$chroot_path" LANG=C.UTF-8 TERM=dumb
             RUSTUP_HOME=/opt/rustup RUSTUP_TOOLCHAIN="$FRESH_TOOLCHAIN"
             CARGO_HOME=/build/cargo-home CARGO_TARGET_DIR=/build/target)
  # A proxy is the network's setting, not a package; pass it on if set.
  local v
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [ -n "${!v-}" ]; then env+=("$v=${!v}"); fi
  done
  chroot "$FRESH_ROOT" /usr/bin/env -i "${env[@]}" /usr/bin/env -C /src "$@"
}

stage_bootstrap() {
  # minbase: the Required packages and apt, as in the debian:bookworm image.
  mmdebstrap --mode=root --variant=minbase "$suite" "$FRESH_ROOT" \
    "deb $mirror $suite main" "deb $mirror $suite-updates main" \
    "deb $security $suite-security main"
  # No service starts in the root: etcd-server's postinst would otherwise
  # start an etcd on the host's network, where other tests use its ports.
  printf '#!/bin/sh\nexit 101\n' >"$FRESH_ROOT/usr/sbin/policy-rc.d"
  chmod 755 "$FRESH_ROOT/usr/sbin/policy-rc.d"
  # The network's settings, not packages: its resolver, and the CAs this
  # site added (a TLS-intercepting egress proxy signs crates.io with its own
  # CA). ca-certificates, once deps.sh installs it, adds them to the store.
  cp -L /etc/resolv.conf "$FRESH_ROOT/etc/resolv.conf"
  if [ -d /usr/local/share/ca-certificates ]; then
    mkdir -p "$FRESH_ROOT/usr/local/share/ca-certificates"
    cp -a /usr/local/share/ca-certificates/. "$FRESH_ROOT/usr/local/share/ca-certificates/"
  fi
}

stage_deps() {
  mount_root
  in_root ./scripts/deps.sh
}

stage_build() {
  mount_root
  in_root cargo --version
  in_root rustc --version
  # --locked: the committed Cargo.lock must resolve (the repository is
  # read-only here anyway).
  in_root cargo build --locked --workspace --all-targets
}

if [ "${1-}" = --stage ]; then
  "stage_$2"
  exit
fi

[ "$(id -u)" = 0 ] || die "run as root (it builds a Debian root and chroots into it)"
self=$(readlink -f "$0")
FRESH_REPO=$(cd "$(dirname "$0")/.." && pwd)
command -v cargo >/dev/null || die "no cargo on PATH: install a Rust toolchain with rustup"
command -v rustup >/dev/null || die "cargo is not from rustup: this check mounts a rustup toolchain"
FRESH_CARGO_BIN=$(dirname "$(command -v cargo)")
FRESH_RUSTUP_HOME=$(rustup show home)
# The toolchain this repository builds with on the host (an override in the
# host's rustup settings names the host path, which the root does not have).
FRESH_TOOLCHAIN=$(cd "$FRESH_REPO" && rustup show active-toolchain | cut -d' ' -f1)
export FRESH_REPO FRESH_CARGO_BIN FRESH_RUSTUP_HOME FRESH_TOOLCHAIN

if ! command -v mmdebstrap >/dev/null || ! [ -e /usr/share/keyrings/debian-archive-keyring.gpg ]; then
  echo "fresh-check: installing mmdebstrap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    mmdebstrap debian-archive-keyring >/dev/null
fi

FRESH_ROOT=$(mktemp -d /var/tmp/podswitch-fresh.XXXXXX)
export FRESH_ROOT
started=$SECONDS
stage=setup
stage_pid=
passed=false

elapsed() { local s=$((SECONDS - started)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [ -n "$stage_pid" ] && kill -0 "$stage_pid" 2>/dev/null; then
    # unshare --fork blocks SIGINT and SIGTERM while it waits for the stage,
    # so KILL it; --kill-child then takes the stage's PID namespace with it.
    kill -KILL "$stage_pid" 2>/dev/null || true
    wait "$stage_pid" 2>/dev/null || true
  fi
  # The stages' mounts lived in their own namespaces; refuse to remove a
  # root that still has anything mounted in this one.
  if findmnt -rn -o TARGET | grep -q "^$FRESH_ROOT\(/\|\$\)"; then
    echo "fresh-check: $FRESH_ROOT still has mounts; not removing it" >&2
  else
    rm -rf "$FRESH_ROOT"
  fi
  if $passed; then
    echo "fresh-check: PASS: deps.sh and cargo build --workspace --all-targets on a fresh $suite root in $(elapsed)"
  else
    echo "fresh-check: FAIL in stage $stage (exit $status) after $(elapsed)"
    [ "$status" = 0 ] && status=1
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

for stage in bootstrap deps build; do
  echo "== $stage ($(elapsed))"
  # In the background so that a signal to this script runs its trap at once
  # instead of after the stage.
  unshare --mount --propagation private --pid --kill-child -- "$self" --stage "$stage" &
  stage_pid=$!
  wait "$stage_pid"
  stage_pid=
done
stage=done
passed=true
