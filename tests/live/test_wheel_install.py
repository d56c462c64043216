"""What a user gets from ``pip install pytest-llmserve``: the built wheel, in a fresh
virtualenv, run from an empty folder with only a profile, against a real server.

The wheel is built from a copy of the checkout (a build writes build/ and egg-info
beside its sources), installed with its dependencies only (no vLLM: the server is
an external target, a real vLLM CPU started here from this environment), and the
installed suites run with ``pytest --pyargs pytest_llmserve.suites`` (the smoke
suite selected) beside a test file of the user's own that takes the same fixtures. Timings of each
step go to stdout (``-s`` shows them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import venv
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pytest_llmserve.launch.ports import free_port
from tests.live import targets

ROOT = Path(__file__).resolve().parents[2]
SERVED = "smol"
# The smoke suite (cheap) and the user's file.
SELECTED = "test_smoke or test_mine"
# Build inputs only: no environments, caches or earlier builds.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".tox", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".llmserve",
    ".*_cache", ".benchmarks", "node_modules",
)  # fmt: skip
# The outer session's settings must not leak into the user's session.
NOT_INHERITED = ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "VIRTUAL_ENV", "PYTHONHOME")

USER_TEST = '''
"""A user's own test beside the installed suites: the fixtures come from the plugin."""
import sys

import pytest_llmserve


def test_my_own_check(llm_target, llm_client):
    assert llm_target.name == "wheel"
    reply = llm_client.completion("The capital of France is", max_tokens=4, temperature=0)
    assert reply.ok, reply.body


def test_the_plugin_is_the_installed_wheel():
    assert pytest_llmserve.__file__.startswith(sys.prefix), pytest_llmserve.__file__
'''


def _step(timings: dict[str, float], name: str, started: float) -> None:
    timings[name] = time.monotonic() - started
    print(f"wheel install: {name}: {timings[name]:.1f} s")


@pytest.fixture
def vllm_server(
    vllm_installed: None, baseline_checkpoint: Path, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real vLLM CPU server in its own process group, stopped (group and all) after."""
    port = free_port()
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(baseline_checkpoint), "--served-model-name", SERVED,
        "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", str(targets.MAX_MODEL_LEN), *targets.ARGS, *targets.DTYPE_ARGS,
    ]  # fmt: skip
    env = {**os.environ, **dict(targets.EMBEDDED_ENV)}
    log = (tmp_path / "vllm.log").open("wb")
    proc = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the engine's children too
        proc.wait(timeout=10)
        log.close()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vLLM exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    pytest.fail(f"vLLM not healthy after {timeout_s} s:\n{log.read_text()[-3000:]}")


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout_s: float) -> str:
    run = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    assert run.returncode == 0, f"{argv}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stdout


def test_installed_wheel_runs_the_suites_from_an_empty_folder(
    vllm_server: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url, proc = vllm_server
    timings: dict[str, float] = {}
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}

    started = time.monotonic()
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
         tmp_path, env, 300)  # fmt: skip
    (wheel,) = dist.glob("pytest_llmserve-*.whl")
    _step(timings, "build the wheel", started)

    started = time.monotonic()
    home = tmp_path / "venv"
    venv.create(home)  # no pip of its own (ensurepip takes ~15 s): this pip installs into it
    python = str(home / "bin" / "python")
    _step(timings, "create the venv", started)
    started = time.monotonic()
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", str(wheel)],
         tmp_path, env, 600)  # fmt: skip
    _step(timings, "install the wheel and its dependencies", started)

    user = tmp_path / "user"  # the user's folder: a profile and a test of their own
    user.mkdir()
    (user / "profile.toml").write_text(
        textwrap.dedent(
            f"""
            name = "from-the-wheel"

            [[targets]]
            name = "wheel"
            framework = "vllm"
            model = "served elsewhere"
            served_name = "{SERVED}"
            precision = "{targets.PRECISION}"
            launcher = "external"
            url = "{url}"
            startup_timeout_s = 120
            """
        )
    )
    (user / "test_mine.py").write_text(USER_TEST)

    started = time.monotonic()
    _wait_healthy(url, proc, tmp_path / "vllm.log", targets.STARTUP_TIMEOUT_S)
    _step(timings, "vLLM healthy (after the install)", started)

    started = time.monotonic()
    run = subprocess.run(
        [python, "-m", "pytest", "--pyargs", "pytest_llmserve.suites", "test_mine.py",
         "-k", SELECTED, "--llmserve-profile=profile.toml", "-p", "no:cacheprovider", "-rA",
         "--junitxml=junit.xml"],
        cwd=user, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    _step(timings, "the installed smoke suite and the user's test", started)
    out = run.stdout + run.stderr
    suite = ET.parse(user / "junit.xml").getroot().find("testsuite")
    assert suite is not None, out
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    assert counts["failures"] == counts["errors"] == 0, out
    assert passed > 0, out
    assert run.returncode == 0, out
    # Every installed suite imported (collection); the smoke suite and the user's own
    # file ran in one session against the same target.
    names = {case.get("name") for case in suite.iter("testcase")}
    assert {"test_server_is_ready[wheel]", "test_my_own_check[wheel]"} <= names, names
    # An external server's engine log is not ours: its precision is "not measurable".
    assert "not measurable: the server's startup log is not readable here" in out, out
