"""The launcher seam: registries, the shared start sequence, and a failed start's report.

A fake launcher (no process at all) drives ``launch.start`` and the pool, so each
rule is checked on its own: the key, the retry the launcher asks for, the first
error quoted from the log, and an unexpected exception kept with the target's name.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks import registry as frameworks
from pytest_llmserve.frameworks.base import ApiPaths, EngineFacts
from pytest_llmserve.frameworks.openai_compat import OpenAICompatible
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.launch import registry as launchers
from pytest_llmserve.launch.launcher import StartContext
from pytest_llmserve.launch.pool import ServerPool
from pytest_llmserve.launch.readiness import ReadyReport
from pytest_llmserve.launch.start import start_server
from pytest_llmserve.profile.model import Target

CRASH_LOG = (
    textwrap.dedent(
        """\
    INFO starting engine
    (Worker_PP1 pid=42) Traceback (most recent call last):
    (Worker_PP1 pid=42)   File "worker.py", line 3, in run
    (Worker_PP1 pid=42)     assert rank_ok
    (Worker_PP1 pid=42) AssertionError
    INFO shutting down
    """
    )
    + "nanobind: leaked 3 instances!\n" * 45
)


class DeadServer:
    """A server that has exited by the time readiness asks, leaving ``log``."""

    launched_here = True
    local_model = None

    def __init__(self, target: Target, framework: Any, log: str) -> None:
        self.target, self.framework, self.log = target, framework, log
        self.base_url = "http://127.0.0.1:9"
        self.served_name = target.name
        self.model_path = target.model
        self.log_path: Path | None = None
        self.started_at = 0.0
        self.ready = ReadyReport()
        self.facts = EngineFacts()
        self.version: str | None = None
        self.stopped = 0

    def exited(self) -> str | None:
        return "exited with code 1"

    def startup_log(self) -> str:
        return self.log

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.splitlines()[-lines:])

    def pids(self) -> list[int]:
        return []

    def stop(self) -> None:
        self.stopped += 1


class FakeLauncher:
    name = "fake"
    keys: tuple[str, ...] = ()
    launches = True
    runs_here = True

    def __init__(self, logs: list[str], retry: bool = False) -> None:
        self.logs = logs
        self.retry = retry
        self.spawned: list[DeadServer] = []

    def settings(self, values: Mapping[str, Any], where: str) -> None:
        return None

    def spawn(self, target: Target, framework: Any, ctx: StartContext) -> DeadServer:
        server = DeadServer(target, framework, self.logs[len(self.spawned)])
        self.spawned.append(server)
        return server

    def retry_after(self, log_tail: str) -> bool:
        return self.retry

    def sweep_orphans(self) -> list[str]:
        return []


def target(**kw: Any) -> Target:
    fields: dict[str, Any] = {"name": "t1", "framework": "vllm", "model": "/m",
                              "precision": "bf16", "startup_timeout_s": 5.0}  # fmt: skip
    return Target(**{**fields, **kw})


def ctx() -> StartContext:
    return StartContext(model_path=lambda t: t.model, log_path=lambda t: Path("/dev/null"))


def test_a_failed_start_quotes_the_first_error_not_only_the_chatter_at_the_end() -> None:
    launcher = FakeLauncher([CRASH_LOG])
    with pytest.raises(ServerStartError) as info:
        start_server(launcher, target(), VLLM(), ctx())
    message = str(info.value)
    assert "AssertionError" not in info.value.log_tail  # the tail is only chatter
    assert "first error in the log:" in message
    assert "Traceback (most recent call last):" in message
    assert message.index("assert rank_ok") < message.index("AssertionError")
    assert launcher.spawned[0].stopped >= 1  # what failed was stopped


def test_the_launcher_decides_whether_a_failed_start_is_tried_again() -> None:
    launcher = FakeLauncher(["address in use", "address in use"], retry=True)
    with pytest.raises(ServerStartError):
        start_server(launcher, target(), VLLM(), ctx())
    assert len(launcher.spawned) == 2  # one retry, never more


def test_an_unset_key_is_generated_only_where_the_launcher_launches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SEAM_TEST_KEY", raising=False)
    external = FakeLauncher(["x"])
    external.launches = False
    with pytest.raises(ServerStartError, match="SEAM_TEST_KEY is not set"):
        start_server(external, target(api_key_env="SEAM_TEST_KEY"), VLLM(), ctx())
    assert external.spawned == []  # refused before anything started


class Broken(OpenAICompatible):
    """A framework module with a bug: its argv raises something not ours."""

    name = "broken"
    paths = ApiPaths()

    def launch_spec(self, *args: Any) -> Any:
        raise ZeroDivisionError("bug in a framework module")


def test_an_unexpected_exception_at_start_is_kept_with_the_target_name(tmp_path: Path) -> None:
    frameworks.install([Broken()])
    try:
        pool = ServerPool(tmp_path, resolve_embedded=lambda v: tmp_path)
        t = target(framework="broken", model=str(tmp_path))
        with pytest.raises(ServerStartError, match="t1: ZeroDivisionError: bug in a framework"):
            pool.get(t)
        assert pool.records["t1"].error == "t1: ZeroDivisionError: bug in a framework module"
        assert pool.records["t1"].ready_s is None
        with pytest.raises(ServerStartError):  # not retried within the session
            pool.get(t)
    finally:
        frameworks.install([])


def test_plugins_add_frameworks_and_launchers_and_may_replace_a_builtin() -> None:
    class MyVLLM(VLLM):
        pass

    mine = MyVLLM()
    launcher = FakeLauncher([])
    frameworks.install([Broken(), mine])
    launchers.install([launcher])
    try:
        assert frameworks.names() == (
            "broken",
            "llamacpp",
            "sglang",
            "tgi",
            "transformers",
            "trtllm",
            "vllm",
        )
        assert frameworks.get("vllm") is mine
        assert launchers.get("fake") is launcher
        assert launchers.names() == ("docker", "external", "fake", "process")
    finally:
        frameworks.install([])
        launchers.install([])
    assert frameworks.names() == ("llamacpp", "sglang", "tgi", "transformers", "trtllm", "vllm")
    valid = r"\(valid: docker, external, process\)"
    with pytest.raises(KeyError, match="unknown launcher 'fake' " + valid):
        launchers.get("fake")
