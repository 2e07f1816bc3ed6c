# callgrind-common.sh — helpers shared by bench/callgrind.sh and
# bench/callgrind-nat-vxlan.sh; source it, do not run it.
#
# After sourcing: $ROOT is the repository (and the working directory),
# $M1/$M2 the two packet counts (env, defaults 100,000 and 1,100,000),
# $OUT target/callgrind/, $BIN a release podbench, freshly built.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
M1=${M1:-100000} M2=${M2:-1100000}
OUT=$ROOT/target/callgrind
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 1; }

cargo build --release -q -p bench --bin podbench
BIN=$ROOT/target/release/podbench

# Total Ir of a callgrind output file.
total_ir() { awk '/^summary:/ { print $2; exit }' "$1"; }

# (b - a) / (M2 - M1), or "-" when either is missing.
per_packet() { awk -v a="$1" -v b="$2" -v m1="$M1" -v m2="$M2" 'BEGIN { if (a == "" || b == "") print "-"; else printf "%.0f", (b - a) / (m2 - m1) }'; }

# callgrind_pair NAME ARGS...: runs `podbench ARGS... --packets M` under
# callgrind for M = M1 and M2, into $OUT/NAME-M.out.
callgrind_pair() {
  local name=$1 m
  shift
  for m in "$M1" "$M2"; do
    echo "callgrind: podbench $* --packets $m" >&2
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$name-$m.out" -q \
      "$BIN" "$@" --packets "$m" >&2
  done
}

# ir_per_packet NAME: the total Ir difference per packet of a pair.
ir_per_packet() { per_packet "$(total_ir "$OUT/$1-$M1.out")" "$(total_ir "$OUT/$1-$M2.out")"; }

# criterion_ns LOG ID: criterion's point estimate (the middle of
# "time: [lo est hi]") of benchmark ID in a `cargo bench` log, in ns.
criterion_ns() {
  awk -v id="$2" '
    /^Benchmarking / { next }
    $1 == id { hit = 1 }
    hit && /time:/ {
      sub(/.*\[/, ""); v = $3; u = $4
      f = u == "ps" ? 0.001 : u == "ns" ? 1 : (u == "µs" || u == "us") ? 1000 : u == "ms" ? 1e6 : u == "s" ? 1e9 : 0
      if (f) printf "%.1f", v * f
      exit
    }' "$1"
}
