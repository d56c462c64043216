"""The vLLM CPU target the live tests serve, as a Target or as TOML profile lines.

Both forms read the constants below, so a profile a test writes and a Target it
builds cannot drift apart. Its precision is the embedded default's baseline on this
CPU (bf16 where the CPU computes bf16 natively, else fp32), so the live tier
measures what users of this machine get, at the speed the floors assume.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pytest_llmserve.options import BASELINE_ENV
from pytest_llmserve.profile.default import baseline_precision
from pytest_llmserve.profile.model import Target

FRAMEWORK = "vllm"
PRECISION = baseline_precision(os.environ.get(BASELINE_ENV) or "auto")
MAX_MODEL_LEN = 2048
ARGS = ("--enforce-eager",)
# vLLM's "auto" dtype turns an fp32 checkpoint into bf16 on CPU, so a server the tests
# start without a float precision (the external one, the precision traps) names it.
DTYPE_ARGS = ("--dtype", {"bf16": "bfloat16", "fp32": "float32"}[PRECISION])
# A quantization vLLM CPU accepts and ignores ("Quantizing 0 layers"), at bf16 or fp16
# only: it refuses it at fp32 ("torch.float32 is not supported for quantization method").
IGNORED_QUANTIZATION = ("--dtype", "bfloat16", "--quantization", "int8_per_channel_weight_only")
# The accuracy gate's trap: int8 declared on the baseline checkpoint, serving exactly what
# the baseline serves. At bf16 through the ignored quantization; at fp32, where vLLM
# refuses that flag, with nothing at all behind the declaration.
TRAP_ARGS = (*ARGS, *(DTYPE_ARGS if PRECISION == "fp32" else IGNORED_QUANTIZATION))
EMBEDDED_ENV = (("VLLM_CPU_KVCACHE_SPACE", "1"),)
STARTUP_TIMEOUT_S = 300


def baseline_target(name: str, model: Path, **changes: object) -> Target:
    fields: dict[str, object] = {
        "name": name,
        "framework": FRAMEWORK,
        "model": str(model),
        "precision": PRECISION,
        "max_model_len": MAX_MODEL_LEN,
        "args": ARGS,
        "env": EMBEDDED_ENV,
        "startup_timeout_s": float(STARTUP_TIMEOUT_S),
    }
    fields.update(changes)
    return Target(**fields)  # type: ignore[arg-type]


def toml_value(value: object) -> str:
    """``value`` as TOML: JSON strings, numbers and booleans are valid TOML; tables
    become inline tables, also inside arrays."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _toml_lines(values: dict[str, object]) -> str:
    return "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items() if v is not None)


# The short throughput run of the live tests that judge a floor across sessions (the
# history gate, the nightly shards): 48 requests at 8 at once on the embedded F16 GGUF.
SHORT_THROUGHPUT: dict[str, dict[str, object]] = {
    "workload": {"input_tokens": 32, "output_tokens": 16},
    "throughput": {"min_output_tok_s": 1, "concurrency": 8, "requests": 48, "warmup": 2},
}


def checks_toml(table: str, checks: dict[str, dict[str, object]]) -> str:
    """``checks`` as TOML tables ``[<table>.checks.<name>]`` (``table``: "targets" for the
    last target, "defaults" for every target)."""
    return "".join(f"\n[{table}.checks.{name}]\n{_toml_lines(values)}"
                   for name, values in checks.items())  # fmt: skip


def llamacpp_toml(model: str | Path, **fields: object) -> str:
    """The ``key = value`` lines of one llama.cpp target serving an F16 GGUF (a file or
    ``embedded:smollm2``), as ``vllm_cpu_toml``."""
    values: dict[str, object] = {
        "name": None,
        "framework": "llamacpp",
        "model": str(model),
        "precision": "fp16",
        "max_model_len": MAX_MODEL_LEN,
        "startup_timeout_s": STARTUP_TIMEOUT_S,
    }
    return _toml_lines(values | fields)


def vllm_cpu_toml(model: str | Path, **fields: object) -> str:
    """The ``key = value`` lines of one vLLM CPU target, for a ``[[targets]]`` or
    ``[defaults]`` table; ``fields`` override or add keys, and a key set to None is
    left out (so the loader's default applies)."""
    values: dict[str, object] = {
        "name": None,  # first when given, for whoever reads the profile
        "framework": FRAMEWORK,
        "model": str(model),
        "precision": PRECISION,
        "max_model_len": MAX_MODEL_LEN,
        "args": list(ARGS),
        "env": dict(EMBEDDED_ENV),
        "startup_timeout_s": STARTUP_TIMEOUT_S,
    }
    return _toml_lines(values | fields)
