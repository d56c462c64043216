"""Regression gates: ``--llmserve-fail-on`` rules and a noise-aware comparison of runs.

A rule ``METRIC:-N%`` says "METRIC must not drop by more than N%"; ``METRIC:+N%``
says "must not rise by more than N%". Rules and the ``--llmserve-compare`` choice
are parsed when options are parsed, so a typo fails before any server starts.

The verdict never compares two bare points. Each side is a range: the new run's
95% confidence interval ``[c, d]``; the old side's interval ``[a, b]`` (``last``,
``baseline:NAME``) or, with ``last:N`` and at least two earlier runs, the spread
``[min, max]`` of their values and interval ends (a within-run interval does not
see session-to-session drift: on a shared machine, two unchanged runs' intervals
can miss each other; the spread over N runs does). The ratio new/old then lies in
``[c / b, d / a]`` (both sides positive), and with a rule allowing a ratio down
to ``1 - t`` (a ``-t`` rule) or up to ``1 + t`` (a ``+t`` rule):

- **regression** when the whole ratio range is beyond the allowance
  (``d / a < 1 - t``, resp. ``c / b > 1 + t``): worse by more than the
  tolerance even reading both runs' noise in the new run's favour;
- **pass** when the whole range is within it (``c / b >= 1 - t``, resp.
  ``d / a <= 1 + t``);
- **inconclusive** otherwise, or when either side has no interval or spread
  (a point-to-point delta cannot tell noise from change), or the metric is
  missing on one side. Inconclusive never fails the session unless
  ``--llmserve-inconclusive=fail``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.history.machine import hardware_differences
from pytest_llmserve.history.record import RunRecord

# Figure keys the suites record; a rule naming anything else is a typo until a
# suite records it (add it here then).
KNOWN_METRICS = (
    "output_tok_s",
    "request_rps",
    "ttft_p50_s",
    "ttft_p90_s",
    "ttft_p95_s",
    "ttft_p99_s",
    "tpot_p50_s",
    "tpot_p90_s",
    "tpot_p95_s",
    "tpot_p99_s",
    "goodput_rps",
    "scaling_ratio",
    "layout_output_tok_s",
    "layout_efficiency",
    "ppl",
    "ppl_ratio",
    "task_score",
    "task_score_ratio",
    "startup_s",
    "host_memory_bytes",
    "gpu_memory_bytes",
    "checkpoint_bytes",
    "burst_wall_s",
    "disconnect_drain_s",
)
_RULE = re.compile(r"^(?P<metric>[a-z][a-z0-9_]*):(?P<sign>[+-])(?P<pct>\d+(?:\.\d+)?)%$")
COMPARE_FORMS = "last, last:N, baseline:NAME, none"


@dataclass(frozen=True)
class Rule:
    """``metric`` may move in the bad ``direction`` by at most ``tolerance`` (a fraction)."""

    metric: str
    direction: str  # "-": a drop is bad; "+": a rise is bad
    tolerance: float

    @property
    def text(self) -> str:
        return f"{self.metric}:{self.direction}{self.tolerance * 100:g}%"


@dataclass(frozen=True)
class CompareSpec:
    mode: str  # last | baseline | none
    count: int = 1  # runs, for last:N
    baseline: str | None = None

    @property
    def text(self) -> str:
        if self.mode == "last":
            return "last" if self.count == 1 else f"last:{self.count}"
        return f"baseline:{self.baseline}" if self.mode == "baseline" else "none"


def parse_rule(text: str) -> Rule:
    """``output_tok_s:-5%`` → Rule; ``ProfileError`` names the form and known metrics."""
    m = _RULE.match(text.strip())
    if m is None:
        raise ProfileError(
            f"--llmserve-fail-on: {text!r} is not a rule (valid: METRIC:-N% where a drop is "
            f"bad, METRIC:+N% where a rise is bad, e.g. output_tok_s:-5%, ttft_p99_s:+10%)"
        )
    metric = m["metric"]
    if metric not in KNOWN_METRICS and f"{metric}_s" in KNOWN_METRICS:
        metric = f"{metric}_s"  # ttft_p99 means ttft_p99_s
    if metric not in KNOWN_METRICS:
        raise ProfileError(
            f"--llmserve-fail-on: {text!r}: unknown metric {m['metric']!r} "
            f"(valid: {', '.join(KNOWN_METRICS)})"
        )
    pct = float(m["pct"])
    if m["sign"] == "-" and pct >= 100:
        raise ProfileError(f"--llmserve-fail-on: {text!r}: a drop must be below 100%")
    return Rule(metric, m["sign"], pct / 100)


def parse_compare(text: str) -> CompareSpec:
    value = text.strip()
    if value == "none":
        return CompareSpec("none")
    if value == "last":
        return CompareSpec("last")
    if value.startswith("last:") and value[5:].isdigit() and int(value[5:]) >= 1:
        return CompareSpec("last", int(value[5:]))
    if value.startswith("baseline:") and value[9:].strip():
        return CompareSpec("baseline", baseline=value[9:].strip())
    raise ProfileError(f"--llmserve-compare: {text!r} is not valid (valid: {COMPARE_FORMS})")


@dataclass(frozen=True)
class Row:
    target: str
    metric: str
    old: float | None
    old_range: tuple[float, float] | None
    new: float | None
    new_range: tuple[float, float] | None
    unit: str
    rule: Rule | None
    verdict: str  # regression | pass | inconclusive | info
    reason: str

    @property
    def delta(self) -> float | None:
        if self.old is None or self.new is None or self.old == 0:
            return None
        return self.new / self.old - 1


@dataclass
class Comparison:
    target: str
    against: str  # what the run was compared with, in words
    rows: list[Row] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "regression"]


def pick_baseline(
    history: Sequence[RunRecord], spec: CompareSpec, baseline_run: str | None
) -> list[RunRecord]:
    """The earlier records of one target that ``spec`` compares with (newest last).

    ``last`` skips runs that regressed: otherwise a nightly regression would be
    forgotten the next night, compared with itself. To move on from a deliberate
    slowdown, accept a run as a baseline, or pass once with a looser rule.
    """
    if spec.mode == "none":
        return []
    if spec.mode == "baseline":
        return [r for r in history if r.run_id == baseline_run][-1:]
    return [r for r in history if not r.regressed][-spec.count :]


def compare(
    new: RunRecord, old: Sequence[RunRecord], rules: Sequence[Rule], against: str
) -> Comparison:
    """Compare one target's new record with earlier ones: one row per ruled or shared metric."""
    result = Comparison(new.target, against)
    if not old:
        return result
    last = old[-1]
    diffs = hardware_differences(last.machine, new.machine)
    if diffs:
        result.warnings.append(
            f"{new.target}: compared across different hardware ({'; '.join(diffs)}): "
            "a change may be the machine, not the code"
        )
    fv_old = last.target_info.get("framework_version")
    fv_new = new.target_info.get("framework_version")
    if fv_old != fv_new:
        result.warnings.append(
            f"{new.target}: compared across framework versions "
            f"({new.target_info.get('framework')} {fv_old} -> {fv_new})"
        )
    if last.target_info.get("config_hash") != new.target_info.get("config_hash"):
        result.warnings.append(
            f"{new.target}: the target's configuration changed since "
            f"{last.run_id} (args, model or layout)"
        )
    ruled = {r.metric: r for r in rules}
    shared = [m for m in new.figures if any(m in o.figures for o in old)]
    for metric in dict.fromkeys([*ruled, *shared]):
        result.rows.append(_row(new, old, metric, ruled.get(metric)))
    return result


