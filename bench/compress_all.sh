#!/usr/bin/env bash
# Runs `murmur bench compress` over every codec at 1M, 10M and 100M elements and prints a
# Markdown table (GB/s of fp32 input; memcpy of the same buffer in the same run).
# Usage: bench/compress_all.sh [MURMUR_BINARY] [--device cpu|cuda] [--repeats R] [--sizes "N ..."]
set -euo pipefail
murmur=build/murmur
if [[ $# -gt 0 && $1 != --* ]]; then murmur=$1; shift; fi
device=cpu repeats=5 sizes="1000000 10000000 100000000"
while [[ $# -gt 0 ]]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    *) echo "usage: $0 [MURMUR_BINARY] [--device cpu|cuda] [--repeats R] [--sizes \"N ...\"]" >&2; exit 2 ;;
  esac
done
[[ -x $murmur ]] || { echo "$0: $murmur is not an executable (build it first)" >&2; exit 1; }
command -v jq >/dev/null || { echo "$0: needs jq" >&2; exit 1; }

codecs=(fp32 fp16 bf16 int8:block=64 int8:block=64,stochastic int4:block=64 int4:block=64,stochastic int2:block=64
        sign:block=256 topk:fraction=0.01 topk:fraction=0.01,approx randk:fraction=0.01 powersgd:rank=4)

echo "| codec | elements | threads | encode GB/s | decode GB/s | memcpy GB/s | encode % | decode % | ratio | bits/elem | rel. error |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in $sizes; do
  for c in "${codecs[@]}"; do
    "$murmur" bench compress --codec "$c" --elements "$n" --device "$device" --repeats "$repeats" --json |
      jq -r '"| \(.codec) | \(.elements) | \(.threads) | \(.encode_gbps*100|round/100) | \(.decode_gbps*100|round/100) | \(.memcpy_gbps*100|round/100) | \(.encode_gbps/.memcpy_gbps*100|round) | \(.decode_gbps/.memcpy_gbps*100|round) | \(.ratio*100|round/100) | \(.bits_per_element*1000|round/1000) | \(.rel_error*10000|round/10000) |"'
  done
done
