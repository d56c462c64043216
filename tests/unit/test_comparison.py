"""The comparison table: rows from the results book, text, JSON, Pareto fronts, plots."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from pytest_llmserve.checklist.results import CheckOutcome, Figure, ResultBook
from pytest_llmserve.profile.load import parse_profile
from pytest_llmserve.report import comparison

PROFILE = parse_profile(
    {
        "defaults": {"framework": "vllm", "model": "embedded:smollm2",
                     "checks": {"accuracy": {"baseline": "a-bf16"}}},
        "targets": [{"name": "a-bf16", "precision": "bf16"},
                    {"name": "b-int8", "precision": "int8", "method": "smoothquant"},
                    {"name": "c-int4", "precision": "int4", "method": "gptq"}],
    },
    source="test",
    base_dir=Path("."),
)  # fmt: skip


def _book(with_tok_s: bool = True) -> ResultBook:
    book = ResultBook()
    for name, tok_s, ppl, ratio, score in (("a-bf16", 60.0, 12.4, None, 0.6),
                                           ("b-int8", 120.0, 12.6, 1.014, 0.59),
                                           ("c-int4", 50.0, 14.9, 1.197, 0.5)):  # fmt: skip
        r = book.of(name)
        if with_tok_s:
            r.add(Figure("output_tok_s", tok_s, "tok/s", 5, (tok_s * 0.9, tok_s * 1.1)))
        r.add(Figure("ppl", ppl, ""), Figure("task_score", score, "fraction"))
        if ratio is not None:
            r.add(Figure("ppl_ratio", ratio, "x", 8000, (ratio - 0.004, ratio + 0.004)))
        r.checks.append(CheckOutcome("test_perplexity_within_budget",
                                     "fail" if name == "c-int4" else "pass"))  # fmt: skip
    return book


def test_rows_fill_memory_only_where_absent() -> None:
    book = _book()
    book.of("b-int8").add(Figure("host_memory_bytes", 3 * 2**30, "bytes"))
    memory = {"b-int8": [Figure("host_memory_bytes", 1.0, "bytes")],
              "c-int4": [Figure("host_memory_bytes", 2 * 2**30, "bytes")]}  # fmt: skip
    rows = {r.target: r for r in comparison.rows(book, PROFILE, memory)}
    assert rows["b-int8"].host_memory_bytes == 3 * 2**30  # the footprint suite's reading wins
    assert rows["c-int4"].host_memory_bytes == 2 * 2**30
    assert rows["a-bf16"].baseline is None
    assert rows["b-int8"].baseline == "a-bf16"
    assert rows["c-int4"].accuracy_verdict == "fail"
    assert rows["b-int8"].ppl_ratio_interval == pytest.approx((1.010, 1.018))


def test_table_lines_show_deltas_with_intervals() -> None:
    lines = comparison.table_lines(comparison.rows(_book(), PROFILE, {}))
    assert lines[0].split()[:3] == ["target", "framework", "precision"]
    assert "baseline" in lines[1]
    assert "+1.40% [+1.00%, +1.80%]" in lines[2]
    assert "int4-gptq" in lines[3]


def test_pareto_front() -> None:
    pts = [(60.0, 0.6), (120.0, 0.59), (50.0, 0.5), (120.0, 0.4)]
    assert comparison.pareto_front(pts, maximize_y=True) == [0, 1]
    assert comparison.pareto_front([(1.0, 3.0), (2.0, 2.0)], maximize_y=False) == [1]


def test_write_saves_json_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    lines = comparison.write(_book(), PROFILE, {}, tmp_path)
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert [r["target"] for r in data["rows"]] == ["a-bf16", "b-int8", "c-int4"]
    assert (tmp_path / "pareto_accuracy_throughput.png").stat().st_size > 1000
    assert (tmp_path / "pareto_memory_throughput.png").exists() is False  # no memory figures
    assert f"plot: {tmp_path / 'pareto_accuracy_throughput.png'}" in lines


def test_plots_skip_without_throughput(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No need for the report extra: a stand-in matplotlib that cannot draw (its pyplot
    # has no attributes), so this also checks that nothing is drawn.
    stand_in = types.ModuleType("matplotlib")
    stand_in.use = lambda backend: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "matplotlib", stand_in)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", types.ModuleType("matplotlib.pyplot"))
    lines = comparison.write(_book(with_tok_s=False), PROFILE, {}, tmp_path)
    assert any("no output tok/s was measured" in line for line in lines)
    assert not list(tmp_path.glob("*.png"))


def test_plots_skip_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # installed or not: import fails
    lines = comparison.write(_book(), PROFILE, {}, tmp_path)
    assert any("matplotlib is not installed" in line for line in lines)
    assert not list(tmp_path.glob("*.png"))
