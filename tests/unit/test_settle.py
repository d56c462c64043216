"""The shared settle loop: the first reading equal to the one before, or the last at the bound."""

from __future__ import annotations

from pytest_llmserve.measure.settle import until_still


def test_returns_the_first_reading_equal_to_the_one_before() -> None:
    readings = iter([1, 2, 5, 5, 9])
    assert until_still(lambda: next(readings), int.__eq__, max_s=5.0, poll_s=0.0) == (5, True)


def test_a_reading_that_never_settles_returns_the_last_and_false() -> None:
    count = iter(range(10**6))
    value, still = until_still(lambda: next(count), int.__eq__, max_s=0.05, poll_s=0.01)
    assert not still
    assert value > 1
