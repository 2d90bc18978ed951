#!/usr/bin/env bash
# Builds the same workload with rustypipe, GNU make (make -rR) and ninja and
# prints the median wall time of each and the rustypipe/ninja ratio for: a
# cold build, a fully cached no-op build, and a build after changing one leaf
# input. Workload: N independent tasks (default 1000), each with one input
# and one output file, run with 2 jobs.
#
# A shared machine's speed drifts within seconds, and hyperfine runs all of
# one command's runs before the next command's. So each workload is timed
# in ROUNDS rounds (default 5) of RUNS/ROUNDS runs per tool, the tools'
# order alternating from round to round: every tool sees the same moments
# of the machine. The table gives the medians over all rounds, their ratio,
# and the lowest and highest of the rounds' own ratios.
# Usage: [ROUNDS=5] bench/run.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
RUNS=${2:-10}
ROUNDS=${ROUNDS:-5}
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
RP_CMD="$RP build -j 2 -o plain" MAKE_CMD="make -rR -j 2 -s" NINJA_CMD="ninja -j 2 --quiet"
# rounds NAME TOTAL_RUNS [hyperfine options]: TOTAL_RUNS runs per tool in
# ROUNDS rounds, into NAME.1.json, NAME.2.json, ...
rounds() {
  local name=$1 per=$(( ($2 + ROUNDS - 1) / ROUNDS )) r
  shift 2
  for r in $(seq "$ROUNDS"); do
    if (( r % 2 )); then
      json "$name.$r" --runs "$per" "$@" "$RP_CMD" "$MAKE_CMD" "$NINJA_CMD"
    else
      json "$name.$r" --runs "$per" "$@" "$NINJA_CMD" "$MAKE_CMD" "$RP_CMD"
    fi
  done
}

clean='rm -rf out .rustypipe cache .ninja_log .ninja_deps'
# Cold: no outputs, no cache, no logs.
rounds cold "$RUNS" --prepare "$clean"
# No-op: everything built. Files written within the racy window cannot be
# trusted by their stat data (racy timestamps, as in git): rustypipe then
# re-checks them by content, and writes no no-op record. The window is
# 100 ms on file systems with nanosecond times (ext4, XFS, Btrfs, tmpfs) and
# 2 s elsewhere. A dev loop's no-op build comes later than that, so the
# workspace is left to age first. The racy case is measured too, as
# noop-racy, in one round under a 2 s window (RUSTYPIPE_RACY_WINDOW), which
# the round must fit in: what every no-op build within 2 s of a change
# costs on a file system of coarse times.
export RUSTYPIPE_RACY_WINDOW=2s
$RP_CMD >/dev/null; $MAKE_CMD; $NINJA_CMD >/dev/null
json noop-racy.1 --runs "$((RUNS*3))" --warmup 3 "$RP_CMD" "$MAKE_CMD" "$NINJA_CMD"
unset RUSTYPIPE_RACY_WINDOW
sleep 3
$RP_CMD >/dev/null
rounds noop "$((RUNS*3))" --warmup 3
# One leaf changed: edit one input before each run (through sh: with -N
# hyperfine runs --prepare without a shell too). The edit waits 30 ms first.
# A file's mtime comes from a clock that advances in ticks of several
# milliseconds, so an edit made right after the previous run wrote the
# output can get the output's very mtime; make and ninja then call the
# output up to date, miss the edit and do no work (they did so for every
# other run before the wait was added). rustypipe sees the edit either way.
edit="sh -c 'sleep 0.03; date +%N >> in/7.txt'"
rounds leaf "$((RUNS*3))" --prepare "$edit"
# Check that each tool rebuilt after such an edit: a tool that missed it
# would have timed a no-op. (Output is captured first: grep -q may stop
# reading early, which pipefail would count as a failure.)
rebuilt() { # TOOL PATTERN COMMAND...: edit, run, expect PATTERN in the output
  local tool=$1 pattern=$2 out
  shift 2
  sh -c 'sleep 0.03; date +%N >> in/7.txt'
  out=$("$@")
  grep -q "$pattern" <<<"$out" || { echo "bench: $tool did not rebuild out/7.txt after an edit" >&2; exit 1; }
}
for i in 1 2 3; do
  rebuilt rustypipe '^ok   t7 ([0-9]' $RP build -j 2 -o plain
  rebuilt make "update target 'out/7.txt'" make -rR -j 2 --trace
  rebuilt ninja '] mkdir -p out && echo 7 > out/7.txt' ninja -j 2
done

python3 - "$W" "$RP_CMD" "$MAKE_CMD" "$NINJA_CMD" <<'PY'
import glob, json, statistics, sys
w, cmds = sys.argv[1], sys.argv[2:]
print("%-10s %12s %12s %12s %9s %13s" % ("workload", "rustypipe_ms", "make_ms", "ninja_ms", "rp/ninja", "rounds' range"))
for name in ["cold", "noop-racy", "noop", "leaf"]:
    times = {c: [] for c in cmds}
    ratios = []
    for f in sorted(glob.glob("%s/%s.*.json" % (w, name))):
        res = {r["command"]: r["times"] for r in json.load(open(f))["results"]}
        for c in cmds:
            times[c] += res[c]
        ratios.append(statistics.median(res[cmds[0]]) / statistics.median(res[cmds[2]]))
    med = [statistics.median(times[c]) * 1000 for c in cmds]
    rng = "%.2f-%.2f" % (min(ratios), max(ratios)) if len(ratios) > 1 else "-"
    print("%-10s %12.1f %12.1f %12.1f %9.2f %13s" % (name, *med, med[0] / med[2], rng))
PY
