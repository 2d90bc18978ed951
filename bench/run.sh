#!/usr/bin/env bash
# Builds the same workload with rustypipe, GNU make (make -rR) and ninja and
# prints the median wall time of each and the rustypipe/ninja ratio for: a
# cold build, a fully cached no-op build, and a build after changing one leaf
# input. Workload: N independent tasks (default 1000), each with one input
# and one output file, run with 2 jobs.
# Usage: bench/run.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
RUNS=${2:-10}
for tool in make ninja hyperfine; do
  command -v $tool >/dev/null || { echo "bench: installing $tool"; apt-get install -y -qq make ninja-build hyperfine >/dev/null; break; }
done
CGO_ENABLED=0 go build -o bench/rustypipe ./cmd/rustypipe  # static, as the README installs it
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
go run ./bench/gen -n "$N" -dir "$W"
RP="$PWD/bench/rustypipe"
export RUSTYPIPE_CACHE_DIR="$W/cache" CI=1
cd "$W"

# -N: no shell between hyperfine and the commands, whose startup would add
# the same constant to every tool and flatten the ratios.
json() { hyperfine -N --style none --export-json "$W/$1.json" "${@:2}" >/dev/null 2>&1; }
median() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.1f" % (x["median"]*1000) for x in r))' "$W/$1.json"; }

clean='rm -rf out .rustypipe cache .ninja_log .ninja_deps'
# Cold: no outputs, no cache, no logs.
json cold --runs "$RUNS" --prepare "$clean" \
  "$RP build -j 2 -o plain" "make -rR -j 2 -s" "ninja -j 2 --quiet"
# No-op: everything built. Files written less than two seconds ago cannot be
# trusted by their stat data (racy timestamps, as in git): rustypipe then
# re-checks them by content, and writes no no-op record. A dev loop's no-op
# build comes later than that, so the workspace is left to age first; the
# racy case is measured too, as noop-racy.
$RP build -j 2 -o plain >/dev/null; make -rR -j 2 -s; ninja -j 2 --quiet >/dev/null
json noop-racy --runs "$((RUNS*3))" --warmup 3 \
  "$RP build -j 2 -o plain" "make -rR -j 2 -s" "ninja -j 2 --quiet"
sleep 3
$RP build -j 2 -o plain >/dev/null
json noop --runs "$((RUNS*3))" --warmup 3 \
  "$RP build -j 2 -o plain" "make -rR -j 2 -s" "ninja -j 2 --quiet"
# One leaf changed: edit one input before each run (through sh: with -N
# hyperfine runs --prepare without a shell too).
json leaf --runs "$((RUNS*3))" --prepare "sh -c 'date +%N >> in/7.txt'" \
  "$RP build -j 2 -o plain" "make -rR -j 2 -s" "ninja -j 2 --quiet"

printf '%-10s %12s %12s %12s %10s\n' workload rustypipe_ms make_ms ninja_ms rp/ninja
for w in cold noop-racy noop leaf; do
  read -r rp mk nj <<<"$(median $w)"
  printf '%-10s %12s %12s %12s %10s\n' "$w" "$rp" "$mk" "$nj" "$(python3 -c "print('%.2f' % ($rp/$nj))")"
done
