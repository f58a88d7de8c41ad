#!/usr/bin/env bash
# ThreadSanitizer pass over the threaded parts: the peer process (training thread, network thread,
# /metrics server), the netem relays and runner, the transport, the relay service. Builds the `tsan`
# preset (CPU only) and runs the tests that exercise them; a data race fails the test that hit it
# (halt_on_error), also inside the peer processes the swarm tests start. About 25 minutes on 2 cores;
# not part of scripts/test.sh (CI's time budget).
# OpenMP runs single-threaded here: libgomp is not instrumented, so its own synchronisation would be
# reported as races. Races between our threads are what this pass is for.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
bash scripts/deps.sh
cmake --preset tsan >/dev/null
cmake --build build-tsan -j "$jobs" --target murmur test_transport test_relay_service test_netem \
  test_netem_run test_swarm test_swarm_membership
export OMP_NUM_THREADS=1
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp"
ctest --test-dir build-tsan --output-on-failure --timeout 1800 \
  -R '^(Transport|RelayService|RelayFixture|NetemRunWiring|NetemRunTest|SwarmTest|SwarmMembership)\.'
