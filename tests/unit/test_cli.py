"""The ``llmserve`` console script: list, show, compare, accept, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmserve.cli import main
from pytest_llmserve.history.store import FolderStore
from tests.unit.history_helpers import record

A, B = "20260101T000000Z-aaaaaaaa", "20260102T000000Z-bbbbbbbb"


@pytest.fixture
def hist(tmp_path: Path) -> str:
    store = FolderStore(tmp_path / "h")
    store.write(record(A, 100.0, 2.0, created=1.0))
    store.write(record(B, 70.0, 2.0, created=2.0))
    return str(tmp_path / "h")


def test_list_and_show(hist: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--history", hist, "history", "list"]) == 0
    out = capsys.readouterr().out
    assert "2 run(s)" in out
    assert A in out
    assert "targets: t1" in out
    assert main(["--history", hist, "history", "show", "20260102"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown[0]["run_id"] == B
    assert shown[0]["figures"]["output_tok_s"]["value"] == 70.0


def test_compare_exits_1_on_a_regression_and_0_with_a_looser_rule(
    hist: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--history", hist, "history", "compare", A, B,
                 "--fail-on", "output_tok_s:-5%"]) == 1  # fmt: skip
    out = capsys.readouterr().out
    assert "REGRESSION" in out
    assert "-30.0%" in out
    assert main(["--history", hist, "history", "compare", A, B,
                 "--fail-on", "output_tok_s:-40%"]) == 0  # fmt: skip


def test_accept_names_a_baseline(hist: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--history", hist, "history", "accept", A[:12], "--as", "golden"]) == 0
    assert f"baseline golden = {A}" in capsys.readouterr().out
    assert main(["--history", hist, "history", "list"]) == 0
    assert "[baseline golden]" in capsys.readouterr().out
    assert main(["--history", hist, "history", "show", "golden"]) == 0


def test_report_renders_a_self_contained_page(hist: str, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["--history", hist, "report", "--out", str(out)]) == 0
    html = out.read_text()
    assert html.startswith("<!doctype html>")
    assert "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<polyline" in html  # the trend across the two runs


def test_errors_name_what_is_wrong(hist: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--history", hist, "history", "show", "1999"]) == 2
    assert "no run '1999'" in capsys.readouterr().err
    assert main(["--history", hist, "history", "compare", A, B, "--fail-on", "bogus"]) == 2
    assert "is not a rule" in capsys.readouterr().err
    assert main(["--history", "s3://x", "history", "list"]) == 2
    assert "valid: none, a folder path" in capsys.readouterr().err
