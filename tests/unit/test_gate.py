"""Gate decisions: pass and fail only when the whole interval is on one side of the bound."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from pytest_llmserve.checklist.gate import (
    Verdict,
    check_at_least,
    check_at_most,
    check_ratio_at_least,
)


@pytest.mark.parametrize(
    ("interval", "outcome"),
    [
        ((0.8, 1.2), "pass"),
        ((2.1, 2.6), "fail"),
        ((1.8, 2.3), "inconclusive"),
        ((1.5, 2.0), "pass"),
    ],  # the bound itself is on the good side
)
def test_at_most(interval: tuple[float, float], outcome: str) -> None:
    point = sum(interval) / 2
    v = check_at_most("ttft p99", point, interval, 2.0, "s", n=600)
    assert v.outcome == outcome
    assert v.passed is (outcome == "pass")
    assert "ttft p99" in v.reason
    assert "n=600" in v.reason
    assert "<= 2 s" in v.reason
    assert f"[{interval[0]:.4g}, {interval[1]:.4g}]" in v.reason


@pytest.mark.parametrize(
    ("interval", "outcome"),
    [
        ((110.0, 130.0), "pass"),
        ((70.0, 90.0), "fail"),
        ((95.0, 105.0), "inconclusive"),
        ((100.0, 120.0), "pass"),
    ],
)
def test_at_least(interval: tuple[float, float], outcome: str) -> None:
    v = check_at_least("output throughput", sum(interval) / 2, interval, 100.0, "tok/s")
    assert v.outcome == outcome
    assert ">= 100 tok/s" in v.reason


def test_straddling_interval_says_it_contains_the_bound() -> None:
    v = check_at_most("e2e p99", 1.9, (1.8, 2.3), 2.0, "s")
    assert "the 95% interval [1.8, 2.3] contains the bound 2 s" in v.reason
    assert v.interval == (1.8, 2.3)
    assert v.bound == 2.0


@pytest.mark.parametrize("check", [check_at_most, check_at_least])
def test_no_interval_is_inconclusive_never_a_silent_pass(check: Callable[..., Verdict]) -> None:
    v = check(
        "tpot p99",
        0.01,
        None,
        1.0,
        "s",
        n=40,
        why_no_interval="too few samples: n=40, p99 needs >= 500",
    )
    assert v.outcome == "inconclusive"
    assert "too few samples" in v.reason
    assert check("tpot p99", None, None, 1.0, "s").outcome == "inconclusive"


def test_ratio_pass_fail_inconclusive() -> None:
    # high concurrency 400-440 tok/s vs concurrency 1 at 95-105 tok/s: ratio in [3.81, 4.63]
    v = check_ratio_at_least("scaling", 420.0, (400.0, 440.0), 100.0, (95.0, 105.0), 3.0)
    assert v.outcome == "pass"
    assert v.point == pytest.approx(4.2)
    assert v.interval == pytest.approx((400 / 105, 440 / 95))
    assert "from two 95% intervals" in v.reason
    assert (
        check_ratio_at_least("s", 420.0, (400.0, 440.0), 100.0, (95.0, 105.0), 5.0).outcome
        == "fail"
    )
    assert (
        check_ratio_at_least("s", 420.0, (400.0, 440.0), 100.0, (95.0, 105.0), 4.0).outcome
        == "inconclusive"
    )


def test_ratio_without_intervals_or_zero_denominator_is_inconclusive() -> None:
    assert check_ratio_at_least("s", 420.0, None, 100.0, (95.0, 105.0), 2.0).outcome == (
        "inconclusive"
    )
    assert check_ratio_at_least("s", 420.0, (1.0, 2.0), 0.0, (0.0, 0.0), 2.0).outcome == (
        "inconclusive"
    )
    v = check_ratio_at_least("s", 420.0, (400.0, 440.0), 10.0, (0.0, 20.0), 2.0)
    assert v.interval is not None
    assert v.interval[1] == math.inf
    assert v.outcome == "pass"  # 400 / 20 = 20 >= 2 whatever the low end of the denominator
