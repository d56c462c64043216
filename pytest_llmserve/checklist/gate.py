"""Pass, fail or inconclusive: a bound compared with an interval, never with a bare point.

A point estimate on the good side of a bound can still be noise. A verdict is
"pass" only when the whole confidence interval is on the good side, "fail" only
when it is wholly on the bad side, and "inconclusive" otherwise, naming the
interval and the bound, so the user knows to measure longer rather than trust a
coin toss. A figure without an interval (too few samples, run too short) is
inconclusive with that reason: never a silent pass (DESIGN.md, "Measurement honesty").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    """One gate's decision and the figures behind it; ``reason`` reads on its own."""

    outcome: Outcome
    reason: str
    metric: str
    bound: float
    point: float | None
    interval: tuple[float, float] | None
    n: int | None = None

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


def check_at_least(
    name: str,
    point: float | None,
    interval: tuple[float, float] | None,
    bound: float,
    unit: str,
    *,
    n: int | None = None,
    level: float = 0.95,
    why_no_interval: str | None = None,
) -> Verdict:
    """``name`` must be >= ``bound`` (e.g. a throughput): pass if the interval's low end is."""
    return _check(name, point, interval, bound, unit, ">=", n, level, why_no_interval)


def check_at_most(
    name: str,
    point: float | None,
    interval: tuple[float, float] | None,
    bound: float,
    unit: str,
    *,
    n: int | None = None,
    level: float = 0.95,
    why_no_interval: str | None = None,
) -> Verdict:
    """``name`` must be <= ``bound`` (e.g. a p99 latency): pass if the interval's high end is."""
    return _check(name, point, interval, bound, unit, "<=", n, level, why_no_interval)


def check_ratio_at_least(
    name: str,
    num_point: float | None,
    num_interval: tuple[float, float] | None,
    den_point: float | None,
    den_interval: tuple[float, float] | None,
    k: float,
    *,
    level: float = 0.95,
    den_level: float | None = None,
) -> Verdict:
    """num / den must be >= ``k`` (e.g. throughput at high concurrency vs concurrency 1).

    The ratio's interval is the conservative (lo_num / hi_den, hi_num / lo_den): it
    holds whenever both intervals hold, so its level is at least 1 minus both misses
    (90% from two 95% intervals), whatever the dependence between the two runs.
    ``level`` is the numerator's interval level, ``den_level`` the denominator's
    (default: the same).
    """
    den_level = level if den_level is None else den_level
    if num_point is None or den_point is None or den_point <= 0:
        return _inconclusive(
            name,
            k,
            ">=",
            "",
            None,
            None,
            None,
            "no measurement"
            if num_point is None or den_point is None
            else f"denominator is {den_point:.4g}",
        )
    point = num_point / den_point
    if num_interval is None or den_interval is None:
        missing = "numerator" if num_interval is None else "denominator"
        return _inconclusive(
            name, k, ">=", "x", point, None, None, f"the {missing} has no interval"
        )
    (num_lo, num_hi), (den_lo, den_hi) = num_interval, den_interval
    hi = num_hi / den_lo if den_lo > 0 else math.inf
    interval = (num_lo / den_hi, hi)
    joint = 1 - (1 - level) - (1 - den_level)
    origin = (
        f" (from two {level_text(level)} intervals)"
        if level == den_level
        else f" (from a {level_text(level)} and a {level_text(den_level)} interval)"
    )
    return _check(name, point, interval, k, "x", ">=", None, joint, None, origin=origin)


def _check(
    name: str,
    point: float | None,
    interval: tuple[float, float] | None,
    bound: float,
    unit: str,
    op: str,
    n: int | None,
    level: float,
    why_no_interval: str | None,
    origin: str = "",
) -> Verdict:
    if point is None:
        return _inconclusive(
            name, bound, op, unit, None, None, n, why_no_interval or "no measurement"
        )
    if interval is None:
        return _inconclusive(
            name, bound, op, unit, point, None, n, why_no_interval or "no confidence interval"
        )
    lo, hi = interval
    shown = f"{level_text(level)} interval [{_fmt(lo)}, {_fmt(hi)}]{origin}"
    good_lo, good_hi = (lo >= bound, hi < bound) if op == ">=" else (hi <= bound, lo > bound)
    outcome: Outcome = "pass" if good_lo else "fail" if good_hi else "inconclusive"
    if outcome == "pass":
        why = f"the {shown} is entirely {op} the bound"
    elif outcome == "fail":
        why = f"the {shown} is entirely on the wrong side of the bound"
    else:
        why = f"the {shown} contains the bound {_val(bound, unit)}"
    reason = f"{_head(name, point, unit, n)}; bound {op} {_val(bound, unit)}: {outcome}: {why}"
    return Verdict(outcome, reason, name, bound, point, interval, n)


def _inconclusive(
    name: str,
    bound: float,
    op: str,
    unit: str,
    point: float | None,
    interval: tuple[float, float] | None,
    n: int | None,
    why: str,
) -> Verdict:
    reason = f"{_head(name, point, unit, n)}; bound {op} {_val(bound, unit)}: inconclusive: {why}"
    return Verdict("inconclusive", reason, name, bound, point, interval, n)


def _head(name: str, point: float | None, unit: str, n: int | None) -> str:
    value = "no value" if point is None else _val(point, unit)
    return f"{name} = {value}" + ("" if n is None else f" (n={n})")


def level_text(level: float) -> str:
    """An interval's level as a user reads it: 95% as "95%", a look's 97.5% as "97.5%"
    (never rounded up to a level it does not have)."""
    return f"{math.floor(level * 1000 + 1e-6) / 10:g}%"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _val(x: float, unit: str) -> str:
    return f"{_fmt(x)} {unit}".rstrip()
