"""A candidate's accuracy scored in looks: a seeded share first, the rest only if undecided.

The perplexity windows and the task items a budget is judged on are sized for the
hardest question a profile might ask (a +0.5% budget); a +3% budget on a model whose
int8 costs +1.6% is decided on far fewer. So a candidate with a budget is scored
on a seeded random share of its baseline's windows and items first (60%: a random
share, not the first ones, since the held-out text and the task list are ordered
by topic), the gate is asked at that look's level (``measure.sequential``: the
error rate split over the looks), and the rest is scored only where the verdict is
still open. The baseline is always scored whole: every candidate pairs with it.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace

from pytest_llmserve.checklist.accuracy import ppl_gate, score_gate
from pytest_llmserve.checklist.accuracy_figures import AccuracyFigures
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.measure import perplexity, sequential, tasks
from pytest_llmserve.profile.accuracy import AccuracyChecks

# A look needs 10 blocks of 128 tokens for the perplexity ratio's interval, and 30
# items for the score ratio's (``measure.paired``).
MIN_ITEMS = 30
MIN_BLOCKS = 10
BLOCK_TOKENS = 128


def look_order(n: int, seed: int) -> list[int]:
    """A seeded order of ``n`` units: each look scores a prefix of it."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def measure(
    endpoint: Endpoint,
    windows: tuple[tuple[int, ...], ...],
    texts: tuple[str, ...] | None,
    items: tuple[tasks.Encoded, ...],
    spec: AccuracyChecks,
    base: AccuracyFigures | None,
    mode: str,
    blank: AccuracyFigures,
) -> AccuracyFigures:
    """``blank`` (the target's figures with nothing scored yet) filled in, in looks
    where its budgets allow.

    Without ``base`` (the target is the baseline) or a budget, it is scored whole.
    """
    per_window = max(1, -(-max((len(w) for w in windows), default=1) // BLOCK_TOKENS))
    ppl_plan = sequential.plan(
        len(windows), mode if base and spec.max_ppl_increase is not None else "fixed",
        needs=lambda level: -(-MIN_BLOCKS // per_window),
    )  # fmt: skip
    task_plan = sequential.plan(
        len(items), mode if base and spec.min_score_ratio is not None else "fixed",
        needs=lambda level: MIN_ITEMS,
    )  # fmt: skip

    ppl: perplexity.PerplexityRun | None = None
    note = None
    order, done = look_order(len(windows), spec.seed), 0
    for n in ppl_plan.sizes:
        try:
            part = _score_windows(endpoint, windows, texts, order[done:n], spec.ppl_concurrency)
        except perplexity.NotMeasurable as exc:
            note = str(exc)
            break
        ppl, done = _merge_ppl(ppl, part), n
        if n < len(windows):  # only a sequential plan, with a base and a budget, looks early
            assert base is not None
            assert spec.max_ppl_increase is not None
            cand = replace(blank, ppl=ppl, ppl_plan=ppl_plan)
            if ppl_gate(base, cand, spec.max_ppl_increase).outcome != "inconclusive":
                break

    run: tasks.TaskRun | None = None
    order, done = look_order(len(items), spec.seed), 0
    for n in task_plan.sizes:
        part_items = tuple(items[i] for i in order[done:n])
        part_run = tasks.run(endpoint, part_items, concurrency=spec.concurrency)
        run, done = _merge_tasks(run, part_run), n
        if n < len(items):
            assert base is not None
            assert spec.min_score_ratio is not None
            cand = replace(blank, tasks=run, task_plan=task_plan)
            if score_gate(base, cand, spec.min_score_ratio).outcome != "inconclusive":
                break
    assert run is not None  # every plan has at least one look
    return replace(blank, ppl=ppl, ppl_note=note, tasks=run, ppl_plan=ppl_plan,
                   task_plan=task_plan)  # fmt: skip


def _score_windows(
    endpoint: Endpoint,
    windows: tuple[tuple[int, ...], ...],
    texts: tuple[str, ...] | None,
    chosen: list[int],
    concurrency: int,
) -> perplexity.PerplexityRun:
    """NLLs of the ``chosen`` windows, in place: a window not scored is empty."""
    started = time.perf_counter()
    run = perplexity.measure(
        endpoint, [list(windows[i]) for i in chosen],
        None if texts is None else [texts[i] for i in chosen], concurrency=concurrency,
    )  # fmt: skip
    placed: list[tuple[float, ...]] = [()] * len(windows)
    for i, nll in zip(chosen, run.nll, strict=True):
        placed[i] = nll
    return perplexity.PerplexityRun(tuple(placed), time.perf_counter() - started)


def _merge_ppl(
    a: perplexity.PerplexityRun | None, b: perplexity.PerplexityRun
) -> perplexity.PerplexityRun:
    if a is None:
        return b
    nll = tuple(x or y for x, y in zip(a.nll, b.nll, strict=True))
    return perplexity.PerplexityRun(nll, a.seconds + b.seconds)


def _merge_tasks(a: tasks.TaskRun | None, b: tasks.TaskRun) -> tasks.TaskRun:
    if a is None:
        return b
    return tasks.TaskRun({**a.correct, **b.correct}, a.seconds + b.seconds,
                         a.not_measured or b.not_measured)  # fmt: skip
