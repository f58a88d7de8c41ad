#!/usr/bin/env bash
# Configures and builds Murmur into build/ (binary: build/murmur).
# Extra arguments go to cmake's configure step, e.g. -DMURMUR_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$jobs"
