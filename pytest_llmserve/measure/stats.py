"""Spread for every figure: percentile summaries and throughput rates with confidence intervals.

A gate that compares a bare point with a bound passes or fails on noise (DESIGN.md,
"Measurement honesty"). Everything here therefore returns an interval at a stated
level next to the point, or None together with the reason there is none, so the
gate can say "inconclusive" instead of guessing.

Only numpy is used (scipy is not a dependency): percentiles are ``np.percentile``'s
default linear interpolation, the method vLLM's benchmark reports, so our p99 of the
same samples is vLLM's p99. Their intervals are exact and distribution-free (order
statistics at binomial ranks): a bootstrap never reaches past the sample's extremes,
so its interval of a tail percentile is too narrow exactly where a latency gate looks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

PERCENTILES: dict[str, int] = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
STATS: tuple[str, ...] = ("mean", *PERCENTILES)
TOO_FEW = "too few samples"


def min_samples(stat: str, level: float = 0.95) -> int:
    """Samples a statistic needs before it gets an interval at ``level``.

    A percentile's exact interval has both ends once the chance that no sample falls
    on one side of it is below the tail's share of the error: p50 needs 6 samples at
    95%, p90 36, p95 72, p99 368 (where the sample maximum is the upper end). The mean
    is asked for 10, below which its bootstrap says little.
    """
    if stat not in PERCENTILES:
        return 10
    q = PERCENTILES[stat] / 100
    tail = (1 - level) / 2
    return math.ceil(math.log(tail) / math.log(max(q, 1 - q)) - 1e-9)


def quantile_ranks(n: int, q: float, level: float) -> tuple[int | None, int | None]:
    """1-based ranks (lo, hi) of the exact two-sided interval of the ``q`` quantile.

    With B ~ Binomial(n, q) the count of samples below the true quantile,
    P(X_(lo) > quantile) = P(B < lo) and P(X_(hi) < quantile) = P(B >= hi); each rank is
    the tightest that keeps its side's chance at most (1 - level) / 2. None where no
    rank can (too few samples on that side).
    """
    tail = (1 - level) / 2
    cdf, first = _binomial_cdf(n, q)  # cdf[i] = P(B <= first + i); 0 below, 1 above
    low_side = np.flatnonzero(cdf <= tail)  # k with P(B <= k) <= tail: lo = k + 1
    if low_side.size:
        lo: int | None = first + int(low_side[-1]) + 1
    else:
        lo = first if first > 0 else None  # P(B <= first - 1) is nil
    high_side = np.flatnonzero(cdf >= 1 - tail)  # k with P(B > k) <= tail: hi = k + 1
    k = first + int(high_side[0]) if high_side.size else n
    hi = k + 1 if k + 1 <= n else None
    return lo, hi


def _binomial_cdf(n: int, q: float) -> tuple[np.ndarray, int]:
    """P(B <= k) of Binomial(n, q) for k over the span that carries its mass.

    Outside mean -/+ 12 standard deviations (and 3 counts) the tails are below 1e-30,
    so the span keeps the cost flat for a quarter-million pooled inter-token gaps.
    """
    spread = 12 * math.sqrt(n * q * (1 - q)) + 3
    first = max(0, math.floor(n * q - spread))
    last = min(n, math.ceil(n * q + spread))
    ks = np.arange(first, last + 1)
    log_pmf = (
        np.array(
            [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in ks.tolist()]
        )
        + ks * math.log(q)
        + (n - ks) * math.log1p(-q)
    )
    return np.minimum(np.cumsum(np.exp(log_pmf)), 1.0), first


@dataclass(frozen=True)
class Summary:
    """A distribution's mean and percentiles, each with its interval (None: too few samples)."""

    name: str
    unit: str
    n: int
    level: float
    method: str
    mean: float | None = None
    std: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean_ci: tuple[float, float] | None = None
    p50_ci: tuple[float, float] | None = None
    p90_ci: tuple[float, float] | None = None
    p95_ci: tuple[float, float] | None = None
    p99_ci: tuple[float, float] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def point(self, stat: str) -> float | None:
        """The point value of ``stat`` ("mean", "p50", "p90", "p95" or "p99")."""
        return {
            "mean": self.mean,
            "p50": self.p50,
            "p90": self.p90,
            "p95": self.p95,
            "p99": self.p99,
        }[stat]

    def interval(self, stat: str) -> tuple[float, float] | None:
        """The confidence interval of ``stat``, or None when there were too few samples."""
        return {
            "mean": self.mean_ci,
            "p50": self.p50_ci,
            "p90": self.p90_ci,
            "p95": self.p95_ci,
            "p99": self.p99_ci,
        }[stat]

    def why_no_interval(self, stat: str) -> str | None:
        """The reason ``stat`` has no interval, for an inconclusive verdict."""
        if self.interval(stat) is not None:
            return None
        return next(
            (note for note in self.notes if note.startswith(f"{stat}: ")), f"{TOO_FEW}: n={self.n}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every figure with its interval; the unit, n, level and method once."""
        figures = {
            s: {"point": self.point(s), "interval": _listed(self.interval(s))} for s in STATS
        }
        return {
            "name": self.name,
            "unit": self.unit,
            "n": self.n,
            "level": self.level,
            "method": self.method,
            "std": self.std,
            **figures,
            "notes": list(self.notes),
        }


def summarize(
    values: Iterable[float],
    name: str,
    unit: str,
    level: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    max_bootstrap_n: int = 20_000,
) -> Summary:
    """Mean and p50/p90/p95/p99 of ``values``, each with its interval at ``level``.

    Percentiles: exact order-statistic intervals (``quantile_ranks``), valid for any
    distribution and any n, and cheap enough to judge a run while it is still going.
    The mean: a seeded bootstrap (reproducible from the records), its normal limit
    above ``max_bootstrap_n`` samples (the bootstrap's cost grows as resamples x n),
    or no interval with ``resamples=0`` (a look in the middle of a run asks for none).
    """
    x = np.asarray(list(values), dtype=float)
    n = int(x.size)
    if n == 0:
        empty = tuple(f"{s}: {TOO_FEW} (no samples)" for s in STATS)
        return Summary(name, unit, 0, level, "none", notes=empty)
    qs = list(PERCENTILES.values())
    points = dict(zip(PERCENTILES, (float(v) for v in np.percentile(x, qs)), strict=True))
    xs = np.sort(x)
    cis: dict[str, tuple[float, float]] = {}
    notes: list[str] = []
    for stat, pct in PERCENTILES.items():
        lo, hi = quantile_ranks(n, pct / 100, level)
        if lo is None or hi is None:
            notes.append(
                f"{stat}: {TOO_FEW} for an interval (n={n}, needs >= {min_samples(stat, level)})"
            )
        else:
            cis[stat] = (float(xs[lo - 1]), float(xs[hi - 1]))
    mean_method = "mean: no interval asked"
    if resamples <= 0:
        notes.append("mean: no interval asked")
    elif n < min_samples("mean"):
        notes.append(f"mean: {TOO_FEW} for an interval (n={n}, needs >= {min_samples('mean')})")
    elif n <= max_bootstrap_n:
        mean_method = f"mean: bootstrap, {resamples} resamples, seed {seed}"
        cis["mean"] = _bootstrap_mean(x, level, resamples, seed)
    else:
        mean_method = "mean: normal (large-sample bootstrap limit)"
        half = NormalDist().inv_cdf((1 + level) / 2) * float(x.std(ddof=1)) / math.sqrt(n)
        cis["mean"] = (float(x.mean()) - half, float(x.mean()) + half)
    return Summary(
        name,
        unit,
        n,
        level,
        f"percentiles: exact order statistics; {mean_method}",
        mean=float(x.mean()),
        std=float(x.std()),
        **points,
        mean_ci=cis.get("mean"),
        p50_ci=cis.get("p50"),
        p90_ci=cis.get("p90"),
        p95_ci=cis.get("p95"),
        p99_ci=cis.get("p99"),
        notes=tuple(notes),
    )


def _bootstrap_mean(x: np.ndarray, level: float, resamples: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    n = x.size
    batch = max(1, 4_000_000 // n)  # bounds memory at ~32 MB of resampled values
    means = [
        x[rng.integers(0, n, size=(min(batch, resamples - start), n))].mean(axis=1)
        for start in range(0, resamples, batch)
    ]
    lo, hi = np.percentile(np.concatenate(means), [50 * (1 - level), 100 - 50 * (1 - level)])
    return float(lo), float(hi)


@functools.lru_cache(maxsize=256)
def t_quantile(level: float, df: int) -> float:
    """The t such that P(|T| <= t) = ``level`` for Student's t with ``df`` degrees of freedom.

    scipy is not a dependency, and a table covers only fixed levels, so we integrate:
    with t = sqrt(df)*tan(theta), P(|T| <= t) is the integral of cos(theta)**(df-1)
    from 0 to theta, normalised by the same integral up to pi/2 (exact for df=1).
    """
    theta = np.linspace(0.0, math.pi / 2, 200_001)
    density = np.cos(theta) ** (df - 1)
    cum = np.concatenate(([0.0], np.cumsum((density[1:] + density[:-1]) / 2)))
    at = float(np.interp(level * cum[-1], cum, theta))
    return math.sqrt(df) * math.tan(at)


@dataclass(frozen=True)
class Rate:
    """A throughput over the measured window: point, interval (None: why in ``note``)."""

    name: str
    unit: str
    point: float | None
    interval: tuple[float, float] | None
    level: float
    windows: int
    total: float
    duration_s: float
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "point": self.point,
            "interval": _listed(self.interval),
            "level": self.level,
            "windows": self.windows,
            "total": self.total,
            "duration_s": self.duration_s,
            "note": self.note,
        }


def rate_interval(
    events: Sequence[tuple[float, float]],
    start: float,
    end: float,
    windows: int = 10,
    level: float = 0.95,
    min_window_s: float = 0.0,
    min_windows: int = 5,
    name: str = "",
    unit: str = "",
    resolution: float = 0.0,
) -> Rate:
    """Rate of ``events`` (time, amount) over [start, end] with a batch-means interval.

    The point is total / (end - start), as vLLM reports throughput. For the interval
    the window is cut into k equal windows (at most ``windows``, each at least
    ``min_window_s`` long, e.g. a typical request's duration, so neighbouring windows
    are nearly independent); the window rates give point -/+ t(k-1) * s / sqrt(k).
    We use the t-distribution rather than a bootstrap over windows because with
    5-10 windows a bootstrap understates the spread (it cannot see beyond the
    observed windows), while t accounts for the small count. Events outside
    [start, end] count in the nearest window, so the point and the window rates agree.

    ``resolution`` is the most that can arrive at one instant (one decode step of
    every running request). Where a server decodes in lockstep, windows as long as
    its waves can hold identical counts and the spread would read zero, though each
    window's count is only known to where its two boundaries fall in a step: the
    spread is floored at that, ``resolution / (width * sqrt(6))`` (two boundaries,
    each uniform over one step).
    """
    duration = end - start
    total = float(sum(a for _, a in events))
    if duration <= 0:
        return Rate(name, unit, None, None, level, 0, total, 0.0, "empty measured window")
    point = total / duration
    k = windows
    if min_window_s > 0:
        k = min(k, int(duration // min_window_s))
    if k < min_windows:
        why = (
            f"run too short for an interval: {duration:.3g} s gives {k} windows"
            f"{f' of >= {min_window_s:.3g} s' if min_window_s > 0 else ''}"
            f", needs >= {min_windows}"
        )
        return Rate(name, unit, point, None, level, k, total, duration, why)
    width = duration / k
    times = np.array([t for t, _ in events], dtype=float)
    amounts = np.array([a for _, a in events], dtype=float)
    idx = np.clip(np.floor((times - start) / width), 0, k - 1).astype(int)
    per_window = np.bincount(idx, weights=amounts, minlength=k) / width
    spread = float(per_window.std(ddof=1))
    floor = resolution / (width * math.sqrt(6))
    note = f"batch means over {k} windows of {width:.3g} s, t with {k - 1} df"
    if floor > spread:
        note += (
            f"; window spread {spread:.3g} floored at {floor:.3g}: a window's count is "
            f"known to one step ({resolution:g} arriving at once)"
        )
        spread = floor
    half = t_quantile(level, k - 1) * spread / math.sqrt(k)
    return Rate(
        name, unit, point, (max(0.0, point - half), point + half), level, k, total, duration, note
    )


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]
