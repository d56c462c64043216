"""Spread for every figure: percentile summaries and throughput rates with confidence intervals.

A gate that compares a bare point with a bound passes or fails on noise (DESIGN.md,
"Measurement honesty"). Everything here therefore returns an interval at a stated
level next to the point, or None together with the reason there is none, so the
gate can say "inconclusive" instead of guessing.

Only numpy is used (scipy is not a dependency): percentiles are ``np.percentile``'s
default linear interpolation, the method vLLM's benchmark reports, so our p99 of the
same samples is vLLM's p99.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

PERCENTILES: dict[str, int] = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
STATS: tuple[str, ...] = ("mean", *PERCENTILES)
TOO_FEW = "too few samples"


def min_samples(stat: str, min_tail: int = 5) -> int:
    """Samples a statistic needs before it gets an interval.

    A bootstrap never draws a value beyond the sample's extremes, so the interval of
    p99 from 100 samples ends at the sample maximum and is too optimistic for an
    "at most" gate. We ask for ``min_tail`` samples beyond the percentile on its
    thinner side: p50 needs 10, p90 50, p95 100, p99 500; the mean is treated as p50.
    """
    pct = PERCENTILES.get(stat, 50)
    return math.ceil(min_tail * 100 / min(pct, 100 - pct))


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
    min_tail: int = 5,
    max_bootstrap_n: int = 20_000,
) -> Summary:
    """Mean and p50/p90/p95/p99 of ``values`` with bootstrap percentile intervals.

    The bootstrap is seeded, so a report is reproducible from its records. Its cost
    grows as resamples x n (about 7 s for 256k pooled ITLs), so above
    ``max_bootstrap_n`` samples we use its large-sample limit instead: the
    distribution-free order-statistic interval for percentiles (ranks
    n*q -/+ z*sqrt(n*q*(1-q))) and the normal interval for the mean.
    """
    x = np.asarray(list(values), dtype=float)
    n = int(x.size)
    if n == 0:
        notes = tuple(f"{s}: {TOO_FEW} (no samples)" for s in STATS)
        return Summary(name, unit, 0, level, "none", notes=notes)
    qs = list(PERCENTILES.values())
    points = dict(zip(PERCENTILES, (float(v) for v in np.percentile(x, qs)), strict=True))
    want = [s for s in STATS if n >= min_samples(s, min_tail)]
    if n <= max_bootstrap_n:
        method = f"bootstrap percentile, {resamples} resamples, seed {seed}"
        cis = _bootstrap(x, want, level, resamples, seed)
    else:
        method = "order statistics (large-sample bootstrap limit)"
        cis = _order_statistics(np.sort(x), want, level)
    notes = tuple(
        f"{s}: {TOO_FEW} for an interval (n={n}, needs >= {min_samples(s, min_tail)})"
        for s in STATS
        if s not in want
    )
    return Summary(
        name,
        unit,
        n,
        level,
        method,
        mean=float(x.mean()),
        std=float(x.std()),
        **points,
        mean_ci=cis.get("mean"),
        p50_ci=cis.get("p50"),
        p90_ci=cis.get("p90"),
        p95_ci=cis.get("p95"),
        p99_ci=cis.get("p99"),
        notes=notes,
    )


def _bootstrap(
    x: np.ndarray, stats: list[str], level: float, resamples: int, seed: int
) -> dict[str, tuple[float, float]]:
    if not stats:
        return {}
    rng = np.random.default_rng(seed)
    n = x.size
    batch = max(1, 4_000_000 // n)  # bounds memory at ~32 MB of resampled values
    qs = [PERCENTILES[s] for s in stats if s != "mean"]
    boot_q: list[np.ndarray] = []
    boot_mean: list[np.ndarray] = []
    for start in range(0, resamples, batch):
        sample = x[rng.integers(0, n, size=(min(batch, resamples - start), n))]
        boot_mean.append(sample.mean(axis=1))
        if qs:
            boot_q.append(np.percentile(sample, qs, axis=1).reshape(len(qs), -1))
    tails = [50 * (1 - level), 100 - 50 * (1 - level)]
    out: dict[str, tuple[float, float]] = {}
    if "mean" in stats:
        lo, hi = np.percentile(np.concatenate(boot_mean), tails)
        out["mean"] = (float(lo), float(hi))
    if qs:
        per_q = np.concatenate(boot_q, axis=1)
        for row, s in zip(per_q, (s for s in stats if s != "mean"), strict=True):
            lo, hi = np.percentile(row, tails)
            out[s] = (float(lo), float(hi))
    return out


def _order_statistics(
    xs: np.ndarray, stats: list[str], level: float
) -> dict[str, tuple[float, float]]:
    n = xs.size
    z = NormalDist().inv_cdf((1 + level) / 2)
    out: dict[str, tuple[float, float]] = {}
    for s in stats:
        if s == "mean":
            half = z * float(xs.std(ddof=1)) / math.sqrt(n)
            out[s] = (float(xs.mean()) - half, float(xs.mean()) + half)
            continue
        q = PERCENTILES[s] / 100
        spread = z * math.sqrt(n * q * (1 - q))
        lo = min(max(math.floor(n * q - spread), 1), n)  # 1-based ranks, rounded outwards
        hi = min(max(math.ceil(n * q + spread), 1), n)
        out[s] = (float(xs[lo - 1]), float(xs[hi - 1]))
    return out


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
    half = t_quantile(level, k - 1) * float(per_window.std(ddof=1)) / math.sqrt(k)
    note = f"batch means over {k} windows of {width:.3g} s, t with {k - 1} df"
    return Rate(
        name, unit, point, (max(0.0, point - half), point + half), level, k, total, duration, note
    )


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]
