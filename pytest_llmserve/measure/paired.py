"""Paired comparisons of a candidate with its baseline over the same tokens and items.

Two targets scored on the same held-out tokens and the same task items differ
far less than two independent samples would: most of the spread is in the text,
and the text is shared. Pairing removes it, so a real 1% perplexity loss is
visible in a few thousand tokens, and noise alone (a nondeterministic batch, a
reordered reduction) cannot move the interval past a budget.

- Perplexity ratio: exp(mean NLL_candidate - mean NLL_baseline) over the same
  tokens; its interval comes from a block bootstrap (blocks of consecutive tokens
  inside a window, resampled whole, since neighbouring tokens' losses correlate).
- Task score ratio: candidate accuracy / baseline accuracy over the same items;
  its interval from a paired bootstrap over items. McNemar's exact test on the
  discordant items is reported beside it (it tests "no difference", which is not
  the budget question, so it informs but does not decide).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

RESAMPLES = 4000
LEVEL = 0.95


@dataclass(frozen=True)
class PairedRatio:
    """candidate / baseline with a bootstrap interval over ``units`` resampled units."""

    point: float | None
    interval: tuple[float, float] | None
    units: int  # blocks or items resampled
    n: int  # tokens or items compared
    level: float = LEVEL
    note: str | None = None  # why there is no point or no interval


@dataclass(frozen=True)
class McNemar:
    """Discordant items: ``b`` baseline right / candidate wrong, ``c`` the reverse."""

    b: int
    c: int
    p_value: float


def token_blocks(
    windows: Sequence[Sequence[float]] | Sequence[np.ndarray], block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each window cut into consecutive blocks of ``block`` values: (sums, counts)."""
    sums: list[float] = []
    counts: list[int] = []
    for w in windows:
        for start in range(0, len(w), block):
            part = w[start : start + block]
            sums.append(float(np.sum(part)))
            counts.append(len(part))
    return np.asarray(sums, dtype=np.float64), np.asarray(counts, dtype=np.float64)


def perplexity(windows: Sequence[Sequence[float]]) -> float | None:
    """exp(mean NLL) over every scored token; None when there is none."""
    total = sum(len(w) for w in windows)
    if total == 0:
        return None
    return math.exp(sum(float(np.sum(w)) for w in windows) / total)


def ppl_ratio(
    baseline: Sequence[Sequence[float]],
    candidate: Sequence[Sequence[float]],
    *,
    block: int = 128,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> PairedRatio:
    """Perplexity ratio candidate/baseline over the same tokens (per-token NLLs, per window)."""
    if [len(w) for w in baseline] != [len(w) for w in candidate]:
        return PairedRatio(None, None, 0, 0, level, "the two runs scored different tokens")
    diffs = [np.asarray(c, dtype=np.float64) - np.asarray(b, dtype=np.float64)
             for b, c in zip(baseline, candidate, strict=True)]  # fmt: skip
    sums, counts = token_blocks(diffs, block)
    n = int(counts.sum())
    if n == 0:
        return PairedRatio(None, None, 0, 0, level, "no scored tokens")
    point = math.exp(sums.sum() / n)
    if len(sums) < 10:
        return PairedRatio(point, None, len(sums), n, level, f"only {len(sums)} blocks (< 10)")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(resamples, len(sums)))
    ratios = np.exp(sums[idx].sum(axis=1) / counts[idx].sum(axis=1))
    lo, hi = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return PairedRatio(point, (float(lo), float(hi)), len(sums), n, level)


def score_ratio(
    baseline: Sequence[bool],
    candidate: Sequence[bool],
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> PairedRatio:
    """Task score ratio candidate/baseline over the same items (paired bootstrap)."""
    if len(baseline) != len(candidate):
        return PairedRatio(None, None, 0, 0, level, "the two runs scored different items")
    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    n = len(b)
    if n == 0 or b.sum() == 0:
        return PairedRatio(None, None, n, n, level, "the baseline scored no item right")
    point = float(c.sum() / b.sum())
    if n < 30:
        return PairedRatio(point, None, n, n, level, f"only {n} items (< 30)")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    base_sums = b[idx].sum(axis=1)
    ratios = c[idx].sum(axis=1)[base_sums > 0] / base_sums[base_sums > 0]
    lo, hi = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return PairedRatio(point, (float(lo), float(hi)), n, n, level)


def mcnemar_exact(baseline: Sequence[bool], candidate: Sequence[bool]) -> McNemar:
    """Two-sided exact McNemar test: binomial(b + c, 1/2) on the discordant items."""
    b = sum(1 for x, y in zip(baseline, candidate, strict=True) if x and not y)
    c = sum(1 for x, y in zip(baseline, candidate, strict=True) if y and not x)
    n = b + c
    if n == 0:
        return McNemar(0, 0, 1.0)
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return McNemar(b, c, min(1.0, 2 * tail))


def max_abs_difference(
    baseline: Sequence[Sequence[float]], candidate: Sequence[Sequence[float]]
) -> float | None:
    """Largest per-token log-probability difference; None when the tokens differ."""
    if [len(w) for w in baseline] != [len(w) for w in candidate]:
        return None
    worst = 0.0
    for b, c in zip(baseline, candidate, strict=True):
        if len(b):
            diff = np.abs(np.asarray(b, dtype=np.float64) - np.asarray(c, dtype=np.float64))
            worst = max(worst, float(diff.max()))
    return worst


def perplexity_interval(
    windows: Sequence[Sequence[float]],
    *,
    block: int = 128,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> tuple[float | None, tuple[float, float] | None, int]:
    """One target's perplexity with a block-bootstrap interval: (point, interval, blocks).

    This is the spread of the text, not of the server: two targets are compared
    with ``ppl_ratio`` (paired), never by overlapping these intervals.
    """
    sums, counts = token_blocks(windows, block)
    if counts.sum() == 0:
        return None, None, 0
    point = math.exp(sums.sum() / counts.sum())
    if len(sums) < 10:
        return point, None, len(sums)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(resamples, len(sums)))
    values = np.exp(sums[idx].sum(axis=1) / counts[idx].sum(axis=1))
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return point, (float(lo), float(hi)), len(sums)


def proportion_interval(right: int, total: int, level: float = LEVEL) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (sound near 0 and 1, unlike the normal one)."""
    if total == 0:
        return None
    z = NormalDist().inv_cdf((1 + level) / 2)
    p = right / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))
