"""A server killed mid-run: its tests fail within 30 s with its last log lines, and the
other targets of the session carry on (a real pytest session comparing two frameworks:
the victim a real vLLM server, whose engine runs in a process of its own, the survivor
a real llama.cpp server, which starts in a second)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_llmserve.models.cache import cache_root
from tests.live.targets import llamacpp_toml, vllm_cpu_toml

CACHE = cache_root()  # read before pytester points HOME at a temporary folder
PROFILE = """
[[targets]]
{victim}
[[targets]]
{survivor}"""


def _profile(checkpoint: Path, gguf: Path) -> str:
    return PROFILE.format(
        victim=vllm_cpu_toml(checkpoint, name="victim"),
        survivor=llamacpp_toml(gguf, name="survivor"),
    )


TESTS = """
import os, signal, threading, time
from pathlib import Path

from pytest_llmserve.load.runner import Schedule
from pytest_llmserve.profile.checks import Workload

WORKLOAD = Workload(input_tokens=32, output_tokens=32)


def test_load(llm_target, llm_server, llm_perf):
    if llm_target.name != "victim":
        llm_perf.run(WORKLOAD, Schedule(8, concurrency=4))
        return
    pgid = os.getpgid(llm_server.pids()[0])
    killed = []

    def kill():
        killed.append(time.monotonic())
        os.killpg(pgid, signal.SIGKILL)

    threading.Timer(5.0, kill).start()
    try:
        llm_perf.run(WORKLOAD, Schedule(2000, concurrency=4))  # minutes, unless killed
    finally:
        Path({mark!r}).write_text(str(time.monotonic() - killed[0]) if killed else "not killed")


def test_after(llm_client):
    assert llm_client.completion("Hello", max_tokens=2).ok
"""


def test_killed_server_fails_its_tests_fast_and_others_carry_on(
    baseline_checkpoint: Path, f16_gguf: Path, tmp_path: Path, pytester: pytest.Pytester
) -> None:
    profile = tmp_path / "two.toml"
    profile.write_text(_profile(baseline_checkpoint, f16_gguf))
    mark = tmp_path / "seconds-from-kill-to-failure"
    pytester.makepyfile(test_crash=textwrap.dedent(TESTS.format(mark=str(mark))))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "-v",
        f"--llmserve-profile={profile}", f"--llmserve-log-dir={tmp_path / 'logs'}",
        f"--llmserve-cache-dir={CACHE}",
    )  # fmt: skip
    text = result.stdout.str()
    seconds = mark.read_text()
    print(f"kill -> failure: {seconds} s")
    assert float(seconds) < 30.0, text
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_load?victim? FAILED*",
            "*test_after?victim? ERROR*",
            "*test_load?survivor? PASSED*",
            "*test_after?survivor? PASSED*",
        ],
        consecutive=False,
    )
    # The failure names what happened and quotes the server's own last lines.
    assert "the server was killed by SIGKILL" in text
    assert "last log lines:" in text
    assert "server of victim was killed by SIGKILL" in text  # the next test, at once
