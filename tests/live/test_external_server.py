"""The suites against a server they did not start (the external launcher), run twice.

A team points the suites at a long-running deployment and runs them every night,
so the second session meets a server that has already served the first one's
requests. One real llama-server (F16, started here) is run through the smoke suite
and the metrics contract twice: both sessions pass, the second included, though
llama.cpp counts only the prompt tokens it evaluated and keeps earlier prompts in
its slots (the contract's prompts are new in every session for that reason).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llmserve.frameworks.llamacpp import LlamaCpp
from pytest_llmserve.launch.process import ProcessServer
from pytest_llmserve.launch.server import Server
from pytest_llmserve.models.cache import ENV_CACHE_DIR, cache_root
from tests.live.targets import llamacpp_toml
from tests.live.test_golden_llamacpp import f16_target

SUITES = Path(__file__).resolve().parents[2] / "suites"
CACHE = cache_root()  # read before pytester points HOME at a temporary folder


def test_a_server_served_twice_passes_both_sessions(
    f16_gguf: Path,
    pytester: pytest.Pytester,
    tmp_path: Path,
    started: list[Server],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_CACHE_DIR, str(CACHE))  # where the llama.cpp build is
    server = ProcessServer.start(f16_target("shared", f16_gguf), LlamaCpp(), str(f16_gguf),
                                 tmp_path / "server.log")  # fmt: skip
    started.append(server)
    profile = tmp_path / "external.toml"
    target = llamacpp_toml(f16_gguf, name="shared", launcher="external", url=server.base_url)
    profile.write_text("[[targets]]\n" + target)
    for run in ("first", "second"):
        result = pytester.runpytest_subprocess(
            str(SUITES / "test_smoke.py"), str(SUITES / "test_metrics_contract.py"),
            "-p", "no:randomly", "-p", "no:cacheprovider", f"--llmserve-profile={profile}",
            "--llmserve-history=none", f"--llmserve-log-dir={tmp_path / run}",
        )  # fmt: skip
        print(f"----- {run} session -----\n{result.stdout.str()[-2500:]}")
        assert result.ret == 0, f"the {run} session against the same server failed"
        result.stdout.fnmatch_lines(["*PASS*test_counters_count_what_was_served[[]shared[]]*"])
        assert "FAIL " not in result.stdout.str()
