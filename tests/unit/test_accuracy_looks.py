"""A candidate's accuracy in looks: which share is scored first, how parts merge, and how
the gates pair a candidate that scored only some windows with its baseline."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_llmserve.checklist import accuracy_looks
from pytest_llmserve.checklist.accuracy import not_applied, ppl_gate
from pytest_llmserve.checklist.accuracy_figures import AccuracyFigures
from pytest_llmserve.measure import sequential
from pytest_llmserve.measure.perplexity import PerplexityRun
from pytest_llmserve.measure.tasks import TaskRun

BASE = "base"


def _figs(
    nll: list[tuple[float, ...]], precision: str = "int8", **plans: object
) -> AccuracyFigures:
    return AccuracyFigures(
        "cand" if precision != "bf16" else BASE, precision, BASE,
        PerplexityRun(tuple(nll), 1.0), None, TaskRun({}, 0.0), None, **plans,  # type: ignore[arg-type]
    )  # fmt: skip


def test_the_look_order_is_a_seeded_shuffle_of_every_unit() -> None:
    order = accuracy_looks.look_order(100, seed=0)
    assert sorted(order) == list(range(100))
    assert order == accuracy_looks.look_order(100, seed=0)
    assert order != accuracy_looks.look_order(100, seed=1)
    assert order[:60] != list(range(60))  # not the first ones: the text is ordered by topic


def test_parts_merge_into_one_run_in_place() -> None:
    a = PerplexityRun(((1.0,), (), (3.0,)), 2.0)
    b = PerplexityRun(((), (2.0, 2.5), ()), 1.0)
    merged = accuracy_looks._merge_ppl(a, b)
    assert merged.nll == ((1.0,), (2.0, 2.5), (3.0,))
    assert merged.seconds == 3.0
    tasks = accuracy_looks._merge_tasks(TaskRun({"a": True}, 1.0), TaskRun({"b": False}, 2.0, "mc"))
    assert tasks == TaskRun({"a": True, "b": False}, 3.0, "mc")


def test_a_candidate_scored_on_some_windows_is_paired_on_those_only() -> None:
    rng = np.random.default_rng(0)
    base_nll = [tuple(rng.gamma(2.0, 1.0, 512).tolist()) for _ in range(8)]
    # The candidate lost 10% on the windows it scored; the others are empty (unscored).
    scored = (0, 2, 3, 5, 7)
    cand_nll = [tuple(x + 0.1 for x in w) if i in scored else () for i, w in enumerate(base_nll)]
    plan = sequential.plan(8)
    base = _figs(base_nll, "bf16")
    cand = _figs(cand_nll, ppl_plan=plan)
    v = ppl_gate(base, cand, 0.05)
    assert v.outcome == "fail"
    assert v.point == pytest.approx(np.exp(0.1))
    assert v.n == 5 * 512
    assert "97.5% interval" in v.reason
    assert "(look 1 of 2: 5 of 8 windows, each look at 97.5%" in v.reason
    applied = not_applied(base, cand)
    assert applied is not None
    assert applied.outcome == "pass"  # the scored windows differ from the baseline's


def test_a_candidate_identical_on_the_windows_it_scored_did_not_apply_its_precision() -> None:
    base_nll = [(1.0, 2.0)] * 6
    cand = _figs([w if i < 3 else () for i, w in enumerate(base_nll)])
    verdict = not_applied(_figs(base_nll, "bf16"), cand)
    assert verdict is not None
    assert verdict.outcome == "fail"
