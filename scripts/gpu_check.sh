#!/usr/bin/env bash
# The GPU check in one go, for a machine with an NVIDIA GPU, its driver, the CUDA
# toolkit and a C++ compiler, but possibly no package registry (docs/cuda.md, "The
# GPU check"):
#   1. deps       unpacks the .deb files carried beside it (scripts/gpu_prepare.sh
#                 downloads them) into a prefix with dpkg -x, only for packages the
#                 host lacks, and points CMake, pkg-config and the loader at it;
#   2. configure  CMake with MURMUR_CUDA=ON for the GPU's compute capability;
#   3. build      murmur, test_model_cuda and test_compress;
#   4. tests      every GPU test: test_model_cuda (all of it) and the CUDA instances
#                 of test_compress (--gtest_filter='*/cuda');
#   5. torch      bench/model_cuda_vs_torch.py, when python3 imports torch with CUDA;
#   6. codecs     murmur bench compress --device cuda over the codecs, 1e7 and 1e8 floats.
# Writes summary.json, summary.md, log.txt and each stage's output under the output
# directory. Stops starting stages when its time budget (default 460 s) runs out and
# says so; exits 1 when a stage failed, 0 otherwise (skipped stages included).
# Usage: scripts/gpu_check.sh [--debs DIR] [--out DIR] [--build-dir DIR] [--jobs N]
#          [--budget SECONDS] [--configure-only] [--extract-all]
#   --debs DIR        .deb files to unpack (default: gpu-debs/ in the repository, if any)
#   --out DIR         default: out/gpu-check-<UTC time>
#   --build-dir DIR   default: build-gpu-check/ in the repository
#   --configure-only  stop after configuring (checks the dependency set-up anywhere)
#   --extract-all     unpack every .deb, installed or not (to test the prefix)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
debs=""
out=""
build=""
jobs=$(nproc 2>/dev/null || echo 4)
budget=460
configure_only=0
extract_all=0
usage() {
  sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --debs) debs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --configure-only) configure_only=1; shift ;;
    --extract-all) extract_all=1; shift ;;
    -h | --help) usage ;;
    *) echo "gpu_check: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$debs" ] || { [ -d "$root/gpu-debs" ] && debs=$root/gpu-debs; }
out=${out:-$root/out/gpu-check-$(date -u +%Y%m%d-%H%M%S)}
build=${build:-$root/build-gpu-check}
mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
exec > >(tee -a "$out/log.txt") 2>&1
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
left() { echo $((budget - $(elapsed))); }

# ---- results ------------------------------------------------------------------------

