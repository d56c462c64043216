"""The best target for each objective, from what this session measured (never asserted).

When the winner's interval overlaps the runner-up's, the recommendation says they
are tied within noise instead of naming a winner the data cannot support.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pytest_llmserve.checklist.results import Figure
from pytest_llmserve.history.record import RunRecord
from pytest_llmserve.report.svg import fmt


@dataclass(frozen=True)
class Recommendation:
    objective: str
    target: str | None  # None: nothing measured for this objective
    value: str
    note: str


@dataclass(frozen=True)
class _Objective:
    name: str
    metrics: tuple[str, ...]  # the first one a target has is used
    better: str


OBJECTIVES = (
    _Objective("latency (p99 TTFT)", ("ttft_p99_s", "ttft_p95_s", "ttft_p90_s"), "lower"),
    _Objective("accuracy", ("task_score", "ppl"), ""),  # direction from the figure
    _Objective("memory", ("gpu_memory_bytes", "host_memory_bytes"), "lower"),
)


def recommend(records: Sequence[RunRecord]) -> list[Recommendation]:
    out = [_throughput_per_cost(records)]
    for obj in OBJECTIVES:
        out.append(_best(records, obj))
    return out


def _throughput_per_cost(records: Sequence[RunRecord]) -> Recommendation:
    priced: list[tuple[RunRecord, float]] = []
    for r in records:
        c = r.cost.get("per_million_output_tokens")
        if isinstance(c, (int, float)) and c > 0:
            priced.append((r, float(c)))
    if priced:
        best, cost = min(priced, key=lambda rc: rc[1])
        cur = best.cost.get("currency", "")
        note = f"{len(priced)} priced target(s); cost = price/h / (output tok/s x 3600) x 1e6"
        return Recommendation(
            "throughput per cost", best.target, f"{cost:.3g} {cur} / M output tokens", note
        )
    obj = _Objective("throughput per cost", ("output_tok_s",), "higher")
    rec = _best(records, obj)
    return Recommendation(
        rec.objective,
        rec.target,
        rec.value,
        f"no price per device-hour in the profile: ranked by throughput alone; {rec.note}"
        if rec.target
        else rec.note,
    )


def _best(records: Sequence[RunRecord], obj: _Objective) -> Recommendation:
    for metric in obj.metrics:
        have = [
            (r, r.figures[metric])
            for r in records
            if metric in r.figures and r.figures[metric].value is not None
        ]
        if not have:
            continue
        better = obj.better or have[0][1].better or "higher"
        key: Callable[[tuple[RunRecord, Figure]], float] = lambda rf: rf[1].value or 0.0  # noqa: E731
        ranked = sorted(have, key=key, reverse=better == "higher")
        best_r, best_f = ranked[0]
        v = best_f.value or 0.0
        shown = f"{v / 2**30:.2f} GiB" if best_f.unit == "B" else f"{fmt(v)} {best_f.unit}"
        value = f"{shown} ({metric})"
        note = f"best of {len(ranked)}"
        if len(ranked) > 1:
            second_r, second_f = ranked[1]
            if _overlap(best_f, second_f):
                note = f"tied within noise with {second_r.target}"
            elif best_f.interval is None or second_f.interval is None:
                note += f"; next {second_r.target} (no interval to tell noise)"
            else:
                note += f"; clearly ahead of {second_r.target}"
        return Recommendation(obj.name, best_r.target, value, note)
    return Recommendation(obj.name, None, "-", f"not measured ({', '.join(obj.metrics)})")


def _overlap(a: Figure, b: Figure) -> bool:
    if a.interval is None or b.interval is None:
        return False
    return a.interval[0] <= b.interval[1] and b.interval[0] <= a.interval[1]
