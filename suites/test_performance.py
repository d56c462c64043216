"""Performance: throughput floor, latency SLO, batching scales, goodput.

Floors and bounds come from the target's ``checks`` in the profile; a check the
profile leaves out is skipped with that reason. Each verdict compares the bound
with a 95% confidence interval: pass, fail, or inconclusive with the reason.
Definitions (vLLM's benchmark): TTFT = request sent → first generated text;
TPOT = (E2E - TTFT) / (output tokens - 1); E2E = request sent → last byte;
output tok/s = server-counted output tokens / measured window. In sequential mode
(the default) a run stops at its first look where every bound it serves is decided,
and each verdict says which look that was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_llmserve.checklist.gate import check_ratio_at_least
from pytest_llmserve.checklist.performance import PerfHarness, with_doubts
from pytest_llmserve.checklist.results import (
    Figure,
    TargetResults,
    energy_figures,
    rate_figure,
    summary_figure,
)
from pytest_llmserve.load.runner import Schedule
from pytest_llmserve.measure.latency import SLO
from pytest_llmserve.profile.checks import PerfChecks

Judge = Callable[..., None]
Record = Callable[..., None]


@pytest.fixture(autouse=True)
def measurable(llm_perf: PerfHarness, llm_checks: PerfChecks) -> None:
    """The workload can be sent to this server (token-id prompts need its tokenizer)."""
    if why := llm_perf.not_measurable(llm_checks.workload):
        pytest.skip(why)


@pytest.mark.llmserve_quick
def test_output_throughput_floor(
    llm_perf: PerfHarness,
    llm_checks: PerfChecks,
    llm_results: TargetResults,
    llm_judge: Judge,
    llm_record: Record,
    benchmark: Any,
) -> None:
    spec = llm_checks.throughput or pytest.skip("the profile sets no throughput floor")
    run = llm_perf.throughput_run(llm_checks)
    llm_record(benchmark, run)
    llm_results.add(
        rate_figure(run.metrics.output_throughput, "output_tok_s",
                    f"output tokens / s at concurrency {spec.concurrency}"),
        rate_figure(run.metrics.request_throughput, "request_rps",
                    f"completed requests / s at concurrency {spec.concurrency}"),
    )  # fmt: skip
    if run.telemetry is not None:  # a GPU target: energy per token on this run
        llm_results.add(*energy_figures(run.telemetry, run.metrics.output_tokens))
    llm_judge(*run.verdicts("throughput"))


def test_latency_slo(
    llm_perf: PerfHarness,
    llm_checks: PerfChecks,
    llm_results: TargetResults,
    llm_judge: Judge,
    llm_record: Record,
    benchmark: Any,
) -> None:
    spec = llm_checks.latency or pytest.skip("the profile sets no latency SLO")
    if spec.max_ttft_s is None and spec.max_tpot_s is None:
        pytest.skip("the latency check sets neither max_ttft_s nor max_tpot_s")
    run = llm_perf.latency_run(llm_checks)
    llm_record(benchmark, run)
    at = f"at concurrency {spec.concurrency}"
    for summary, what in ((run.metrics.ttft, "request sent -> first token"),
                          (run.metrics.tpot, "(E2E - TTFT) / (output tokens - 1)")):  # fmt: skip
        for stat in sorted({"p50", spec.percentile}):
            llm_results.add(
                summary_figure(summary, stat, f"{summary.name}_{stat}_s", f"{what}, {stat} {at}")
            )
    llm_judge(*run.verdicts("latency"))


def test_batching_scales(
    llm_perf: PerfHarness,
    llm_checks: PerfChecks,
    llm_results: TargetResults,
    llm_judge: Judge,
    llm_record: Record,
    benchmark: Any,
) -> None:
    spec = llm_checks.scaling or pytest.skip("the profile sets no batching-scaling check")
    if llm_checks.throughput is not None and llm_checks.throughput.concurrency == spec.high:
        llm_perf.throughput_run(llm_checks)  # made first, so the high end can read it
    high = llm_perf.run(llm_checks.workload, Schedule(spec.requests_high, spec.high, warmup=4))
    low = llm_perf.run(llm_checks.workload, Schedule(spec.requests_low, spec.low, warmup=1))
    llm_record(benchmark, low)
    hi, lo = high.judged.output_throughput, low.judged.output_throughput
    verdict = check_ratio_at_least(
        f"output tok/s c={spec.high} / c={spec.low}",
        hi.point,
        hi.interval,
        lo.point,
        lo.interval,
        spec.min_ratio,
        level=hi.level,
        den_level=lo.level,
    )
    llm_results.add(
        Figure("scaling_ratio", verdict.point, "x", None, verdict.interval, "higher",
               f"output tok/s at concurrency {spec.high} / at {spec.low}")
    )  # fmt: skip
    llm_judge(with_doubts(verdict, high, low))


def test_goodput_floor(
    llm_perf: PerfHarness,
    llm_checks: PerfChecks,
    llm_results: TargetResults,
    llm_judge: Judge,
    llm_record: Record,
    benchmark: Any,
) -> None:
    spec = llm_checks.goodput or pytest.skip("the profile sets no goodput floor")
    if llm_checks.latency is None:
        pytest.skip("goodput is measured on the latency check's load")
    run = llm_perf.latency_run(llm_checks)
    llm_record(benchmark, run)
    rate = run.metrics.goodput(SLO(spec.max_ttft_s, spec.max_tpot_s, spec.max_e2e_s))
    llm_results.add(rate_figure(rate, "goodput_rps", "requests / s meeting every SLO bound"))
    llm_judge(*run.verdicts("goodput"))


def test_sweep_report(
    llm_perf: PerfHarness,
    llm_checks: PerfChecks,
    llm_record: Record,
    benchmark: Any,
) -> None:
    """A report across load levels (no bound); it fails only if requests fail."""
    spec = llm_checks.sweep or pytest.skip("the profile sets no sweep")
    levels = [Schedule(spec.requests, c, warmup=spec.warmup) for c in spec.concurrency] + [
        Schedule(spec.requests, rate_rps=r, warmup=spec.warmup) for r in spec.rate_rps
    ]
    rows = []
    for schedule in levels:
        m = llm_perf.run(llm_checks.workload, schedule).metrics
        rows.append(
            {
                "load": schedule.label,
                "output_tok_s": m.output_throughput.point,
                "ttft_p50_s": m.ttft.p50,
                "tpot_p50_s": m.tpot.p50,
                "e2e_p50_s": m.e2e.p50,
                "failed": m.failed,
            }
        )
        if llm_perf.progress:
            llm_perf.progress("sweep: " + ", ".join(f"{k}={v}" for k, v in rows[-1].items()))
    benchmark.extra_info["sweep"] = rows
    llm_record(benchmark, llm_perf.run(llm_checks.workload, levels[-1]))
    assert all(row["failed"] == 0 for row in rows), rows