json_str() {  # a JSON string literal
  local s
  s=$(printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037')
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}
# One JSON value from a file: embedded as is when it is a single JSON object,
# otherwise as a string (so summary.json stays valid).
json_value() {
  local text
  text=$(cat "$1" 2>/dev/null)
  if [ -z "$text" ]; then
    echo null
  elif command -v python3 >/dev/null 2>&1; then
    printf '%s' "$text" | python3 -c 'import json, sys; print(json.dumps(json.loads(sys.stdin.read())))' 2>/dev/null ||
      json_str "$text"
  elif [[ $text == \{*\} && $text != *$'\n'* ]]; then
    printf '%s' "$text"
  else
    json_str "$text"
  fi
}
stage_names=()
stage_status=()
stage_seconds=()
stage_detail=()
failed=0
record() {  # name status seconds detail (one line: newlines become "; ")
  local detail=${4//$'\n'/; }
  stage_names+=("$1")
  stage_status+=("$2")
  stage_seconds+=("$3")
  stage_detail+=("$detail")
  [ "$2" != fail ] || failed=1
  printf '== %-9s %-7s %4ss  %s\n' "$1" "$2" "$3" "$detail"
}
# Runs "$@" with a limit of min(cap, what is left of the budget minus reserve), the
# cap being for the default budget of 460 s and scaled with --budget. Sets rc (124 on
# timeout) and secs; returns 1 without running when under 10 s remain.
run_limited() {
  local cap=$(($1 * budget / 460)) reserve=$2
  shift 2
  local limit=$(($(left) - reserve))
  [ "$limit" -le "$cap" ] || limit=$cap
  if [ "$limit" -lt 10 ]; then
    rc=125 secs=0
    return 1
  fi
  local t0
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  secs=$(($(date +%s) - t0))
  return 0
}
tail_of() { tail -n "${2:-15}" "$1" 2>/dev/null; }
# A stage whose output goes to $out/NAME.txt, recorded as ok (with ok_detail), as
# failed (with the exit status and the output's first error lines or its end) or as
# skipped when the time budget has run out.
stage() {  # name cap reserve ok_detail command...
  local name=$1 cap=$2 reserve=$3 ok=$4
  shift 4
  if ! run_limited "$cap" "$reserve" "$@" >"$out/$name.txt" 2>&1; then
    record "$name" skipped 0 "time budget"
  elif [ $rc = 0 ]; then
    record "$name" ok "$secs" "$ok"
  else
    record "$name" fail "$secs" "exit $rc$([ $rc = 124 ] && echo ' (time limit)'): $(grep -m 3 -iE 'error' \
      "$out/$name.txt" || tail_of "$out/$name.txt" 3)"
  fi
}

# ---- 0. the host ----------------------------------------------------------------------

echo "gpu_check: output in $out, build in $build, budget ${budget}s, $jobs jobs"
gpu_ok=0
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1) &&
  [ -n "$gpu" ] && gpu_ok=1
# The first GPU's compute capability (e.g. 9.0 -> 90), for CMAKE_CUDA_ARCHITECTURES.
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. ')
[[ $cap =~ ^[0-9]+$ ]] || cap=""
nvcc=${CUDACXX:-$(command -v nvcc || true)}
[ -n "$nvcc" ] || [ ! -x /usr/local/cuda/bin/nvcc ] || nvcc=/usr/local/cuda/bin/nvcc
nvcc_version=$([ -n "$nvcc" ] && "$nvcc" --version 2>/dev/null | grep -o 'release [0-9.]*, V[0-9.]*' || echo none)
cxx=$(command -v c++ || command -v g++ || true)
cxx_version=$([ -n "$cxx" ] && "$cxx" --version | head -n 1 || echo none)
# shellcheck disable=SC1091
os=$(. /etc/os-release 2>/dev/null && echo "${ID:-unknown} ${VERSION_ID:-unknown}")
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
multiarch=$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=false
[ -z "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] || dirty=true
echo "gpu: ${gpu:-none}; nvcc: $nvcc_version; c++: $cxx_version; os: $os $arch; commit $commit (dirty: $dirty)"

# ---- 1. dependencies ------------------------------------------------------------------

prefix=$build/deps-prefix
deps() {
  local t0 n=0 kept=0 f pkg
  t0=$(date +%s)
  if [ -z "$debs" ]; then
    record deps skipped 0 "no .deb folder (--debs): using what is installed"
    return
  fi
  if [ ! -d "$debs" ] || ! compgen -G "$debs/*.deb" >/dev/null; then
    record deps fail 0 "no .deb files in $debs"
    return
  fi
  command -v dpkg >/dev/null || { record deps fail 0 "dpkg is missing: cannot unpack $debs"; return; }
  local note=""
  if [ -r "$debs/MANIFEST" ]; then
    local want_os want_arch
    want_os=$(sed -n 's/^os=//p' "$debs/MANIFEST")
    want_arch=$(sed -n 's/^arch=//p' "$debs/MANIFEST")
    if [ "$want_os" != "$os" ] || [ "$want_arch" != "$arch" ]; then
      note="; WARNING: the files are for $want_os $want_arch, this host is $os $arch"
      echo "gpu_check: $note"
    fi
  fi
  rm -rf "$prefix"
  mkdir -p "$prefix"
  for f in "$debs"/*.deb; do
    pkg=$(dpkg-deb -f "$f" Package)
    if [ $extract_all = 0 ] && dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii'; then
      kept=$((kept + 1))
      continue
    fi
    dpkg -x "$f" "$prefix" || { record deps fail $(($(date +%s) - t0)) "dpkg -x $f failed"; return; }
    n=$((n + 1))
  done
  # pkg-config files name /usr: point them into the prefix.
  find "$prefix" -name '*.pc' -print0 |
    xargs -0 -r sed -i -E "s#(^[A-Za-z_]+=|-I|-L|[[:space:]])/usr(/|\$)#\1$prefix/usr\2#g"
  local libdirs="$prefix/usr/lib/$multiarch:$prefix/lib/$multiarch:$prefix/usr/lib/$multiarch/openblas-openmp:$prefix/usr/lib"
  export PATH="$prefix/usr/bin:$PATH"
  export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_PATH="$prefix/usr/lib/$multiarch/pkgconfig:$prefix/usr/share/pkgconfig:$prefix/usr/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  cmake_extra+=("-DCMAKE_PREFIX_PATH=$prefix/usr" "-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,${libdirs//:/,-rpath-link,}")
  record deps ok $(($(date +%s) - t0)) "unpacked $n packages into $prefix, $kept already installed$note"
}
cmake_extra=()
if [ $gpu_ok = 0 ] && [ $configure_only = 0 ]; then
  record host fail 0 "no NVIDIA GPU visible (nvidia-smi: ${gpu:-not found})"
elif [ -z "$nvcc" ]; then
  record host fail 0 "no nvcc (set CUDACXX or put the CUDA toolkit's bin/ on PATH)"
elif [ -z "$cxx" ]; then
  record host fail 0 "no C++ compiler (c++ or g++); nvcc needs one too"
else
  record host ok 0 "${gpu:-no GPU (configure only)}"
  deps
fi

# ---- 2, 3. configure and build --------------------------------------------------------

if [ $failed = 0 ]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  archs=()
  [ -z "$cap" ] || archs=("-DCMAKE_CUDA_ARCHITECTURES=$cap")
  stage configure 120 60 "CUDA architectures ${cap:-project default}" cmake -S "$root" -B "$build" \
    "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMURMUR_CUDA=ON "-DCMAKE_CUDA_COMPILER=$nvcc" "${archs[@]}" \
    "${cmake_extra[@]}"
fi
if [ $failed = 0 ] && [ $configure_only = 0 ]; then
  stage build 330 100 "murmur, test_model_cuda, test_compress" \
    cmake --build "$build" -j "$jobs" --target murmur test_model_cuda test_compress
fi
built=0
[ "${stage_names[-1]}" != build ] || [ "${stage_status[-1]}" != ok ] || built=1

# ---- 4. GPU tests ---------------------------------------------------------------------

test_rows=()
gtest() {  # name filter reserve
  local name=$1 filter=$2 reserve=$3 txt="$out/tests/$1.txt"
  mkdir -p "$out/tests"
  if ! run_limited 150 "$reserve" env OMP_WAIT_POLICY=PASSIVE "$build/$name" "--gtest_filter=$filter" \
    "--gtest_output=json:$out/tests/$name.json" >"$txt" 2>&1; then
    record "$name" skipped 0 "time budget"
    return
  fi
  local passed skipped nfailed names
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$txt" | tail -n 1)
  skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$txt" | tail -n 1)
  nfailed=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$txt" | tail -n 1)
  names=$(sed -n 's/^\[  FAILED  \] \([^ ]*\).*/\1/p' "$txt" | grep -v '^[0-9]*$' | sort -u | tr '\n' ' ')
  test_rows+=("$name|$filter|${passed:-0}|${nfailed:-0}|${skipped:-0}|$rc|$names")
  local detail="${passed:-0} passed, ${nfailed:-0} failed, ${skipped:-0} skipped"
  if [ $rc = 0 ] && [ "${skipped:-0}" = 0 ]; then
    record "$name" ok "$secs" "$detail"
  elif [ $rc = 0 ]; then
    record "$name" fail "$secs" "$detail: a GPU test skipped itself on a GPU host ($(grep -m 1 -A1 'Skipped' "$txt" | tail -n 1))"
  else
    record "$name" fail "$secs" "$detail, exit $rc$([ $rc = 124 ] && echo ' (time limit)'); failed: ${names:-see $txt}"
  fi
}
if [ "$built" = 1 ]; then
  # All of test_model_cuda but the one test that needs NO device (it skips itself here).
  gtest test_model_cuda '*-CudaBackend.NoDeviceIsAClearError' 60
  gtest test_compress '*/cuda' 20
fi

# ---- 5. Murmur against PyTorch ---------------------------------------------------------

if [ "$built" = 1 ]; then
  torch_why=""
  if ! command -v python3 >/dev/null; then
    torch_why="no python3"
  elif ! torch_why=$(python3 -c 'import torch; assert torch.cuda.is_available(), "torch.cuda.is_available() is false"' 2>&1); then
    torch_why="python3 cannot use torch with CUDA: $(printf '%s' "$torch_why" | tail -n 1)"
  else
    torch_why=""
  fi
  if [ -n "$torch_why" ]; then
    record torch skipped 0 "$torch_why"
  elif run_limited 240 40 python3 "$root/bench/model_cuda_vs_torch.py" --binary "$build/murmur" --batch 16 \
    --steps 10 --warmup 3 >"$out/model_cuda_vs_torch.json" 2>"$out/model_cuda_vs_torch.err"; then
    if [ $rc = 0 ]; then
      record torch ok "$secs" "$(tr -d '\n' <"$out/model_cuda_vs_torch.json" | grep -o '"speedup_vs_torch_[a-z]*": [0-9.]*' | tr '\n' ' ')"
    else
      record torch fail "$secs" "exit $rc$([ $rc = 124 ] && echo ' (time limit)'): $(tail_of "$out/model_cuda_vs_torch.err" 3)"
    fi
  else
    record torch skipped 0 "time budget"
  fi
fi

# ---- 6. GPU codecs ----------------------------------------------------------------------

codecs=(fp32 fp16 bf16 int8:block=64 "int8:block=64,stochastic" int4:block=64 "int4:block=64,stochastic" int2:block=64
  sign:block=256 topk:fraction=0.01 "topk:fraction=0.01,approx" randk:fraction=0.01 powersgd:rank=4)
if [ "$built" = 1 ]; then
  : >"$out/codec_bench.jsonl"
  t0=$(date +%s)
  runs=0 bad=0 cut=0
  for n in 10000000 100000000; do
    for c in "${codecs[@]}"; do
      if ! run_limited 60 5 "$build/murmur" bench compress --codec "$c" --elements "$n" --device cuda \
        --repeats 5 --json >>"$out/codec_bench.jsonl" 2>>"$out/codec_bench.err"; then
        cut=1
        break 2
      fi
      runs=$((runs + 1))
      [ $rc = 0 ] || bad=$((bad + 1))
    done
  done
  detail="$runs runs, $bad failed$([ $cut = 1 ] && echo ', stopped by the time budget')"
  if [ $bad -gt 0 ]; then
    record codecs fail $(($(date +%s) - t0)) "$detail: $(tail_of "$out/codec_bench.err" 2)"
  else
    record codecs ok $(($(date +%s) - t0)) "$detail"
  fi
fi

# ---- summary ----------------------------------------------------------------------------

total=$(elapsed)
comma() { if [ "$1" -lt $(($2 - 1)) ]; then echo ,; fi; }  # index, count: a separator unless last
{
  echo "{"
  echo "  \"commit\": $(json_str "$commit"), \"dirty\": $dirty, \"date\": $(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),"
  echo "  \"host\": {\"gpu\": $(json_str "$gpu"), \"nvcc\": $(json_str "$nvcc_version"), \"cxx\": $(json_str "$cxx_version"), \"os\": $(json_str "$os $arch"), \"jobs\": $jobs},"
  echo "  \"budget_s\": $budget, \"elapsed_s\": $total, \"ok\": $([ $failed = 0 ] && echo true || echo false),"
  echo "  \"stages\": ["
  for i in "${!stage_names[@]}"; do
    sep=$(comma "$i" ${#stage_names[@]})
    echo "    {\"name\": $(json_str "${stage_names[$i]}"), \"status\": $(json_str "${stage_status[$i]}"), \"seconds\": ${stage_seconds[$i]}, \"detail\": $(json_str "${stage_detail[$i]}")}$sep"
  done
  echo "  ],"
  echo "  \"tests\": ["
  for i in "${!test_rows[@]}"; do
    IFS='|' read -r name filter passed nfailed skipped code names <<<"${test_rows[$i]}"
    sep=$(comma "$i" ${#test_rows[@]})
    echo "    {\"binary\": $(json_str "$name"), \"filter\": $(json_str "$filter"), \"passed\": $passed, \"failed\": $nfailed, \"skipped\": $skipped, \"exit\": $code, \"failed_tests\": $(json_str "$names")}$sep"
  done
  echo "  ],"
  echo "  \"model_cuda_vs_torch\": $(json_value "$out/model_cuda_vs_torch.json"),"
  echo "  \"codec_bench\": ["
  if [ -s "$out/codec_bench.jsonl" ]; then
    mapfile -t lines <"$out/codec_bench.jsonl"
    for i in "${!lines[@]}"; do
      printf '%s' "${lines[$i]}" >"$out/.line"
      sep=$(comma "$i" ${#lines[@]})
      echo "    $(json_value "$out/.line")$sep"
    done
    rm -f "$out/.line"
  fi
  echo "  ]"
  echo "}"
} >"$out/summary.json"

field() {  # JSON line, key[, printf format]: a string or number field of a flat object
  local v
  v=$(printf '%s' "$1" | grep -o "\"$2\": *\"[^\"]*\"" | head -n 1)
  [ -n "$v" ] || v=$(printf '%s' "$1" | grep -o "\"$2\": *[^,}]*" | head -n 1)
  v=$(printf '%s' "$v" | sed 's/^[^:]*: *//; s/"//g')
  if [ -n "${3:-}" ] && [ -n "$v" ]; then
    awk -v v="$v" -v f="$3" 'BEGIN {printf f, v}'
  else
    printf '%s' "$v"
  fi
}
{
  echo "# Murmur GPU check"
  echo
  echo "Commit \`$commit\`$([ "$dirty" = true ] && echo ' (uncommitted changes)'), $(date -u +%Y-%m-%d), ${total}s of ${budget}s."
  echo "GPU: ${gpu:-none}. nvcc: $nvcc_version. C++: $cxx_version. OS: $os $arch."
  echo
  echo "**Result: $([ $failed = 0 ] && echo 'every stage passed or was skipped' || echo 'FAILED')**"
  echo
  echo "| stage | status | seconds | detail |"
  echo "|---|---|---:|---|"
  for i in "${!stage_names[@]}"; do
    echo "| ${stage_names[$i]} | ${stage_status[$i]} | ${stage_seconds[$i]} | ${stage_detail[$i]//|/\\|} |"
  done
  if [ ${#test_rows[@]} -gt 0 ]; then
    echo
    echo "| test binary | filter | passed | failed | skipped | failed tests |"
    echo "|---|---|---:|---:|---:|---|"
    for row in "${test_rows[@]}"; do
      IFS='|' read -r name filter passed nfailed skipped code names <<<"$row"
      echo "| $name | \`$filter\` | $passed | $nfailed | $skipped | ${names:-} |"
    done
  fi
  if [ -s "$out/model_cuda_vs_torch.json" ]; then
    echo
    echo "## Murmur against PyTorch (bench/model_cuda_vs_torch.py, gpt2-124m, B=16, T=1024, bf16)"
    echo
    echo '```json'
    cat "$out/model_cuda_vs_torch.json"
    echo '```'
  fi
  if [ -s "$out/codec_bench.jsonl" ]; then
    echo
    echo "## GPU codecs (murmur bench compress --device cuda, GB/s of fp32 input)"
    echo
    echo "| codec | elements | encode GB/s | decode GB/s | device copy GB/s | ratio | rel. error |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    while IFS= read -r l; do
      echo "| $(field "$l" codec) | $(field "$l" elements) | $(field "$l" encode_gbps %.1f) |" \
        "$(field "$l" decode_gbps %.1f) | $(field "$l" memcpy_gbps %.1f) | $(field "$l" ratio %.2f) |" \
        "$(field "$l" rel_error %.3g) |"
    done <"$out/codec_bench.jsonl"
  fi
} >"$out/summary.md"
echo "gpu_check: $([ $failed = 0 ] && echo "done" || echo FAILED) in ${total}s; $out/summary.md and summary.json"
exit $failed
