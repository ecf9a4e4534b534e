#!/usr/bin/env bash
# The GPU checks of the cuda backend, in one script with two sides.
#
# Here (a machine with Node and nvcc, no GPU):   bash bench/gpu/run.sh --pack      (or --dry-run)
#   builds dist/ and the addon, and packs into build/gpu-pack/ what the GPU machine lacks:
#   node.xz (this machine's node binary, xz-compressed; made here, never committed) and payload.tar.xz
#   (dist/, the addon built here as a fallback, node_modules needed at run time).
# There (CUDA 13, PyTorch, cuBLAS/NCCL wheels, no Node):  bash bench/gpu/run.sh
#   unpacks, finds cuBLAS/NCCL in the wheels (LAVENDER_CUDA_LIB_PATH), rebuilds the addon against the
#   wheels' headers when cmake is there (the cuBLAS/NCCL prototype check then runs for real), and runs:
#   1 probe + lavender info, 2 test/cuda.test (GPU tests), 3 the cross-backend suite on cuda,
#   4 DiT parity on cuda, 5 matmul f32/bf16 vs torch.mm, 6 one MMDiT block training step (MFU).
#   Results: $OUT/gpu-results.jsonl (or build/gpu-results/ when $OUT is unset) and a log beside it.
# --dry-run: pack, unpack into a scratch copy, check that every step is wired, stop before the GPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PACK=$ROOT/build/gpu-pack
MODE=gpu
case "${1:-}" in
  --pack) MODE=pack ;;
  --dry-run) MODE=dry ;;
  "") ;;
  *) echo "usage: bench/gpu/run.sh [--pack | --dry-run]" >&2; exit 2 ;;
esac
RESULTS=${OUT:-$ROOT/build/gpu-results}
mkdir -p "$RESULTS"
say() { echo "[gpu-run] $*"; }

pack() {
  say "building dist/ and the addon here"
  npm run --silent build:ts || return 1
  LAVENDER_NATIVE_STRICT=1 node scripts/build-native.mjs || return 1
  mkdir -p "$PACK"
  say "packing node $(node --version) from $(command -v node)"
  xz -T0 -6 -c "$(command -v node)" > "$PACK/node.xz" || return 1
  local mods="node_modules/fast-check node_modules/pure-rand node_modules/node-addon-api node_modules/node-api-headers"
  tar -cJf "$PACK/payload.tar.xz" dist build/native/Release/lavender_cuda.node build/native/lavender-build.json $mods package.json || return 1
  say "pack: $(du -h "$PACK/node.xz" | cut -f1) node.xz, $(du -h "$PACK/payload.tar.xz" | cut -f1) payload.tar.xz in build/gpu-pack/"
}

unpack() {  # $1: where the node binary goes (skipped when $2 is "keep-node" and node exists)
  tar -xJf "$PACK/payload.tar.xz" -C "$ROOT" || return 1
  if [ "${2:-}" = keep-node ] && command -v node >/dev/null; then say "using the installed node $(node --version)"; return 0; fi
  mkdir -p "$1"
  xz -dc "$PACK/node.xz" > "$1/node" && chmod +x "$1/node" || return 1
  export PATH="$1:$PATH"
  say "node $(node --version) unpacked"
}

# cuBLAS / NCCL libraries and headers from the Python wheels (CUDA 13: nvidia/cu13, CUDA 12: nvidia/<lib>)
find_wheels() {
  local py
  py=$(python3 - <<'PY' 2>/dev/null
import glob, os, site, sys
libs, incs = [], []
for s in site.getsitepackages() + [site.getusersitepackages()] + sys.path:
    for sub in ('nvidia/cu13', 'nvidia/cu12', 'nvidia/cublas', 'nvidia/nccl', 'nvidia/cuda_runtime'):
        d = os.path.join(s, sub)
        if os.path.isdir(os.path.join(d, 'lib')) and d + '/lib' not in libs: libs.append(d + '/lib')
        if os.path.isdir(os.path.join(d, 'include')) and d + '/include' not in incs: incs.append(d + '/include')
print(':'.join(libs)); print(':'.join(incs))
PY
)
  export LAVENDER_CUDA_LIB_PATH="$(echo "$py" | sed -n 1p)${LAVENDER_CUDA_LIB_PATH:+:$LAVENDER_CUDA_LIB_PATH}"
  export LAVENDER_CUDA_INCLUDE_PATH="$(echo "$py" | sed -n 2p)${LAVENDER_CUDA_INCLUDE_PATH:+:$LAVENDER_CUDA_INCLUDE_PATH}"
  say "LAVENDER_CUDA_LIB_PATH=$LAVENDER_CUDA_LIB_PATH"
  say "LAVENDER_CUDA_INCLUDE_PATH=$LAVENDER_CUDA_INCLUDE_PATH"
}

