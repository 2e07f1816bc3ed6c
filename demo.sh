#!/usr/bin/env bash
# Installs what is needed, builds podswitch, and runs the built-in demo:
# two containers on one network, a third on another, traffic through the
# switch, counters and the MAC table, then everything removed.
set -euo pipefail
cd "$(dirname "$0")"
[ "$(id -u)" = 0 ] || { echo "run as root (the demo creates namespaces and TAPs)" >&2; exit 1; }
./scripts/deps.sh
cargo build --release -q -p switch
exec ./target/release/podswitch demo
