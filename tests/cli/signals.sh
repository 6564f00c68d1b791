#!/usr/bin/env bash
# `gridmux node` stops gracefully on SIGTERM as on Ctrl-C: exit status 0,
# and its peer sees a clean close; SIGHUP too without TLS; a start that
# blocks on its files still ends on SIGTERM. Every process stops by itself.
set -euo pipefail
bin=${1:-./target/release/gridmux}
dir=$(mktemp -d)
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"' EXIT
printf 'signals secret 0123456789\n' >"$dir/secret"
base=$((20000 + RANDOM % 20000))
a=127.0.0.1:$base b=127.0.0.1:$((base + 1))
pids=()
# `--foreground`: timeout passes a signal to the node alone (without it, it
# also signals its process group: the node would get SIGTERM twice, and a
# second signal means "exit at once").
for me in "$a" "$b"; do
    timeout --foreground 60 "$bin" node --listen "$me" --peers "$a,$b" --secret-file "$dir/secret" \
        2>"$dir/$me.log" &
    pids+=($!)
done
fail() { echo "FAIL: $*"; cat "$dir"/*.log; exit 1; }
for _ in $(seq 100); do
    grep -q 'link up' "$dir/$a.log" && grep -q 'link up' "$dir/$b.log" && break
    sleep 0.1
done
grep -q 'link up' "$dir/$a.log" || fail "the nodes never linked"
# Logs to a file carry no colour codes.
! grep -q $'\x1b\[' "$dir/$a.log" || fail "ANSI escapes in a log written to a file"
kill -TERM "${pids[0]}"
status=0
wait "${pids[0]}" || status=$?
[ "$status" = 0 ] || fail "SIGTERM: exit status $status"
for _ in $(seq 50); do grep -q 'link down' "$dir/$b.log" && break; sleep 0.1; done
grep 'link down' "$dir/$b.log" | grep -q 'Clean' || fail "the peer saw no clean close"
# SIGHUP stops a node without TLS cleanly too.
c=127.0.0.1:$((base + 2))
timeout --foreground 60 "$bin" node --listen "$c" --peers "$c" --secret-file "$dir/secret" \
    2>"$dir/$c.log" &
pids+=($!)
for _ in $(seq 100); do grep -q 'node running' "$dir/$c.log" && break; sleep 0.1; done
kill -HUP "${pids[-1]}"
status=0
wait "${pids[-1]}" || status=$?
[ "$status" = 0 ] || fail "SIGHUP without TLS: exit status $status"
# A start that blocks (the secret file a FIFO nobody writes) still ends on
# SIGTERM, at once, with the signal's status (128 + 15).
mkfifo "$dir/blocking-secret"
d=127.0.0.1:$((base + 3))
timeout --foreground 60 "$bin" node --listen "$d" --peers "$d" --secret-file "$dir/blocking-secret" \
    2>"$dir/$d.log" &
pids+=($!)
sleep 0.5
kill -TERM "${pids[-1]}"
status=0
wait "${pids[-1]}" || status=$?
[ "$status" = 143 ] || fail "SIGTERM to a start that blocks: exit status $status"
echo "gridmux node: SIGTERM and SIGHUP stop it cleanly, a blocked start too"
