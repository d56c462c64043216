"""The nightly gate against a real llama.cpp server (issue 5, "done when").

Four real sessions of the performance suite's throughput check, each starting its
own server from a profile this test writes: run 1 records, run 2 compares with
it and passes, run 3 serves the same model with batching taken away
(``--parallel 1``: one slot, so one sequence at a time at concurrency 8) and must
be flagged as a regression that fails the session although every test passed, and
the same slowed run with a looser rule passes. Six waves of 8 requests: the fewest
that still give the throughput interval its 5 windows (``QUICK_WAVES``).

The gate is framework-neutral (the history store and its rules read figures, not
servers), so it runs on llama.cpp, which starts in a second, where vLLM's four
starts and its slowed runs took five minutes of CI; vLLM's own record and
comparison run in every suite step of CI. About a minute on a 2-core AVX2 CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmserve.models.cache import cache_root
from tests.live.targets import SHORT_THROUGHPUT, checks_toml, llamacpp_toml

# Read before pytester points HOME at a temporary folder: the sessions must find
# the embedded model's GGUF and the llama.cpp build in the user's cache.
CACHE = cache_root()
SUITE = Path(__file__).resolve().parents[2] / "suites" / "test_performance.py"
TARGET = "gate-baseline"
PROFILE = 'name = "history-gate"\n\n[[targets]]\n{target}' + checks_toml(
    "targets", SHORT_THROUGHPUT
)


def _profile(args: list[str]) -> str:
    return PROFILE.format(target=llamacpp_toml("embedded:smollm2", name=TARGET, args=args))


def _session(
    pytester: pytest.Pytester, tmp_path: Path, args: list[str], rule: str, tag: str
) -> pytest.RunResult:
    profile = tmp_path / f"{tag}.toml"
    profile.write_text(_profile(args))
    result = pytester.runpytest_subprocess(
        str(SUITE), "-k", "test_output_throughput_floor", "-p", "no:randomly",
        "-p", "no:cacheprovider", f"--llmserve-profile={profile}", f"--llmserve-cache-dir={CACHE}",
        f"--llmserve-history={tmp_path / 'history'}", f"--llmserve-log-dir={tmp_path / 'logs'}",
        f"--llmserve-report={tmp_path / f'{tag}.html'}", f"--llmserve-fail-on={rule}",
        "--llmserve-compare=last", timeout=420,
    )  # fmt: skip
    out = result.stdout.str()
    section = out[out.find("llmserve regressions") - 30 :] if "llmserve regressions" in out else out
    print(f"\n----- {tag} (exit {result.ret}) -----\n{section}")
    return result


def _rows(tmp_path: Path) -> list[dict[str, object]]:
    runs = sorted((tmp_path / "history" / "runs" / TARGET).glob("*.json"))
    return [json.loads(p.read_text()) for p in runs]


def test_a_slowed_target_fails_the_nightly_gate(
    f16_gguf: Path, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    normal: list[str] = []
    slowed = ["--parallel", "1"]
    rule = "output_tok_s:-10%"

    first = _session(pytester, tmp_path, normal, rule, "run1")
    first.assert_outcomes(passed=1)
    assert first.ret == 0
    first.stdout.fnmatch_lines([f"{TARGET}: no earlier run in history*"])
    (rec1,) = _rows(tmp_path)
    tok = rec1["figures"]["output_tok_s"]  # type: ignore[index]
    assert tok["interval"] is not None, "run 1 measured no interval: the gate cannot judge"
    assert rec1["target_info"]["model_hash_method"] == "embedded build key"  # type: ignore[index]

    second = _session(pytester, tmp_path, normal, rule, "run2")
    second.assert_outcomes(passed=1)
    assert second.ret == 0, "an unchanged target must not be flagged"
    second.stdout.fnmatch_lines([f"{TARGET}*output_tok_s*"])
    assert "REGRESSION" not in second.stdout.str()

    third = _session(pytester, tmp_path, slowed, rule, "run3-slowed")
    third.assert_outcomes(passed=1)  # the floor (1 tok/s) still passes
    assert third.ret == 1, "the regression gate did not fail the session"
    third.stdout.fnmatch_lines([f"{TARGET}*output_tok_s*REGRESSION*",
                                "*regression(s) beyond noise: the session fails*"])  # fmt: skip

    looser = _session(pytester, tmp_path, slowed, "output_tok_s:-97%", "run4-slowed-looser")
    looser.assert_outcomes(passed=1)
    assert looser.ret == 0, "a looser rule must let the same slowdown pass"
    assert "REGRESSION" not in looser.stdout.str()
    records = _rows(tmp_path)
    assert len(records) == 4
    assert records[2]["gate"]["regressed"] == ["output_tok_s"]  # type: ignore[index]
    # run 4 compared with run 2, not with the regressed run 3
    assert records[3]["gate"]["compared_with"] == [records[1]["run_id"]]  # type: ignore[index]
    assert (tmp_path / "run4-slowed-looser.html").read_text().count("<svg") >= 1
