"""What a session measured, per target: named figures and each check's outcome.

The suites record figures here as they measure them; the session end reads this
one book for everything it shows or keeps (the comparison table, run records,
the HTML report, JUnit properties), so a figure is defined once, where it is
measured, and every consumer shows the same number with the same name and unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pytest_llmserve.measure.gpu_telemetry import Telemetry
from pytest_llmserve.measure.stats import Rate, Summary

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Figure:
    """One measured value with what it takes to trust and compare it.

    ``metric`` is a stable key (``output_tok_s``, ``ttft_p99_s``, ``ppl``...): run
    records and regression rules name figures by it. ``better`` says which way
    is an improvement (None: neither, e.g. a count). ``interval`` is a 95%
    confidence interval when the measurement has one.
    """

    metric: str
    value: float | None
    unit: str
    n: int | None = None
    interval: tuple[float, float] | None = None
    better: Better | None = None
    definition: str = ""
    note: str | None = None  # why there is no value or no interval


@dataclass(frozen=True)
class CheckOutcome:
    """One test's result for one target: its worst verdict's outcome and reason."""

    check: str  # the test's name without the target id, e.g. test_output_throughput_floor
    outcome: str  # pass, fail, inconclusive, skipped, error
    reason: str = ""


@dataclass
class TargetResults:
    """Everything one target's tests recorded this session."""

    target: str
    figures: dict[str, Figure] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)

    def add(self, *figures: Figure) -> None:
        """Keep each figure under its metric key; measuring again replaces it."""
        for f in figures:
            self.figures[f.metric] = f

    def value(self, metric: str) -> float | None:
        f = self.figures.get(metric)
        return None if f is None else f.value


@dataclass
class ResultBook:
    """The session's results, in the order targets were first seen."""

    targets: dict[str, TargetResults] = field(default_factory=dict)

    def of(self, target: str) -> TargetResults:
        return self.targets.setdefault(target, TargetResults(target))


def rate_figure(rate: Rate, metric: str, definition: str, better: Better = "higher") -> Figure:
    """A throughput as a figure: its windows are its sample count."""
    return Figure(
        metric, rate.point, rate.unit, rate.windows, rate.interval, better, definition,
        None if rate.interval is not None else rate.note,
    )  # fmt: skip


def energy_figures(telemetry: Telemetry, output_tokens: int) -> list[Figure]:
    """A GPU run's energy per output token, power and memory (reported, not judged);
    each summed over the target's GPUs, None with the reason where NVML gave none."""
    why, gpus = telemetry.why_none, telemetry.gpus
    powers = [g.power_mean_w for g in gpus]
    power = sum(p for p in powers if p is not None) if gpus and None not in powers else None
    memory = sum(g.memory_peak for g in gpus) if gpus else None
    return [
        Figure("gpu_joules_per_output_token", telemetry.joules_per_token(output_tokens),
               "J/token", better="lower", note=why or _energy_source(telemetry),
               definition="GPU energy over the run's window / output tokens"),
        Figure("gpu_power_w", power, "W", note=why,
               definition="mean power over the run's window"),
        Figure("gpu_memory_peak_bytes", memory, "bytes", better="lower", note=why,
               definition="device memory in use at its peak"),
    ]  # fmt: skip


def _energy_source(telemetry: Telemetry) -> str | None:
    sources = {g.energy_source for g in telemetry.gpus}
    return None if sources == {"counter"} else "; ".join(sorted(sources))


def summary_figure(summary: Summary, stat: str, metric: str, definition: str) -> Figure:
    """One statistic of a latency distribution as a figure (lower is better)."""
    return Figure(
        metric, summary.point(stat), summary.unit, summary.n, summary.interval(stat), "lower",
        definition, summary.why_no_interval(stat),
    )  # fmt: skip
