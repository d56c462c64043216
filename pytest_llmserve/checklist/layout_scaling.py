"""Layout scaling: does spreading a model over n devices give n times the throughput?

The same workload at the same closed-loop concurrency runs on a layout and on its
reference (fewer devices, same model and precision, ``profile.layouts``), each on
its own server. Efficiency is ``tok/s(layout) / (n x tok/s(reference))`` with
``n`` the ratio of their ranks; its interval is the conservative one of two
independent rates (``gate.check_ratio_at_least``), so a verdict is "pass" only
when the whole interval clears the floor.

Beside the ratio, evidence that the layout really used its n devices: on a GPU
target the GPUs its processes held memory on (NVML), on a CPU target the server
processes that kept at least half a core busy (``measure.cpu_use``). A layout that
ran on fewer than it claims fails, whatever its throughput: its figure would be
credited to a layout that was never measured. Per-device memory is a GPU figure;
on a CPU target it is "not measurable" with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pytest_llmserve.checklist.gate import Outcome, Verdict, check_at_most, check_ratio_at_least
from pytest_llmserve.checklist.performance import Measured, PerfHarness, with_doubts
from pytest_llmserve.checklist.results import Figure
from pytest_llmserve.load.runner import Schedule
from pytest_llmserve.profile.checks import Workload
from pytest_llmserve.profile.layouts import LayoutScaling
from pytest_llmserve.profile.model import Target

GIB = 2**30


@dataclass
class LayoutScalingView:
    """One layout's check: its own harness, and a way to reach its reference's."""

    spec: LayoutScaling
    reference_target: Target
    workload: Workload
    harness: PerfHarness
    # The reference's run of a shape, by its target name (the session measures it on
    # the reference's own server, started for it if it must be).
    reference_runs: Callable[[str, Workload, Schedule], Measured]

    @property
    def target(self) -> Target:
        return self.harness.server.target

    @property
    def is_reference(self) -> bool:
        return self.spec.reference == self.target.name

    @property
    def schedule(self) -> Schedule:
        s = self.spec
        return Schedule(s.requests, s.concurrency, warmup=s.warmup)

    def run(self) -> Measured:
        return self.harness.run(self.workload, self.schedule)

    def reference_run(self) -> Measured:
        if self.is_reference:
            return self.run()
        return self.reference_runs(self.spec.reference, self.workload, self.schedule)


def devices_used(measured: Measured) -> tuple[int | None, str]:
    """How many GPUs the run's server processes held memory on, and how that was seen
    (None: not seen, with the reason)."""
    t = measured.telemetry
    if t is None:
        return None, "not measurable: devices in use are seen on GPUs only (a CPU rank's " + (
            "cores cannot be told apart from the front end's and the client's)"
        )
    if t.why_none:
        return None, t.why_none
    held = [g.index for g in t.gpus if g.process_memory_peak > 0]
    return len(held), f"GPUs holding the server's memory: {held or 'none'}"


def devices_verdict(target: Target, measured: Measured) -> Verdict | None:
    """A GPU layout held memory on at least its ``tp x pp`` GPUs (None: not a GPU run)."""
    if measured.telemetry is None:
        return None
    used, how = devices_used(measured)
    name = f"{target.name} GPUs in use"
    if used is None:
        return Verdict("inconclusive", f"{name}: {how}", name, target.ranks, None, None)
    ok = used >= target.ranks
    reason = (
        f"{name}: {used} >= {target.ranks} (tp x pp): {how}"
        if ok
        else f"{name}: {used} < {target.ranks} (tp x pp): the layout did not run on the "
        f"GPUs it claims; {how}"
    )
    return Verdict("pass" if ok else "fail", reason, name, target.ranks, used, (used, used))


def completed_verdict(target: Target, measured: Measured) -> Verdict:
    """Every request of the run completed: a layout that drops requests is not scaling."""
    m = measured.metrics
    total = m.completed + m.failed
    name = f"{target.name} requests completed"
    reason = f"{name}: {m.completed} of {total} at concurrency {measured.run.concurrency}"
    outcome: Outcome = "pass" if m.failed == 0 and m.completed > 0 else "fail"
    return Verdict(outcome, reason, name, total, m.completed, (m.completed, m.completed))


def efficiency_verdict(
    target: Target, reference: Target, own: Measured, ref: Measured, floor: float
) -> Verdict:
    """tok/s(layout) / (n x tok/s(reference)) >= floor, n = the ratio of their ranks."""
    n = target.ranks / reference.ranks
    hi, lo = own.judged.output_throughput, ref.judged.output_throughput
    scaled = None if lo.interval is None else (lo.interval[0] * n, lo.interval[1] * n)
    verdict = check_ratio_at_least(
        f"scaling efficiency {target.name} / ({n:g} x {reference.name})",
        hi.point, hi.interval, None if lo.point is None else lo.point * n, scaled, floor,
        level=hi.level, den_level=lo.level,
    )  # fmt: skip
    return with_doubts(verdict, own, ref)


def memory_verdicts(target: Target, measured: Measured, budget_gib: float) -> list[Verdict]:
    """Each GPU's peak memory within the per-device budget."""
    name = f"{target.name} memory per device"
    t = measured.telemetry
    if t is None or t.why_none or not t.gpus:
        why = (t.why_none if t else None) or "memory per device is a GPU figure"
        return [Verdict("inconclusive", f"{name}: not measurable: {why}", name, budget_gib,
                        None, None)]  # fmt: skip
    return [
        check_at_most(
            f"{name} (GPU {g.index})",
            g.memory_peak / GIB,
            (g.memory_peak / GIB, g.memory_peak / GIB),
            budget_gib,
            "GiB",
        )
        for g in t.gpus
    ]


def layout_figures(target: Target, measured: Measured, efficiency: Verdict | None) -> list[Figure]:
    """What the scaling table shows for one layout (history keeps them per target)."""
    rate = measured.metrics.output_throughput
    used, how = devices_used(measured)
    figures = [
        Figure("layout_output_tok_s", rate.point, rate.unit, rate.windows, rate.interval,
               "higher", f"output tokens / s of the layout scaling load ({target.layout_label})"),
        Figure("layout_devices", float(target.ranks), "devices",
               definition="tp x pp: the devices the layout spreads over"),
    ]  # fmt: skip
    if measured.telemetry is not None:
        figures.append(
            Figure("layout_gpus_in_use", None if used is None else float(used), "devices",
                   note=how, definition="GPUs holding the server's memory during the run")
        )  # fmt: skip
    if measured.cpu_use is not None:
        figures.append(
            Figure("layout_cores_used", measured.cpu_use.total_cores, "cores",
                   note=measured.cpu_use.describe(),
                   definition="CPU time of the server's processes / the run's wall time")
        )  # fmt: skip
    if efficiency is not None:
        figures.append(
            Figure(
                "layout_efficiency",
                efficiency.point,
                "x",
                None,
                efficiency.interval,
                "higher",
                "tok/s(layout) / (n x tok/s(reference)), n = ratio of ranks",
                note=None if efficiency.interval else efficiency.reason,
            )
        )
    t = measured.telemetry
    if t is not None and t.gpus:
        figures.append(
            Figure("gpu_memory_per_device_peak_bytes", float(max(g.memory_peak for g in t.gpus)),
                   "bytes", better="lower", definition="the fullest GPU's peak memory in use")
        )  # fmt: skip
    return figures
