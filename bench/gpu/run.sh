#!/usr/bin/env bash
# The GPU checks of the cuda backend, in one script with two sides.
#
# Here (a machine with Node and nvcc, no GPU):   bash bench/gpu/run.sh --pack      (or --dry-run)
#   builds dist/ and the addon, and packs into build/gpu-pack/ what the GPU machine lacks:
#   node.xz (this machine's node binary, xz-compressed; made here, never committed), payload.tar.xz
#   (dist/, the addon built here as a fallback, node_modules needed at run time, among them the `webgpu`
#   package with only its linux-x64 dawn.node), and debs/: the Vulkan loader and GLVND from Debian
#   (apt-get download; the NVIDIA Vulkan ICD needs GLVND's libGLX / libGLdispatch to load).
# There (CUDA 13, PyTorch, cuBLAS/NCCL wheels, NVIDIA's Vulkan ICD, no Node, no network):  bash bench/gpu/run.sh
#   unpacks, finds cuBLAS/NCCL in the wheels (LAVENDER_CUDA_LIB_PATH), rebuilds the addon against the
#   wheels' headers when cmake is there (the cuBLAS/NCCL prototype check then runs for real), brings up
#   Vulkan for the webgpu backend (the debs unpacked with dpkg -x, VK_DRIVER_FILES = NVIDIA's ICD), and runs:
#   the steps in STEPS below, in priority order, within a time budget: probe + lavender info, test/cuda.test
#   (GPU tests), elementwise bandwidth vs torch (torch_ew.py), the full 4.78B LavenderFlow step in bf16 at
#   batch 16 (t2i-step.ts) vs PyTorch eager and torch.compile (torch_t2i_step.py), the MMDiT block step
#   (bf16 and fp32) vs PyTorch, the DiT-MNIST step at batch 64/256 (cuda, webgpu, PyTorch), `lavender train
#   t2i --backend cuda --precision bf16` (small preset, then the 4.78B one at batch 16 with --ema-device cpu
#   --no-save: its last line gives tokens/s, MFU and peak memory), bf16 vs fp32 loss curves, DiT and MMDiT parity on cuda
#   (outputs < 1e-4, gradients < 1e-3 vs PyTorch), the cross-backend suite,
#   matmul f32/bf16 vs torch.mm, then the webgpu steps (adapter info, kernel tests, parity, matmul), then a
#   1-rank NCCL process-group round trip and a ZeRO-2 train t2i run over NCCL. The GPU tests and the suite
#   run with LAVENDER_REQUIRE_CUDA=1: a missing device fails them instead of skipping.
#   --only REGEX runs the steps whose name matches (e.g. --only webgpu; the probe always runs).
#   Results: $OUT/gpu-results.jsonl (or build/gpu-results/ when $OUT is unset) and a log beside it.
# --dry-run: pack, unpack into a scratch copy, check that every step is wired, stop before the GPU (the
#   webgpu steps run here at small sizes where a Vulkan driver, e.g. lavapipe, is installed).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PACK=$ROOT/build/gpu-pack
MODE=gpu
ONLY=
while [ $# -gt 0 ]; do
  case "$1" in
    --pack) MODE=pack ;;
    --dry-run) MODE=dry ;;
    --only) ONLY=${2:-}; shift ;;
    *) echo "usage: bench/gpu/run.sh [--pack | --dry-run] [--only REGEX]" >&2; exit 2 ;;
  esac
  shift
done
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
  # the webgpu package (Dawn for Node): its JS and the linux-x64 dawn.node only (21 MB, ~5 MB in the xz payload)
  local webgpu=""
  if [ -f node_modules/webgpu/dist/linux-x64/dawn.node ]; then
    webgpu="node_modules/webgpu/package.json node_modules/webgpu/index.js node_modules/webgpu/dist/linux-x64/dawn.node"
    [ -d node_modules/webgpu/build ] && webgpu="$webgpu node_modules/webgpu/build"
  else
    say "warning: node_modules/webgpu/dist/linux-x64/dawn.node is missing (npm install): the webgpu steps will report 'webgpu unavailable'"
  fi
  tar -cJf "$PACK/payload.tar.xz" dist build/native/Release/lavender_cuda.node build/native/lavender-build.json $mods $webgpu package.json || return 1
  # the Vulkan loader and GLVND (the NVIDIA ICD is libGLX_nvidia.so.0: it needs libGLX/libGLdispatch to load)
  rm -rf "$PACK/debs" && mkdir -p "$PACK/debs"
  if ! (cd "$PACK/debs" && apt-get download $VK_DEBS >/dev/null 2>&1); then
    say "warning: apt-get download $VK_DEBS failed: the GPU machine must have a Vulkan loader of its own"
  fi
  say "pack: $(du -h "$PACK/node.xz" | cut -f1) node.xz, $(du -h "$PACK/payload.tar.xz" | cut -f1) payload.tar.xz, $(du -sh "$PACK/debs" | cut -f1) debs ($(ls "$PACK/debs" | wc -l) files) in build/gpu-pack/ ($(du -sh "$PACK" | cut -f1) in all)"
}

