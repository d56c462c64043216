"""The terminal sections (``report/terminal.py``) from plain data, with a recording writer."""

from __future__ import annotations

from pytest_llmserve.checklist.gate import check_at_least
from pytest_llmserve.launch.pool import StartRecord
from pytest_llmserve.report import terminal


class Recorder:
    """A terminalreporter-like writer that keeps what it was given."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, title: str, sep: str = "=", **markup: bool) -> None:
        self.lines.append(f"== {title} ==")

    def write_line(self, line: str, **markup: bool) -> None:
        self.lines.append(line)


def test_a_start_that_raised_is_shown_with_its_error_even_though_it_has_no_ready_time() -> None:
    out = Recorder()
    failed = StartRecord("t", error="t: RuntimeError: boom", log_path="/logs/t.log")
    assert failed.ready_s is None
    terminal.servers(out, [failed])
    assert out.lines == [
        "== llmserve servers ==",
        "t: FAILED TO START: t: RuntimeError: boom",
        "    log: /logs/t.log",
    ]


def test_a_start_that_never_finished_and_left_no_error_does_not_crash_the_table() -> None:
    out = Recorder()
    terminal.servers(out, [StartRecord("half", model_seconds=2.0)])
    assert out.lines == [
        "== llmserve servers ==",
        "half: never became ready (its start was interrupted)",
    ]


def test_ready_servers_show_their_times_and_none_means_no_section() -> None:
    out = Recorder()
    terminal.servers(out, [StartRecord("a", model_seconds=1.25, ready_s=30.04)])
    assert out.lines[1] == "a: ready in 30.0 s (model resolved in 1.2 s)"
    empty = Recorder()
    terminal.servers(empty, [])
    terminal.checks(empty, [])
    terminal.regressions(empty, None)
    assert empty.lines == []


def test_checks_name_the_test_and_the_outcome() -> None:
    out = Recorder()
    verdict = check_at_least("tok/s", 80.0, (75.0, 85.0), 100.0, "tok/s")
    terminal.checks(out, [("suites/test_p.py::test_floor[t]", verdict)])
    assert out.lines[0] == "== llmserve checks =="
    assert out.lines[1].startswith("FAIL         test_floor[t]: tok/s")


def test_comparison_lines_follow_their_section() -> None:
    out = Recorder()
    terminal.comparison(out, ["target framework", "json: /x.json"])
    assert out.lines == ["== llmserve comparison ==", "target framework", "json: /x.json"]
