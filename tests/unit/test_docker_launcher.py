"""The docker launcher's own logic against a fake engine: what it asks ``containers.run``
for, where the API key goes, how it reads a container's state, and the sweep's rule.

The live tier (``tests/live/test_docker_launcher.py``) runs all of it on a real engine.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks.llamacpp import LlamaCpp
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.launch import docker_engine, labels
from pytest_llmserve.launch.docker import SECRETS_DIR, DockerServer
from pytest_llmserve.launch.docker_settings import parse
from pytest_llmserve.profile.model import Target


class FakeContainer:
    def __init__(self, name: str = "c", labels: dict[str, str] | None = None,
                 state: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.id = self.name = name
        self.labels = labels or {}
        self.attrs: dict[str, Any] = {"State": state or {"Status": "running"}}
        self.removed = self.stopped = False

    def reload(self) -> None:
        if self.removed:
            raise docker.errors.NotFound("gone")

    def logs(self, **_: Any) -> list[bytes]:
        return [b"server says hello\n"]

    def stop(self, timeout: int) -> None:
        self.stopped = True

    def remove(self, force: bool) -> None:
        self.removed = True

    def top(self, ps_args: str) -> dict[str, Any]:
        return {"Titles": ["PID"], "Processes": [[str(os.getpid())]]}

    def stats(self, stream: bool) -> dict[str, Any]:
        return {"memory_stats": {"usage": 1000, "stats": {"inactive_file": 300}}}


class FakeImage:
    def __init__(self) -> None:
        self.attrs = {"Config": {"Entrypoint": ["/app/llama-server"]}}


class FakeEngine:
    def __init__(self, containers: list[FakeContainer] | None = None) -> None:
        self.runs: list[dict[str, Any]] = []
        self.listed = containers or []
        self.images = self
        self.containers = self
        self.has_image = True

    def get(self, name: str) -> FakeImage:
        if not self.has_image:
            raise docker.errors.ImageNotFound(name)
        return FakeImage()

    def run(self, image: str, **kwargs: Any) -> FakeContainer:
        self.runs.append({"image": image, **kwargs})
        return FakeContainer()

    def list(self, **_: Any) -> list[FakeContainer]:
        return self.listed

    def close(self) -> None:
        return None


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(docker_engine, "client", lambda *_a, **_k: fake)
    return fake


def _target(tmp_path: Path, table: dict[str, Any] | None = None, **fields: Any) -> Target:
    model = tmp_path / "models" / "m.gguf"
    model.parent.mkdir(exist_ok=True)
    model.write_bytes(b"GGUF")
    settings = parse({"image": "llama.cpp:server", **(table or {})}, "t")
    base: dict[str, Any] = {"name": "t", "framework": "llamacpp", "model": str(model),
                            "precision": "fp16", "launcher": "docker",
                            "launch": settings}  # fmt: skip
    return Target(**(base | fields))


def _launch(tmp_path: Path, target: Target, framework: Any = None) -> DockerServer:
    server = DockerServer(target, framework or LlamaCpp(), target.model, tmp_path / "t.log")
    server.launch()
    return server


def test_the_container_runs_the_official_images_argv_on_the_host_network(
    engine: FakeEngine, tmp_path: Path
) -> None:
    server = _launch(tmp_path, _target(tmp_path))
    run = engine.runs[0]
    assert run["image"] == "llama.cpp:server"
    assert run["entrypoint"] == ["/app/llama-server"]  # the image's own
    assert run["command"][:2] == ["--model", str(tmp_path / "models" / "m.gguf")]
    assert run["network_mode"] == "host"
    assert "ports" not in run
    port = run["command"][run["command"].index("--port") + 1]
    assert server.base_url == f"http://127.0.0.1:{port}"
    # The model's folder, read-only, at the path it has here (every check reads it here).
    folder = str(tmp_path / "models")
    assert run["volumes"] == {folder: {"bind": folder, "mode": "ro"}}
    assert run["labels"][docker_engine.OWNER] == labels.owner_label()
    assert run["labels"][docker_engine.TARGET] == "t"
    assert run["name"] == f"llmserve-t-{server.server_id}"
    assert run["detach"] is True
    assert "device_requests" not in run
    server.stop()
    assert "server says hello" in (tmp_path / "t.log").read_text()


def test_an_api_key_reaches_the_server_through_a_file_never_the_config(
    engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_KEY", "s3cret-value-1234")
    server = _launch(tmp_path, _target(tmp_path, api_key_env="T_KEY"))
    run = engine.runs[0]
    assert "s3cret-value-1234" not in repr(run)
    assert "LLAMA_API_KEY" not in run["environment"]
    assert run["entrypoint"][:2] == ["/bin/sh", "-c"]
    assert run["command"][0] == "/app/llama-server"  # the wrapper execs the image's entrypoint
    secrets = next(h for h, v in run["volumes"].items() if v["bind"] == SECRETS_DIR)
    key_file = Path(secrets) / "LLAMA_API_KEY"
    assert key_file.read_text() == "s3cret-value-1234\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(secrets).stat().st_mode) == 0o700
    assert run["volumes"][secrets]["mode"] == "ro"
    server.stop()
    assert not Path(secrets).exists()


def test_a_gpu_target_gets_its_leased_gpus_as_a_device_request(
    engine: FakeEngine, tmp_path: Path
) -> None:
    env = (("CUDA_VISIBLE_DEVICES", "2,3"), ("CUDA_DEVICE_ORDER", "PCI_BUS_ID"))
    _launch(tmp_path, _target(tmp_path, device="gpu", env=env))
    run = engine.runs[0]
    [request] = run["device_requests"]
    assert request["DeviceIDs"] == ["2", "3"]
    assert request["Capabilities"] == [["gpu"]]
    # Inside, the granted devices are numbered from 0: the host's indices would be wrong.
    assert "CUDA_VISIBLE_DEVICES" not in run["environment"]


@pytest.mark.parametrize(("gpus", "count", "ids"), [("all", -1, []), (2, 2, [])])
def test_gpus_from_the_table(
    engine: FakeEngine, tmp_path: Path, gpus: Any, count: int, ids: Any
) -> None:
    _launch(tmp_path, _target(tmp_path, {"gpus": gpus}))
    [request] = engine.runs[0]["device_requests"]
    assert (request["Count"], request["DeviceIDs"]) == (count, ids)


def test_the_bridge_network_publishes_the_port_on_loopback_only(
    engine: FakeEngine, tmp_path: Path
) -> None:
    table = {"network": "bridge", "container_port": 8000, "shm_size": "1g", "ipc_mode": "host",
             "ulimits": {"memlock": -1}, "user": "1000",
             "run_options": {"cpuset_cpus": "0"}}  # fmt: skip
    server = _launch(tmp_path, _target(tmp_path, table), VLLM())
    run = engine.runs[0]
    argv = run["command"]
    assert argv[0] == "--model"  # vllm/vllm-openai's ENTRYPOINT is `vllm serve`
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--port") + 1] == "8000"
    host_port = int(server.base_url.rsplit(":", 1)[1])
    assert run["ports"] == {"8000/tcp": ("127.0.0.1", host_port)}
    assert "network_mode" not in run
    assert (run["shm_size"], run["ipc_mode"], run["user"], run["cpuset_cpus"]) == (
        "1g", "host", "1000", "0"
    )  # fmt: skip
    assert run["ulimits"][0]["Name"] == "memlock"
    assert run["ulimits"][0]["Soft"] == -1


def test_a_missing_image_that_cannot_be_pulled_is_named(engine: FakeEngine, tmp_path: Path) -> None:
    engine.has_image = False
    with pytest.raises(ServerStartError, match=r"image 'llama.cpp:server' is not on the engine, "
                                               r"and pull = \"never\""):  # fmt: skip
        _launch(tmp_path, _target(tmp_path, {"pull": "never"}))
    assert engine.runs == []


def test_a_missing_image_is_pulled_with_its_progress_in_the_log(
    engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.has_image = False
    pulled: list[tuple[str, str]] = []

    def pull(repository: str, tag: str, **_: Any) -> list[dict[str, str]]:
        pulled.append((repository, tag))
        engine.has_image = True
        return [{"id": "abc", "status": "Downloading", "progress": "[==>  ] 1MB/2MB"}]

    monkeypatch.setattr(engine, "api", type("Api", (), {"pull": staticmethod(pull)}), raising=False)
    server = _launch(tmp_path, _target(tmp_path, {"image": "ghcr.io/org/server:1.2"}))
    assert pulled == [("ghcr.io/org/server", "1.2")]
    log = (tmp_path / "t.log").read_text()
    assert "# llmserve: pull: abc Downloading [==>  ] 1MB/2MB" in log
    assert engine.runs[0]["image"] == "ghcr.io/org/server:1.2"
    server.stop()


def test_an_image_without_entrypoint_needs_one_in_the_table(
    engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeImage, "__init__", lambda self: setattr(self, "attrs", {}))
    with pytest.raises(ServerStartError, match=r"has no ENTRYPOINT.*set docker.entrypoint"):
        _launch(tmp_path, _target(tmp_path))
    assert engine.runs == []
    _launch(tmp_path, _target(tmp_path, {"entrypoint": ["/app/llama-server"]}))
    assert engine.runs[0]["entrypoint"] == ["/app/llama-server"]


def test_a_refused_run_leaves_no_key_file(
    engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_KEY", "s3cret-value-1234")

    def refuse(image: str, **kwargs: Any) -> FakeContainer:
        engine.runs.append(kwargs)
        raise docker.errors.APIError("no such device: nvidia")

    monkeypatch.setattr(engine, "run", refuse)
    with pytest.raises(ServerStartError, match=r"docker could not run llama\.cpp:server: APIError"):
        _launch(tmp_path, _target(tmp_path, api_key_env="T_KEY"))
    secrets = next(h for h, v in engine.runs[0]["volumes"].items() if v["bind"] == SECRETS_DIR)
    assert not Path(secrets).exists()


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({"Status": "running"}, None),
        ({"Status": "exited", "ExitCode": 1}, "exited with code 1 (container exited)"),
        ({"Status": "exited", "ExitCode": 137, "OOMKilled": True}, "killed for memory"),
    ],
)
def test_the_containers_state_says_whether_it_still_serves(
    state: dict[str, Any], reason: str | None
) -> None:
    found = docker_engine.exit_reason(FakeContainer(state=state))
    assert found == reason or (reason is not None and found is not None and reason in found)


def test_a_removed_container_has_exited() -> None:
    container = FakeContainer()
    container.removed = True
    assert docker_engine.exit_reason(container) == "was removed"


def test_memory_is_the_containers_charge_beside_its_processes(
    engine: FakeEngine, tmp_path: Path
) -> None:
    server = _launch(tmp_path, _target(tmp_path))
    memory = server.memory()
    assert memory is not None
    assert memory.container_bytes == 700
    assert memory.headline_bytes == 700
    assert memory.headline_name.startswith("container memory")
    assert memory.pids == (os.getpid(),)
    assert memory.rss_bytes > 0


def test_the_sweep_removes_only_this_hosts_containers_of_gone_sessions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    here = docker_engine.socket.gethostname()
    gone, alive, elsewhere = "1:1.00", labels.owner_label(), "1:1.00"
    owners = [("orphan", gone, here), ("mine", alive, here), ("theirs", elsewhere, "other")]
    made = [
        FakeContainer(n, {docker_engine.OWNER: o, docker_engine.HOST: h, docker_engine.TARGET: n})
        for n, o, h in owners
    ]
    monkeypatch.setattr(docker_engine, "client", lambda *_a, **_k: FakeEngine(made))
    swept = docker_engine.sweep_orphans()
    assert [c.name for c in made if c.removed] == ["orphan"]
    assert swept == ["container orphan (orphan) of gone session 1:1.00"]


def test_the_sweep_is_silent_without_an_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert docker_engine.sweep_orphans() == []


def test_no_engine_is_a_start_error_naming_where_it_was_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(ServerStartError, match="t: no docker engine answers at unix:///nonexist"):
        docker_engine.client("t")


def test_a_framework_gives_its_container_argv_without_building_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pytest_llmserve.builds import llamacpp as build

    def no_build(*_: Any) -> str:
        raise AssertionError("the container form must not look for a local llama-server")

    monkeypatch.setattr(build, "server_binary", no_build)
    target = dataclasses.replace(_target(tmp_path), launcher="process")
    spec = LlamaCpp().launch_spec(target, target.model, "127.0.0.1", 8080, container=True)
    assert spec.argv[0] == "--model"
