"""The docker launcher on a real engine: the suites through it, its key, and its sweep.

The image is made here (``llamacpp_image``: no registry answers), shaped like the
official llama.cpp server image. A missing engine skips these tests with the reason
on a developer machine, and fails them in CI (``.ci/run`` starts one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.builds.llamacpp import server_binary
from pytest_llmserve.checklist.results import Figure
from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks.llamacpp import LlamaCpp
from pytest_llmserve.history.store import open_store
from pytest_llmserve.launch import docker_engine
from pytest_llmserve.launch.docker import DockerServer
from pytest_llmserve.launch.docker_settings import parse
from pytest_llmserve.launch.server import Server
from pytest_llmserve.models.cache import ENV_CACHE_DIR, cache_root
from pytest_llmserve.profile.default import EMBEDDED_DEFAULT, LLAMACPP_TARGETS
from pytest_llmserve.profile.model import Target
from tests.live.llamacpp_image import ensure_image
from tests.live.targets import toml_value

SUITES = Path(__file__).resolve().parents[2] / "suites"
CACHE = cache_root()  # read before pytester points HOME at a temporary folder
# The smoke and production suites, and the throughput floor and batching check: what a
# launcher can change (start, memory, logs, key, ports), at about two minutes a session.
SUITE_FILES = ("test_smoke.py", "test_auth.py", "test_error_handling.py", "test_footprint.py",
               "test_metrics_contract.py", "test_robustness.py", "test_performance.py")  # fmt: skip
NOT_LONG = "not latency and not goodput and not sweep"


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    try:
        client = docker_engine.client("docker live tests")
    except ServerStartError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI starts a docker engine (.ci/run), and none answers: {exc}")
        pytest.skip(str(exc))
    yield client
    client.close()


@pytest.fixture(scope="module")
def image(engine: Any, f16_gguf: Path) -> str:
    name, seconds = ensure_image(engine, Path(server_binary()))
    print(f"\nimage {name}: made in {seconds:.2f} s (0: the engine had it)")
    return name


def _q8_profile(path: Path, launcher: str, image: str) -> Path:
    """The embedded default's Q8_0 llama.cpp target (it has an API key) with its checks,
    as a file whose one difference between the two launchers is the launcher line."""
    target = dict(next(t for t in LLAMACPP_TARGETS if t["precision"] == "int8"))
    own_checks = {k: v for k, v in target["checks"].items() if k != "accuracy"}
    target |= {"name": "q8", "launcher": launcher, "docker": {"image": image},
               "checks": own_checks}  # fmt: skip
    defaults = {k: v for k, v in EMBEDDED_DEFAULT["defaults"].items() if k != "checks"}
    checks = {k: v for k, v in EMBEDDED_DEFAULT["defaults"]["checks"].items() if k != "accuracy"}
    lines = ["[defaults]", *(f"{k} = {toml_value(v)}" for k, v in defaults.items()),
             f"checks = {toml_value(checks)}", "", "[[targets]]",
             *(f"{k} = {toml_value(v)}" for k, v in target.items())]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_suites_pass_as_a_process_and_as_a_container(
    image: str, pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv(ENV_CACHE_DIR, str(CACHE))
    figures: dict[str, dict[str, Figure]] = {}
    outcomes: dict[str, dict[str, int]] = {}
    took: dict[str, float] = {}
    for launcher in ("process", "docker"):
        profile = _q8_profile(tmp_path / f"{launcher}.toml", launcher, image)
        history = tmp_path / f"history-{launcher}"
        began = time.monotonic()
        result = pytester.runpytest_subprocess(
            *(str(SUITES / f) for f in SUITE_FILES), "-k", NOT_LONG, "-p", "no:randomly",
            "-p", "no:cacheprovider", f"--llmserve-profile={profile}",
            f"--llmserve-history={history}", f"--llmserve-log-dir={tmp_path / launcher}",
        )  # fmt: skip
        took[launcher] = time.monotonic() - began
        out = result.stdout.str()
        print(f"----- {launcher}: {took[launcher]:.0f} s -----\n{out[-3000:]}")
        print(result.stderr.str()[-2000:])
        assert result.ret == 0, f"the suites failed through the {launcher} launcher"
        outcomes[launcher] = result.parseoutcomes()
        store = open_store(str(history), tmp_path)
        assert store is not None
        [record] = store.records("q8")
        figures[launcher] = record.figures
    # The same tests passed both ways: none skipped in one but not in the other.
    assert outcomes["process"]["passed"] >= 20
    assert outcomes["process"] == outcomes["docker"]
    seconds = ", ".join(f"{k} session {v:.0f} s" for k, v in took.items())
    # The two runs' figures side by side, in CI's log too (past pytest's capture).
    rows = [f"\n{'figure':<28} {'process':>14} {'docker':>14}  (target q8, {seconds})"]
    for name in sorted(set(figures["process"]) & set(figures["docker"])):
        values = [figures[launcher][name].value for launcher in ("process", "docker")]
        if None not in values:
            rows.append(f"{name:<28} {values[0]:>14.4g} {values[1]:>14.4g}")
    with capsys.disabled():
        print("\n".join(rows))
    # A container's memory is its own cgroup's figure; a process's, the PSS sum of its tree.
    memory = {launcher: figures[launcher]["host_memory_bytes"] for launcher in figures}
    assert memory["docker"].definition.startswith("container memory")
    assert memory["process"].definition.startswith("PSS sum")


def test_the_key_never_appears_in_the_containers_config(
    engine: Any, image: str, f16_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    started: list[Server],
) -> None:  # fmt: skip
    monkeypatch.setenv("DOCKER_TEST_KEY", "docker-live-key-5f2a9c")
    target = Target(name="keyed", framework="llamacpp", model=str(f16_gguf), precision="fp16",
                    max_model_len=2048, launcher="docker", launch=parse({"image": image}, "t"),
                    api_key_env="DOCKER_TEST_KEY")  # fmt: skip
    server = DockerServer.start(target, LlamaCpp(), str(f16_gguf), tmp_path / "keyed.log")
    started.append(server)
    assert isinstance(server, DockerServer)
    assert server.container_id is not None
    attrs = engine.containers.get(server.container_id).attrs
    assert "docker-live-key-5f2a9c" not in json.dumps(attrs)
    assert "docker-live-key-5f2a9c" not in (tmp_path / "keyed.log").read_text()
    # ... and yet the server holds it: readiness passed with it, and without it: 401.
    import httpx

    r = httpx.get(server.base_url + "/v1/models", timeout=10.0)
    assert r.status_code == 401


def test_a_crashed_container_fails_its_start_with_its_last_words(
    image: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    target = Target(name="broken", framework="llamacpp", model=str(broken), precision="fp16",
                    launcher="docker", launch=parse({"image": image}, "t"),
                    startup_timeout_s=60.0)  # fmt: skip
    with pytest.raises(ServerStartError) as info:
        DockerServer.start(target, LlamaCpp(), str(broken), tmp_path / "broken.log")
    message = str(info.value)
    assert "exited with code" in message
    assert "container exited" in message
    assert "gguf" in message.lower()  # llama-server's own complaint, from the container log


def _holding_session(tmp_path: Path, name: str, image: str, model: Path) -> list[str]:
    """A pytest command whose one test holds a docker target's server for 10 minutes."""
    profile = tmp_path / "p.toml"
    profile.write_text(textwrap.dedent(f"""\
        [[targets]]
        name = "{name}"
        framework = "llamacpp"
        model = "{model}"
        precision = "fp16"
        launcher = "docker"
        docker = {{ image = "{image}" }}
        """))  # fmt: skip
    (tmp_path / "test_hold.py").write_text(textwrap.dedent(f"""\
        import time
        from pathlib import Path

        def test_hold(llm_server):
            Path({str(tmp_path / "server-up")!r}).write_text("up")
            time.sleep(600)
        """))  # fmt: skip
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path),
            f"--llmserve-profile={profile}", f"--llmserve-log-dir={tmp_path / 'logs'}",
            "--llmserve-history=none"]  # fmt: skip


