#!/usr/bin/env bash
# `gridmux bench`, the main job: a quick run on each runtime measures every
# workload with 0 errors and writes JSON that parses; Ctrl-C (SIGINT) mid-run
# stops it cleanly and prints the rows measured so far. No timing asserted.
set -euo pipefail
bin=${1:-./target/release/gridmux}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
pid=
fail() { echo "FAIL: $*"; cat "$dir"/*.txt 2>/dev/null || true; exit 1; }

for runtime in tokio smol; do
    timeout 120 "$bin" bench --quick --runtime "$runtime" --json "$dir/$runtime.json" \
        >"$dir/$runtime.txt" 2>&1 || fail "bench --quick --runtime $runtime failed"
    python3 - "$dir/$runtime.json" <<'PY' || fail "the $runtime report is wrong"
import json, sys
report = json.load(open(sys.argv[1]))
rows = report["rows"]
workloads = {r["workload"] for r in rows}
assert {"mesh", "unary", "stream", "file", "websocket", "tls"} <= workloads, workloads
assert sum(r["errors"] for r in rows) == 0, [r for r in rows if r["errors"]]
assert all(r["ops_per_s"] > 0 for r in rows), [r["case"] for r in rows if r["ops_per_s"] <= 0]
assert any(r["versus"] for r in rows)
assert not report["interrupted"]
PY
    grep -q '| unary | 512 B, one link | gridmux |' "$dir/$runtime.txt" || fail "no table"
done
echo "gridmux bench --quick: every workload on tokio and smol, 0 errors, JSON parses"

# --foreground: the signal reaches the benchmark alone.
timeout --foreground 120 "$bin" bench --only unary >"$dir/interrupted.txt" 2>&1 &
pid=$!
sleep 4
kill -INT "$pid"
status=0
wait "$pid" || status=$?
pid=
[ "$status" = 0 ] || fail "Ctrl-C: exit status $status"
grep -q '(interrupted)' "$dir/interrupted.txt" || fail "the table does not say it was interrupted"
grep -q '| unary |' "$dir/interrupted.txt" || fail "no rows measured before Ctrl-C"
echo "gridmux bench: Ctrl-C prints what was measured so far"