VK_DEBS="libvulkan1 libglvnd0 libgl1 libglx0 libegl1 libgles2 libopengl0"

# unpack one .deb's files under $2: dpkg -x, else ar + tar, else Python (a .deb is an ar archive)
deb_x() {
  if command -v dpkg >/dev/null; then dpkg -x "$1" "$2"; return; fi
  python3 - "$1" "$2" <<'PY'
import io, lzma, sys, tarfile
data = open(sys.argv[1], 'rb').read()
pos = 8  # b'!<arch>\n'
while pos < len(data):
    name, size = data[pos:pos + 16].decode().strip(), int(data[pos + 48:pos + 58].decode().strip())
    body = data[pos + 60:pos + 60 + size]
    if name.startswith('data.tar'):
        tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[2])
    pos += 60 + size + (size & 1)
PY
}

probe_webgpu() {
  node -e "import('./dist/src/backends/webgpu/index.js').then(m => { const p = m.webgpuEntry.probe(); console.log(JSON.stringify(p)); process.exit(p.available ? 0 : 1); })" 2>/dev/null
}

# Vulkan for the webgpu backend: NVIDIA's ICD through the loader from the pack. First a private root
# (LD_LIBRARY_PATH); when Dawn still finds no adapter and we are root, the debs go into / (what worked
# on the H200, 2026-11-28).
setup_vulkan() {
  local icd=${VK_DRIVER_FILES:-}
  if [ -z "$icd" ]; then
    for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
             /usr/local/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json; do
      [ -f "$f" ] && { icd=$f; break; }
    done
  fi
  if [ -z "$icd" ]; then say "vulkan: no nvidia_icd.json found (set VK_DRIVER_FILES): the webgpu steps will report why"; return 0; fi
  export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd
  say "vulkan: VK_DRIVER_FILES=$icd"
  if probe_webgpu > "$RESULTS/webgpu-probe.log"; then say "vulkan: webgpu already up: $(cat "$RESULTS/webgpu-probe.log")"; return 0; fi
  if ! ls "$PACK"/debs/*.deb >/dev/null 2>&1; then say "vulkan: no debs in the pack and no working loader here"; return 0; fi
  local vk=$ROOT/build/vk-root
  mkdir -p "$vk"
  for d in "$PACK"/debs/*.deb; do deb_x "$d" "$vk" || say "vulkan: could not unpack $d"; done
  export LD_LIBRARY_PATH="$vk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if probe_webgpu > "$RESULTS/webgpu-probe.log"; then say "vulkan: webgpu up with the loader in build/vk-root: $(cat "$RESULTS/webgpu-probe.log")"; return 0; fi
  if [ "$(id -u)" = 0 ]; then
    for d in "$PACK"/debs/*.deb; do deb_x "$d" / || true; done
    ldconfig 2>/dev/null || true
    if probe_webgpu > "$RESULTS/webgpu-probe.log"; then say "vulkan: webgpu up with the debs unpacked into /: $(cat "$RESULTS/webgpu-probe.log")"; return 0; fi
  fi
  say "vulkan: webgpu still unavailable: $(cat "$RESULTS/webgpu-probe.log")"
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

# Steps in priority order (issue 10 first: the build, the GPU tests, bandwidth, the MMDiT and full-model
# steps against PyTorch), each "name|cap seconds|command". The whole run must fit one 9-minute device
# call: LAVENDER_GPU_BUDGET_S (default 500) counts from the script's start (unpack and rebuild included);
# each step runs under `timeout` for min(its cap, what is left), and a step is skipped when under 20 s remain.
# (t2i-step: when batch 16 fails, e.g. out of memory, batch 8 still gives a data point)
T2I_DATA=build/t2i-shards
T2I_SMALL=build/t2i-shards-small
STEPS=(
  "probe|30|node -e \"const a=require(process.env.LAVENDER_CUDA_ADDON||'./build/native/Release/lavender_cuda.node');console.log(JSON.stringify({probe:a.probe(),build:a.buildInfo()}))\""
  "info|30|node bin/lavender.js info --json"
  "cuda-tests|60|LAVENDER_REQUIRE_CUDA=1 node --test dist/test/cuda.test.js"
  "elementwise|40|node dist/bench/gpu/bench.js elementwise 26 cuda | tee \$RESULTS/elementwise-lavender.jsonl && python3 bench/gpu/torch_ew.py --lavender \$RESULTS/elementwise-lavender.jsonl"
  "t2i-step|230|node bin/lavender.js make-shards --synthetic-t2i --out $T2I_DATA --samples 32 --latent-size 32 --cond-dim 2048 --tokens 120 >/dev/null && (timeout 110 node dist/bench/gpu/t2i-step.js --data $T2I_DATA --preset lavenderflow-2560-highres --batch 16 --tokens 120 --latent-size 32 --steps 4 --warmup 2 --backend cuda --precision bf16 || timeout 70 node dist/bench/gpu/t2i-step.js --data $T2I_DATA --preset lavenderflow-2560-highres --batch 8 --tokens 120 --latent-size 32 --steps 3 --warmup 1 --backend cuda --precision bf16); timeout 110 python3 bench/gpu/torch_t2i_step.py --preset lavenderflow-2560-highres --batch 16 --tokens 120 --latent 32 --steps 4 --warmup 2 --compile"
  "mmdit-block|60|node dist/bench/gpu/bench.js mmdit bf16 && python3 bench/gpu/torch_t2i_step.py --block --steps 5 --warmup 2 && node dist/bench/gpu/bench.js mmdit fp32"
  "dit-step|60|for b in cuda webgpu; do node bin/lavender.js bench train-step --model dit-mnist --batch 64 --backend \$b --steps 10 --warmup 3 --json; done; node bin/lavender.js bench train-step --model dit-mnist --batch 256 --backend cuda --steps 10 --warmup 3 --json; python3 bench/torch_train_step.py mnist 64 8 10 cuda; python3 bench/torch_train_step.py mnist 256 8 10 cuda"
  "t2i-train|40|node bin/lavender.js make-shards --synthetic-t2i --out $T2I_SMALL --samples 16 --latent-size 16 --cond-dim 256 --tokens 24 >/dev/null && node bin/lavender.js train t2i --data $T2I_SMALL --preset mmdit-small --latent-size 16 --tokens 24 --batch 4 --steps 3 --backend cuda --precision bf16 --out build/t2i-run --overwrite"
  "t2i-478-train|100|([ -d $T2I_DATA ] || node bin/lavender.js make-shards --synthetic-t2i --out $T2I_DATA --samples 32 --latent-size 32 --cond-dim 2048 --tokens 120 >/dev/null) && node bin/lavender.js train t2i --data $T2I_DATA --preset lavenderflow-2560-highres --batch 16 --tokens 120 --latent-size 32 --steps 5 --warmup 1 --backend cuda --precision bf16 --ema-device cpu --no-save --out build/t2i-478 --overwrite"
  "bf16-curve|60|node scripts/bf16-loss-curve.mjs --backend cuda"
  "parity|40|node dist/bench/gpu/bench.js parity"
  "suite|90|LAVENDER_REQUIRE_CUDA=1 node --test dist/test/backends.test.js"
  "matmul|40|node dist/bench/gpu/bench.js matmul 1024 2048 4096 8192 && python3 bench/gpu/torch_mm.py 1024 2048 4096 8192"
  "webgpu-info|20|node dist/bench/gpu/bench.js webgpu-info"
  "webgpu-kernels|60|LAVENDER_REQUIRE_WEBGPU=1 node --test dist/test/webgpu-kernels.test.js dist/test/webgpu.test.js"
  "webgpu-parity|30|node dist/bench/gpu/bench.js parity webgpu"
  "webgpu-matmul|60|node dist/bench/gpu/bench.js webgpu-matmul 1024 2048 4096"
  "nccl-round-trip|30|node dist/bench/gpu/bench.js nccl"
  "zero2-t2i-nccl|40|rm -rf build/gpu-t2i && node bin/lavender.js make-shards --synthetic-t2i --out build/gpu-t2i/shards --samples 16 --latent-size 8 --cond-dim 32 --tokens 8 && node bin/lavender.js train t2i --data build/gpu-t2i/shards --preset mmdit-tiny --latent-size 8 --tokens 8 --steps 2 --batch 4 --backend cuda --dist-backend nccl --nproc 1 --zero 2 --out build/gpu-t2i/run && node -e \"const l=require('fs').readFileSync('build/gpu-t2i/run/metrics.jsonl','utf8').trim().split('\\\\n').map(JSON.parse);if(l.length!==2||!l.every(r=>Number.isFinite(r.loss)))process.exit(1);console.log(JSON.stringify({bench:'zero2-t2i-nccl',steps:l.length,losses:l.map(r=>r.loss),ok:true}))\""
)
BUDGET=${LAVENDER_GPU_BUDGET_S:-500}
export RESULTS

run_steps() {
  local fails=0
  for s in "${STEPS[@]}"; do
    local name=${s%%|*} rest=${s#*|}
    local cap=${rest%%|*} cmd=${rest#*|}
    if [ -n "$ONLY" ] && [ "$name" != probe ] && ! [[ $name =~ $ONLY ]]; then continue; fi
    local left=$((BUDGET - SECONDS))
    if [ "$left" -lt 20 ]; then say "step $name: skipped, ${left}s of the ${BUDGET}s budget left"; continue; fi
    local lim=$(( cap < left ? cap : left ))
    say "step $name (at most ${lim}s): $cmd"
    local t0=$SECONDS st
    timeout -k 5 "$lim" bash -c "$cmd" > "$RESULTS/$name.log" 2>&1
    case $? in 0) st=ok ;; 124|137) st="TIMEOUT after ${lim}s"; fails=$((fails+1)) ;; *) st=FAIL; fails=$((fails+1)) ;; esac
    grep -h '^{' "$RESULTS/$name.log" | sed "s/^{/{\"step\":\"$name\",/" >> "$RESULTS/gpu-results.jsonl"
    grep -E "^# (pass|fail|skipped)" "$RESULTS/$name.log" | tr '\n' ' ' | sed "s/^/[gpu-run]   /"; echo
    say "step $name: $st in $((SECONDS-t0))s (log $RESULTS/$name.log)"
  done
  say "$fails step(s) failed; $((SECONDS))s of the ${BUDGET}s budget used; results in $RESULTS/gpu-results.jsonl"
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
    # compile without writing __pycache__ (py_compile would rewrite the tracked .pyc files)
    python3 -c 'import sys; [compile(open(f).read(), f, "exec") for f in sys.argv[1:]]' bench/gpu/torch_mm.py bench/gpu/torch_ew.py \
      bench/gpu/torch_t2i_step.py bench/torch_train_step.py && say "the PyTorch scripts compile"
    total=0
    for s in "${STEPS[@]}"; do r=${s#*|}; total=$((total + ${r%%|*})); say "wired: ${s%%|*} (cap ${r%%|*}s)"; done
    say "step caps add up to ${total}s; the budget (LAVENDER_GPU_BUDGET_S) is ${BUDGET}s from the script's start"
    for f in dist/test/cuda.test.js dist/test/backends.test.js dist/bench/gpu/bench.js dist/bench/gpu/t2i-step.js bin/lavender.js test/fixtures/dit/small.expected.safetensors; do
      [ -e "$f" ] || { say "missing $f"; exit 1; }
    done
    node dist/bench/gpu/bench.js check | tee "$RESULTS/check.json"
    p=${STEPS[0]#*|}; bash -c "${p#*|}"
    # a Python with PyTorch for the CPU-side checks (here: Debian's /usr/bin/python3)
    PY=python3
    python3 -c 'import torch' 2>/dev/null || PY=/usr/bin/python3
    $PY -c 'import torch' 2>/dev/null || { say "no Python with PyTorch here: cannot check the PyTorch references"; exit 1; }
    # the new benches at toy sizes on the cpu backend / CPU PyTorch: the same model on both sides
    # (parameter counts agree), the elementwise bench and its comparison, the train t2i command
    d=$(mktemp -d)
    node bin/lavender.js make-shards --synthetic-t2i --out "$d/shards" --samples 8 --latent-size 8 --cond-dim 32 --tokens 8 >/dev/null \
      && node dist/bench/gpu/t2i-step.js --data "$d/shards" --preset mmdit-tiny --batch 4 --tokens 8 --latent-size 8 --steps 1 --warmup 1 --backend cpu --precision bf16 > "$d/lav.json" \
      && $PY bench/gpu/torch_t2i_step.py --preset mmdit-tiny --batch 4 --tokens 8 --latent 8 --steps 1 --warmup 1 --device cpu --compile > "$d/torch.json" \
      && $PY - "$d/lav.json" "$d/torch.json" <<'PY' || { say "the t2i-step benches disagree or failed"; exit 1; }
import json, sys
lav, torch = json.loads(open(sys.argv[1]).readline()), json.loads(open(sys.argv[2]).readline())
keys = ('parameters', 'batch', 'text_tokens', 'image_tokens')
assert all(lav[k] == torch[k] for k in keys), {k: (lav[k], torch[k]) for k in keys}
print('[gpu-run] t2i-step: lavender and PyTorch run the same model and batch here (%d parameters, %d + %d tokens)' % (lav['parameters'], lav['text_tokens'], lav['image_tokens']))
PY
    node dist/bench/gpu/bench.js elementwise 16 cpu > "$d/ew.jsonl" && $PY bench/gpu/torch_ew.py --log2n 16 --device cpu --lavender "$d/ew.jsonl" | grep -q elementwise-ratio \
      && say "elementwise bench and its comparison run here (cpu, 2^16: functional only)" || { say "the elementwise bench failed"; exit 1; }
    node bin/lavender.js make-shards --synthetic-t2i --out "$d/small" --samples 8 --latent-size 16 --cond-dim 256 --tokens 24 >/dev/null \
      && node bin/lavender.js train t2i --data "$d/small" --preset mmdit-small --latent-size 16 --tokens 24 --batch 4 --steps 1 --backend cpu --precision bf16 --out "$d/run" > "$d/train.log" 2>&1 \
      && say "train t2i --precision bf16 with the t2i-train step's flags runs here on cpu" || { say "train t2i failed: $(tail -3 "$d/train.log")"; exit 1; }
    node bin/lavender.js train t2i --data "$d/small" --preset mmdit-small --latent-size 16 --tokens 24 --batch 4 --steps 2 --warmup 1 --backend cpu --precision bf16 --ema-device cpu --no-save --out "$d/run478" > "$d/train478.log" 2>&1 \
      && grep -q 'tokens/s, peak memory' "$d/train478.log" && [ ! -e "$d/run478/checkpoint.safetensors" ] \
      && say "train t2i with the t2i-478-train step's flags (--ema-device cpu --no-save) runs here on cpu and prints its throughput" || { say "the t2i-478-train flags failed: $(tail -3 "$d/train478.log")"; exit 1; }
    rm -rf "$d"
    # the payload carries Dawn and the pack the Vulkan debs
    tar -tJf "$PACK/payload.tar.xz" > "$RESULTS/payload.list"
    grep -q 'node_modules/webgpu/dist/linux-x64/dawn.node' "$RESULTS/payload.list" && say "payload carries dawn.node" || { say "payload lacks dawn.node"; exit 1; }
    for p in $VK_DEBS; do ls "$PACK"/debs/${p}_*.deb >/dev/null 2>&1 || { say "missing deb $p in build/gpu-pack/debs"; exit 1; }; done
    d=$(mktemp -d) && for f in "$PACK"/debs/*.deb; do deb_x "$f" "$d"; done && [ -e "$d/usr/lib/x86_64-linux-gnu/libvulkan.so.1" ] && [ -e "$d/usr/lib/x86_64-linux-gnu/libGLX.so.0" ] \
      && say "debs unpack: libvulkan.so.1 and libGLX.so.0 are there" || { say "the debs do not unpack to libvulkan.so.1 / libGLX.so.0"; exit 1; }
    rm -rf "$d"
    # the webgpu steps' wiring at small sizes, on whatever Vulkan driver is here (lavapipe: functional, not performance)
    if probe_webgpu > "$RESULTS/webgpu-probe.log"; then
      node dist/bench/gpu/bench.js webgpu-info && node dist/bench/gpu/bench.js webgpu-matmul 128 > "$RESULTS/webgpu-matmul-dry.jsonl" \
        && node bin/lavender.js bench train-step --model dit-mnist --batch 2 --backend webgpu --steps 1 --warmup 0 --json \
        && say "webgpu steps run here (functional check)" || { say "a webgpu step failed here"; exit 1; }
    else
      say "no WebGPU adapter here ($(cat "$RESULTS/webgpu-probe.log")): the webgpu steps are checked for wiring only"
    fi
    say "dry run: everything up to the GPU is in place; stopping before the steps that need a device:"
    say "  on the GPU machine run: bash bench/gpu/run.sh   (with build/gpu-pack carried)"
    rm -rf "$scratch"
    ;;
  gpu)
    [ -f "$PACK/node.xz" ] || { say "no build/gpu-pack: run 'bash bench/gpu/run.sh --pack' on a machine with node first"; exit 2; }
    unpack "$ROOT/build/gpu-node" keep-node || exit 1
    find_wheels
    rebuild_there
    setup_vulkan
    run_steps
    ;;
esac
