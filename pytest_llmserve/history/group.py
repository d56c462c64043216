"""One verdict for a run group: every shard's targets, each against its own history.

The shards of a nightly run are separate sessions on separate runners; each judges
its own targets at its end. The group's verdict is given once all of them have
written: every target of the group is compared again, with the same rules, against
its records from before the group (never against a shard of the same night), and a
shard that wrote nothing makes the verdict incomplete, never a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_llmserve.history.compare import CompareSpec, Comparison, Rule, compare, pick_baseline
from pytest_llmserve.history.record import RunRecord
from pytest_llmserve.history.store import HistoryStore


@dataclass
class GroupVerdict:
    group: str
    records: list[RunRecord] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    missing_shards: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> int:
        return sum(len(c.regressions) for c in self.comparisons)

    @property
    def passed(self) -> bool:
        return bool(self.records) and not self.regressions and not self.missing_shards


def judge_group(
    store: HistoryStore, group: str, spec: CompareSpec, rules: Sequence[Rule]
) -> GroupVerdict:
    out = GroupVerdict(group, store.records_in_group(group))
    out.missing_shards = missing_shards(out.records)
    baseline_run = store.baseline(spec.baseline) if spec.baseline else None
    if spec.mode == "baseline" and baseline_run is None:
        out.warnings.append(f"no baseline named {spec.baseline!r} in {store.location}")
    for record in out.records:
        earlier = [
            r for r in store.records(record.target)
            if r.run_group != group and r.created < record.created
        ]  # fmt: skip
        old = pick_baseline(earlier, spec, baseline_run)
        against = ", ".join(r.run_id for r in old) or "nothing earlier"
        comparison = compare(record, old, rules, against)
        out.comparisons.append(comparison)
        out.warnings.extend(comparison.warnings)
    return out


def missing_shards(records: Sequence[RunRecord]) -> list[str]:
    """``K/N`` of every shard of the group's matrix that wrote no record."""
    seen = {str(r.profile.get("shard")) for r in records if r.profile.get("shard")}
    counts = {int(s.split("/")[1]) for s in seen}
    if len(counts) > 1:
        return [f"shards disagree on N ({', '.join(sorted(seen))})"]
    if not counts:
        return []
    n = counts.pop()
    return [f"{k}/{n}" for k in range(1, n + 1) if f"{k}/{n}" not in seen]
