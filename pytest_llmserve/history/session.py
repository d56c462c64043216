"""What the plugin does with history at session end: build, compare, keep.

Under xdist, each worker holds only what its own tests measured, and one target's
tests may be spread over several workers. Workers therefore write nothing: they
hand their result book to the controller (``worker_payload`` in
``workeroutput``), which merges the books and writes one record per target, so a
target's record is whole and the store has one writer per session. (Stores are
safe with concurrent writers anyway: several sessions may share one.)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_llmserve.checklist.results import CheckOutcome, Figure, ResultBook
from pytest_llmserve.errors import LLMServeError
from pytest_llmserve.frameworks import registry
from pytest_llmserve.history import machine
from pytest_llmserve.history.compare import CompareSpec, Comparison, Rule, compare, pick_baseline
from pytest_llmserve.history.record import (
    RecordError,
    RunRecord,
    build_record,
    figure_from_dict,
    figure_to_dict,
    git_state,
    new_run_id,
)
from pytest_llmserve.history.store import HistoryStore
from pytest_llmserve.launch.pool import StartRecord
from pytest_llmserve.profile.cost import CostTable, cost_per_million_tokens
from pytest_llmserve.profile.model import Profile, Target


@dataclass
class SessionHistory:
    """What happened to history this session, for the summary and the report."""

    run_id: str
    records: list[RunRecord] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    report_path: str | None = None

    @property
    def regressions(self) -> int:
        return sum(len(c.regressions) for c in self.comparisons)

    @property
    def inconclusive(self) -> int:
        return sum(
            1 for c in self.comparisons for r in c.rows if r.verdict == "inconclusive" and r.rule
        )


def worker_payload(book: ResultBook, starts: dict[str, StartRecord]) -> dict[str, Any]:
    """A worker's results as JSON-ready data (xdist sends ``workeroutput`` over execnet)."""
    return {
        "targets": {
            name: {
                "figures": [figure_to_dict(f) for f in t.figures.values()],
                "checks": [asdict(c) for c in t.checks],
            }
            for name, t in book.targets.items()
        },
        "starts": {name: asdict(s) for name, s in starts.items()},
    }


def merge_payload(
    book: ResultBook, starts: dict[str, StartRecord], payload: dict[str, Any]
) -> list[str]:
    """Fold one worker's payload into the controller's book; returns problems, if any."""
    problems = []
    try:
        for name, data in payload.get("targets", {}).items():
            t = book.of(name)
            t.add(*(figure_from_dict(f) for f in data["figures"]))
            t.checks.extend(CheckOutcome(**c) for c in data["checks"])
        for name, s in payload.get("starts", {}).items():
            if name not in starts or starts[name].ready_s is None:
                starts[name] = StartRecord(**s)
    except (KeyError, TypeError, ValueError, RecordError) as exc:
        problems.append(f"a worker's llmserve results could not be merged: {exc}")
    return problems


def finish(
    *,
    store: HistoryStore | None,
    profile: Profile,
    selected: tuple[Target, ...],
    book: ResultBook,
    starts: dict[str, StartRecord],
    spec: CompareSpec,
    rules: tuple[Rule, ...],
    rootdir: Path,
    cost: CostTable | None = None,
    run_group: str | None = None,
    shard: str | None = None,
) -> SessionHistory:
    """Build a record for each target that measured or ran anything, compare, then keep it."""
    now = time.time()
    out = SessionHistory(new_run_id(now))
    host = machine.describe()
    project = git_state(rootdir)
    for target in selected:
        results = book.targets.get(target.name)
        start = starts.get(target.name)
        if results is None and start is None:
            continue  # deselected by -k / -m: nothing to keep
        record = build_record(
            run_id=out.run_id,
            target=target,
            results=results,
            server=asdict(start) if start else {},
            framework_version=_version(target.framework, start),
            model_path=start.model_path if start else None,
            machine=host,
            project=project,
            profile=profile,
            cost=_cost(cost, target, results.figures if results else {}),
            created=now,
            run_group=run_group,
            shard=shard,
        )
        out.records.append(record)
    if store is None:
        return out
    for i, record in enumerate(out.records):
        try:
            out.records[i] = record = _judge(store, record, out, spec, rules)
            out.written.append(store.write(record))
        except (OSError, LLMServeError) as exc:  # a store that went away: keep the session
            out.warnings.append(
                f"the run record of {record.target} was not kept in {store.location}: {exc}"
            )
    out.warnings.extend(store.warnings)
    for comp in out.comparisons:
        out.warnings.extend(comp.warnings)
    return out


def _judge(
    store: HistoryStore, record: RunRecord, out: SessionHistory, spec: CompareSpec,
    rules: tuple[Rule, ...],
) -> RunRecord:  # fmt: skip
    """``record`` compared with its history (``out`` gets the comparison), with its gate."""
    # Never against a shard of the same run group (a retried job, another shard).
    earlier = [
        r for r in store.records(record.target)
        if r.run_id != out.run_id and r.run_group != record.run_group
    ]  # fmt: skip
    baseline_run = store.baseline(spec.baseline) if spec.baseline else None
    if spec.mode == "baseline" and baseline_run is None:
        out.warnings.append(
            f"no baseline named {spec.baseline!r} in {store.location} "
            "(llmserve history accept RUN --as NAME)"
        )
    if spec.mode == "none":
        return record
    old = pick_baseline(earlier, spec, baseline_run)
    against = (
        f"baseline {spec.baseline} ({baseline_run})"
        if spec.mode == "baseline"
        else ", ".join(r.run_id for r in old)
    )
    comp = compare(record, old, rules, against)
    out.comparisons.append(comp)
    gate = {
        "compared_with": [r.run_id for r in old],
        "rules": [r.text for r in rules],
        "regressed": [r.metric for r in comp.regressions],
    }
    skipped = sum(1 for r in earlier if r.regressed and r.created > (old[-1].created if old else 0))
    if skipped and spec.mode == "last":
        comp.warnings.append(
            f"{record.target}: {skipped} later run(s) that regressed are not used as the reference"
        )
    return replace(record, gate=gate)


def _version(framework: str, start: StartRecord | None) -> str | None:
    """The version the server reported; else the one installed here, said to be that."""
    if start is not None and start.server_version:
        return start.server_version
    try:
        installed = registry.get(framework).version()
    except Exception:  # an unknown or broken framework module must not lose the record
        return None
    return None if installed is None else f"{installed}, installed here"


def _cost(table: CostTable | None, target: Target, figures: dict[str, Figure]) -> dict[str, Any]:
    if table is None:
        return {}
    price = table.per_hour(target)
    if price is None:
        return {}
    rate = figures.get("output_tok_s")
    per_m = cost_per_million_tokens(price, rate.value) if rate and rate.value else None
    return {"currency": table.currency, "per_hour": price, "per_million_output_tokens": per_m}
