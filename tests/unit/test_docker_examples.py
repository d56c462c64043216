"""The example profiles for official images (``examples/docker/*.toml``) load as written.

Each file is copied into a temporary folder with empty stand-ins for its models (a
``.gguf`` file, or a folder with a ``config.json``) and read by the real profile loader,
so every field, the docker table and every check table is validated as a session
would, each target against its framework's own module.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.launch.docker_settings import DockerSettings, Ulimit
from pytest_llmserve.profile.load import load_profile
from pytest_llmserve.profile.model import PRECISIONS, Profile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docker"
FILES = sorted(EXAMPLES.glob("*.toml"))
EXPECTED_FILES = {
    "llamacpp-server.toml",
    "sglang.toml",
    "tgi.toml",
    "trtllm.toml",
    "vllm-openai.toml",
}
# Image repository (before the tag) and framework of each file.
IMAGES = {
    "vllm-openai": ("vllm/vllm-openai", "vllm"),
    "llamacpp-server": ("ghcr.io/ggml-org/llama.cpp", "llamacpp"),
    "tgi": ("ghcr.io/huggingface/text-generation-inference", "tgi"),
    "sglang": ("lmsysorg/sglang", "sglang"),
    "trtllm": ("nvcr.io/nvidia/tensorrt-llm/release", "trtllm"),
}
PINNED_OR_REQUIRED = {  # the tag each file must name (llama.cpp: the CUDA server build)
    "vllm-openai": "v0.31.0",
    "llamacpp-server": "server-cuda",
    "tgi": "3.3.5",
    "sglang": "v0.5.21",
    "trtllm": "1.2.1",
}
GPU_RUNNER_ULIMITS = (Ulimit("memlock", -1, -1), Ulimit("stack", 67108864, 67108864))


def _targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each raw target with the defaults under it (a shallow merge, as the loader's)."""
    defaults = data.get("defaults", {})
    return [{**defaults, **raw} for raw in data["targets"]]


def _stage(example: Path, into: Path) -> tuple[Path, dict[str, Any]]:
    """``example`` copied into ``into``, with an empty stand-in for every model it names."""
    into.mkdir(parents=True, exist_ok=True)
    path = into / example.name
    shutil.copyfile(example, path)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for target in _targets(data):
        model = Path(target["model"])
        assert not model.is_absolute(), f"{target['name']}: model must be relative"
        where = into / model
        if model.suffix == ".gguf":
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_bytes(b"GGUF")
        else:
            where.mkdir(parents=True, exist_ok=True)
            (where / "config.json").write_text("{}")
    return path, data


def test_the_examples_are_exactly_the_five_official_images() -> None:
    assert {f.name for f in FILES} == EXPECTED_FILES
    assert (EXAMPLES / "README.md").is_file()


@pytest.mark.parametrize("example", FILES, ids=[f.stem for f in FILES])
def test_each_example_loads_as_docker_targets_on_gpus(example: Path, tmp_path: Path) -> None:
    path, data = _stage(example, tmp_path)
    profile = load_profile(path)
    raw_targets = _targets(data)
    repository, framework = IMAGES[example.stem]
    assert [t.name for t in profile.targets] == [r["name"] for r in raw_targets]
    for target, raw in zip(profile.targets, raw_targets, strict=True):
        settings = target.launch
        assert target.launcher == "docker"
        assert isinstance(settings, DockerSettings)
        assert settings.image == raw["docker"]["image"]
        assert settings.image == f"{repository}:{PINNED_OR_REQUIRED[example.stem]}"
        assert settings.network == "host"
        assert settings.gpus is None  # the GPUs the session leases the target
        assert target.device == "gpu"
        assert target.framework == framework
        assert target.precision in PRECISIONS
        assert target.model == str(tmp_path / raw["model"])
        assert target.api_key_env is None or target.api_key_env.isupper()
        checks = target.checks
        assert checks["throughput"]["min_output_tok_s"] > 0
        assert checks["latency"]["max_ttft_s"] > 0
        assert checks["latency"]["max_tpot_s"] > 0
        assert {"max_startup_s", "max_gpu_memory_gib", "max_checkpoint_gib"} <= set(
            checks["footprint"]
        )


