"""The HTML report, cost and recommendations, from records made by hand."""

from __future__ import annotations

import re

import pytest

from pytest_llmserve.checklist.results import CheckOutcome, Figure
from pytest_llmserve.errors import ProfileError
from pytest_llmserve.history.compare import compare, parse_rule
from pytest_llmserve.profile.cost import cost_per_million_tokens, parse_cost
from pytest_llmserve.report.html import render
from pytest_llmserve.report.recommend import recommend
from pytest_llmserve.report.svg import pareto
from tests.unit.history_helpers import record, target


def _lat(v: float, half: float = 0.01) -> Figure:
    return Figure("ttft_p99_s", v, "s", 100, (v - half, v + half), "lower")


def test_cost_per_million_output_tokens() -> None:
    # 3.6 per hour at 1000 tok/s = 3.6M tokens per hour: 1.0 per million
    assert cost_per_million_tokens(3.6, 1000.0) == pytest.approx(1.0)
    assert cost_per_million_tokens(3.6, 0.0) is None
    table = parse_cost({"currency": "EUR", "device_hour": {"gpu": 2.0, "cpu": 0.1}})
    assert table is not None
    assert table.per_hour(target(device="gpu", tp=2)) == 4.0
    assert table.per_hour(target(device="cpu")) == 0.1
    assert parse_cost(None) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"device_hour": {"tpu": 1.0}}, "unknown device (valid: cpu, gpu)"),
        ({"device_hour": {"gpu": -1}}, "expected a price >= 0"),
        ({"price": 1}, "unknown field (valid: currency, device_hour, target_overrides)"),
        ("cheap", "expected a table"),
    ],
)
def test_bad_cost_tables_name_the_valid_values(raw: object, message: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(message)):
        parse_cost(raw)


def test_pareto_keeps_only_undominated_points() -> None:
    pts = [("a", "", 100.0, 1.0), ("b", "", 200.0, 2.0), ("c", "", 90.0, 1.5)]
    assert [p[0] for p in pareto(pts, "higher", "lower")] == ["a", "b"]


def test_recommendations_are_measured_and_admit_ties() -> None:
    fast = record("r", 200.0, 5.0, name="fast", lat=_lat(0.9))
    slow = record("r", 100.0, 5.0, name="slow", lat=_lat(0.5))
    recs = {r.objective: r for r in recommend([fast, slow])}
    assert recs["throughput per cost"].target == "fast"
    assert "no price" in recs["throughput per cost"].note
    assert recs["latency (p99 TTFT)"].target == "slow"
    assert "clearly ahead of fast" in recs["latency (p99 TTFT)"].note
    assert recs["accuracy"].target is None
    tied = recommend([record("r", 100.0, 10.0, name="x"), record("r", 101.0, 10.0, name="y")])
    assert "tied within noise" in tied[0].note


def test_priced_targets_rank_by_cost_per_million() -> None:
    a = record("r", 100.0, name="a")
    b = record("r", 300.0, name="b")
    a.cost.update(currency="USD", per_million_output_tokens=5.0)
    b.cost.update(currency="USD", per_million_output_tokens=2.0)
    best = recommend([a, b])[0]
    assert best.target == "b"
    assert best.value.startswith("2 USD")


def test_report_is_self_contained_and_shows_what_matters() -> None:
    old = [record(f"2026010{i}T000000Z-{i}", 100.0, 2.0, created=i) for i in range(1, 4)]
    now = record("20260105T000000Z-n", 70.0, 2.0, created=5.0, lat=_lat(0.5))
    other = record("20260105T000000Z-n", 90.0, 2.0, name="t2", created=5.0, lat=_lat(0.7))
    broken = record("20260105T000000Z-n", None, name="t3", created=5.0)
    object.__setattr__(broken, "server", {"error": "exited with 1", "log_path": "/tmp/t3.log"})
    object.__setattr__(broken, "checks", (CheckOutcome("test_x", "error", "no server"),))
    comp = compare(now, old[-1:], [parse_rule("output_tok_s:-5%")], old[-1].run_id)
    html = render([now, other, broken], old, [comp])
    assert "<script" not in html
    assert not re.search(r"(src|href)=['\"]https?://", html)
    assert ">regression<" in html
    assert "-30.0%" in html
    assert html.count("<svg") >= 2  # a trend and a Pareto plot
    assert "Pareto-optimal" in html
    assert "file:///tmp/t3.log" in html
    assert "exited with 1" in html
    assert "Which target, for what" in html


def test_a_parametrized_check_shows_its_worst_case_not_its_last() -> None:
    now = record("20260105T000000Z-n", 70.0, 2.0, created=5.0)
    cases = (
        CheckOutcome("test_bad_input", "pass"),
        CheckOutcome("test_bad_input", "fail", "top_p 1.5: server error 500"),
        CheckOutcome("test_bad_input", "xfail", "known gap"),
        CheckOutcome("test_bad_input", "pass"),
    )
    object.__setattr__(now, "checks", cases)
    html = render([now], [])
    row = html[html.index("<code>test_bad_input</code>") :]
    row = row[: row.index("</tr>")]
    assert ">fail<" in row
    assert ">pass<" not in row
    assert "2 pass, 1 fail, 1 xfail" in row
    assert "server error 500" in row


def test_layouts_get_their_table_and_efficiency_chart() -> None:
    tok = Figure("layout_output_tok_s", 100.0, "tok/s", 8, (98.0, 102.0), "higher")
    one = record("r", name="tp1", a=tok, b=Figure("layout_devices", 1.0, "devices"))
    two = record("r", name="tp2", a=Figure("layout_output_tok_s", 66.0, "tok/s", 8, None),
                 b=Figure("layout_devices", 2.0, "devices"),
                 c=Figure("layout_efficiency", 0.33, "x", None, (0.31, 0.35), "higher"),
                 d=Figure("layout_cores_used", 1.9, "cores"))  # fmt: skip
    html = render([one, two], [])
    section = html[html.index("<h2>Layouts scale</h2>") :].split("</section>")[0]
    assert section.count("<tr><td") == 2  # one row per layout
    assert "0.33<br><small>0.31 &ndash; 0.35</small>" in section  # efficiency and interval
    assert "<svg" in section  # the efficiency chart
    assert "Layouts scale" not in render([record("r")], [])  # no layouts: no section
