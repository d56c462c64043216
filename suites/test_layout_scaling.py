"""Layout scaling: the same model over n devices gives about n times the throughput.

A layout target names its one-device reference in ``checks.layout_scaling``; both
run the same closed-loop workload, each on its own server. Efficiency =
tok/s(layout) / (n x tok/s(reference)), judged on its interval against
``min_efficiency``. Every request of both runs must complete; a GPU layout must
have held memory on each of its n GPUs (NVML), and each GPU's peak memory is
judged against ``max_memory_per_device_gib`` where the profile sets it. On a CPU
target the cores the server used are reported, not judged (they cannot tell a
rank from the front end). The reference itself is measured and shown.

A layout whose server dies under the load fails with the server's last log lines:
it is never reported as slow, and never as a pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_llmserve.checklist import layout_scaling as ls
from pytest_llmserve.checklist.results import TargetResults

Judge = Callable[..., None]
Record = Callable[..., None]


def test_layout_scaling(
    llm_layout: ls.LayoutScalingView | None,
    llm_results: TargetResults,
    llm_judge: Judge,
    llm_record: Record,
    benchmark: Any,
) -> None:
    view = llm_layout or pytest.skip("the profile sets no layout_scaling check")
    if why := view.harness.not_measurable(view.workload):
        pytest.skip(why)
    own = view.run()
    llm_record(benchmark, own)
    verdicts = [ls.completed_verdict(view.target, own)]
    if (on_gpus := ls.devices_verdict(view.target, own)) is not None:
        verdicts.append(on_gpus)
    efficiency = None
    if not view.is_reference:
        ref = view.reference_run()
        efficiency = ls.efficiency_verdict(
            view.target, view.reference_target, own, ref, view.spec.min_efficiency
        )
        verdicts.append(efficiency)
    if view.spec.max_memory_per_device_gib is not None:
        verdicts += ls.memory_verdicts(view.target, own, view.spec.max_memory_per_device_gib)
    llm_results.add(*ls.layout_figures(view.target, own, efficiency))
    llm_judge(*verdicts)