def _run_until_served(cmd: list[str], tmp_path: Path, sig: signal.Signals) -> None:
    """Start the session, wait for its server, then send it ``sig`` and wait for its end."""
    env = {**os.environ, ENV_CACHE_DIR: str(CACHE)}
    session = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "server-up").exists():
            assert session.poll() is None, "the session ended before its server was up"
            assert time.monotonic() < deadline, "the session's container never became ready"
            time.sleep(0.2)
        os.kill(session.pid, sig)
        session.wait(timeout=60)
    finally:
        if session.poll() is None:
            session.kill()


def test_a_sigterm_to_the_session_removes_its_container(
    engine: Any, image: str, f16_gguf: Path, tmp_path: Path
) -> None:
    _run_until_served(_holding_session(tmp_path, "termed", image, f16_gguf), tmp_path,
                      signal.SIGTERM)  # fmt: skip
    label = f"{docker_engine.TARGET}=termed"
    assert engine.containers.list(all=True, filters={"label": label}) == []


def test_a_killed_session_leaves_a_container_the_next_session_sweeps(
    engine: Any, image: str, f16_gguf: Path, tmp_path: Path, started: list[Server]
) -> None:
    cmd = _holding_session(tmp_path, "swept", image, f16_gguf)
    _run_until_served(cmd, tmp_path, signal.SIGKILL)
    label = f"{docker_engine.TARGET}=swept"
    [orphan] = engine.containers.list(filters={"label": label})
    assert orphan.status == "running", "SIGKILL should have left the container running"
    # A container of a session still running (this one) must survive the sweep.
    mine = DockerServer.start(
        Target(name="alive", framework="llamacpp", model=str(f16_gguf), precision="fp16",
               max_model_len=2048, launcher="docker", launch=parse({"image": image}, "t")),
        LlamaCpp(), str(f16_gguf), tmp_path / "alive.log",
    )  # fmt: skip
    started.append(mine)
    (tmp_path / "test_hold.py").write_text("def test_nothing():\n    pass\n")
    # The next session sweeps at its start, and its report header says what it removed.
    env = {**os.environ, ENV_CACHE_DIR: str(CACHE)}
    nxt = subprocess.run([c for c in cmd if c != "-q"] + ["--collect-only"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert nxt.returncode == 0, nxt.stdout[-2000:] + nxt.stderr[-2000:]
    assert f"container {orphan.name} (swept) of gone session" in nxt.stdout
    assert engine.containers.list(all=True, filters={"label": label}) == []
    assert isinstance(mine, DockerServer)
    assert mine.exited() is None, "the container of a session still running was swept"


def test_an_image_no_registry_has_fails_its_start_naming_it(
    engine: Any, f16_gguf: Path, tmp_path: Path
) -> None:
    settings = parse({"image": "llmserve-test/absent:none"}, "t")
    target = Target(name="absent", framework="llamacpp", model=str(f16_gguf), precision="fp16",
                    launcher="docker", launch=settings)  # fmt: skip
    with pytest.raises(ServerStartError, match="image 'llmserve-test/absent:none' is not on the "
                                               "engine and could not be pulled"):  # fmt: skip
        DockerServer.start(target, LlamaCpp(), str(f16_gguf), tmp_path / "absent.log")
    assert "pulling llmserve-test/absent:none" in (tmp_path / "absent.log").read_text()
