"""Rules parse at option time; verdicts read the noise of both runs, not two points."""

from __future__ import annotations

import pytest

from pytest_llmserve.checklist.results import Figure
from pytest_llmserve.errors import ProfileError
from pytest_llmserve.history.compare import (
    CompareSpec,
    Rule,
    compare,
    parse_compare,
    parse_rule,
    pick_baseline,
    table,
)
from tests.unit.history_helpers import MACHINE, record

DROP5 = Rule("output_tok_s", "-", 0.05)


def test_rules_parse() -> None:
    assert parse_rule("output_tok_s:-5%") == DROP5
    assert parse_rule("ttft_p99:+10%") == Rule("ttft_p99_s", "+", 0.10)
    assert parse_rule("ppl:+1.5%") == Rule("ppl", "+", 0.015)
    assert parse_rule("output_tok_s:-5%").text == "output_tok_s:-5%"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("output_tok_s:5%", "is not a rule"),
        ("output_tok_s-5%", "is not a rule"),
        ("output_tok_s:-5", "is not a rule"),
        ("tok_s:-5%", "unknown metric 'tok_s'"),
        ("output_tok_s:-100%", "below 100%"),
    ],
)
def test_bad_rules_name_the_valid_forms(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message) as info:
        parse_rule(text)
    assert "valid" in str(info.value) or "below" in str(info.value)


def test_compare_modes() -> None:
    assert parse_compare("last") == CompareSpec("last")
    assert parse_compare("last:5") == CompareSpec("last", 5)
    assert parse_compare("baseline:golden") == CompareSpec("baseline", baseline="golden")
    assert parse_compare("none").mode == "none"
    for bad in ("previous", "last:0", "last:x", "baseline:"):
        with pytest.raises(ProfileError, match="valid: last, last:N, baseline:NAME, none"):
            parse_compare(bad)


def _verdict(
    old: float, old_half: float | None, new: float, new_half: float | None, rule: Rule = DROP5
) -> str:
    comp = compare(record("b", new, new_half), [record("a", old, old_half)], [rule], "a")
    return comp.rows[0].verdict


def test_verdicts_are_noise_aware() -> None:
    assert _verdict(100, 2, 80, 2) == "regression"  # [78,82]/[98,102] < 0.95
    assert _verdict(100, 2, 99, 1) == "pass"  # 98/102 = 0.96 >= 0.95
    assert _verdict(100, 10, 90, 10) == "inconclusive"  # the same drop, but noisy
    assert _verdict(100, 2, 130, 2) == "pass"  # faster is never a regression
    assert _verdict(100, None, 50, 2) == "inconclusive"  # no interval: never silent
    assert _verdict(100, 2, 50, None) == "inconclusive"


def test_a_looser_rule_passes_the_same_drop() -> None:
    assert _verdict(100, 2, 80, 2, Rule("output_tok_s", "-", 0.30)) == "pass"


def test_rise_rules_for_latency() -> None:
    lat = Rule("ttft_p99_s", "+", 0.10)

    def rec(run: str, v: float) -> object:
        return record(run, ttft=Figure("ttft_p99_s", v, "s", 100, (v * 0.97, v * 1.03), "lower"))

    worse = compare(rec("b", 2.0), [rec("a", 1.0)], [lat], "a")  # type: ignore[list-item,arg-type]
    assert {r.metric: r.verdict for r in worse.rows}["ttft_p99_s"] == "regression"
    same = compare(rec("b", 1.0), [rec("a", 1.0)], [lat], "a")  # type: ignore[list-item,arg-type]
    assert {r.metric: r.verdict for r in same.rows}["ttft_p99_s"] == "pass"


def test_last_n_uses_the_spread_of_earlier_runs() -> None:
    old = [record(f"r{i}", v, None, created=i) for i, v in enumerate([100, 92, 108])]
    # earlier spread [92, 108]; new [86, 90] -> ratio <= 90/92 = 0.978: straddles 0.95
    assert compare(record("n", 88, 2), old, [DROP5], "x").rows[0].verdict == "inconclusive"
    # new [60, 64] -> ratio <= 64/92 = 0.70: regression
    assert compare(record("n", 62, 2), old, [DROP5], "x").rows[0].verdict == "regression"
    picked = pick_baseline(old, CompareSpec("last", 2), None)
    assert [r.run_id for r in picked] == ["r1", "r2"]


def test_missing_metric_is_inconclusive_not_silent() -> None:
    comp = compare(record("b", None), [record("a", 100, 2)], [DROP5], "a")
    assert comp.rows[0].verdict == "inconclusive"
    assert "not measured in this run" in comp.rows[0].reason


def test_different_hardware_and_framework_version_warn() -> None:
    other = {**MACHINE, "cpu_model": "Other CPU"}
    comp = compare(
        record("b", 100, 2, machine=other, version="0.33.0"), [record("a", 100, 2)], [DROP5], "a"
    )
    text = " ".join(comp.warnings)
    assert "different hardware" in text
    assert "Test CPU -> Other CPU" in text
    assert "framework versions" in text
    assert "0.32.0 -> 0.33.0" in text
    assert compare(record("b", 100, 2), [record("a", 100, 2)], [DROP5], "a").warnings == []


def test_first_run_has_nothing_to_compare_and_the_table_shows_old_new_delta() -> None:
    assert compare(record("b"), [], [DROP5], "").rows == []
    lines = table([compare(record("b", 80, 2), [record("a", 100, 2)], [DROP5], "a")])
    assert lines[0].split() == ["target", "metric", "old", "new", "delta", "verdict"]
    assert "-20.0%" in lines[1]
    assert "REGRESSION" in lines[1]


def test_last_n_spread_includes_each_runs_interval() -> None:
    old = [record(f"r{i}", v, 4.0, created=i) for i, v in enumerate([100, 104])]
    # spread with intervals: [96, 108]; new [89, 93] -> ratio up to 93/96 = 0.969 vs 0.95
    assert compare(record("n", 91, 2), old, [DROP5], "x").rows[0].verdict == "inconclusive"
    assert compare(record("n", 91, 2), old, [DROP5], "x").rows[0].old_range == (96.0, 108.0)
