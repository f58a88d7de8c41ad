#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds with warnings as
# errors (CUDA code too when nvcc works), runs every test, then rebuilds the
# unit tests under ASan+UBSan and runs them again.
# MURMUR_TEST_SANITIZERS=0 skips the sanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

bash scripts/build.sh -DMURMUR_WERROR=ON
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 900

if [ "${MURMUR_TEST_SANITIZERS:-1}" != "0" ]; then
  echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer =="
  # -O1 with line tables only (the preset) and only the binaries it runs: full debug
  # info at -O2 made this build three times as long as the release build.
  cmake --preset asan >/dev/null
  cmake --build build-asan -j "$jobs" --target unit_tests
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j "$jobs" -L unit --timeout 900
fi
