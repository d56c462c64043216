"""Paired statistics: hand-computed examples for perplexity, ratios, McNemar and Wilson."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_llmserve.measure import paired


def test_perplexity_is_exp_of_the_mean_nll_over_all_tokens() -> None:
    assert paired.perplexity([[1.0, 2.0], [3.0]]) == pytest.approx(math.exp(2.0))
    assert paired.perplexity([]) is None


def test_token_blocks_cut_within_windows() -> None:
    sums, counts = paired.token_blocks([[1.0, 2.0, 3.0], [4.0]], block=2)
    assert sums.tolist() == [3.0, 3.0, 4.0]
    assert counts.tolist() == [2, 1, 1]


def test_identical_runs_have_ratio_one_and_a_zero_width_interval() -> None:
    nll = [[float(i % 7) for i in range(1000)] for _ in range(3)]
    r = paired.ppl_ratio(nll, nll)
    assert r.point == 1.0
    assert r.interval == (1.0, 1.0)
    assert r.n == 3000
    assert r.units == 3 * 8  # ceil(1000 / 128) blocks a window


def test_a_constant_shift_is_an_exact_ratio() -> None:
    base = [[1.0] * 256 for _ in range(8)]
    cand = [[1.1] * 256 for _ in range(8)]
    r = paired.ppl_ratio(base, cand)
    assert r.point == pytest.approx(math.exp(0.1))
    assert r.interval == pytest.approx((math.exp(0.1), math.exp(0.1)))


def test_ratio_refuses_runs_over_different_tokens() -> None:
    r = paired.ppl_ratio([[1.0, 2.0]], [[1.0]])
    assert r.point is None
    assert r.note == "the two runs scored different tokens"


def test_few_blocks_give_a_point_but_no_interval() -> None:
    r = paired.ppl_ratio([[1.0] * 10], [[1.5] * 10])
    assert r.point == pytest.approx(math.exp(0.5))
    assert r.interval is None
    assert "only 1 blocks" in (r.note or "")


def test_score_ratio_hand_example() -> None:
    base = [True] * 40 + [False] * 10  # 40/50
    cand = [True] * 30 + [False] * 10 + [True] * 2 + [False] * 8  # 32/50
    r = paired.score_ratio(base, cand)
    assert r.point == pytest.approx(32 / 40)
    assert r.interval is not None
    assert r.interval[0] < 0.8 < r.interval[1]


def test_score_ratio_without_a_right_baseline_item_has_no_value() -> None:
    r = paired.score_ratio([False] * 40, [True] * 40)
    assert r.point is None
    assert r.note == "the baseline scored no item right"


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (0, 0, 1.0),
        (0, 5, 2 / 32),  # 2 * P(X <= 0), X ~ Bin(5, 1/2)
        (1, 9, 2 * 11 / 1024),  # 2 * (C(10,0) + C(10,1)) / 2^10
        (5, 5, 1.0),
    ],
)
def test_mcnemar_exact_hand_values(b: int, c: int, p: float) -> None:
    base = [True] * b + [False] * c + [True] * 7
    cand = [False] * b + [True] * c + [True] * 7
    m = paired.mcnemar_exact(base, cand)
    assert (m.b, m.c) == (b, c)
    assert m.p_value == pytest.approx(p)


def test_wilson_interval_hand_value() -> None:
    lo, hi = paired.proportion_interval(8, 10) or (0, 0)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert paired.proportion_interval(0, 0) is None


def test_max_abs_difference() -> None:
    assert paired.max_abs_difference([[1.0, 2.0]], [[1.0, 2.5]]) == pytest.approx(0.5)
    assert paired.max_abs_difference([[1.0]], [[1.0, 2.0]]) is None


def test_perplexity_interval_contains_the_point() -> None:
    rng = np.random.default_rng(1)
    nll = [rng.gamma(2.0, 1.2, 1024).tolist() for _ in range(8)]
    point, interval, blocks = paired.perplexity_interval(nll)
    assert blocks == 64
    assert interval is not None
    assert point is not None
    assert interval[0] < point < interval[1]
