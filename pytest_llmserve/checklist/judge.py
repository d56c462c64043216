"""Verdicts into a test's outcome (what ``llm_judge`` does), and each test's check outcome.

The worst verdict decides: fail fails the test; inconclusive skips it with
``INCONCLUSIVE: <reason>`` (or fails it with that message when the session's
inconclusive mode is ``fail``); only all-pass passes. What was judged is kept in
``item.stash[JUDGED]``, so ``check_outcome`` reads it there instead of parsing a
skip reason back; a test that judged nothing gets its outcome from its report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from pytest_llmserve.checklist.gate import Outcome, Verdict
from pytest_llmserve.checklist.results import CheckOutcome

_RANK: dict[str, int] = {"pass": 0, "inconclusive": 1, "fail": 2}


@dataclass(frozen=True)
class Judged:
    """The worst outcome of what one test judged, and the reasons behind it."""

    outcome: Outcome
    reason: str = ""


JUDGED = pytest.StashKey[Judged]()


def worst(verdicts: Sequence[Verdict]) -> Judged:
    """Fail before inconclusive before pass; the reasons of every verdict of the worst kind."""
    worst_first: tuple[Outcome, ...] = ("fail", "inconclusive")
    for outcome in worst_first:
        reasons = [v.reason for v in verdicts if v.outcome == outcome]
        if reasons:
            return Judged(outcome, "\n".join(reasons))
    return Judged("pass")


class Judge:
    """``llm_judge``: record verdicts and turn the worst into the test's outcome."""

    def __init__(
        self, item: pytest.Item, *, inconclusive: str = "skip",
        log: list[tuple[str, Verdict]] | None = None,
    ) -> None:  # fmt: skip
        self.item = item
        self.inconclusive = inconclusive  # "skip" or "fail" (--llmserve-inconclusive)
        self.log = log if log is not None else []
        if JUDGED in item.stash:  # a rerun of the same item starts afresh
            del item.stash[JUDGED]

    def __call__(self, *verdicts: Verdict) -> None:
        self.log.extend((self.item.nodeid, v) for v in verdicts)
        judged = worst(verdicts)
        earlier = self.item.stash.get(JUDGED, None)
        if earlier is None or _RANK[judged.outcome] > _RANK[earlier.outcome]:
            self.item.stash[JUDGED] = judged
        if judged.outcome == "fail":
            pytest.fail(judged.reason, pytrace=False)
        if judged.outcome == "inconclusive":
            message = f"INCONCLUSIVE: {judged.reason}"
            if self.inconclusive == "fail":
                pytest.fail(message, pytrace=False)
            pytest.skip(message)


def check_outcome(item: pytest.Item, report: pytest.TestReport) -> CheckOutcome:
    """One target test's outcome for the result book (inconclusive kept apart from skipped).

    What the test judged wins, unless the test went on to fail or skip for another
    reason after an all-pass judgement; an expected failure is ``xfail`` either way.
    """
    check = getattr(item, "originalname", item.name)
    if hasattr(report, "wasxfail"):
        return CheckOutcome(check, "xfail", str(report.wasxfail).removeprefix("reason: "))
    judged = item.stash.get(JUDGED, None) if report.when == "call" else None
    if judged is not None and (judged.outcome != "pass" or report.passed):
        return CheckOutcome(check, judged.outcome, judged.reason)
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        return CheckOutcome(check, "skipped", reason.removeprefix("Skipped: "))
    if report.failed:
        kind = "fail" if report.when == "call" else "error"
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)
        first = message.removeprefix("Failed: ").splitlines()[0] if message else ""
        return CheckOutcome(check, kind, first)
    return CheckOutcome(check, "pass")