# rebuild the addon there with cmake directly (no cmake-js needed) when cmake and nvcc exist
rebuild_there() {
  local nvcc=${CUDACXX:-$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)}
  if ! command -v cmake >/dev/null || [ -z "$nvcc" ]; then say "no cmake/nvcc here: using the addon built on the packing machine"; return 0; fi
  local b=$ROOT/build/native-gpu
  cmake -S "$ROOT" -B "$b" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$b/Release" \
    -DCMAKE_JS_INC="$ROOT/node_modules/node-api-headers/include" -DLAVENDER_CUDA_ARCHS="${LAVENDER_CUDA_ARCHS:-90}" \
    -DLAVENDER_HEADER_SEARCH="$(echo "$LAVENDER_CUDA_INCLUDE_PATH" | tr ':' ';')" > "$RESULTS/cmake.log" 2>&1 \
    && cmake --build "$b" -j "$(nproc)" >> "$RESULTS/cmake.log" 2>&1 \
    && export LAVENDER_CUDA_ADDON="$b/Release/lavender_cuda.node" \
    && say "rebuilt the addon here: $LAVENDER_CUDA_ADDON" \
    || say "rebuild failed (see cmake.log): using the addon built on the packing machine"
  grep -E "lavender: checking|not found; the" "$RESULTS/cmake.log" | sed 's/^/[gpu-run]   /'
}

STEPS=(
  "probe|node -e \"const a=require(process.env.LAVENDER_CUDA_ADDON||'./build/native/Release/lavender_cuda.node');console.log(JSON.stringify({probe:a.probe(),build:a.buildInfo()}))\""
  "info|node bin/lavender.js info --json"
  "cuda-tests|node --test dist/test/cuda.test.js"
  "suite|node --test dist/test/backends.test.js"
  "dit-parity|node dist/bench/gpu/bench.js parity"
  "matmul|node dist/bench/gpu/bench.js matmul 1024 2048 4096 8192 && python3 bench/gpu/torch_mm.py 1024 2048 4096 8192"
  "mmdit-block|node dist/bench/gpu/bench.js mmdit"
)

run_steps() {
  local fails=0
  for s in "${STEPS[@]}"; do
    local name=${s%%|*} cmd=${s#*|}
    say "step $name: $cmd"
    local t0=$SECONDS
    if bash -c "$cmd" > "$RESULTS/$name.log" 2>&1; then st=ok; else st=FAIL; fails=$((fails+1)); fi
    grep -h '^{' "$RESULTS/$name.log" | sed "s/^{/{\"step\":\"$name\",/" >> "$RESULTS/gpu-results.jsonl"
    grep -E "^# (pass|fail|skipped)" "$RESULTS/$name.log" | tr '\n' ' ' | sed "s/^/[gpu-run]   /"; echo
    say "step $name: $st in $((SECONDS-t0))s (log $RESULTS/$name.log)"
  done
  say "$fails step(s) failed; results in $RESULTS/gpu-results.jsonl"
  return $fails
}

case $MODE in
  pack) pack ;;
  dry)
    pack || { say "pack failed"; exit 1; }
    scratch=$(mktemp -d)
    say "unpacking into a scratch node dir $scratch (the payload overlays this tree, as on the GPU machine)"
    unpack "$scratch/bin" || { say "unpack failed"; exit 1; }
    find_wheels
    python3 -m py_compile bench/gpu/torch_mm.py && say "torch_mm.py compiles"
    for s in "${STEPS[@]}"; do say "wired: ${s%%|*}"; done
    for f in dist/test/cuda.test.js dist/test/backends.test.js dist/bench/gpu/bench.js bin/lavender.js test/fixtures/dit/small.expected.safetensors; do
      [ -e "$f" ] || { say "missing $f"; exit 1; }
    done
    node dist/bench/gpu/bench.js check | tee "$RESULTS/check.json"
    bash -c "${STEPS[0]#*|}"
    say "dry run: everything up to the GPU is in place; stopping before the steps that need a device:"
    say "  on the GPU machine run: bash bench/gpu/run.sh   (with build/gpu-pack carried)"
    rm -rf "$scratch"
    ;;
  gpu)
    [ -f "$PACK/node.xz" ] || { say "no build/gpu-pack: run 'bash bench/gpu/run.sh --pack' on a machine with node first"; exit 2; }
    unpack "$ROOT/build/gpu-node" keep-node || exit 1
    find_wheels
    rebuild_there
    run_steps
    ;;
esac
