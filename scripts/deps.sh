#!/usr/bin/env bash
# Installs the Debian packages Murmur needs to build, test and run (only those
# missing), then nothing else. Safe to run repeatedly.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git nodejs npm
  libopenblas-openmp-dev libsodium-dev libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
  libboost-dev libboost-system-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev
  libspdlog-dev libicu-dev libgtest-dev libgmock-dev
  python3-torch python3-numpy gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "murmur: installing ${#missing[@]} missing Debian packages: ${missing[*]}" >&2
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
