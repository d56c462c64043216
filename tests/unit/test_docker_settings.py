"""The docker launcher's table: every key parsed, every bad value refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.launch.docker_settings import DockerSettings, Ulimit, Volume, parse
from pytest_llmserve.profile.load import parse_profile


def test_a_full_table_becomes_typed_settings() -> None:
    s = parse(
        {
            "image": "vllm/vllm-openai:v0.31.0",
            "entrypoint": ["vllm", "serve"],
            "network": "bridge",
            "container_port": 8000,
            "gpus": [0, "GPU-abc"],
            "shm_size": "1G",
            "ipc_mode": "host",
            "ulimits": {"memlock": -1, "stack": [67108864, 67108864]},
            "volumes": ["/data/hf:/root/.cache/huggingface", "/models:/models:ro"],
            "user": "1000:1000",
            "pull": "never",
            "stop_timeout_s": 30,
            "run_options": {"cpuset_cpus": "0-3", "sysctls": {"net.core.somaxconn": "1024"}},
        },
        "targets[0]",
    )
    assert s == DockerSettings(
        image="vllm/vllm-openai:v0.31.0",
        entrypoint=("vllm", "serve"),
        network="bridge",
        container_port=8000,
        gpus=("0", "GPU-abc"),
        shm_size="1g",
        ipc_mode="host",
        ulimits=(Ulimit("memlock", -1, -1), Ulimit("stack", 67108864, 67108864)),
        volumes=(
            Volume("/data/hf", "/root/.cache/huggingface", "rw"),
            Volume("/models", "/models", "ro"),
        ),
        user="1000:1000",
        pull="never",
        stop_timeout_s=30.0,
        run_options='{"cpuset_cpus": "0-3", "sysctls": {"net.core.somaxconn": "1024"}}',
    )
    assert s.run_kwargs()["sysctls"] == {"net.core.somaxconn": "1024"}
    hash(s)  # a Target holds it, and targets are hashed


def test_the_defaults_are_the_host_network_and_a_pull_only_when_missing() -> None:
    s = parse({"image": "img"}, "t")
    assert (s.network, s.pull, s.gpus, s.entrypoint, s.run_kwargs()) == (
        "host", "missing", None, None, {}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("img", "docker: expected a table"),
        ({}, "docker: image: required"),
        ({"image": "i", "imag": "x"}, "docker: unknown key 'imag' (valid: container_port,"),
        ({"image": "i", "network": "overlay"}, "network: expected one of host, bridge, got"),
        ({"image": "i", "container_port": 80}, 'container_port: only with network = "bridge"'),
        ({"image": "i", "network": "bridge", "container_port": 0}, "expected a port number"),
        ({"image": "i", "gpus": 0}, 'gpus: expected "all", a count >= 1, or an array'),
        ({"image": "i", "gpus": "some"}, 'gpus: expected "all"'),
        ({"image": "i", "shm_size": "1 GB"}, 'shm_size: expected bytes or a size such as "1g"'),
        ({"image": "i", "ipc_mode": "hots"}, "ipc_mode: expected one of host, private"),
        ({"image": "i", "ulimits": {"stack": [1]}}, "ulimits.stack: expected a number or [soft"),
        ({"image": "i", "volumes": ["/a"]}, "volumes: '/a': expected \"host:container\""),
        ({"image": "i", "volumes": ["/a:rel"]}, "an absolute path in the container"),
        ({"image": "i", "volumes": ["/a:/b:rx"]}, 'or "host:container:ro"'),
        ({"image": "i", "pull": "sometimes"}, "pull: expected one of missing, never, always"),
        ({"image": "i", "stop_timeout_s": 0}, "stop_timeout_s: expected seconds > 0"),
        ({"image": "i", "entrypoint": "vllm serve"}, "entrypoint: expected a non-empty array"),
        ({"image": "i", "run_options": {"environment": {}}}, "'environment' is set by the"),
        ({"image": "i", "run_options": {"ports": {}}}, "'ports' is set by the launcher"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key(table: Any, message: str) -> None:
    with pytest.raises(ProfileError, match=r"^targets\[0\]: docker") as info:
        parse(table, "targets[0]")
    assert message in str(info.value)


def _profile(**target: Any) -> dict[str, Any]:
    base = {"name": "t", "framework": "llamacpp", "model": "/m.gguf", "precision": "fp16"}
    return {"targets": [base | target]}


def _load(data: dict[str, Any], tmp_path: Path) -> Any:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    data["targets"][0]["model"] = str(tmp_path / "m.gguf")
    return parse_profile(data, "test", tmp_path).targets[0]


def test_a_target_switches_launcher_with_one_line(tmp_path: Path) -> None:
    docker = {"image": "llama.cpp:server", "shm_size": "1g"}
    as_container = _load(_profile(launcher="docker", docker=docker), tmp_path)
    as_process = _load(_profile(launcher="process", docker=docker), tmp_path)
    assert as_container.launch == parse(docker, "t")
    assert (as_process.launcher, as_container.launcher) == ("process", "docker")


def test_a_docker_table_is_checked_while_the_target_runs_as_a_process(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="docker: pull: expected one of missing"):
        _load(_profile(docker={"image": "i", "pull": "no"}), tmp_path)


def test_the_docker_launcher_needs_its_table(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match='docker: required when launcher is "docker"'):
        _load(_profile(launcher="docker"), tmp_path)
