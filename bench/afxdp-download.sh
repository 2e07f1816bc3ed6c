#!/usr/bin/env bash
# afxdp-download.sh — iperf3 download (outside -> container) through a nat
# network and an AF_XDP uplink on a veth, the outside end with veth's
# default offloads, for one or more podswitch binaries side by side:
# ROUNDS rounds, each running every binary once in turn, so the machine's
# noise falls on all of them alike. Prints Gbit/s per run, the median per
# binary, and each median over the first binary's.
#
# Usage (as root): bench/afxdp-download.sh BIN...
#   SECS=5 ROUNDS=3 bench/afxdp-download.sh /tmp/old/podswitch target/release/podswitch
#
# Namespaces are named psd-*-$$ and removed on exit, also on failure; the
# only processes ended are the ones this script started, by PID.
set -euo pipefail

(($#)) || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 1; }
[[ $EUID -eq 0 ]] || { echo "$0: needs root (namespaces, XDP)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "$0: iperf3 not found" >&2; exit 1; }
SECS=${SECS:-5} ROUNDS=${ROUNDS:-3}
H=psd-h-$$ O=psd-o-$$ C=psd-c-$$
CFG=$(mktemp /tmp/psd.XXXXXX.toml)
# Our children still running: the iperf3 server, the daemon of the run.
SERVER= DAEMON=

cleanup() {
  for p in $DAEMON $SERVER; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for ns in "$H" "$O" "$C"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -f "$CFG"
}
trap cleanup EXIT

for ns in "$H" "$O" "$C"; do ip netns add "$ns"; done
ip -n "$H" link add up0 type veth peer name out0 netns "$O"
ip -n "$H" link set up0 up
ip -n "$O" addr add 10.99.0.1/24 dev out0
ip -n "$O" link set out0 up
ip netns exec "$O" ethtool -k out0 | grep -q '^tx-checksumming: on' ||
  { echo "out0 lost its default offloads" >&2; exit 1; }

cat >"$CFG" <<EOF
[switch]
control = "/run/psd-$$.sock"

[[port]]
name = "up0"
iface = "up0"
kind = "afxdp"
ip = "10.99.0.2/24"
gateway = "10.99.0.1"

[[network]]
name = "front"
mode = "nat"
subnet = "172.30.0.0/24"
gateway = "172.30.0.1"
uplink = "up0"

[[endpoint]]
name = "c1"
network = "front"
netns = "$C"
ip = "172.30.0.10"
EOF

ip netns exec "$O" iperf3 -s -p 5201 >/dev/null 2>&1 &
SERVER=$!

# One download with podswitch binary $1; sets GBPS. Not run in a
# subshell, so cleanup knows the daemon's PID whatever fails.
run_one() {
  local out=/tmp/psd-$$.out
  ip netns exec "$H" "$1" run "$CFG" >"$out" 2>/dev/null &
  DAEMON=$!
  local i
  for i in $(seq 100); do grep -qx ready "$out" 2>/dev/null && break; sleep 0.1; done
  grep -qx ready "$out" || { echo "$1 did not start" >&2; exit 1; }
  GBPS=$(ip netns exec "$C" iperf3 -c 10.99.0.1 -p 5201 -R -t "$SECS" -J |
    awk -F'[:,]' '/"sum_received"/ { s = 1 } s && /"bits_per_second"/ { printf "%.2f", $2 / 1e9; exit }')
  [[ -n $GBPS ]] || { echo "iperf3 gave no result with $1" >&2; exit 1; }
  kill "$DAEMON"
  wait "$DAEMON" || true
  DAEMON=
  rm -f "$out"
}

declare -A RES
for r in $(seq "$ROUNDS"); do
  for b in "$@"; do
    run_one "$b"
    echo "round $r  $b  $GBPS Gbit/s" >&2
    RES[$b]+="$GBPS "
  done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
base=$(median <<<"${RES[$1]}")
echo
echo "| podswitch binary | Gbit/s (runs) | median | ratio to the first |"
echo "|---|---|---|---|"
for b in "$@"; do
  m=$(median <<<"${RES[$b]}")
  echo "| $b | ${RES[$b]% } | $m | $(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.2f", a / b }') |"
done
echo
echo "(iperf3 -R, $SECS s, $ROUNDS rounds, $(uname -r), $(nproc) CPUs, $(date -Is))"
