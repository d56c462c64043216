"""Building llama.cpp from the sdist: the source is hash-checked and only the vendored
tree unpacked, the build key names every flag and this CPU, CUDA only with a GPU, and
the GGUF converter sees the tokenizer as what it is. No compiler runs here (the live
tier builds for real)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.builds import llamacpp as build
from pytest_llmserve.errors import ModelBuildError
from pytest_llmserve.models import catalog, embedded
from pytest_llmserve.models.gguf_variants import converter_view


def _sdist(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in [
            ("llama_cpp_python-0.3.36/vendor/llama.cpp/CMakeLists.txt", b"project(x)"),
            ("llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py/gguf/__init__.py", b""),
            ("llama_cpp_python-0.3.36/llama_cpp/llama.py", b"bindings, not wanted"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def fake_pip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> bytes:
    """``pip download`` writes a small sdist; its hash becomes the pinned one."""
    archive = _sdist(tmp_path)
    calls: list[list[str]] = []

    def run(cmd: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / "llama_cpp_python-0.3.36.tar.gz").write_bytes(archive)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(build.subprocess, "run", run)
    monkeypatch.setattr(build, "SDIST_SHA256", hashlib.sha256(archive).hexdigest())
    return archive


def test_source_tree_is_the_vendored_llamacpp_only(fake_pip: bytes, tmp_path: Path) -> None:
    src = build.source_tree(tmp_path / "cache")
    assert (src / "CMakeLists.txt").read_bytes() == b"project(x)"
    assert (src / "gguf-py" / "gguf" / "__init__.py").exists()
    assert not list(src.parent.rglob("llama.py"))  # the bindings stay out
    assert not list(src.parent.glob("*.tar.gz"))  # the archive is not kept
    assert build.source_tree(tmp_path / "cache") == src  # once


def test_a_source_whose_hash_differs_is_refused(
    fake_pip: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "SDIST_SHA256", "0" * 64)
    with pytest.raises(ModelBuildError, match="sha256"):
        build.source_tree(tmp_path / "cache")
    assert not list((tmp_path / "cache" / "llama.cpp").glob("source-*/llama.cpp"))


def test_build_key_names_flags_and_this_cpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cpu, _, inputs = build.build_dir(False, tmp_path)
    cuda, _, _ = build.build_dir(True, tmp_path)
    assert cpu != cuda
    assert cpu.name.startswith("build-cpu-")
    assert cuda.name.startswith("build-cuda-")
    assert "-DGGML_CUDA=OFF" in inputs["flags"]
    assert "-DLLAMA_BUILD_UI=OFF" in inputs["flags"]
    monkeypatch.setattr(build, "cpu_flags", lambda: frozenset({"sse2", "avx512f"}))
    assert build.build_dir(False, tmp_path)[0] != cpu  # another CPU, another build


def test_cuda_only_when_asked_or_with_nvcc_and_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(build.ENV_CUDA, "0")
    assert build.wants_cuda() is False
    monkeypatch.setenv(build.ENV_CUDA, "1")
    assert build.wants_cuda() is True
    monkeypatch.setenv(build.ENV_CUDA, "yes")
    with pytest.raises(ModelBuildError, match="valid: 1, 0, or unset"):
        build.wants_cuda()
    monkeypatch.delenv(build.ENV_CUDA)
    monkeypatch.setattr(build.shutil, "which", lambda name: "/usr/bin/nvcc")
    monkeypatch.setattr(build.Path, "exists", lambda self: False)  # no /dev/nvidia0
    assert build.wants_cuda() is False


def test_build_progress_passes_configure_every_25th_step_and_failures_only() -> None:
    said: list[str] = []
    on_line = build._steps_only(said.append)
    warning = "avx512fintrin.h:5946:10: warning: '__Y' may be used uninitialized"
    lines = ["-- Configuring done"]
    for i in range(1, 61):
        lines += [f"[{i}/60] Building x{i}.o", warning, "  5946 |   return (__m256d) ..."]
    lines += ["FAILED: ggml/src/ops.cpp.o", "ops.cpp:12:3: error: 'x' was not declared"]
    for line in lines:
        on_line(line)
    assert said == ["-- Configuring done", "llama.cpp build [25/60]", "llama.cpp build [50/60]",
                    "llama.cpp build [60/60]", "FAILED: ggml/src/ops.cpp.o",
                    "ops.cpp:12:3: error: 'x' was not declared"]  # fmt: skip


def _checkpoint(folder: Path, model: dict[str, Any], pre: dict[str, Any]) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "tokenizer.json").write_text(json.dumps({"model": model, "pre_tokenizer": pre}))
    return folder


def test_converter_sees_a_byte_level_bpe_without_byte_fallback(tmp_path: Path) -> None:
    bpe = {"type": "BPE", "byte_fallback": True, "vocab": {}}
    src = _checkpoint(tmp_path / "ck", bpe, {"type": "ByteLevel"})
    view = converter_view(src, tmp_path / "view")
    assert json.loads((view / "tokenizer.json").read_text())["model"]["byte_fallback"] is False
    assert (view / "config.json").resolve() == (src / "config.json").resolve()
    # the checkpoint itself is left as it is
    assert json.loads((src / "tokenizer.json").read_text())["model"]["byte_fallback"] is True


def test_converter_leaves_a_sentencepiece_style_bpe_alone(tmp_path: Path) -> None:
    spm = {"type": "BPE", "byte_fallback": True}
    src = _checkpoint(tmp_path / "ck", spm, {"type": "Metaspace"})
    view = converter_view(src, tmp_path / "view")
    assert json.loads((view / "tokenizer.json").read_text())["model"]["byte_fallback"] is True


def test_gguf_variants_are_picked_by_format_and_keyed_by_the_llamacpp_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert catalog.variant_for("smollm2", "int8", None, "gguf").key == "gguf-q8_0"
    assert catalog.variant_for("smollm2", "int4", None, "gguf").key == "gguf-q4_k_m"
    assert catalog.variant_for("smollm2", "int8", None).key == "int8-w8a8"
    with pytest.raises(KeyError, match=r"no bf16 variant as gguf \(valid: fp16, int8"):
        catalog.variant_for("smollm2", "bf16", None, "gguf")
    gguf = tmp_path / "shipped.gguf"
    gguf.write_bytes(b"GGUF")
    q8 = catalog.variant("gguf-q8_0")
    key, inputs = embedded.variant_key(q8, gguf)
    assert inputs["llamacpp_sdist_sha256"] == build.SDIST_SHA256
    assert inputs["source_key"] == embedded.variant_key(catalog.variant("gguf-f16"), gguf)[0]
    monkeypatch.setattr(build, "SDIST_SHA256", "f" * 64)
    assert embedded.variant_key(q8, gguf)[0] != key
    # vLLM's variants do not depend on llama.cpp's source
    assert "llamacpp_sdist_sha256" not in embedded.variant_key(catalog.variant("bf16"), gguf)[1]
