#!/usr/bin/env bash
# TLS from the command line: `gridmux certs` makes a throwaway CA and node
# certificates; two nodes with mutual TLS link up; `call` and `fetch` work
# with a certificate and fail without TLS; curl reaches /health over
# HTTPS with a client certificate and gets nothing over plain HTTP; SIGHUP
# makes a node load new files at once. Every
# process stops by itself (the nodes under `timeout`).
set -euo pipefail
bin=$(realpath "${1:-./target/release/gridmux}")
dir=$(mktemp -d)
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"' EXIT
printf 'tls secret 0123456789\n' >"$dir/secret"
mkdir -p "$dir/served"
head -c 2000000 /dev/urandom >"$dir/served/blob.bin"
base=$((20000 + RANDOM % 20000))
a=127.0.0.1:$base b=127.0.0.1:$((base + 1))
fail() { echo "FAIL: $*"; cat "$dir"/*.log 2>/dev/null; exit 1; }
"$bin" certs --nodes "$a,$b" --out "$dir/pki" >"$dir/certs.out" || fail "certs"
grep -q -- "--tls-cert" "$dir/certs.out" || fail "certs printed no options"
[ "$(stat -c %a "$dir/pki/127.0.0.1_$base.key")" = 600 ] || fail "a key readable by others"
if "$bin" certs --nodes "$a" --out "$dir/pki" 2>/dev/null; then fail "certs overwrote files"; fi
tls() { echo --tls-cert "$dir/pki/${1/:/_}.crt" --tls-key "$dir/pki/${1/:/_}.key" --tls-ca "$dir/pki/ca.crt"; }
pids=()
for me in "$a" "$b"; do
    # shellcheck disable=SC2046
    timeout --foreground 60 "$bin" node --listen "$me" --peers "$a,$b" --secret-file "$dir/secret" \
        --files "$dir/served" $(tls "$me") --tls-client-auth 2>"$dir/$me.log" &
    pids+=($!)
done
for _ in $(seq 100); do
    grep -q 'link up' "$dir/$a.log" && grep -q 'link up' "$dir/$b.log" && break
    sleep 0.1
done
grep -q 'link up' "$dir/$a.log" || fail "the nodes never linked over TLS"
# shellcheck disable=SC2046
out=$("$bin" call --node "$a" --secret-file "$dir/secret" --timeout 5s $(tls "$b") echo hello) \
    || fail "call over TLS"
[ "$out" = hello ] || fail "call answered $out"
if "$bin" call --node "$a" --secret-file "$dir/secret" --timeout 1s echo hello >/dev/null 2>&1; then
    fail "a plain client got in"
fi
# shellcheck disable=SC2046
"$bin" fetch --node "$a" --secret-file "$dir/secret" --timeout 5s $(tls "$b") blob.bin \
    -o "$dir/out.bin" 2>"$dir/fetch.err" || fail "fetch over TLS: $(cat "$dir/fetch.err")"
cmp "$dir/out.bin" "$dir/served/blob.bin" || fail "fetched file differs"
curl -fsS --cacert "$dir/pki/ca.crt" --cert "$dir/pki/127.0.0.1_$((base + 1)).crt" \
    --key "$dir/pki/127.0.0.1_$((base + 1)).key" "https://$a/health" >/dev/null \
    || fail "https /health with a client certificate"
if curl -fsS --max-time 5 "http://$a/health" >/dev/null 2>&1; then fail "plain HTTP answered"; fi
if curl -fsS --max-time 5 --cacert "$dir/pki/ca.crt" "https://$a/health" >/dev/null 2>&1; then
    fail "https without a client certificate answered (mutual TLS)"
fi
# SIGHUP reloads the files at once: a node (mutual TLS) whose three files
# are replaced by those of another CA serves the new certificate (a client
# that trusts only the new CA gets in) and trusts only the new CA (a client
# certificate of the old one is refused, even by a client that trusts the
# node's new certificate).
c=127.0.0.1:$((base + 2))
for n in 1 2; do "$bin" certs --nodes "$c" --out "$dir/pki$n" >/dev/null || fail "certs $n"; done
mkdir "$dir/live"
cp "$dir/pki1/${c/:/_}.crt" "$dir/pki1/${c/:/_}.key" "$dir/pki1/ca.crt" "$dir/live/"
# Certificate and key of directory $1, CA of directory $2.
of() { echo --tls-cert "$1/${c/:/_}.crt" --tls-key "$1/${c/:/_}.key" --tls-ca "$2/ca.crt"; }
# shellcheck disable=SC2046
timeout --foreground 60 "$bin" node --listen "$c" --peers "$c" --secret-file "$dir/secret" \
    $(of "$dir/live" "$dir/live") --tls-client-auth 2>"$dir/$c.log" &
pids+=($!)
for _ in $(seq 100); do grep -q 'node running' "$dir/$c.log" && break; sleep 0.1; done
# shellcheck disable=SC2046
calls() { "$bin" call --node "$c" --secret-file "$dir/secret" --timeout 3s $(of "$dir/$1" "$dir/$2") echo hi; }
[ "$(calls pki1 pki1)" = hi ] || fail "call with the first CA"
if calls pki2 pki2 >/dev/null 2>&1; then fail "the second CA's client got in before the reload"; fi
for f in "${c/:/_}.crt" "${c/:/_}.key" ca.crt; do
    cp "$dir/pki2/$f" "$dir/live/$f.new" && mv -f "$dir/live/$f.new" "$dir/live/$f"
done
kill -HUP "${pids[-1]}"
for _ in $(seq 50); do grep -q 'SIGHUP: TLS .* reloaded' "$dir/$c.log" && break; sleep 0.1; done
grep -q 'SIGHUP: TLS .* reloaded' "$dir/$c.log" || fail "no reload on SIGHUP"
[ "$(calls pki2 pki2)" = hi ] || fail "call with the second CA after SIGHUP"
if calls pki1 pki2 >/dev/null 2>&1; then fail "a client certificate of the first CA still got in"; fi
if calls pki1 pki1 >/dev/null 2>&1; then fail "the first CA's client got in after SIGHUP"; fi
# A reload that blocks (the key a FIFO nobody writes) holds up neither the
# next SIGHUP (it is told to wait) nor stopping.
rm "$dir/live/${c/:/_}.key"
mkfifo "$dir/live/${c/:/_}.key"
kill -HUP "${pids[-1]}"
sleep 0.3
kill -HUP "${pids[-1]}"
for _ in $(seq 50); do grep -q 'reload has not ended' "$dir/$c.log" && break; sleep 0.1; done
grep -q 'reload has not ended' "$dir/$c.log" || fail "no word of the stuck reload"
kill -TERM "${pids[-1]}"
status=0
wait "${pids[-1]}" || status=$?
[ "$status" = 0 ] || fail "the node did not stop cleanly with a reload stuck: status $status"
echo "gridmux TLS: certs, mutual TLS between nodes, call, fetch, curl, and reload on SIGHUP"
