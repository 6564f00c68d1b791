#!/usr/bin/env bash
# `gridmux node --files`, `gridmux fetch` and `gridmux sign` + curl against
# a real node: a whole file to a file (splice) and to stdout, a range, a
# HEAD, a wrong secret, a missing file, traversal. Every process stops by
# itself (the node under `timeout`).
set -euo pipefail
bin=$(realpath "${1:-./target/release/gridmux}")
dir=$(mktemp -d)
trap 'kill "$node" 2>/dev/null || true; rm -rf "$dir"' EXIT
printf 'cli secret 0123456789\n' >"$dir/secret"
printf 'not the secret 0123456\n' >"$dir/wrong"
mkdir -p "$dir/served/sub"
head -c 3000000 /dev/urandom >"$dir/served/sub/blob.bin"
port=$((20000 + RANDOM % 20000))
addr=127.0.0.1:$port
timeout 60 "$bin" node --listen "$addr" --peers "$addr" --secret-file "$dir/secret" \
    --files "$dir/served" 2>"$dir/node.log" &
node=$!
fetch() { "$bin" fetch --node "$addr" --secret-file "$dir/secret" --timeout 5s "$@"; }
for _ in $(seq 50); do
    curl -fsS "http://$addr/health" >/dev/null 2>&1 && break
    sleep 0.1
done
fail() { echo "FAIL: $*"; cat "$dir/node.log"; exit 1; }
fetch sub/blob.bin -o "$dir/out.bin" 2>"$dir/fetch.err" || fail "fetch -o: $(cat "$dir/fetch.err")"
cmp "$dir/out.bin" "$dir/served/sub/blob.bin" || fail "fetched file differs"
grep -q 'fetched 3000000 bytes in .* MiB/s' "$dir/fetch.err" || fail "no throughput line"
fetch sub/blob.bin 2>/dev/null | cmp - "$dir/served/sub/blob.bin" || fail "fetch to stdout"
fetch sub/blob.bin --range 100-199 2>/dev/null >"$dir/range"
cmp "$dir/range" <(tail -c +101 "$dir/served/sub/blob.bin" | head -c 100) || fail "range"
if out=$("$bin" fetch --node "$addr" --secret-file "$dir/wrong" sub/blob.bin 2>&1 >/dev/null); then
    fail "a wrong secret fetched"
fi
grep -q 'answered 403' <<<"$out" || fail "wrong secret: $out"
if out=$(fetch missing 2>&1 >/dev/null); then fail "a missing file fetched"; fi
grep -q 'answered 404' <<<"$out" || fail "missing: $out"
if out=$(fetch ../secret 2>&1 >/dev/null); then fail "traversal fetched"; fi
grep -Eq 'answered (400|404)' <<<"$out" || fail "traversal: $out"
# A failed fetch leaves -o as it was, and no partial file; -o may be a pipe.
echo "keep me" >"$dir/keep.txt"
if fetch missing -o "$dir/keep.txt" 2>/dev/null; then fail "a missing file fetched to -o"; fi
[ "$(cat "$dir/keep.txt")" = "keep me" ] || fail "a failed fetch emptied -o"
! ls -a "$dir" | grep -q '\.part$' || fail "a partial file was left"
[ "$(fetch sub/blob.bin -o /dev/stdout 2>/dev/null | wc -c)" = 3000000 ] || fail "-o /dev/stdout"
# Through a symbolic link, the target is written (the link stays), with
# the target's permissions.
echo old >"$dir/target.bin"
chmod 600 "$dir/target.bin"
ln -s "$dir/target.bin" "$dir/link.bin"
fetch sub/blob.bin -o "$dir/link.bin" 2>/dev/null || fail "fetch through a link"
[ -L "$dir/link.bin" ] || fail "the link was replaced"
cmp "$dir/target.bin" "$dir/served/sub/blob.bin" || fail "the link's target was not written"
[ "$(stat -c %a "$dir/target.bin")" = 600 ] || fail "permissions changed"
# sign prints a curl command that works as is: URL-signed, then header-signed.
cd "$dir"
cmd=$("$bin" sign --node "$addr" --secret-file "$dir/secret" sub/blob.bin --range 0-999)
eval "$cmd" || fail "signed curl: $cmd"
cmp blob.bin <(head -c 1000 "$dir/served/sub/blob.bin") || fail "signed range"
cmd=$("$bin" sign --node "$addr" --secret-file "$dir/secret" sub/blob.bin --head --header)
eval "$cmd" | grep -qi '^content-length: 3000000' || fail "signed HEAD: $cmd"
# A tampered signed URL is refused.
cmd=$("$bin" sign --node "$addr" --secret-file "$dir/secret" sub/blob.bin)
if eval "${cmd/blob.bin&/blob.bim&}" 2>/dev/null; then fail "a tampered URL was served"; fi
echo "gridmux files: all cases passed"
