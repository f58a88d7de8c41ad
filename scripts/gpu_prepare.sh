#!/usr/bin/env bash
# Run on a Debian machine WITH a package registry, before going to a GPU host without
# one: downloads the .deb files that scripts/gpu_check.sh installs there (dpkg -x into
# a prefix, nothing system-wide), i.e. the build packages of scripts/deps.sh and what
# they depend on, as apt would resolve them on an empty system, less:
#   - the compiler toolchain (build-essential and its dependencies): nvcc needs a host
#     compiler anyway, so the GPU host has one;
#   - packages of priority required or important, which every Debian system has;
#   - with --have FILE, every package listed there (one name a line), e.g. the GPU
#     host's `dpkg-query -W -f='${Package}\n'`, to carry less;
#   - with --exclude PKG (repeatable), PKG.
# The files must come from the GPU host's distribution release and architecture:
# MANIFEST records this machine's, and gpu_check.sh compares them with its own.
# Usage: scripts/gpu_prepare.sh [--out DIR] [--have FILE] [--exclude PKG]...
# DIR defaults to gpu-debs/ in the repository (ignored by git); it is emptied of
# .deb files first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/gpu-debs
have=""
excludes=()
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --have) have=$2; shift 2 ;;
    --exclude) excludes+=("$2"); shift 2 ;;
    -h | --help) usage ;;
    *) echo "gpu_prepare: unknown argument '$1'" >&2; usage ;;
  esac
done
for tool in apt-get apt-cache dpkg; do
  command -v "$tool" >/dev/null || { echo "gpu_prepare: needs $tool (a Debian-based system)" >&2; exit 1; }
done
[ -z "$have" ] || [ -r "$have" ] || { echo "gpu_prepare: cannot read $have" >&2; exit 1; }

mapfile -t wanted < <(bash "$root/scripts/deps.sh" --list-build | grep -vx -e build-essential -e git)
# What apt would install on a system with nothing installed: one choice per alternative.
resolve() {
  apt-get -s -o Dir::State::status=/dev/null install --no-install-recommends "$@" 2>/dev/null |
    awk '$1 == "Inst" {print $2}' | sort -u
}
needed=$(resolve "${wanted[@]}")
[ -n "$needed" ] || { echo "gpu_prepare: apt resolved nothing for: ${wanted[*]} (apt-get update?)" >&2; exit 1; }
toolchain=$(resolve build-essential)
# shellcheck disable=SC2086  # package names are single words
base=$(apt-cache show --no-all-versions $needed |
  awk '/^Package:/ {p = $2} /^(Priority: (required|important)|Essential: yes)$/ {print p}' | sort -u)
skip=$(printf '%s\n' "$toolchain" "$base" "${excludes[@]}" | sed '/^$/d')
[ -z "$have" ] || skip=$(printf '%s\n%s\n' "$skip" "$(sed 's/:.*//' "$have")")
mapfile -t pkgs < <(comm -23 <(echo "$needed") <(echo "$skip" | sort -u))
[ ${#pkgs[@]} -gt 0 ] || { echo "gpu_prepare: nothing left to download" >&2; exit 1; }

mkdir -p "$out"
rm -f "$out"/*.deb
echo "gpu_prepare: downloading ${#pkgs[@]} packages into $out" >&2
# apt-get download writes into the current directory; as root it warns that the
# _apt user cannot write there, which is harmless.
# (Its status is checked below, file by file.)
(cd "$out" && apt-get download -qq "${pkgs[@]}") 2>"$out/.apt-errors" || true
grep -v "couldn't be accessed by user '_apt'" "$out/.apt-errors" >&2 || true
rm -f "$out/.apt-errors"
missing=()
for p in "${pkgs[@]}"; do
  compgen -G "$out/${p}_*.deb" >/dev/null || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] || { echo "gpu_prepare: not downloaded: ${missing[*]}" >&2; exit 1; }

# shellcheck disable=SC1091
. /etc/os-release
{
  echo "os=${ID:-unknown} ${VERSION_ID:-unknown}"
  echo "arch=$(dpkg --print-architecture)"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "requested=${wanted[*]}"
  for f in "$out"/*.deb; do
    echo "deb=$(basename "$f")"
  done
} >"$out/MANIFEST"
echo "gpu_prepare: $(find "$out" -name '*.deb' | wc -l) files, $(du -sh "$out" | cut -f1) in $out;" \
  "carry the folder to the GPU host and run: scripts/gpu_check.sh --debs DIR" >&2
