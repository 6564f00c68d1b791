#!/usr/bin/env bash
# A real Prometheus scrapes a `gridmux node` with the job that `gridmux
# prometheus-config` prints (1 s interval, bearer token): through its HTTP
# API, `up` is 1 and the TTFB series carry the counts of a known workload.
# Every process stops by itself (under `timeout`).
set -euo pipefail
bin=$(realpath "${1:-./target/release/gridmux}")
prom=$(command -v prometheus || echo /usr/bin/prometheus)
dir=$(mktemp -d)
trap 'kill "$node" "$pid_prom" 2>/dev/null || true; rm -rf "$dir"' EXIT
pid_prom=
printf 'cli secret 0123456789\n' >"$dir/secret"
mkdir -p "$dir/served"
head -c 100000 /dev/urandom >"$dir/served/blob"
port=$((20000 + RANDOM % 20000))
pport=$((port + 1))
addr=127.0.0.1:$port
timeout 90 "$bin" node --listen "$addr" --peers "$addr" --secret-file "$dir/secret" \
    --files "$dir/served" 2>"$dir/node.log" &
node=$!
fail() { echo "FAIL: $*"; cat "$dir/node.log"; [ -f "$dir/prom.log" ] && tail -20 "$dir/prom.log"; exit 1; }
for _ in $(seq 50); do
    curl -fsS "http://$addr/health" >/dev/null 2>&1 && break
    sleep 0.1
done
# The workload: 3 echo calls (handler 1) and one file GET.
for _ in 1 2 3; do
    "$bin" call --node "$addr" --secret-file "$dir/secret" --timeout 5s echo hi >/dev/null || fail "call"
done
"$bin" fetch --node "$addr" --secret-file "$dir/secret" blob -o "$dir/blob" 2>/dev/null || fail "fetch"
# Without the token, no metrics.
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/metrics")" = 401 ] || fail "unauthenticated scrape"
"$bin" prometheus-config --node "$addr" --secret-file "$dir/secret" --interval 1s >"$dir/prometheus.yml"
timeout 60 "$prom" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$pport" >"$dir/prom.log" 2>&1 &
pid_prom=$!
query() {
    curl -fsS --get "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null
}
up=
for _ in $(seq 150); do
    up=$(query 'up{job="gridmux"}' || true)
    [ "$up" = 1 ] && break
    sleep 0.2
done
[ "$up" = 1 ] || fail "up is '$up'"
grid=$(query 'gridmux_ttfb_seconds_count{plane="grid",handler="1"}')
[ "$grid" = 3 ] || fail "grid TTFB count '$grid', not 3"
files=$(query 'gridmux_ttfb_seconds_count{plane="http",route="files/files"}')
[ "$files" = 1 ] || fail "file TTFB count '$files', not 1"
echo "prometheus: up, TTFB series with the counts made"
