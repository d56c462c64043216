"""The session's terminal sections, each from plain data: servers, checks, regressions,
comparison.

Each function takes a writer shaped like pytest's ``TerminalReporter`` (``section``
and ``write_line``) and writes nothing when it has nothing to show. None of them
may fail the summary: a start record that never became ready, with or without an
error, still gets its line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from pytest_llmserve.history.compare import table

if TYPE_CHECKING:
    from pytest_llmserve.checklist.gate import Verdict
    from pytest_llmserve.history.session import SessionHistory
    from pytest_llmserve.launch.pool import StartRecord


class Writer(Protocol):
    def section(self, title: str, sep: str = "=", **markup: bool) -> None: ...

    def write_line(self, line: str, **markup: bool) -> None: ...


def servers(out: Writer, records: Iterable[StartRecord]) -> None:
    """The "llmserve servers" section: how each target's start went, and where its log is."""
    records = list(records)
    if not records:
        return
    out.section("llmserve servers")
    for rec in records:
        out.write_line(server_line(rec))
        if rec.log_path:
            out.write_line(f"    log: {rec.log_path}")


def server_line(rec: StartRecord) -> str:
    if rec.error:
        return f"{rec.target}: FAILED TO START: {rec.error}"
    if rec.ready_s is None:
        return f"{rec.target}: never became ready (its start was interrupted)"
    return (
        f"{rec.target}: ready in {_seconds(rec.ready_s)} "
        f"(model resolved in {_seconds(rec.model_seconds)})"
    )


def _seconds(value: float | None) -> str:
    return "? s" if value is None else f"{value:.1f} s"


def checks(out: Writer, verdicts: Sequence[tuple[str, Verdict]]) -> None:
    """The "llmserve checks" section: every verdict judged, with the test that judged it."""
    if not verdicts:
        return
    out.section("llmserve checks")
    for nodeid, v in verdicts:
        out.write_line(f"{v.outcome.upper():12} {nodeid.split('::')[-1]}: {v.reason}")


def regressions(out: Writer, hist: SessionHistory | None) -> None:
    """The "llmserve regressions" section: this session against history, and what was kept where."""
    if hist is None or not (hist.records or hist.warnings):
        return
    out.section("llmserve regressions")
    write = out.write_line
    for comp in hist.comparisons:
        if not comp.against:
            write(f"{comp.target}: no earlier run in history: nothing to compare (first run)")
    for line in table(hist.comparisons):
        write(line)
    for warning in hist.warnings:
        write(f"WARNING: {warning}")
    if hist.regressions:
        write(f"{hist.regressions} regression(s) beyond noise: the session fails", red=True)
    for where in hist.written:
        write(f"record: {where}")
    if hist.report_path:
        write(f"report: {hist.report_path}")


def comparison(out: Writer, lines: Sequence[str]) -> None:
    """The "llmserve comparison" section: the lines ``report.comparison.write`` gave."""
    out.section("llmserve comparison")
    for line in lines:
        out.write_line(line)
