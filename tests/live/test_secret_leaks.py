"""A planted API key never reaches anything a session writes or prints: the server log,
JUnit XML, benchmark JSON, the .llmserve folder, the pytest cache, the terminal."""

from __future__ import annotations

import secrets
import textwrap
from pathlib import Path

import pytest

from tests.live.targets import vllm_cpu_toml

KEY_VAR = "LLMSERVE_LIVE_PLANTED_KEY"


def _profile(model: Path) -> str:
    return "[[targets]]\n" + vllm_cpu_toml(model, name="keyed", api_key_env=KEY_VAR)


# Runs the auth suite plus a load run (for the benchmark JSON) and a failing test
# that quotes the server's log and the target: the places a key could slip out.
EXTRA_TESTS = """
from pytest_llmserve.load.runner import Schedule
from pytest_llmserve.profile.checks import Workload


def test_small_load(llm_perf, llm_record, benchmark):
    m = llm_perf.run(Workload(input_tokens=16, output_tokens=8), Schedule(4, concurrency=2))
    llm_record(benchmark, m)
    assert m.metrics.completed == 4


def test_fails_with_the_key_in_locals(llm_target):
    from pytest_llmserve.launch import auth

    key = llm_target.api_key()
    headers = auth.auth_headers(llm_target)
    assert key is None, "fails on purpose: -l prints key and headers"


def test_fails_quoting_everything(llm_server, llm_client):
    reply = llm_client.completion("Hello", max_tokens=2)
    assert reply.ok
    assert False, f"{llm_server.target!r} {llm_server.log_tail(400)} {reply.body}"
"""


def _files_with(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_planted_key_is_in_no_artefact(
    baseline_checkpoint: Path, tmp_path: Path, pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    key = "sk-planted-" + secrets.token_hex(16)
    monkeypatch.setenv(KEY_VAR, key)
    profile = tmp_path / "keyed.toml"
    profile.write_text(_profile(baseline_checkpoint))
    suites = Path(__file__).resolve().parents[2] / "suites"
    (pytester.path / "test_auth.py").write_text((suites / "test_auth.py").read_text())
    pytester.makepyfile(test_extra=textwrap.dedent(EXTRA_TESTS))
    result = pytester.runpytest_subprocess(
        "-v", "-rA", "-l", "-p", "no:randomly",
        f"--llmserve-profile={profile}",
        f"--junitxml={pytester.path / 'junit.xml'}",
        f"--benchmark-json={pytester.path / 'bench.json'}",
    )  # fmt: skip
    # The key was really in use: the auth checks passed against this server.
    result.assert_outcomes(passed=3, failed=2)
    for artefact in ("junit.xml", "bench.json", ".llmserve"):
        assert (pytester.path / artefact).exists(), artefact
    assert list((pytester.path / ".llmserve").rglob("keyed.log"))
    # The search finds what is there: a control file holding the key.
    (tmp_path / "control").write_bytes(key.encode())
    assert _files_with(tmp_path, key.encode()) == [str(tmp_path / "control")]

    leaks = _files_with(pytester.path, key.encode())
    assert leaks == [], f"the key leaked into {leaks}"
    assert key not in result.stdout.str()
    assert key not in result.stderr.str()
