#!/usr/bin/env bash
# callgrind-nat-vxlan.sh — instructions per packet of NAT translate and
# VXLAN encap/decap (podbench nat, podbench vxlan), next to criterion's
# time per packet (nat/benches/translate.rs, overlay/benches/vxlan.rs).
#
# Each case runs under callgrind twice, with M1 and M2 packets, and reports
#     (Ir(M2) - Ir(M1)) / (M2 - M1)
# so the setup (filling the NAT table, pool, VTEP tables) cancels out.
#
# Usage: bench/callgrind-nat-vxlan.sh            # all cases, then criterion
#        bench/callgrind-nat-vxlan.sh nat        # or vxlan: one group only
#        NO_CRITERION=1 bench/callgrind-nat-vxlan.sh
#        M1=100000 M2=1100000 bench/callgrind-nat-vxlan.sh
# Output files go to target/callgrind/ (kcachegrind, callgrind_annotate).
# The 1M-flow case fills the table under callgrind twice (~1 min each).
set -euo pipefail

source "$(dirname "$0")/callgrind-common.sh"

GROUPS_=${1:-nat vxlan}
# name | podbench arguments | criterion benchmark id | label
CASES=()
if [[ $GROUPS_ == *nat* ]]; then
  for n in 1 10000 1000000; do
    CASES+=("nat-$n-random|nat --flows $n --random|nat_translate_established/random_flows/$n|NAT established, $n flows, random")
  done
  CASES+=("nat-new-flows|nat --new-flows|nat_new_flow/udp_snat_setup|NAT new-flow setup")
fi
if [[ $GROUPS_ == *vxlan* ]]; then
  for mode in encap decap; do
    for len in 64 1450; do
      CASES+=("vxlan-$mode-$len|vxlan --mode $mode --inner-len $len|vxlan/$mode/$len|VXLAN $mode, $len-byte inner")
    done
  done
fi

declare -A IR
for c in "${CASES[@]}"; do
  IFS='|' read -r name args _ _ <<<"$c"
  # shellcheck disable=SC2086 # the arguments are words
  callgrind_pair "$name" $args
  IR[$name]=$(ir_per_packet "$name")
done

LOG_NAT=$OUT/criterion-nat.log LOG_VXLAN=$OUT/criterion-vxlan.log
if [[ -z ${NO_CRITERION:-} ]]; then
  if [[ $GROUPS_ == *nat* ]]; then
    echo "criterion: cargo bench -p nat --bench translate" >&2
    cargo bench -q -p nat --bench translate -- --warm-up-time 1 --measurement-time 3 2>&1 | tee "$LOG_NAT" >&2
  fi
  if [[ $GROUPS_ == *vxlan* ]]; then
    echo "criterion: cargo bench -p overlay --bench vxlan" >&2
    cargo bench -q -p overlay --bench vxlan -- --warm-up-time 1 --measurement-time 3 2>&1 | tee "$LOG_VXLAN" >&2
  fi
fi

echo
echo "| case | instructions/packet (callgrind) | ns/packet (criterion estimate) |"
echo "|---|---|---|"
for c in "${CASES[@]}"; do
  IFS='|' read -r name _ id label <<<"$c"
  log=$LOG_NAT; [[ $name == vxlan-* ]] && log=$LOG_VXLAN
  ns=-; [[ -z ${NO_CRITERION:-} && -f $log ]] && ns=$(criterion_ns "$log" "$id")
  echo "| $label | ${IR[$name]} | ${ns:--} |"
done
echo
echo "(Ir per packet = (Ir(M2=$M2) - Ir(M1=$M1)) / (M2 - M1); files in $OUT)"
