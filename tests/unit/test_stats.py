"""Summaries and rates: numpy's percentiles, honest intervals, None with a reason when too few."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_llmserve.measure.stats import (
    TOO_FEW,
    min_samples,
    quantile_ranks,
    rate_interval,
    summarize,
    t_quantile,
)


def test_points_equal_numpy_on_random_data() -> None:
    x = np.random.default_rng(3).lognormal(size=777)
    s = summarize(x, "ttft", "s")
    assert s.n == 777
    assert s.mean == pytest.approx(x.mean())
    for stat, q in {"p50": 50, "p90": 90, "p95": 95, "p99": 99}.items():
        assert s.point(stat) == pytest.approx(np.percentile(x, q))


def test_interval_contains_true_median_of_large_normal_sample() -> None:
    x = np.random.default_rng(1).normal(10.0, 2.0, size=4000)
    s = summarize(x, "e2e", "s")
    assert s.p50_ci is not None
    assert s.mean_ci is not None
    assert s.p50_ci[0] < 10.0 < s.p50_ci[1]
    assert s.mean_ci[0] < 10.0 < s.mean_ci[1]
    for stat in ("mean", "p50", "p90", "p95", "p99"):
        interval, point = s.interval(stat), s.point(stat)
        assert interval is not None
        assert point is not None
        assert interval[0] <= point <= interval[1]


def test_mean_bootstrap_is_deterministic_for_a_seed_and_percentiles_need_none() -> None:
    x = np.random.default_rng(2).exponential(size=600)
    assert summarize(x, "itl", "s", seed=5) == summarize(x, "itl", "s", seed=5)
    assert summarize(x, "itl", "s", seed=5).mean_ci != summarize(x, "itl", "s", seed=6).mean_ci
    assert summarize(x, "itl", "s", seed=5).p99_ci == summarize(x, "itl", "s", seed=6).p99_ci


@pytest.mark.parametrize(("q", "n"), [(0.5, 40), (0.9, 200), (0.99, 500), (0.99, 2000)])
def test_exact_percentile_interval_misses_no_more_than_its_level_allows(q: float, n: int) -> None:
    """Simulated: the true quantile of an exponential falls outside the 95% interval
    at most 2.5% of the time on each side (exact, so at or below, never above)."""
    lo, hi = quantile_ranks(n, q, 0.95)
    assert lo is not None
    assert hi is not None
    x = np.sort(np.random.default_rng(int(q * 1000) + n).exponential(size=(3000, n)), axis=1)
    truth = -np.log(1 - q)
    slack = 3 * np.sqrt(0.025 * 0.975 / 3000)
    assert np.mean(x[:, lo - 1] > truth) <= 0.025 + slack
    assert np.mean(x[:, hi - 1] < truth) <= 0.025 + slack


def test_exact_ranks_are_tight() -> None:
    """One rank further in on either side would miss more often than the level allows."""
    from pytest_llmserve.measure.stats import _binomial_cdf

    for n, q in ((100, 0.5), (500, 0.99), (1000, 0.9)):
        lo, hi = quantile_ranks(n, q, 0.95)
        assert lo is not None
        assert hi is not None
        cdf, first = _binomial_cdf(n, q)

        def below(k: int, cdf: np.ndarray = cdf, first: int = first) -> float:
            return 0.0 if k < first else float(cdf[min(k - first, len(cdf) - 1)])

        assert below(lo - 1) <= 0.025 < below(lo)  # P(B < lo) within, P(B < lo + 1) not
        assert 1 - below(hi - 1) <= 0.025 < 1 - below(hi - 2)


def test_interval_width_shrinks_with_n() -> None:
    rng = np.random.default_rng(4)

    def width(n: int) -> float:
        lo, hi = summarize(rng.normal(size=n), "x", "s").p50_ci or (0.0, np.inf)
        return hi - lo

    small, large = width(200), width(5000)
    assert large < small / 3  # ~ 1/sqrt(n): expected ratio 5


def test_too_few_samples_gives_no_interval_and_says_so() -> None:
    s = summarize(np.arange(60.0), "tpot", "s")
    assert s.p50_ci is not None
    assert s.p90_ci is not None  # needs 36
    assert s.p95_ci is None  # needs 72
    assert s.p99_ci is None  # needs 368
    assert s.p99 is not None  # the point is still reported
    assert any(TOO_FEW in note and note.startswith("p99") for note in s.notes)
    assert TOO_FEW in (s.why_no_interval("p99") or "")
    assert s.why_no_interval("p50") is None


def test_minimum_sample_counts() -> None:
    assert [min_samples(s) for s in ("mean", "p50", "p90", "p95", "p99")] == [10, 6, 36, 72, 368]
    assert min_samples("p99", level=1 - 0.05 / 2) == 437  # each of two looks (sequential)
    assert summarize(np.arange(367.0), "x", "s").p99_ci is None
    assert summarize(np.arange(368.0), "x", "s").p99_ci == (359.0, 367.0)  # the maximum


def test_empty_summary_has_no_figures() -> None:
    s = summarize([], "ttft", "s")
    assert s.n == 0
    assert s.mean is None
    assert s.p99 is None
    assert s.interval("p50") is None
    assert s.to_dict()["p50"] == {"point": None, "interval": None}


def test_large_samples_use_the_normal_limit_for_the_mean() -> None:
    x = np.random.default_rng(5).normal(size=3000)
    boot = summarize(x, "itl", "s")
    normal = summarize(x, "itl", "s", max_bootstrap_n=1000)
    assert "mean: normal" in normal.method
    assert "mean: bootstrap" in boot.method
    b, o = boot.interval("mean"), normal.interval("mean")
    assert b is not None
    assert o is not None
    assert (o[1] - o[0]) == pytest.approx(b[1] - b[0], rel=0.2)
    assert normal.p99_ci == boot.p99_ci  # percentiles are exact either way


def test_no_resamples_means_no_mean_interval_and_says_so() -> None:
    s = summarize(np.arange(100.0), "e2e", "s", resamples=0)
    assert s.mean_ci is None
    assert s.p50_ci is not None
    assert s.why_no_interval("mean") == "mean: no interval asked"


def test_to_dict_carries_unit_n_level_and_intervals() -> None:
    d = summarize(np.arange(100.0), "e2e", "s").to_dict()
    assert (d["name"], d["unit"], d["n"], d["level"]) == ("e2e", "s", 100, 0.95)
    assert len(d["p50"]["interval"]) == 2
    assert d["p99"]["interval"] is None


@pytest.mark.parametrize(
    ("df", "level", "expected"),
    [
        (1, 0.95, 12.706),
        (4, 0.95, 2.776),
        (9, 0.95, 2.262),
        (30, 0.95, 2.042),
        (9, 0.99, 3.250),
        (19, 0.90, 1.729),
    ],
)
def test_t_quantile_matches_tables(df: int, level: float, expected: float) -> None:
    assert t_quantile(level, df) == pytest.approx(expected, abs=2e-3)


def test_rate_interval_contains_true_rate_of_a_steady_stream() -> None:
    rng = np.random.default_rng(7)
    times = np.cumsum(rng.exponential(1 / 50.0, size=5000))  # Poisson, 50 events/s
    events = [(float(t), 1.0) for t in times if t <= 90.0]
    r = rate_interval(events, 0.0, 90.0, name="req", unit="req/s")
    assert r.point == pytest.approx(len(events) / 90.0)
    assert r.interval is not None
    assert r.interval[0] < 50.0 < r.interval[1]
    assert r.interval[1] - r.interval[0] < 5.0
    assert r.windows == 10


def test_rate_interval_of_a_perfectly_regular_stream_is_tight() -> None:
    events = [(i * 0.1 + 0.05, 2.0) for i in range(100)]  # 20 per second, 10 s
    r = rate_interval(events, 0.0, 10.0)
    assert r.point == pytest.approx(20.0)
    assert r.interval == pytest.approx((20.0, 20.0))


def test_lockstep_steps_floor_the_spread_at_their_resolution() -> None:
    # 16 streams decoding in lockstep, 10 steps a second, 6 s in windows of 1 s: every
    # window holds 160 tokens, but where a boundary falls within a step is unknown.
    events = [(i * 0.1 + 0.05, 16.0) for i in range(60)]
    bare = rate_interval(events, 0.0, 6.0, windows=6)
    floored = rate_interval(events, 0.0, 6.0, windows=6, resolution=16.0, unit="tok/s")
    assert bare.interval == pytest.approx((160.0, 160.0))
    assert floored.point == pytest.approx(160.0)
    assert floored.interval is not None
    half = t_quantile(0.95, 5) * (16.0 / math.sqrt(6)) / math.sqrt(6)
    assert floored.interval == pytest.approx((160.0 - half, 160.0 + half))
    assert "floored" in floored.note
    assert "16 arriving at once" in floored.note


def test_a_spread_wider_than_the_resolution_is_kept() -> None:
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.exponential(1 / 50.0, size=3000))
    events = [(float(t), 1.0) for t in times if t <= 40.0]
    plain = rate_interval(events, 0.0, 40.0)
    with_floor = rate_interval(events, 0.0, 40.0, resolution=1.0)
    assert with_floor.interval == plain.interval
    assert "floored" not in with_floor.note


def test_rate_interval_refuses_a_run_too_short_for_its_windows() -> None:
    r = rate_interval([(0.5, 10.0), (1.5, 10.0)], 0.0, 2.0, min_window_s=1.0)
    assert r.point == pytest.approx(10.0)
    assert r.interval is None
    assert "too short" in r.note
    assert r.windows == 2


def test_rate_interval_of_an_empty_window() -> None:
    r = rate_interval([], 5.0, 5.0)
    assert r.point is None
    assert r.interval is None
    assert r.note == "empty measured window"


def test_events_outside_the_window_count_in_the_nearest_window() -> None:
    events = [(-1.0, 1.0), *[(i + 0.5, 1.0) for i in range(10)], (11.0, 1.0)]
    r = rate_interval(events, 0.0, 10.0)
    assert r.total == 12.0
    assert r.point == pytest.approx(1.2)
