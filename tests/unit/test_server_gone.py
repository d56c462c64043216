"""A server that dies mid-run ends the load run within about a second, not at the
requests' timeouts, and the harness turns it into an error carrying the log tail;
a server that binds its port but never turns healthy times out with its log tail."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.checklist.performance import PerfHarness
from pytest_llmserve.errors import ServerError, ServerStartError
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.launch.process import ProcessServer
from pytest_llmserve.launch.readiness import ReadyReport
from pytest_llmserve.load import runner
from pytest_llmserve.load.runner import Schedule, run_load
from pytest_llmserve.profile.checks import Workload
from tests.unit.test_process_server import FakeFramework, target
from tests.unit.test_runner import PROMPTS, FakeClient


class DyingServer:
    """``exited`` turns after ``after_s``; until then the run's requests simply hang."""

    def __init__(self, after_s: float) -> None:
        self.at = time.monotonic() + after_s

    def __call__(self) -> str | None:
        return "was killed by SIGKILL" if time.monotonic() >= self.at else None


def test_server_gone_ends_a_hung_run_within_a_poll_and_grace() -> None:
    client = FakeClient(latency_s=600.0, chunks=600)  # would hang for ten minutes
    t0 = time.monotonic()
    run = asyncio.run(
        run_load(client, PROMPTS, Schedule(40, concurrency=4), exited=DyingServer(0.3))  # type: ignore[arg-type]
    )
    took = time.monotonic() - t0
    assert took < 0.3 + runner.GONE_POLL_S + runner.GONE_GRACE_S + 1.0
    assert run.stopped_by == "server_gone"
    assert "the server was killed by SIGKILL" in run.notes[0]
    assert len(run.records) == 4  # only the four in flight were sent
    assert all("while this request was in flight" in (r.error or "") for r in run.records)


def test_a_live_server_does_not_stop_the_run() -> None:
    run = asyncio.run(
        run_load(FakeClient(), PROMPTS, Schedule(20, concurrency=4), exited=lambda: None)  # type: ignore[arg-type]
    )
    assert run.stopped_by == "count"
    assert all(r.ok for r in run.records)


class _FakeServer:
    def __init__(self, tmp: Path) -> None:
        self.target = target()
        self.framework = VLLM()
        self.base_url = "http://127.0.0.1:9"
        self.served_name = "m"
        self.log_path = tmp / "server.log"
        self.log_path.write_text("engine: worker died: Killed\n")
        self.ready = ReadyReport()
        self.launched_here = False  # a server elsewhere: no processes to watch

    def exited(self) -> str | None:
        return "was killed by SIGKILL"

    def log_tail(self, lines: int = 40) -> str:
        return self.log_path.read_text()


def test_harness_raises_with_the_log_tail_when_the_server_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_run_sync(*args: Any, **kw: Any) -> Any:
        client = FakeClient(latency_s=600.0, chunks=600)
        return asyncio.run(run_load(client, PROMPTS, args[2], exited=kw["exited"]))  # type: ignore[arg-type]

    monkeypatch.setattr("pytest_llmserve.checklist.performance.run_sync", fake_run_sync)
    harness = PerfHarness(_FakeServer(tmp_path))  # type: ignore[arg-type]
    workload = Workload(kind="prompt_set", prompts_file=str(tmp_path / "p.toml"))
    (tmp_path / "p.toml").write_text('prompts = ["a", "b"]\n')
    with pytest.raises(ServerError) as info:
        harness.run(workload, Schedule(10, concurrency=2))
    message = str(info.value)
    assert "was killed by SIGKILL" in message
    assert "engine: worker died: Killed" in message
    assert str(tmp_path / "server.log") in message


# Binds its port and answers, but /health is 503 for ever (an engine stuck loading).
NEVER_HEALTHY = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

print("fake-engine: still compiling kernels", flush=True)
HTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"""


def test_server_that_answers_but_never_turns_healthy_times_out_with_log_tail(
    tmp_path: Path,
) -> None:
    fw = FakeFramework(NEVER_HEALTHY, tmp_path / "pids")
    t0 = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        ProcessServer.start(target(timeout_s=2), fw, "/m", tmp_path / "server.log")
    assert time.monotonic() - t0 < 8.0
    message = str(info.value)
    assert "not ready after 2 s" in message
    assert "stuck at: GET /health 200; last answer: GET /health → 503" in message
    assert "still compiling kernels" in message  # the log tail
    assert str(tmp_path / "server.log") in message


class RefusingClient:
    """Every send fails at once, as against a port nobody listens on any more."""

    max_connections = 1024

    async def preconnect(self, n: int) -> None:
        pass  # nobody listens: the requests find that out themselves

    async def send(self, prompt: Any, record: Any) -> Any:
        record.sent_at = time.perf_counter()
        record.error = "ConnectionRefusedError: [Errno 111] Connection refused"
        await asyncio.sleep(0)
        return record


def test_run_that_burns_through_refusals_before_a_poll_still_says_server_gone() -> None:
    # The run is over in milliseconds; the process is seen dead only 0.3 s later.
    run = asyncio.run(
        run_load(
            RefusingClient(),
            PROMPTS,
            Schedule(500, concurrency=4),  # type: ignore[arg-type]
            exited=DyingServer(0.3),
        )
    )
    assert run.stopped_by == "server_gone"
    assert "was killed by SIGKILL" in run.notes[0]


def test_refusals_from_a_server_that_lives_are_an_ordinary_failed_run() -> None:
    t0 = time.monotonic()
    run = asyncio.run(
        run_load(RefusingClient(), PROMPTS, Schedule(50, concurrency=4), exited=lambda: None)  # type: ignore[arg-type]
    )
    assert run.stopped_by == "count"
    assert time.monotonic() - t0 < runner.GONE_GRACE_S + 1.0