def _settings(profile: Profile) -> list[DockerSettings]:
    return [t.launch for t in profile.targets]


def test_each_image_gets_what_it_needs_on_a_gpu_runner(tmp_path: Path) -> None:
    loaded = {f.stem: load_profile(_stage(f, tmp_path / f.stem)[0]) for f in FILES}
    for s in _settings(loaded["vllm-openai"]):
        # ENTRYPOINT ["vllm", "serve"]: the framework's argv follows the image's own.
        assert s.entrypoint is None
        assert s.ipc_mode == "host"  # PyTorch's processes share memory
    for s in _settings(loaded["llamacpp-server"]):
        assert s.entrypoint is None  # ENTRYPOINT ["/app/llama-server"]
    for s in _settings(loaded["tgi"]):
        # ENTRYPOINT ["/tgi-entrypoint.sh"] activates the venv, then text-generation-launcher.
        assert s.entrypoint is None
        assert s.shm_size == "1g"
    for s in _settings(loaded["sglang"]):
        assert s.entrypoint == ("python3", "-m", "sglang.launch_server")
        assert s.ipc_mode == "host"
        assert s.ulimits == GPU_RUNNER_ULIMITS
    for s in _settings(loaded["trtllm"]):
        assert s.entrypoint == ("trtllm-serve",)
        assert s.ipc_mode == "host"
        assert s.ulimits == GPU_RUNNER_ULIMITS


def test_the_examples_name_the_precision_and_method_of_their_checkpoints(
    tmp_path: Path,
) -> None:
    loaded = {f.stem: load_profile(_stage(f, tmp_path / f.stem)[0]) for f in FILES}
    labels = {t.name: t.precision_label for p in loaded.values() for t in p.targets}
    assert labels == {
        "vllm-llama31-8b-fp8": "fp8+kv-fp8",
        "vllm-llama31-8b-bf16": "bf16",
        "llamacpp-llama31-8b-q4_k_m": "int4-q4_k_m",
        "tgi-llama31-8b-awq": "int4-awq",
        "sglang-llama31-8b-fp8": "fp8",
        "trtllm-llama31-8b-fp8": "fp8",
    }
    fp8 = loaded["vllm-openai"].target("vllm-llama31-8b-fp8")
    assert fp8.checks["accuracy"]["baseline"] == "vllm-llama31-8b-bf16"


def test_the_vllm_example_also_loads_as_a_process_with_its_docker_table_kept(
    tmp_path: Path,
) -> None:
    path, _ = _stage(EXAMPLES / "vllm-openai.toml", tmp_path)
    text = path.read_text(encoding="utf-8")
    assert text.count('launcher = "docker"') == 1  # one line to switch
    path.write_text(text.replace('launcher = "docker"', 'launcher = "process"'))
    profile = load_profile(path)
    assert [t.launcher for t in profile.targets] == ["process", "process"]
    assert all(not isinstance(t.launch, DockerSettings) for t in profile.targets)
    assert [t.precision for t in profile.targets] == ["fp8", "bf16"]


@pytest.mark.parametrize("example", FILES, ids=[f.stem for f in FILES])
def test_the_examples_hold_no_machine_paths(example: Path) -> None:
    text = example.read_text(encoding="utf-8")
    for fragment in ("/root/", "/work/", "/home/", "/tmp/", "pypi.org", "files.pythonhosted"):
        assert fragment not in text, f"{example.name} mentions {fragment!r}"
    for target in _targets(tomllib.loads(text)):
        for volume in target.get("docker", {}).get("volumes", []):
            assert not volume.startswith("/"), f"{example.name}: {volume!r} is a host path"
