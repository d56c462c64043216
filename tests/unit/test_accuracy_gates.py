"""Accuracy gates: noise never fails, a real loss fails, a straddle is inconclusive,
and a quantization that did not apply is caught."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_llmserve.checklist.accuracy import not_applied, own_figures, ppl_gate, score_gate
from pytest_llmserve.checklist.accuracy_figures import AccuracyFigures
from pytest_llmserve.measure.perplexity import PerplexityRun
from pytest_llmserve.measure.tasks import TaskRun

BASE = "b-bf16"


def _figs(
    name: str,
    nll: list[list[float]] | None,
    correct: list[bool] | None = None,
    precision: str = "int8",
    workload: str = BASE,
    comparable: str | None = None,
) -> AccuracyFigures:
    ppl = None if nll is None else PerplexityRun(tuple(tuple(w) for w in nll), 1.0)
    marks = correct if correct is not None else [True] * 50
    run = TaskRun({f"t/{i}": ok for i, ok in enumerate(marks)}, 1.0)
    return AccuracyFigures(name, precision, workload, ppl, None if ppl else "cannot", run,
                           comparable)  # fmt: skip


def _text(seed: int, windows: int = 8, size: int = 1024) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [rng.gamma(2.0, 1.25, size).tolist() for _ in range(windows)]


def _noisy(nll: list[list[float]], seed: int, sd: float, shift: float = 0.0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [(np.asarray(w) + shift + rng.normal(0, sd, len(w))).tolist() for w in nll]


def test_noise_alone_never_fails_the_perplexity_gate() -> None:
    base = _figs(BASE, _text(0), precision="bf16")
    outcomes = set()
    for seed in range(40):
        cand = _figs("c", _noisy(base.ppl.nll, seed, sd=0.05))  # type: ignore[union-attr, arg-type]
        outcomes.add(ppl_gate(base, cand, 0.02).outcome)
    assert "fail" not in outcomes
    assert outcomes == {"pass"}


def test_a_real_loss_fails_the_perplexity_gate() -> None:
    base = _figs(BASE, _text(0), precision="bf16")
    cand = _figs("c", _noisy(base.ppl.nll, 1, sd=0.3, shift=0.15))  # type: ignore[union-attr, arg-type]
    v = ppl_gate(base, cand, 0.05)  # +16% measured, +5% allowed
    assert v.outcome == "fail"
    assert v.point == pytest.approx(np.exp(0.15), rel=0.02)
    assert "budget <= +5.0%" in v.reason
    assert "baseline b-bf16" in v.reason
    # ... and the same loss passes a budget looser than it.
    assert ppl_gate(base, cand, 0.30).outcome == "pass"


def test_a_loss_at_the_budget_is_inconclusive() -> None:
    base = _figs(BASE, _text(0), precision="bf16")
    cand = _figs("c", _noisy(base.ppl.nll, 2, sd=1.0, shift=0.0198))  # type: ignore[union-attr, arg-type]
    v = ppl_gate(base, cand, 0.02)
    assert v.outcome == "inconclusive"
    assert v.interval is not None
    assert v.interval[0] < 1.02 < v.interval[1]
    assert "contains the bound" in v.reason


def test_not_measurable_is_inconclusive_never_pass() -> None:
    base = _figs(BASE, _text(0), precision="bf16")
    v = ppl_gate(base, _figs("c", None), 0.5)
    assert v.outcome == "inconclusive"
    assert "not measurable on c" in v.reason


def test_targets_with_different_tokenizers_are_not_compared() -> None:
    base = _figs(BASE, _text(0), precision="bf16")
    cand = _figs("c", _text(0), comparable="its tokenizer differs from b-bf16's (another model?)")
    assert ppl_gate(base, cand, 0.5).outcome == "inconclusive"
    assert score_gate(base, cand, 0.5).outcome == "inconclusive"


def test_score_gate_noise_passes_loss_fails_straddle_inconclusive() -> None:
    rng = np.random.default_rng(3)
    base_marks = (rng.random(500) < 0.7).tolist()
    base = _figs(BASE, None, base_marks, precision="bf16")
    same = _figs("c", None, base_marks)
    assert score_gate(base, same, 0.99).outcome == "pass"  # identical: ratio 1, interval [1, 1]
    lossy = [ok and rng.random() > 0.3 for ok in base_marks]  # loses ~30% of right items
    v = score_gate(base, _figs("c", None, lossy), 0.9)
    assert v.outcome == "fail"
    assert "McNemar exact p=" in v.reason
    few = list(base_marks)
    for i in [i for i, ok in enumerate(few) if ok][:7]:  # 7 of ~350 right items lost: -2%
        few[i] = False
    assert score_gate(base, _figs("c", None, few), 0.98).outcome == "inconclusive"


def test_identical_logprobs_under_another_precision_did_not_apply() -> None:
    nll = _text(0)
    base = _figs(BASE, nll, precision="bf16")
    trap = _figs("trap", [list(w) for w in nll], precision="int8")
    v = not_applied(base, trap)
    assert v is not None
    assert v.outcome == "fail"
    assert "did not apply" in v.reason
    changed = not_applied(base, _figs("q", _noisy(nll, 0, sd=0.01), precision="int8"))
    assert changed is not None
    assert changed.outcome == "pass"
    # Same declared precision (bf16 against itself): identical is expected, not a failure.
    assert not_applied(base, _figs("again", nll, precision="bf16")) is None


def test_own_figures_name_their_definition() -> None:
    figs = own_figures(_figs(BASE, _text(0), [True, False, True, True], precision="bf16"))
    by = {f.metric: f for f in figs}
    assert by["task_score"].value == 0.75
    assert by["ppl"].interval is not None
    assert "pydoc_data.topics" in by["ppl"].definition
    missing = own_figures(_figs("c", None))
    assert missing[0].value is None
    assert missing[0].note == "cannot"
