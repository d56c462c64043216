"""The history steps of the session's hooks (``session.LLMServeSession``).

``at_session_end`` runs in ``pytest_sessionfinish``: on an xdist worker it only
hands its results to the controller; elsewhere it builds the records, compares,
keeps them (``llm.history``, for the summary), writes the HTML report, and turns
a regression into a failed session (exit status 1, as a failed test would).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmserve.checklist.results import Figure, TargetResults
from pytest_llmserve.history.session import SessionHistory, finish, merge_payload, worker_payload
from pytest_llmserve.profile.cost import CostTable

if TYPE_CHECKING:
    from pytest_llmserve.options import Settings
    from pytest_llmserve.session import LLMServeSession

WORKER_KEY = "llmserve_results"


def at_session_end(session: pytest.Session, llm: LLMServeSession) -> None:
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[WORKER_KEY] = worker_payload(llm.results, llm.pool.records)
        return
    s = llm.settings
    cost = getattr(s.profile, "cost", None)
    hist = finish(
        store=s.history,
        profile=s.profile,
        selected=s.selected,
        book=llm.results,
        starts=llm.pool.records,
        spec=s.compare,
        rules=s.fail_on,
        rootdir=config.rootpath,
        cost=cost if isinstance(cost, CostTable) else None,
        run_group=s.run_group,
        shard=s.shard.text if s.shard else None,
    )
    llm.history = hist
    if hist.records and not s.report_off:
        hist.report_path = _write_report(hist, s, llm.pool.log_dir)
    failing = hist.regressions or (hist.inconclusive and s.inconclusive == "fail")
    if failing and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def header_line(settings: Settings) -> str:
    """The effective history configuration, for the report header."""
    if settings.history is None:
        return "llmserve: history off (--llmserve-history none)"
    rules = ", ".join(r.text for r in settings.fail_on) or "none (changes shown, not judged)"
    return (
        f"llmserve: history {settings.history.location}; compare {settings.compare.text}; "
        f"fail on {rules}"
    )


def merge_worker(node: Any, llm: LLMServeSession) -> None:
    """xdist ``pytest_testnodedown``: fold a finished worker's results into the controller's."""
    payload = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if payload:
        merge_payload(llm.results, llm.pool.records, payload)


def figure_properties(results: TargetResults, before: dict[str, Figure]) -> list[tuple[str, str]]:
    """JUnit ``<property>`` pairs for the figures one test recorded (new or replaced)."""
    props = []
    for metric, f in results.figures.items():
        if before.get(metric) is f or f.value is None:
            continue
        props.append((f"llmserve.{metric}", f"{f.value:.6g}"))
        props.append((f"llmserve.{metric}.unit", f.unit))
        if f.interval is not None:
            props.append((f"llmserve.{metric}.ci95", f"{f.interval[0]:.6g}..{f.interval[1]:.6g}"))
        if f.n is not None:
            props.append((f"llmserve.{metric}.n", str(f.n)))
    return props


def _write_report(hist: SessionHistory, settings: Settings, log_dir: Path) -> str | None:
    from pytest_llmserve.report.html import render

    path = settings.report or (log_dir / "report.html")
    history = settings.history.records() if settings.history is not None else []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(hist.records, history, hist.comparisons), encoding="utf-8")
    except OSError as exc:
        hist.warnings.append(f"could not write the HTML report {path}: {exc}")
        return None
    return str(path)