def _row(new: RunRecord, old: Sequence[RunRecord], metric: str, rule: Rule | None) -> Row:
    nf = new.figures.get(metric)
    olds = [o.figures[metric] for o in old if metric in o.figures and o.figures[metric].value]
    unit = nf.unit if nf else (olds[-1].unit if olds else "")
    new_v = nf.value if nf else None
    new_r = nf.interval if nf else None
    old_v: float | None = None
    old_r: tuple[float, float] | None = None
    if olds:
        points = [f.value for f in olds if f.value is not None]
        old_v = sum(points) / len(points)
        if len(points) >= 2:  # spread across sessions, widened by each run's own interval
            ends = points + [e for f in olds if f.interval for e in f.interval]
            old_r = (min(ends), max(ends))
        else:
            old_r = olds[-1].interval

    def row(verdict: str, reason: str) -> Row:
        return Row(new.target, metric, old_v, old_r, new_v, new_r, unit, rule, verdict, reason)

    if new_v is None:
        return row(
            "inconclusive" if rule else "info",
            "not measured in this run" + (f" ({nf.note})" if nf and nf.note else ""),
        )
    if old_v is None:
        return row("inconclusive" if rule else "info", "not measured in the earlier run(s)")
    if rule is None:
        return row("info", "no --llmserve-fail-on rule for this metric")
    if new_r is None or old_r is None:
        side = "this run" if new_r is None else "the earlier run"
        return row(
            "inconclusive",
            f"{side} has no interval (too few samples?): "
            "a point-to-point delta cannot tell noise from change",
        )
    (a, b), (c, d) = old_r, new_r
    if min(a, b, c, d) <= 0:
        return row("inconclusive", "a range reaches zero: a ratio cannot be bounded")
    lo, hi = c / b, d / a
    band = f"new/old in [{lo:.3f}, {hi:.3f}]"
    if rule.direction == "-":
        floor = 1 - rule.tolerance
        if hi < floor:
            return row("regression", f"{band}: below {floor:.3f} ({rule.text}) beyond noise")
        if lo >= floor:
            return row("pass", f"{band}: within {rule.text}")
        return row("inconclusive", f"{band} straddles {floor:.3f} ({rule.text})")
    ceiling = 1 + rule.tolerance
    if lo > ceiling:
        return row("regression", f"{band}: above {ceiling:.3f} ({rule.text}) beyond noise")
    if hi <= ceiling:
        return row("pass", f"{band}: within {rule.text}")
    return row("inconclusive", f"{band} straddles {ceiling:.3f} ({rule.text})")


def table(comparisons: Sequence[Comparison]) -> list[str]:
    """The terminal table: target, metric, old, new, delta, verdict (+ rule and reason)."""
    lines: list[str] = []
    header = f"{'target':24} {'metric':14} {'old':>12} {'new':>12} {'delta':>8}  verdict"
    for comp in comparisons:
        if not comp.rows:
            continue
        if not lines:
            lines.append(header)
        for r in comp.rows:
            delta = f"{r.delta * 100:+.1f}%" if r.delta is not None else "-"
            lines.append(
                f"{r.target:24} {r.metric:14} {_num(r.old, r.old_range):>12} "
                f"{_num(r.new, r.new_range):>12} {delta:>8}  {r.verdict.upper()}"
                + (f" [{r.rule.text}] {r.reason}" if r.rule else "")
            )
    return lines


def _num(v: float | None, rng: tuple[float, float] | None) -> str:
    if v is None:
        return "-"
    text = f"{v:.4g}"
    if rng is not None:
        text += "±" + f"{(rng[1] - rng[0]) / 2:.2g}"
    return text
