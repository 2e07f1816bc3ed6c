#!/usr/bin/env bash
# rig.sh — podswitch on the side-by-side rig (../shared/rig), next to its
# peers, in one run; prints the rig's CSV, then a markdown table.
#
# Usage (as root, from anywhere):
#   bench/rig.sh                        # ours bridge xdp-redirect ovs-afxdp testpmd-afxdp
#   bench/rig.sh -t 5 ours bridge       # options and DUT names pass through
#   DUT_NAPI_CPU=0 bench/rig.sh         # pbd0/pbd1 NAPI on CPU0 (see the rig's README)
#   RIG_CONFIG=/path/to.toml bench/rig.sh   # another podswitch config
#
# It builds podswitch (release), installs the rig's packages if a tool is
# missing (../shared/rig/deps.sh), and runs ../shared/rig/bench-peers.sh
# with OUR_DUT_NAME=podswitch and
#   OUR_DUT_CMD="<repo>/target/release/podswitch run <repo>/configs/rig.toml"
# The rig cleans up after itself (namespaces pb-*, its processes by PID).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RIG=$ROOT/../shared/rig
[[ -x $RIG/bench-peers.sh ]] || { echo "rig not found at $RIG" >&2; exit 1; }
[[ $EUID -eq 0 ]] || { echo "$0: needs root (namespaces, XDP)" >&2; exit 1; }
CONFIG=${RIG_CONFIG:-$ROOT/configs/rig.toml}

# bench-peers options pass through; positional words are DUT names.
OPTS=() DUTS=()
while (($#)); do
  case $1 in
    -t|-l|-f|--csv|--json) OPTS+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) OPTS+=("$1"); shift ;;
    *) DUTS+=("$1"); shift ;;
  esac
done
((${#DUTS[@]})) || DUTS=(ours bridge xdp-redirect ovs-afxdp testpmd-afxdp)

(cd "$ROOT" && cargo build --release -q -p switch --bin podswitch)
"$ROOT/target/release/podswitch" check "$CONFIG"

missing=()
for t in clang bpftool ethtool nft dpdk-testpmd ovs-vswitchd ovsdb-tool; do
  command -v "$t" >/dev/null || missing+=("$t")
done
if ((${#missing[@]})); then
  echo "missing ${missing[*]}: running $RIG/deps.sh" >&2
  "$RIG/deps.sh" >&2
fi

CSV=$(mktemp /tmp/podswitch-rig.XXXXXX.csv)
trap 'rm -f "$CSV"' EXIT
# OUR_DUT_NAME names the row (e.g. podswitch-2cores for configs/rig-nat-2cores.toml).
export OUR_DUT_NAME=${OUR_DUT_NAME:-podswitch}
export OUR_DUT_CMD="$ROOT/target/release/podswitch run $CONFIG"
export OUR_DUT_WARMUP=${OUR_DUT_WARMUP:-3}
rc=0
"$RIG/bench-peers.sh" "${OPTS[@]}" "${DUTS[@]}" | tee "$CSV" || rc=$?

# Markdown: one row per DUT, and podswitch's Mpps over each row's
# (measured, and at 100% of the DUT core).
echo
echo "DUT_NAPI_CPU=${DUT_NAPI_CPU:-1}, $(uname -r), $(nproc) CPUs, $(date -Is)"
echo
awk -F, -v ours_name="$OUR_DUT_NAME" '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  { n++; dut[n] = $col["dut"]; mpps[n] = $col["mpps"]; busy[n] = $col["dut_cpu_busy"]
    est[n] = $col["est_mpps_at_100pct"]; st[n] = $col["status"]; fl[n] = $col["frame_len"]
    if ($col["dut"] == ours_name && $col["status"] == "ok") { ours = $col["mpps"]; ours_est = $col["est_mpps_at_100pct"] } }
  function ratio(a, b) { return (a != "" && b != "" && b > 0) ? sprintf("%.2f", a / b) : "-" }
  END {
    print "| DUT | frame (B) | Mpps | DUT core busy % | est. Mpps at 100% | podswitch / DUT (Mpps) | podswitch / DUT (at 100%) |"
    print "|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
      if (st[i] != "ok") { printf "| %s | %s | fail | | | | |\n", dut[i], fl[i]; continue }
      printf "| %s | %s | %s | %s | %s | %s | %s |\n", dut[i], fl[i], mpps[i], busy[i], est[i],
        ratio(ours, mpps[i]), ratio(ours_est, est[i])
    }
  }' "$CSV"
exit "$rc"
