"""Sequential verdicts: the looks planned, and the error rate they keep, by simulation.

A server exactly at its bound should pass (or fail) no more often than the stated
level allows, however many looks were taken before the verdict. The simulations
draw runs whose truth is the bound, judge them with the same plan, interval and
gate functions the harness uses, and count the verdicts that claim a side.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_llmserve.checklist.gate import Verdict, check_at_least, check_at_most
from pytest_llmserve.measure import sequential
from pytest_llmserve.measure.stats import min_samples, rate_interval, summarize

SIMS = 3000
# Three standard errors of a simulated rate of 2.5% over SIMS runs.
SLACK = 3 * math.sqrt(0.025 * 0.975 / SIMS)


def test_the_default_plan_has_two_looks_at_an_even_split() -> None:
    p = sequential.plan(160)
    assert p.sizes == (96, 160)
    assert p.early == (96,)
    assert p.each_level == pytest.approx(0.975)
    assert "look 1 of 2: 96 of 160 requests, each look at 97.5%" in p.describe(96)


def test_fixed_mode_and_short_runs_have_one_look_at_the_full_level() -> None:
    assert sequential.plan(160, "fixed") == sequential.Plan((160,), 0.95)
    assert sequential.plan(1).sizes == (1,)
    assert sequential.plan(160, "fixed").each_level == pytest.approx(0.95)
    assert sequential.plan(160, "fixed").describe(160) == "160 requests, one look"


def test_a_look_that_could_not_decide_is_not_planned_and_spends_nothing() -> None:
    """p99 needs 437 samples for an interval at 97.5%: a 500-request run's look at 300
    could never decide it, so the run keeps one look at the whole 95%."""
    p = sequential.plan(500, needs=lambda level: min_samples("p99", level))
    assert p.sizes == (500,)
    assert p.each_level == pytest.approx(0.95)
    longer = sequential.plan(1000, needs=lambda level: min_samples("p99", level))
    assert longer.sizes == (600, 1000)


def test_an_unknown_mode_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'sometimes' is not valid \(valid: sequential, fixed\)"):
        sequential.plan(10, "sometimes")


def _sequential(plan: sequential.Plan, judge_at: object) -> Verdict:
    verdict = None
    for n in plan.sizes:
        verdict = judge_at(n, plan.each_level)  # type: ignore[operator]
        if verdict.outcome != "inconclusive":
            break
    assert verdict is not None
    return verdict


def test_a_p99_exactly_at_the_bound_passes_and_fails_no_more_than_the_level_allows() -> None:
    """Lognormal TPOTs whose true p99 is the bound, 1000-request runs looked at twice."""
    rng = np.random.default_rng(11)
    sigma = 0.5
    bound = math.exp(sigma * 2.3263478740408408)  # the lognormal's p99 (z of 0.99)
    plan = sequential.plan(1000, needs=lambda level: min_samples("p99", level))
    assert len(plan.sizes) == 2
    outcomes = {"pass": 0, "fail": 0, "inconclusive": 0}
    looks_used = []
    for _ in range(SIMS):
        x = rng.lognormal(0.0, sigma, size=plan.sizes[-1])

        def judge_at(n: int, level: float, x: np.ndarray = x) -> Verdict:
            s = summarize(x[:n], "tpot", "s", level=level, resamples=0)
            return check_at_most("tpot p99", s.p99, s.p99_ci, bound, "s", level=level)

        verdict = _sequential(plan, judge_at)
        outcomes[verdict.outcome] += 1
        looks_used.append(verdict.n)
    assert outcomes["pass"] / SIMS <= 0.025 + SLACK
    assert outcomes["fail"] / SIMS <= 0.025 + SLACK


Events = list[tuple[float, float]]


def _poisson_run(rng: np.random.Generator, rate: float, seconds: float) -> Events:
    """Tokens arriving as a Poisson process at ``rate`` per second, in 10 ms bins."""
    bins = int(seconds * 100)
    counts = rng.poisson(rate / 100, size=bins)
    return [(i / 100 + 0.005, float(c)) for i, c in enumerate(counts) if c]


def _rate_errors(levels: list[float], looks: list[float], rng: np.random.Generator) -> float:
    """How often a throughput exactly at its floor passes, stopping at the first decided look."""
    floor = 200.0
    passed = 0
    for _ in range(SIMS):
        events = _poisson_run(rng, floor, looks[-1])
        for seconds, level in zip(looks, levels, strict=True):
            rate = rate_interval([e for e in events if e[0] < seconds], 0.0, seconds, level=level,
                                 min_window_s=1.0)  # fmt: skip
            verdict = check_at_least("tok/s", rate.point, rate.interval, floor, "tok/s")
            if verdict.outcome != "inconclusive":
                passed += verdict.outcome == "pass"
                break
    return passed / SIMS


def test_a_throughput_exactly_at_its_floor_passes_no_more_than_the_level_allows() -> None:
    """And the simulation can tell: ordinary 95% intervals at each of five looks pass
    such a server far more often than 2.5%, the rate ours keeps."""
    rng = np.random.default_rng(12)
    plan = sequential.plan(10)
    ours = _rate_errors([plan.each_level] * 2, [6.0, 10.0], rng)
    naive = _rate_errors([0.95] * 5, [6.0, 7.0, 8.0, 9.0, 10.0], rng)
    assert ours <= 0.025 + SLACK
    assert naive > 0.025 + SLACK


def test_the_quick_checklists_short_run_keeps_one_look_and_the_full_run_two() -> None:
    """A closed loop's throughput needs six waves for an interval: the quick run's 96
    requests at c=16 have no room for an earlier look; the full run's 160 do."""
    from pytest_llmserve.checklist.performance import throughput_gates
    from pytest_llmserve.profile.checks import QUICK_WAVES, Throughput

    (gate,) = throughput_gates(Throughput(1.0, 16, 160))
    assert sequential.plan(QUICK_WAVES * 16, needs=gate.needs).sizes == (96,)
    assert sequential.plan(160, needs=gate.needs).sizes == (96, 160)
