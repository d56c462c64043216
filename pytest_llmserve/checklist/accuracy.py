"""Accuracy delta gates: a candidate against its baseline, paired over the same tokens and items.

The budget is the MLPerf form: perplexity may rise by at most ``max_ppl_increase``
(a fraction) and the task score must keep ``min_score_ratio`` of the baseline's.
The verdict compares the bound with the paired 95% interval (``measure.paired``):
pass when the whole interval is within budget, fail when it is wholly outside,
inconclusive when it straddles, so noise alone cannot fail a target and a real
loss cannot pass. A quantization that silently did not apply is its own failure:
a candidate declared at another precision whose per-token log-probabilities equal
its baseline's is serving the baseline's weights.
"""

from __future__ import annotations

from dataclasses import replace

from pytest_llmserve.checklist.accuracy_figures import AccuracyFigures
from pytest_llmserve.checklist.gate import Verdict, check_at_least, check_at_most, level_text
from pytest_llmserve.checklist.results import Better, Figure
from pytest_llmserve.measure import paired

# Per-token log-probabilities this close to the baseline's mean the same weights served them.
IDENTICAL_ATOL = 1e-6


def ppl_gate(base: AccuracyFigures, cand: AccuracyFigures, max_increase: float) -> Verdict:
    """Perplexity ratio candidate/baseline must stay <= 1 + ``max_increase``."""
    name = f"perplexity vs {base.target}"
    bound = 1 + max_increase
    why = _not_comparable(base, cand) or _no_ppl(base, cand)
    if why:
        return Verdict("inconclusive", f"{name}: inconclusive: {why}", name, bound, None, None)
    base_nll, cand_nll = _scored_windows(base, cand)
    level = cand.level("ppl")
    r = paired.ppl_ratio(base_nll, cand_nll, level=level)
    v = check_at_most(name, r.point, r.interval, bound, "x", n=r.n, level=level,
                      why_no_interval=r.note)  # fmt: skip
    b, c = paired.perplexity(base_nll), paired.perplexity(cand_nll)
    head = (f"perplexity {_num(c)} vs baseline {base.target} {_num(b)}: "
            f"delta {_pct(r.point)} ({level_text(level)} interval {_span(r.interval)}, paired over "
            f"{r.n} tokens in {r.units} blocks); budget <= +{max_increase:.1%}")  # fmt: skip
    return replace(v, reason=f"{head}: {v.outcome}: {_tail(v)}{_look(cand, 'ppl')}")


def score_gate(base: AccuracyFigures, cand: AccuracyFigures, min_ratio: float) -> Verdict:
    """Task score candidate/baseline over the same items must stay >= ``min_ratio``."""
    name = f"task score vs {base.target}"
    why = _not_comparable(base, cand)
    if why:
        return Verdict("inconclusive", f"{name}: inconclusive: {why}", name, min_ratio, None, None)
    ids = [i for i in base.tasks.correct if i in cand.tasks.correct]
    b = [base.tasks.correct[i] for i in ids]
    c = [cand.tasks.correct[i] for i in ids]
    level = cand.level("tasks")
    r = paired.score_ratio(b, c, level=level)
    m = paired.mcnemar_exact(b, c)
    v = check_at_least(name, r.point, r.interval, min_ratio, "x", n=r.n, level=level,
                       why_no_interval=r.note)  # fmt: skip
    head = (f"task score {_frac(c)} vs baseline {base.target} {_frac(b)} over the same "
            f"{len(ids)} items: ratio {_num(r.point)} ({level_text(level)} interval "
            f"{_span(r.interval, pct=False)}; McNemar exact p={m.p_value:.3g}, {m.b} lost / "
            f"{m.c} gained); budget >= {min_ratio:.1%} of baseline")  # fmt: skip
    notes = "; ".join(n for n in (base.tasks.not_measured, cand.tasks.not_measured) if n)
    reason = f"{head}: {v.outcome}: {_tail(v)}" + (f" ({notes})" if notes else "")
    reason += _look(cand, "tasks")
    return replace(v, reason=reason)


