"""Did the declared precision really apply? Evidence from the checkpoint and the engine.

A server that starts at a precision it silently ignored (vLLM's
``--quantization int8_per_channel_weight_only`` on CPU logs "Quantizing 0 layers"
and serves bf16) passes every functional check; only this catches it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_llmserve.launch.server import Server

_QUANTIZED = ("int8", "int4", "fp8")
_FLOAT_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def checkpoint_precision(model_dir: Path) -> str | None:
    """The precision a local HF checkpoint declares in config.json (None: cannot tell)."""
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        return None
    config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
    quant = config.get("quantization_config")
    if not quant:
        dtype = config.get("dtype") or config.get("torch_dtype")
        return _FLOAT_PRECISION.get(str(dtype))
    weights = [group.get("weights") or {} for group in (quant.get("config_groups") or {}).values()]
    if weights:  # compressed-tensors
        w = weights[0]
        if w.get("type") == "float" and w.get("num_bits") == 8:
            return "fp8"
        return {8: "int8", 4: "int4"}.get(int(w.get("num_bits", 0)))
    bits = quant.get("bits") or quant.get("w_bit")  # GPTQ / AWQ
    if bits:
        return {8: "int8", 4: "int4"}.get(int(bits))
    return "fp8" if "fp8" in str(quant.get("quant_method", "")) else None


def precision_problems(server: Server) -> list[str]:
    """Every reason to believe ``server`` does not serve its target's declared precision."""
    target = server.target
    problems = server.framework.precision_problems(target, server.facts)
    model_dir = server.local_model
    if model_dir is not None and model_dir.is_dir():
        on_disk = checkpoint_precision(model_dir)
        # A float checkpoint may be quantized online by the engine (the engine facts judge
        # that); a quantized checkpoint is served at its own precision, whatever is declared.
        if on_disk in _QUANTIZED and on_disk != target.precision:
            problems.append(
                f"checkpoint {model_dir} is quantized to {on_disk}, declared {target.precision}"
            )
    return problems
