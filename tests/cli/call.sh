#!/usr/bin/env bash
# `gridmux call` against a real `gridmux node`: built-in handlers, a
# stream, typed payloads, a wrong secret and an unknown handler. Every
# process stops by itself (the node under `timeout`).
set -euo pipefail
bin=${1:-./target/release/gridmux}
dir=$(mktemp -d)
trap 'kill "$node" 2>/dev/null || true; rm -rf "$dir"' EXIT
printf 'cli secret 0123456789\n' >"$dir/secret"
printf 'not the secret 0123456\n' >"$dir/wrong"
port=$((20000 + RANDOM % 20000))
addr=127.0.0.1:$port
timeout 60 "$bin" node --listen "$addr" --peers "$addr" --secret-file "$dir/secret" \
    2>"$dir/node.log" &
node=$!
call() { "$bin" call --node "$addr" --secret-file "$dir/secret" --timeout 5s "$@"; }
for _ in $(seq 50); do
    call echo ready >/dev/null 2>&1 && break
    sleep 0.1
done
fail() { echo "FAIL: $*"; cat "$dir/node.log"; exit 1; }
[ "$(call echo hello)" = hello ] || fail "echo"
[ "$(call count 3 --stream --typed | tr '\n' ' ')" = "0 1 2 " ] || fail "stream"
echo -n payload >"$dir/payload"
[ "$(call echo @"$dir/payload")" = payload ] || fail "@file"
[ "$(echo -n piped | call echo -)" = piped ] || fail "stdin"
if out=$("$bin" call --node "$addr" --secret-file "$dir/wrong" --timeout 2s echo x 2>&1); then
    fail "a wrong secret was let in"
fi
grep -q '^gridmux: Disconnected' <<<"$out" || fail "wrong secret: $out"
if out=$(call 99 x 2>&1); then fail "unknown handler answered"; fi
grep -q '^gridmux: UnknownHandler' <<<"$out" || fail "unknown handler: $out"
grep -q 'link set-up failed authentication' "$dir/node.log" || fail "no log line for the refused client"
printf 'short\n' >"$dir/short"
if out=$("$bin" call --node "$addr" --secret-file "$dir/short" echo x 2>&1); then
    fail "a short secret was used"
fi
grep -q 'at least 16' <<<"$out" || fail "short secret: $out"
echo "gridmux call: all cases passed"
