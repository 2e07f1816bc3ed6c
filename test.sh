#!/usr/bin/env bash
# Installs what is needed, lints (clippy, warnings are errors), and runs the whole test suite (as root:
# most tests create network namespaces, TAPs and veths, each uniquely named
# and removed even when a test fails). Tests that start a switch run one at
# a time.
#
# Strict: every test runs. A test whose prerequisite is missing (root,
# /dev/net/tun, etcd, a command) fails; PODSWITCH_ALLOW_SKIP, which lets a
# developer skip such tests on a machine without them, is cleared here.
set -euo pipefail
cd "$(dirname "$0")"
[ "$(id -u)" = 0 ] || { echo "run as root (tests create namespaces, TAPs, XDP programs)" >&2; exit 1; }
./scripts/deps.sh
unset PODSWITCH_ALLOW_SKIP
missing=()
[ -c /dev/net/tun ] || missing+=("/dev/net/tun (modprobe tun)")
for cmd in ip ss ping ethtool sysctl nsenter etcd; do
  command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if ((${#missing[@]})); then
  echo "test.sh: the tests need what is missing here: ${missing[*]}" >&2
  exit 1
fi
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast -- --test-threads=1
