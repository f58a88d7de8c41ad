#!/usr/bin/env bash
# Issue 19's NAT test on this machine's kernel: netem/nat/nat-2sites.sh runs one reachable seed and two
# sites behind NAT with two peers each; then the logs must show that every peer joined and trained,
# that the seed found each one undialable and told it the NAT's public address, that every peer
# exchanged with a neighbour (time to first exchange printed), that the peers agreed while the seed
# lived, and that the four survived its SIGKILL and finished. Skipped (77) without root or namespaces.
set -euo pipefail
murmur=${1:?usage: test_nat_two_sites.sh MURMUR_BINARY}
here=$(dirname "$(realpath "$0")")
out=$(mktemp -d /tmp/murmur-nat.XXXXXX)
trap 'rm -rf "$out"' EXIT
set +e
bash "$here/../../netem/nat/nat-2sites.sh" --murmur "$murmur" --out "$out" --relay "${@:2}"
rc=$?
set -e
[ $rc -eq 77 ] && exit 77
if [ $rc -ne 0 ]; then
  for f in "$out"/node-*.log; do echo "== $f"; tail -20 "$f"; done
  exit $rc
fi
python3 "$here/check_nat_run.py" "$out"
