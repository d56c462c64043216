"""GGUF variants of an embedded model, made by llama.cpp's own tools from our bf16 weights.

``gguf-convert``: llama.cpp's ``convert_hf_to_gguf.py`` (with the ``gguf-py`` of the
same source) turns the bf16 checkpoint into an F16 (or BF16) GGUF, in the builder
interpreter, which has torch and transformers. ``gguf-quantize``: ``llama-quantize``
of the pinned build makes Q8_0, Q4_K_M, ... from that file. Both tools' source
(the sdist's hash) is part of every GGUF variant's cache key.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_llmserve.builds import llamacpp
from pytest_llmserve.errors import ModelBuildError
from pytest_llmserve.models import builder_env
from pytest_llmserve.models.catalog import GGUF_ENTRY, Variant

KINDS = ("gguf-convert", "gguf-quantize")
# The converter imports sentencepiece before it looks for a sentencepiece tokenizer,
# even for a BPE one like SmolLM2's; the builder's pins do not include it.
CONVERTER_EXTRA = ("sentencepiece==0.2.3",)

Progress = Callable[[str], None]


def is_gguf(variant: Variant) -> bool:
    return variant.recipe["kind"] in KINDS


def toolchain_inputs() -> dict[str, Any]:
    """What, beyond the recipe and the source variant, shapes a GGUF variant's bytes."""
    return {
        "llamacpp_sdist_sha256": llamacpp.SDIST_SHA256,
        "converter_extra": list(CONVERTER_EXTRA),
    }


def command(
    variant: Variant, source_dir: Path, python: str, cache_dir: Path, say: Progress
) -> tuple[Callable[[Path], list[str]], dict[str, str]]:
    """The command that writes ``variant`` into a build folder, and its environment."""
    recipe = variant.recipe
    if recipe["kind"] == "gguf-quantize":
        quantize = str(llamacpp.binaries(cache_dir, say) / "llama-quantize")
        source = source_dir / GGUF_ENTRY
        return (lambda out: [quantize, str(source), str(out / GGUF_ENTRY), recipe["type"]]), {}
    src = llamacpp.source_tree(cache_dir, say)
    _ensure_extra(python, say)

    def convert(out: Path) -> list[str]:
        view = converter_view(source_dir, out / "converter-input")
        script = " && ".join([
            shlex.join([python, str(src / "convert_hf_to_gguf.py"), str(view),
                        "--outtype", recipe["outtype"], "--outfile", str(out / GGUF_ENTRY)]),
            shlex.join(["rm", "-rf", str(view)]),
        ])  # fmt: skip
        return ["sh", "-c", script]

    return convert, {"PYTHONPATH": f"{src / 'gguf-py'}:{src}"}


def converter_view(checkpoint: Path, view: Path) -> Path:
    """The checkpoint as llama.cpp's converter must see it: its files linked, with
    ``tokenizer.json`` saying what the tokenizer is.

    transformers writes the tokenizer it reads from a GGUF file as a byte-level BPE
    with ``byte_fallback`` on; the converter takes that flag for a SentencePiece
    vocabulary and writes one, whose server then fails on any text with a space
    ("unordered_map::at"). Byte-level BPE never falls back to bytes (every byte is
    a token already), so the flag is turned off and the vocabulary is written as the
    GPT-2 style BPE it is: the same ids as the checkpoint's own tokenizer.
    """
    view.mkdir(parents=True)
    for item in checkpoint.iterdir():
        if item.name != "tokenizer.json":
            (view / item.name).symlink_to(item.resolve())
    tokenizer = json.loads((checkpoint / "tokenizer.json").read_text(encoding="utf-8"))
    model, pre = tokenizer.get("model") or {}, json.dumps(tokenizer.get("pre_tokenizer"))
    if model.get("type") == "BPE" and model.get("byte_fallback") and "ByteLevel" in pre:
        model["byte_fallback"] = False
    (view / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    return view


def _ensure_extra(python: str, say: Progress) -> None:
    probe = subprocess.run([python, "-c", "import sentencepiece"], capture_output=True,
                           env=builder_env.clean_env(), check=False)  # fmt: skip
    if probe.returncode == 0:
        return
    say(f"installing {', '.join(CONVERTER_EXTRA)} for llama.cpp's converter into {python}")
    rc, tail = builder_env.run_streaming(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
         *builder_env.pip_args(), *CONVERTER_EXTRA],
        say, builder_env.clean_env(),
    )  # fmt: skip
    if rc != 0:
        raise ModelBuildError(
            f"installing {', '.join(CONVERTER_EXTRA)} failed (exit {rc}):\n" + "\n".join(tail)
        )