def not_applied(
    base: AccuracyFigures, cand: AccuracyFigures, atol: float = IDENTICAL_ATOL
) -> Verdict | None:
    """Fail a candidate declared at another precision that scores exactly like its baseline.

    None when there is nothing to say (same declared precision, or nothing to compare).
    """
    if cand.precision == base.precision or cand.target == base.target:
        return None
    if base.ppl is None or cand.ppl is None or cand.comparable:
        return None
    diff = paired.max_abs_difference(*_scored_windows(base, cand))
    if diff is None:
        return None
    name = f"{cand.precision} applied vs {base.target}"
    if diff <= atol:
        reason = (
            f"declared {cand.precision} but every per-token log-probability equals "
            f"{base.target}'s ({base.precision}) within {atol:g} (max |delta| {diff:.3g} "
            f"over {cand.ppl.tokens} tokens): the quantization did not apply"
        )
        return Verdict("fail", reason, name, atol, diff, None, cand.ppl.tokens)
    reason = (
        f"per-token log-probabilities differ from {base.target}'s "
        f"(max |delta| {diff:.3g}): the declared {cand.precision} changed the model"
    )
    return Verdict("pass", reason, name, atol, diff, None, cand.ppl.tokens)


def own_figures(figs: AccuracyFigures) -> list[Figure]:
    """The target's own perplexity and task score, with intervals, for the results book."""
    out: list[Figure] = []
    if figs.ppl is not None:
        point, interval, blocks = paired.perplexity_interval(figs.ppl.nll)
        out.append(Figure("ppl", point, "", figs.ppl.tokens, interval, "lower",
                          f"exp(mean token NLL) over {figs.ppl.tokens} held-out tokens "
                          f"(pydoc_data.topics, token ids of {figs.workload}); interval: "
                          f"block bootstrap over {blocks} blocks"))  # fmt: skip
    else:
        out.append(Figure("ppl", None, "", note=figs.ppl_note or "not measured"))
    right = sum(figs.tasks.correct.values())
    total = len(figs.tasks.correct)
    out.append(Figure("task_score", figs.tasks.score, "fraction", total,
                      paired.proportion_interval(right, total), "higher",
                      f"fraction right of {total} built-in items (multiple choice by "
                      "log-likelihood, exact-match generation at temperature 0)",
                      figs.tasks.not_measured))  # fmt: skip
    return out


def delta_figures(base: AccuracyFigures, cand: AccuracyFigures, *verdicts: Verdict) -> list[Figure]:
    """The gates' ratios as figures (``ppl_ratio``, ``task_score_ratio``) for the table."""
    out = []
    for v in verdicts:
        metric = "ppl_ratio" if v.metric.startswith("perplexity") else "task_score_ratio"
        better: Better = "lower" if metric == "ppl_ratio" else "higher"
        out.append(Figure(metric, v.point, "x", v.n, v.interval, better,
                          f"{cand.target} / {base.target}, paired over the same "
                          f"{'tokens' if metric == 'ppl_ratio' else 'items'}",
                          None if v.interval else v.reason))  # fmt: skip
    return out


def _not_comparable(base: AccuracyFigures, cand: AccuracyFigures) -> str | None:
    if cand.workload != base.target:
        return f"{cand.target} was scored on {cand.workload}'s tokens, not {base.target}'s"
    return cand.comparable


def _no_ppl(base: AccuracyFigures, cand: AccuracyFigures) -> str | None:
    for f in (cand, base):
        if f.ppl is None:
            return f"not measurable on {f.target}: {f.ppl_note}"
    return None


def _scored_windows(
    base: AccuracyFigures, cand: AccuracyFigures
) -> tuple[list[tuple[float, ...]], list[tuple[float, ...]]]:
    """The baseline's and the candidate's NLLs over the windows the candidate scored
    (all of them, unless its looks stopped early: an unscored window is empty)."""
    assert base.ppl is not None
    assert cand.ppl is not None
    if len(base.ppl.nll) != len(cand.ppl.nll):  # not the same windows: the pairing says so
        return list(base.ppl.nll), list(cand.ppl.nll)
    pairs = [(b, c) for b, c in zip(base.ppl.nll, cand.ppl.nll, strict=True) if c]
    return [b for b, _ in pairs], [c for _, c in pairs]


def _look(cand: AccuracyFigures, kind: str) -> str:
    sampling = cand.sampling(kind)
    return f" ({sampling})" if sampling else ""


def _tail(v: Verdict) -> str:
    return v.reason.split(f": {v.outcome}: ", 1)[-1]


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _pct(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio - 1:+.2%}"


def _span(interval: tuple[float, float] | None, pct: bool = True) -> str:
    if interval is None:
        return "none"
    lo, hi = interval
    return f"[{_pct(lo)}, {_pct(hi)}]" if pct else f"[{lo:.4g}, {hi:.4g}]"


def _frac(values: list[bool]) -> str:
    return f"{sum(values)}/{len(values)}" + (
        f" ({sum(values) / len(values):.1%})" if values else ""
    )
