"""Whole pytest sessions with real servers: SIGKILL recovery and the precision trap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_llmserve.launch import labels
from tests.live.targets import ARGS, IGNORED_QUANTIZATION, vllm_cpu_toml

SUITES = Path(__file__).resolve().parents[2] / "suites"


def _profile(path: Path, model: Path, **fields: object) -> Path:
    path.write_text("[[targets]]\n" + vllm_cpu_toml(model, name="live", **fields))
    return path


def test_sigkilled_session_leaves_no_server_after_next_run(
    baseline_checkpoint: Path, tmp_path: Path
) -> None:
    profile = _profile(tmp_path / "p.toml", baseline_checkpoint)
    flag = tmp_path / "server-up"
    (tmp_path / "test_hold.py").write_text(
        textwrap.dedent(
            f"""
            import time
            from pathlib import Path

            def test_hold(llm_server):
                Path({str(flag)!r}).write_text(str(llm_server.pids()))
                time.sleep(600)
            """
        )
    )
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        str(tmp_path),
        f"--llmserve-profile={profile}",
        f"--llmserve-log-dir={tmp_path / 'logs'}",
    ]
    victim = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        while not flag.exists():
            assert victim.poll() is None, "the session ended before its server was up"
            assert time.monotonic() < deadline, "server did not come up in 300 s"
            time.sleep(1)
        owner = labels.owner_label(victim.pid)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
    finally:
        if victim.poll() is None:
            victim.kill()
    orphans = [p for p in labels.labelled_processes() if p.owner == owner]
    assert orphans, "SIGKILL should have left the server running (else this test proves nothing)"

    (tmp_path / "test_hold.py").unlink()
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert [p for p in labels.labelled_processes() if p.owner == owner] == []


def test_precision_that_silently_did_not_apply_fails_the_suite(
    baseline_checkpoint: Path, tmp_path: Path, pytester: pytest.Pytester
) -> None:
    # vLLM CPU accepts this flag, logs "Quantizing 0 layers", and serves the float checkpoint.
    profile = _profile(
        tmp_path / "trap.toml", baseline_checkpoint, precision="int8",
        args=[*ARGS, *IGNORED_QUANTIZATION],
    )  # fmt: skip
    result = pytester.runpytest_subprocess(
        str(SUITES / "test_smoke.py"), "-p", "no:cacheprovider",
        f"--llmserve-profile={profile}", f"--llmserve-log-dir={tmp_path / 'logs'}",
    )  # fmt: skip
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the engine quantized 0 layers*",
            "*FAILED*test_declared_precision_applied[[]live[]]*",
        ]
    )
