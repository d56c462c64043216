"""Accuracy: what a precision (or a migration) costs, against a baseline target, paired.

Each target's ``checks.accuracy`` names its baseline target and budgets: perplexity
may rise by at most ``max_ppl_increase`` and the task score must keep
``min_score_ratio`` of the baseline's. Both are measured through the server on the
same token ids and items for both targets (held-out text: the Python language
reference; tasks: the built-in generated items), and judged on the paired 95%
interval: pass, fail, or inconclusive with the reason. The baseline's own figures
are a report, not a gate. A target declared at another precision that scores
exactly like its baseline did not apply its quantization, and fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from pytest_llmserve.checklist.accuracy import (
    delta_figures,
    not_applied,
    own_figures,
    ppl_gate,
    score_gate,
)
from pytest_llmserve.checklist.accuracy_figures import AccuracyFigures
from pytest_llmserve.checklist.accuracy_harness import AccuracyView
from pytest_llmserve.checklist.results import TargetResults
from pytest_llmserve.measure.perplexity import NotMeasurable
from pytest_llmserve.profile.accuracy import AccuracyChecks

Judge = Callable[..., None]


@contextmanager
def measurable() -> Iterator[None]:
    """Figures are scored on the baseline's token ids: without its tokenizer, none are."""
    try:
        yield
    except NotMeasurable as exc:
        pytest.skip(f"not measurable: {exc}")


def base_and_candidate(view: AccuracyView) -> tuple[AccuracyFigures, AccuracyFigures]:
    with measurable():
        base, cand = view.baseline(), view.figures()
    return base, cand


@pytest.fixture
def candidate(llm_accuracy: AccuracyView) -> AccuracyChecks:
    """The accuracy checks of a target judged against a baseline; the baseline skips."""
    spec = llm_accuracy.spec or pytest.skip("the profile sets no accuracy checks for this target")
    if llm_accuracy.is_baseline:
        pytest.skip("this target is the baseline")
    return spec


def test_accuracy_figures(llm_accuracy: AccuracyView, llm_results: TargetResults) -> None:
    """A report: this target's perplexity and task score (the baseline's reference figures)."""
    if llm_accuracy.spec is None:
        pytest.skip("the profile sets no accuracy checks for this target")
    with measurable():
        figures = llm_accuracy.figures()
    llm_results.add(*own_figures(figures))
    for f in llm_accuracy.harness.memory.get(llm_accuracy.target.name, []):
        if f.metric not in llm_results.figures:  # the footprint suite's reading wins
            llm_results.add(f)
    assert figures.tasks.correct, "no task item could be scored"
    if figures.ppl is None:
        pytest.skip(f"perplexity not measurable: {figures.ppl_note}")


def test_quantization_applied(
    llm_accuracy: AccuracyView, candidate: AccuracyChecks, llm_judge: Judge
) -> None:
    base, cand = base_and_candidate(llm_accuracy)
    verdict = not_applied(base, cand)
    if verdict is None:
        missing = next((f.ppl_note for f in (cand, base) if f.ppl is None), None)
        if missing:  # the per-token log-probabilities this check compares
            pytest.skip(f"not measurable: {missing}")
        pytest.skip(f"same declared precision as {candidate.baseline}, or nothing to compare")
    llm_judge(verdict)


def test_perplexity_within_budget(
    llm_accuracy: AccuracyView,
    candidate: AccuracyChecks,
    llm_results: TargetResults,
    llm_judge: Judge,
) -> None:
    if candidate.max_ppl_increase is None:
        pytest.skip("the accuracy checks set no max_ppl_increase")
    base, cand = base_and_candidate(llm_accuracy)
    verdict = ppl_gate(base, cand, candidate.max_ppl_increase)
    llm_results.add(*delta_figures(base, cand, verdict))
    llm_judge(verdict)


def test_task_score_within_budget(
    llm_accuracy: AccuracyView,
    candidate: AccuracyChecks,
    llm_results: TargetResults,
    llm_judge: Judge,
) -> None:
    if candidate.min_score_ratio is None:
        pytest.skip("the accuracy checks set no min_score_ratio")
    base, cand = base_and_candidate(llm_accuracy)
    verdict = score_gate(base, cand, candidate.min_score_ratio)
    llm_results.add(*delta_figures(base, cand, verdict))
    llm_judge(verdict)
