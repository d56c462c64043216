"""Layout scaling without a server: the profile's rules, the efficiency maths, the GPU
evidence and the per-device memory budget, and the CPU-time watcher."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.checklist import layout_scaling as ls
from pytest_llmserve.errors import ProfileError
from pytest_llmserve.measure.cpu_use import CpuWatch
from pytest_llmserve.measure.gpu_telemetry import GpuFigures, Telemetry
from pytest_llmserve.profile.layouts import LayoutScaling, layout_scaling
from pytest_llmserve.profile.load import parse_profile
from pytest_llmserve.profile.model import Target

GIB = 2**30


def _profile(tmp_path: Path, *targets: dict[str, Any]) -> Any:
    data = {"defaults": {"framework": "vllm", "model": str(tmp_path), "precision": "bf16"},
            "targets": list(targets)}  # fmt: skip
    return parse_profile(data, source="t.toml", base_dir=tmp_path)


def _layout(name: str, reference: str = "tp1", **fields: Any) -> dict[str, Any]:
    check = {"reference": reference, "min_efficiency": 0.7}
    return {"name": name, **fields, "checks": {"layout_scaling": check}}


def test_a_layout_and_its_reference_load(tmp_path: Path) -> None:
    profile = _profile(
        tmp_path, _layout("tp1"), _layout("tp2", tp=2), _layout("tp2pp2", tp=2, pp=2)
    )
    spec = layout_scaling(profile.target("tp2pp2").checks, "t")
    assert spec == LayoutScaling("tp1", 0.7)
    assert [t.ranks for t in profile.targets] == [1, 2, 4]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([_layout("tp1"), _layout("tp2", "tp3", tp=2)],
         "reference: no target named 'tp3' (valid: tp1, tp2)"),
        ([_layout("tp1"), _layout("tp2", tp=2, precision="int8")],
         "tp1 has precision 'bf16', this target 'int8'"),
        ([_layout("tp1", tp=2), _layout("tp2", tp=2)],
         "tp1 runs on 2 device(s) (tp x pp), this target on 2: the reference must have fewer"),
        ([{"name": "tp2", "tp": 2, "checks": {"layout_scaling": {"min_efficiency": 0.5}}}],
         "missing reference"),
        ([_layout("tp1"), {"name": "tp2", "checks": {"layout_scaling": {"reference": "tp1",
                                                                         "min_efficiency": 70}}}],
         "min_efficiency: 70 is a share (0-1)"),
        ([_layout("tp1"), {"name": "tp2", "checks": {"layout_scaling": {"reference": "tp1",
                                                                         "efficency": 0.5}}}],
         "efficency: unknown field (valid: reference, min_efficiency,"),
    ],
)  # fmt: skip
def test_bad_layouts_name_the_fix(tmp_path: Path, targets: list[Any], message: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(message)):
        _profile(tmp_path, *targets)


# -- the maths, on stand-ins for a measured run ---------------------------------------


@dataclass
class _Rate:
    point: float | None
    interval: tuple[float, float] | None
    level: float = 0.95


@dataclass
class _Metrics:
    output_throughput: _Rate
    completed: int = 32
    failed: int = 0


@dataclass
class _Run:
    concurrency: int = 4


@dataclass
class _Measured:
    judged: _Metrics
    telemetry: Telemetry | None = None
    doubts: list[str] = field(default_factory=list)
    run: _Run = field(default_factory=_Run)
    sampling: str | None = None

    @property
    def metrics(self) -> _Metrics:
        return self.judged

    def integrity_doubts(self) -> list[str]:
        return self.doubts

    def client_lag_doubt(self) -> str | None:
        return None


def _run(point: float, lo: float, hi: float, **kw: Any) -> Any:
    return _Measured(_Metrics(_Rate(point, (lo, hi))), **kw)


ONE = Target("tp1", "vllm", "m", "bf16")
TWO = Target("tp2", "vllm", "m", "bf16", tp=2)
FOUR = Target("tp4", "vllm", "m", "bf16", tp=4)


def test_efficiency_divides_by_n_times_the_reference() -> None:
    v = ls.efficiency_verdict(FOUR, ONE, _run(360, 350, 370), _run(100, 98, 102), 0.8)
    assert v.point == pytest.approx(0.9)
    assert v.interval == pytest.approx((350 / 408, 370 / 392))  # conservative: ends over ends
    assert v.outcome == "pass"
    v = ls.efficiency_verdict(FOUR, TWO, _run(360, 350, 370), _run(200, 196, 204), 0.95)
    assert v.point == pytest.approx(0.9)  # n is the ratio of ranks: 4 / 2
    assert v.outcome == "fail"


def test_efficiency_straddling_the_floor_or_doubted_is_inconclusive() -> None:
    assert ls.efficiency_verdict(
        TWO, ONE, _run(160, 120, 200), _run(100, 98, 102), 0.8
    ).outcome == ("inconclusive")
    doubted = _run(100, 99, 101, doubts=["3 of 32 requests failed"])
    v = ls.efficiency_verdict(TWO, ONE, doubted, _run(100, 98, 102), 0.8)
    assert v.outcome == "inconclusive"
    assert "3 of 32 requests failed" in v.reason


def test_requests_that_failed_fail_the_layout() -> None:
    ok = _run(100, 98, 102)
    assert ls.completed_verdict(TWO, ok).outcome == "pass"
    broken = _Measured(_Metrics(_Rate(100, (98, 102)), completed=30, failed=2))
    v = ls.completed_verdict(TWO, broken)
    assert v.outcome == "fail"
    assert "30 of 32" in v.reason


def _gpu(index: int, peak_gib: float, process_gib: float) -> GpuFigures:
    return GpuFigures(index, "H200", 10, 1.0, int(peak_gib * GIB), int(peak_gib * GIB), 50.0,
                      300.0, 300.0, "counter", int(process_gib * GIB))  # fmt: skip


def test_a_gpu_layout_must_hold_memory_on_every_gpu_it_claims() -> None:
    both = _run(1, 1, 1, telemetry=Telemetry((_gpu(0, 20, 19), _gpu(1, 20, 19))))
    one = _run(1, 1, 1, telemetry=Telemetry((_gpu(0, 20, 19), _gpu(1, 0.5, 0))))
    assert ls.devices_verdict(TWO, both).outcome == "pass"  # type: ignore[union-attr]
    v = ls.devices_verdict(TWO, one)
    assert v is not None
    assert v.outcome == "fail"
    assert "1 < 2" in v.reason
    assert "[0]" in v.reason
    no_nvml = _run(1, 1, 1, telemetry=Telemetry(why_none="not available: no NVML"))
    assert ls.devices_verdict(TWO, no_nvml).outcome == "inconclusive"  # type: ignore[union-attr]
    assert ls.devices_verdict(TWO, _run(1, 1, 1)) is None  # a CPU run: reported, not judged


def test_memory_per_device_is_judged_per_gpu_and_not_measurable_on_cpu() -> None:
    run = _run(1, 1, 1, telemetry=Telemetry((_gpu(0, 20, 19), _gpu(1, 30, 29))))
    outcomes = [v.outcome for v in ls.memory_verdicts(TWO, run, 25.0)]
    assert outcomes == ["pass", "fail"]
    (cpu,) = ls.memory_verdicts(TWO, _run(1, 1, 1), 25.0)
    assert cpu.outcome == "inconclusive"
    assert "not measurable: memory per device is a GPU figure" in cpu.reason


def test_cpu_watch_sees_a_busy_process_use_about_a_core() -> None:
    import os

    with CpuWatch(lambda: [os.getpid()]) as watch:
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
    assert watch.result is not None
    assert 0.5 < watch.result.cores[0] <= 1.2
    with CpuWatch(lambda: [os.getpid()]) as idle:
        time.sleep(0.3)
    assert idle.result is not None
    assert idle.result.cores[0] < 0.3
