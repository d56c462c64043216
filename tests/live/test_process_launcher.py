"""The process launcher against a real vLLM server: start, readiness, failure, stop."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.launch import labels
from pytest_llmserve.launch.process import ProcessServer
from tests.live.targets import DTYPE_ARGS, baseline_target


def test_starts_ready_and_stops_every_process(
    baseline_checkpoint: Path, vllm: VLLM, tmp_path: Path, started: list[ProcessServer]
) -> None:
    target = baseline_target("live-baseline", baseline_checkpoint)
    server = ProcessServer.start(target, vllm, str(baseline_checkpoint), tmp_path / "s.log")
    started.append(server)

    steps = list(server.ready.passed_at)
    assert steps == ["GET /health 200", "live-baseline listed", "1-token generation"]
    times = list(server.ready.passed_at.values())
    assert times == sorted(times)
    assert 0 < times[0] < target.startup_timeout_s
    pids = server.pids()
    assert len(pids) >= 2, "expected the API server and its engine core"
    assert server.facts.dtype == f"torch.{DTYPE_ARGS[1]}"
    assert "Initializing a V1 LLM engine" in (tmp_path / "s.log").read_text()

    server.stop()
    time.sleep(0.5)
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert alive == []
    assert not [p for p in labels.labelled_processes() if p.server == server.server_id]
    assert server.exited() is not None
    server.stop()  # twice is fine


def test_bad_argument_fails_fast_with_log_tail(
    baseline_checkpoint: Path, vllm: VLLM, tmp_path: Path
) -> None:
    target = baseline_target("live-bad", baseline_checkpoint, args=("--no-such-flag",))
    began = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        ProcessServer.start(target, vllm, str(baseline_checkpoint), tmp_path / "bad.log")
    assert time.monotonic() - began < 120
    message = str(info.value)
    assert "exited with code" in message
    assert "--no-such-flag" in message  # vLLM's own complaint, from the log tail
    assert str(tmp_path / "bad.log") in message


def test_never_ready_times_out_and_leaves_nothing(
    baseline_checkpoint: Path, vllm: VLLM, tmp_path: Path
) -> None:
    target = baseline_target("live-slow", baseline_checkpoint, startup_timeout_s=3.0)
    with pytest.raises(ServerStartError, match=r"not ready after 3 s \(stuck at: GET /health"):
        ProcessServer.start(target, vllm, str(baseline_checkpoint), tmp_path / "slow.log")
    me = labels.owner_label()
    assert [p for p in labels.labelled_processes() if p.owner == me] == []
