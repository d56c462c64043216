"""Targets the live tests build by hand (no profile file needed)."""

from __future__ import annotations

from pathlib import Path

from pytest_llmserve.profile.model import Target

EMBEDDED_ENV = (("VLLM_CPU_KVCACHE_SPACE", "1"),)


def bf16_target(name: str, model: Path, **changes: object) -> Target:
    fields: dict[str, object] = {
        "name": name,
        "framework": "vllm",
        "model": str(model),
        "precision": "bf16",
        "max_model_len": 2048,
        "args": ("--enforce-eager",),
        "env": EMBEDDED_ENV,
        "startup_timeout_s": 300.0,
    }
    fields.update(changes)
    return Target(**fields)  # type: ignore[arg-type]
