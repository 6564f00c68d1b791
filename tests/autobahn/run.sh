#!/usr/bin/env bash
# Autobahn TestSuite conformance of gridmux_core::ws, in both roles.
#
# Installs the PyPI package `kosoku` (a runner of the Autobahn case files) into a
# venv under target/, runs every case but 12.* and 13.* (permessage-deflate)
# against `ws-echo` (server role) and `ws-autobahn-client` (client role), keeps
# the JSON reports under target/autobahn/, and fails unless every case is OK,
# NON-STRICT or INFORMATIONAL, with at most 2 NON-STRICT per role.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
venv="$target/autobahn-venv"
reports="$target/autobahn"
expected_cases=301
max_non_strict=2

if [ ! -x "$venv/bin/kosoku" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'kosoku==0.1.0'
fi
cargo build --quiet --release -p gridmux-tests --bin ws-echo --bin ws-autobahn-client
bin="$target/release"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

rm -rf "$reports"
mkdir -p "$reports"

# Server role: kosoku drives our echo server.
port=$(free_port)
"$bin/ws-echo" --listen "127.0.0.1:$port" --idle-secs 120 --runtime tokio 2>"$reports/ws-echo.log" &
pids+=($!)
for _ in $(seq 50); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
timeout 900 "$venv/bin/kosoku" -m fuzzingclient -x '12.*' -x '13.*' \
    -o "$reports/server" "127.0.0.1:$port" >"$reports/server.log" 2>&1 || true

# Client role: our client drives kosoku's fuzzing server.
port=$(free_port)
timeout 900 "$venv/bin/kosoku" -m fuzzingserver -x '12.*' -x '13.*' \
    -o "$reports/client" "127.0.0.1:$port" >"$reports/client.log" 2>&1 &
kosoku_pid=$!
pids+=("$kosoku_pid")
for _ in $(seq 50); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
timeout 900 "$bin/ws-autobahn-client" --server "ws://127.0.0.1:$port" --agent gridmux --runtime smol \
    2>"$reports/ws-autobahn-client.log" || true
wait "$kosoku_pid" || true

python3 - "$reports" "$expected_cases" "$max_non_strict" <<'PY'
import collections, json, pathlib, sys

reports, expected, max_non_strict = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
passing = {"OK", "NON-STRICT", "INFORMATIONAL"}
ok = True
for role in ("server", "client"):
    index = reports / role / "index.json"
    cases = {}
    if index.exists():
        for agent_cases in json.loads(index.read_text()).values():
            cases.update(agent_cases)
    counts = collections.Counter(c["behavior"] for c in cases.values())
    close_counts = collections.Counter(c["behaviorClose"] for c in cases.values())
    passed = sum(n for b, n in counts.items() if b in passing)
    failed = len(cases) - passed + max(0, expected - len(cases))
    detail = ", ".join(f"{b} {n}" for b, n in sorted(counts.items()))
    print(f"autobahn {role} behaviours: {detail}")
    print(f"autobahn {role}: {passed} passed, {failed} failed")
    for case_id, c in sorted(cases.items()):
        if c["behavior"] not in passing or c["behaviorClose"] not in passing:
            print(f"  {role} case {case_id}: {c['behavior']} / close {c['behaviorClose']}")
    if failed or close_counts.keys() - passing:
        ok = False
    if counts["NON-STRICT"] > max_non_strict:
        print(f"  {role}: {counts['NON-STRICT']} NON-STRICT cases (at most {max_non_strict} allowed)")
        ok = False
    if len(cases) != expected:
        print(f"  {role}: {len(cases)} cases reported, {expected} expected (see {reports}/{role}.log)")
sys.exit(0 if ok else 1)
PY
