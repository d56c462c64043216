"""Fixed request counts against sequential verdicts, on the same servers, in one run.

For each target the profile selects, the performance checks' load runs (the
throughput floor's, and the latency SLO's that goodput reads) are made twice on
the one server the session started: once with every request of the profile's
counts (``fixed``), once looked at after 60% of them and stopped where every
bound is decided (``sequential``, the default). The order alternates from target
to target, so neither mode always gets the warmer server, and each mode sends
prompts of its own (another workload seed), so neither finds the other's prompts
in the server's prompt cache. It prints, per target,
each check's verdict both ways with the requests it took, and the wall time of
both modes side by side with their ratio.

The other suites (accuracy, errors, robustness, footprint, metrics) do not change
between the modes and are not run here. A verdict may differ between the modes
only towards inconclusive (each sequential look is at 97.5%, a fixed run at 95%);
a pass in one mode and a fail in the other fails the benchmark.

It is a benchmark, not a test the project's CI runs. From the repository root:

    pytest benchmarks/sequential_vs_fixed.py -m llamacpp       # the llama.cpp targets
    pytest benchmarks/sequential_vs_fixed.py -m vllm           # vLLM's (minutes each)
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace

import pytest

from pytest_llmserve.checklist.performance import Measured, PerfHarness
from pytest_llmserve.launch.server import Server
from pytest_llmserve.profile.checks import PerfChecks

CHECKS = ("throughput", "latency", "goodput")
_order = itertools.count()


@dataclass
class ModeResult:
    mode: str
    wall_s: float
    runs: list[Measured]

    def verdicts(self, check: str) -> list[str]:
        return [v.outcome for m in self.runs for v in m.verdicts(check)]

    def requests(self, check: str) -> str:
        run = next((m for m in self.runs if any(g.check == check for g in m.gates)), None)
        if run is None:
            return "-"
        planned = run.plan.sizes[-1] if run.plan else len(run.run.measured)
        return f"{len(run.run.measured)}/{planned}"


def _measure(server: Server, checks: PerfChecks, mode: str, seed: int) -> ModeResult:
    # Prompts of their own: a server that caches prompts (llama.cpp's slots, vLLM's
    # prefix cache) would serve the second mode's repeats without their prefill.
    checks = replace(checks, workload=replace(checks.workload, seed=seed))
    perf = PerfHarness(server, None, mode)
    started = time.perf_counter()
    runs = []
    if checks.throughput is not None:
        runs.append(perf.throughput_run(checks))
    if checks.latency is not None:
        runs.append(perf.latency_run(checks))
    return ModeResult(mode, time.perf_counter() - started, runs)


def test_fixed_and_sequential_on_one_server(
    llm_server: Server, llm_checks: PerfChecks, capsys: pytest.CaptureFixture[str]
) -> None:
    if llm_checks.throughput is None and llm_checks.latency is None:
        pytest.skip("the profile sets neither a throughput floor nor a latency SLO")
    modes = ["fixed", "sequential"]
    if next(_order) % 2:
        modes.reverse()
    results = {
        mode: _measure(llm_server, llm_checks, mode, llm_checks.workload.seed + 1 + i)
        for i, mode in enumerate(modes)
    }
    fixed, seq = results["fixed"], results["sequential"]
    lines = [
        f"{llm_server.target.name}: modes run in the order {', '.join(modes)}",
        f"  {'check':<11} {'fixed':<24} {'sequential':<24}",
    ]
    clashes = []
    for check in CHECKS:
        a, b = fixed.verdicts(check), seq.verdicts(check)
        if not a and not b:
            continue
        lines.append(
            f"  {check:<11} {'/'.join(a) + ' (' + fixed.requests(check) + ')':<24} "
            f"{'/'.join(b) + ' (' + seq.requests(check) + ')':<24}"
        )
        clashes += [check for x, y in zip(a, b, strict=True) if {x, y} == {"pass", "fail"}]
    lines.append(
        f"  wall time: fixed {fixed.wall_s:.1f} s, sequential {seq.wall_s:.1f} s "
        f"(sequential / fixed = {seq.wall_s / fixed.wall_s:.2f})"
    )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert not clashes, f"pass in one mode and fail in the other: {clashes}"
