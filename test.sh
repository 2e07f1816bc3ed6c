#!/usr/bin/env bash
# Installs what is needed and runs the whole test suite (as root: most tests
# create network namespaces, TAPs and veths, each uniquely named and removed
# even when a test fails). Tests that start a switch run one at a time.
set -euo pipefail
cd "$(dirname "$0")"
[ "$(id -u)" = 0 ] || { echo "run as root (tests create namespaces, TAPs, XDP programs)" >&2; exit 1; }
./scripts/deps.sh
cargo test --workspace --no-fail-fast -- --test-threads=1
