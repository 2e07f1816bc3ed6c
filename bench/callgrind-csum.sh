#!/usr/bin/env bash
# callgrind-csum.sh — instructions per packet of the partial-checksum check
# (pmd::partial_csum) that runs on every frame from an AF_XDP port, next to
# criterion's time per packet (bench/benches/partial_csum.rs).
#
# Cases (one 1514-byte TCP frame per packet, see bench/src/csum.rs):
#   parse            meta::parse alone: what every frame pays anyway
#   resolve-partial  parse + the check, checksum is the seed (marked)
#   resolve-complete parse + the check, checksum complete (not marked)
#   finish           parse + check + software completion of the checksum
# The check costs resolve-* minus parse.
#
# Usage: bench/callgrind-csum.sh     (NO_CRITERION=1 to skip criterion)
set -euo pipefail

source "$(dirname "$0")/callgrind-common.sh"

CASES=(parse resolve-partial resolve-complete finish)
declare -A IR
for c in "${CASES[@]}"; do
  callgrind_pair "csum-$c" csum --mode "$c"
  IR[$c]=$(ir_per_packet "csum-$c")
done

LOG=$OUT/criterion-csum.log
if [[ -z ${NO_CRITERION:-} ]]; then
  echo "criterion: cargo bench -p bench --bench partial_csum" >&2
  cargo bench -q -p bench --bench partial_csum -- --warm-up-time 1 --measurement-time 3 2>&1 | tee "$LOG" >&2
fi

echo
echo "| case (1514-byte TCP frame) | instructions/packet (callgrind) | ns/packet (criterion estimate) |"
echo "|---|---|---|"
for c in "${CASES[@]}"; do
  ns=-; [[ -z ${NO_CRITERION:-} && -f $LOG ]] && ns=$(criterion_ns "$LOG" "partial_csum/${c//-/_}")
  echo "| $c | ${IR[$c]} | ${ns:--} |"
done
echo
echo "(Ir per packet = (Ir(M2=$M2) - Ir(M1=$M1)) / (M2 - M1); files in $OUT)"
