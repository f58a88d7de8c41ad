#!/usr/bin/env bash
# The NAT scenario (issue 19; docs/netem.md, "Peers behind NAT"): one reachable seed and two sites, each
# behind its own NAT (nftables masquerade), with two peers each, in network namespaces of this machine's
# kernel. Every joiner runs `murmur node` (--reachability auto, the default): the seed dials each
# joiner back, fails (the sites' addresses are private), and the joiners train outbound-only. The seed is
# SIGKILLed after --kill-seed-after-s; the others must finish on their own.
#
#   netem/nat/nat-2sites.sh --out DIR [--murmur build/murmur] [--steps N] [--kill-seed-after-s S]
#
# Needs root, iproute2 and nftables; exits 77 (skipped) with the reason when they are missing or the
# kernel refuses namespaces. Namespaces and links are removed on exit, whatever happens. Addresses:
# 198.18.0.0/24 is the "internet" (RFC 2544's benchmarking range), 10.1.0.0/24 and 10.2.0.0/24 the
# sites; nothing leaves the namespaces.
set -euo pipefail

murmur=build/murmur
out=
steps=200
kill_after=25
relay=
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --murmur) murmur=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --kill-seed-after-s) kill_after=$2; shift 2 ;;
    --relay) relay=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "nat-2sites: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "nat-2sites: --out DIR is required" >&2; exit 2; }
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces and nftables)"
command -v ip >/dev/null || skip "needs iproute2 (ip)"
command -v nft >/dev/null || skip "needs nftables (nft): apt-get install nftables"
[ -x "$murmur" ] || { echo "nat-2sites: no murmur binary at $murmur" >&2; exit 2; }
murmur=$(realpath "$murmur")
mkdir -p "$out"
out=$(realpath "$out")

p="mn$$"  # interface names hold at most 15 characters
ns_wan=${p}w ns_seed=${p}s
declare -A site_net=([a]=10.1.0 [b]=10.2.0) site_wan=([a]=198.18.0.2 [b]=198.18.0.3)
namespaces=()
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
netns() {
  ip netns add "$1" || skip "the kernel refused a network namespace"
  namespaces+=("$1")
  ip -n "$1" link set lo up
}
# veth from namespace $1 (named $2 there) to namespace $3 (named $4 there); made under unique names
# in the root namespace, where "eth0" exists.
veth_n=0
veth() {
  veth_n=$((veth_n + 1))
  local x=${p}x$veth_n y=${p}y$veth_n
  ip link add "$x" type veth peer name "$y"
  ip link set "$x" netns "$1"
  ip link set "$y" netns "$3"
  ip -n "$1" link set "$x" name "$2"
  ip -n "$3" link set "$y" name "$4"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

# The internet: a bridge joining the seed and the two NAT routers.
netns "$ns_wan"
ip -n "$ns_wan" link add name wanbr type bridge
ip -n "$ns_wan" link set wanbr up
netns "$ns_seed"
veth "$ns_seed" eth0 "$ns_wan" ${p}ws
ip -n "$ns_wan" link set ${p}ws master wanbr
ip -n "$ns_seed" addr add 198.18.0.1/24 dev eth0
for s in a b; do
  nat=${p}n$s
  netns "$nat"
  veth "$nat" wan "$ns_wan" ${p}w$s
  ip -n "$ns_wan" link set ${p}w$s master wanbr
  ip -n "$nat" addr add "${site_wan[$s]}/24" dev wan
  ip -n "$nat" link add name lanbr type bridge
  ip -n "$nat" link set lanbr up
  ip -n "$nat" addr add "${site_net[$s]}.1/24" dev lanbr
  ip netns exec "$nat" sysctl -qw net.ipv4.ip_forward=1
  # Masquerade what leaves for the internet; from it, only replies come in.
  ip netns exec "$nat" nft -f - <<EOF
table ip nat {
  chain site_post {
    type nat hook postrouting priority 100; policy accept;
    oifname "wan" masquerade
  }
}
table ip filter {
  chain site_forward {
    type filter hook forward priority 0; policy drop;
    iifname "lanbr" accept
    ct state established,related accept
  }
}
EOF
  for i in 1 2; do
    peer=${p}$s$i
    netns "$peer"
    veth "$peer" eth0 "$nat" ${p}l$s$i
    ip -n "$nat" link set ${p}l$s$i master lanbr
    ip -n "$peer" addr add "${site_net[$s]}.$((i + 1))/24" dev eth0
    ip -n "$peer" route add default via "${site_net[$s]}.1"
  done
done
# The dial-back must fail: the seed has no route to the sites (their addresses are private).
if ip netns exec "$ns_seed" ping -c1 -W1 10.1.0.2 >/dev/null 2>&1; then
  echo "nat-2sites: the seed reaches a site's private address: the NAT is not in place" >&2
  exit 1
fi

# A small corpus, keys, the allow-list, the run's settings.
python3 - "$out/corpus.txt" <<'EOF'
import sys
words = "the peers behind the two routers train one model over the seed that all of them can reach".split()
with open(sys.argv[1], "w") as f:
    for i in range(3000):
        f.write(" ".join(words[(i * 7 + k) % len(words)] for k in range(12)) + f" {i % 9}\n")
EOF
"$murmur" data prepare --tokenizer byte --input "$out/corpus.txt" --out "$out/data" >/dev/null
: >"$out/allow.txt"
names=(seed a1 a2 b1 b2)
for n in "${names[@]}"; do
  rm -rf "$out/keys-$n"
  "$murmur" keygen --out "$out/keys-$n" >/dev/null
  cat "$out/keys-$n/peer.pub" >>"$out/allow.txt"
done
cat >"$out/run.toml" <<EOF
preset = "tiny"
data = "$out/data"
algo = "gossip"
batch = 4
context = 32
threads = 1
steps = $steps
inner-steps = 10
lr = 0.003
eval-windows = 4
ckpt-every = 0
wait-max-s = 3
tokens-per-s-limit = 600
EOF
seed_key=$(cat "$out/keys-seed/peer.pub")
start() {  # name namespace ip [flags...]
  local n=$1 ns=$2 ip=$3
  shift 3
  ip netns exec "$ns" "$murmur" node --config "$out/run.toml" --keys "$out/keys-$n" \
    --listen "tcp://$ip:7000" --allow "$out/allow.txt" --out "$out/peer-$n" --metrics-port -1 "$@" \
    >"$out/node-$n.log" 2>&1 &
  pids+=($!)
}
t0=$(date +%s.%N)
start seed "$ns_seed" 198.18.0.1 ${relay:+--relay}
for s in a b; do
  for i in 1 2; do
    start "$s$i" "${p}$s$i" "${site_net[$s]}.$((i + 1))" --join "$seed_key@198.18.0.1:7000"
  done
done
echo "nat-2sites: 5 peers started in $out; the seed is killed after ${kill_after}s"
sleep "$kill_after"
kill -9 "${pids[0]}"
echo "nat-2sites: seed killed at $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
rc=0
for k in 1 2 3 4; do
  if ! wait "${pids[$k]}"; then
    echo "nat-2sites: peer ${names[$k]} exited non-zero (see $out/node-${names[$k]}.log)" >&2
    rc=1
  fi
done
pids=()
echo "$t0" >"$out/t0"
exit $rc
