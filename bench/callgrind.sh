#!/usr/bin/env bash
# callgrind.sh — instructions per packet of the switching pipeline over memory
# ports (podbench pipeline), next to criterion's ns/packet.
#
# For 1 and 1000 destination MACs it runs `podbench pipeline` under
# callgrind twice, with M1 and M2 packets, and reports
#     (Ir(M2) - Ir(M1)) / (M2 - M1)
# so the setup (pool, learning, warm-up) cancels out. The same difference
# per step of a burst (inject, rx, process, tx, collect: never-inlined
# functions of bench::pipeline) splits the cost.
#
# Usage: bench/callgrind.sh            # both, then criterion (~3 min)
#        NO_CRITERION=1 bench/callgrind.sh
#        M1=100000 M2=1100000 bench/callgrind.sh
# Output files go to target/callgrind/ (open them with kcachegrind or
# callgrind_annotate).
set -euo pipefail

source "$(dirname "$0")/callgrind-common.sh"

# Inclusive Ir of bench::pipeline::PipelineBench::<step> in a file.
step_ir() {
  callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
    awk -v f="PipelineBench::$2" 'index($0, f) { gsub(",", "", $1); print $1; exit }'
}

declare -A IR BREAK
for macs in 1 1000; do
  callgrind_pair "pipeline-macs$macs" pipeline --macs "$macs"
  f1=$OUT/pipeline-macs$macs-$M1.out f2=$OUT/pipeline-macs$macs-$M2.out
  IR[$macs]=$(ir_per_packet "pipeline-macs$macs")
  parts=""
  for step in inject rx process tx collect; do
    parts+="$step $(per_packet "$(step_ir "$f1" $step)" "$(step_ir "$f2" $step)"), "
  done
  BREAK[$macs]=${parts%, }
done

declare -A NS
if [[ -z ${NO_CRITERION:-} ]]; then
  echo "criterion: cargo bench -p bench --bench pipeline" >&2
  log=$OUT/criterion.log
  cargo bench -q -p bench --bench pipeline 2>&1 | tee "$log" >&2
  NS[1]=$(sed -n 's|^pipeline/1-mac-pair: \([0-9.]*\) ns/packet.*|\1|p' "$log")
  NS[1000]=$(sed -n 's|^pipeline/1000-macs: \([0-9.]*\) ns/packet.*|\1|p' "$log")
fi

echo
echo "| case | instructions/packet (callgrind) | ns/packet (criterion, median) | per step (Ir/packet) |"
echo "|---|---|---|---|"
for macs in 1 1000; do
  name="1 MAC pair"; [[ $macs == 1000 ]] && name="1000 MACs"
  echo "| $name | ${IR[$macs]} | ${NS[$macs]:--} | ${BREAK[$macs]} |"
done
echo
echo "(Ir per packet = (Ir(M2=$M2) - Ir(M1=$M1)) / (M2 - M1); files in $OUT)"
