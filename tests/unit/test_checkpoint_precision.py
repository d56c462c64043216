"""checkpoint_precision: what a local HF checkpoint's config.json declares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.checklist.precision import checkpoint_precision


def checkpoint(tmp_path: Path, config: dict[str, Any]) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return tmp_path


def compressed_tensors(weights: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "dtype": "bfloat16",
        "quantization_config": {
            "quant_method": "compressed-tensors",
            "format": "int-quantized",
            "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights, **extra}},
            "ignore": ["lm_head"],
        },
    }


@pytest.mark.parametrize(
    ("key", "dtype", "expected"),
    [
        ("dtype", "bfloat16", "bf16"),
        ("torch_dtype", "bfloat16", "bf16"),
        ("torch_dtype", "float16", "fp16"),
        ("dtype", "float32", "fp32"),
        ("dtype", "float64", None),
    ],
)
def test_unquantized_checkpoint_reports_its_dtype(
    tmp_path: Path, key: str, dtype: str, expected: str | None
) -> None:
    config = {"architectures": ["LlamaForCausalLM"], key: dtype}
    assert checkpoint_precision(checkpoint(tmp_path, config)) == expected


def test_unquantized_checkpoint_without_dtype_cannot_tell(tmp_path: Path) -> None:
    assert checkpoint_precision(checkpoint(tmp_path, {"model_type": "llama"})) is None


def test_compressed_tensors_w8a8_int8_is_int8(tmp_path: Path) -> None:
    config = compressed_tensors(
        {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "channel"},
        input_activations={"num_bits": 8, "type": "int", "dynamic": True},
    )
    assert checkpoint_precision(checkpoint(tmp_path, config)) == "int8"


def test_compressed_tensors_w4a16_is_int4_not_the_bf16_dtype(tmp_path: Path) -> None:
    config = compressed_tensors(
        {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 64}
    )
    assert checkpoint_precision(checkpoint(tmp_path, config)) == "int4"


def test_compressed_tensors_fp8_is_fp8(tmp_path: Path) -> None:
    config = compressed_tensors({"num_bits": 8, "type": "float", "strategy": "tensor"})
    assert checkpoint_precision(checkpoint(tmp_path, config)) == "fp8"


@pytest.mark.parametrize(("bits", "expected"), [(4, "int4"), (8, "int8"), (3, None)])
def test_gptq_style_bits(tmp_path: Path, bits: int, expected: str | None) -> None:
    config = {
        "torch_dtype": "float16",
        "quantization_config": {"quant_method": "gptq", "bits": bits, "group_size": 128},
    }
    assert checkpoint_precision(checkpoint(tmp_path, config)) == expected


def test_awq_style_w_bit(tmp_path: Path) -> None:
    config = {"quantization_config": {"quant_method": "awq", "w_bit": 4, "q_group_size": 128}}
    assert checkpoint_precision(checkpoint(tmp_path, config)) == "int4"


def test_fp8_quant_method_without_bits_is_fp8(tmp_path: Path) -> None:
    config = {
        "torch_dtype": "bfloat16",
        "quantization_config": {"quant_method": "fp8", "activation_scheme": "dynamic"},
    }
    assert checkpoint_precision(checkpoint(tmp_path, config)) == "fp8"


def test_unknown_quantization_cannot_tell(tmp_path: Path) -> None:
    config = {"torch_dtype": "bfloat16", "quantization_config": {"quant_method": "bitsandbytes"}}
    assert checkpoint_precision(checkpoint(tmp_path, config)) is None


def test_missing_config_cannot_tell(tmp_path: Path) -> None:
    assert checkpoint_precision(tmp_path) is None
    assert checkpoint_precision(tmp_path / "does-not-exist") is None
