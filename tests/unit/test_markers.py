"""Markers: every target carries its framework, device and precision; the ini lines cover all."""

from __future__ import annotations

import pytest

from pytest_llmserve.frameworks import registry
from pytest_llmserve.profile.markers import QUICK, marker_lines, marker_names, marks_for
from pytest_llmserve.profile.model import PRECISIONS, Target


def target(**kw: object) -> Target:
    values: dict[str, object] = {
        "name": "t", "framework": "vllm", "model": "/m", "precision": "bf16", **kw
    }  # fmt: skip
    return Target(**values)  # type: ignore[arg-type]


def test_cpu_target_markers() -> None:
    assert marker_names(target()) == ["vllm", "cpu", "precision_bf16"]


def test_gpu_target_markers_name_framework_device_and_precision() -> None:
    names = marker_names(target(framework="sglang", device="gpu", precision="int4"))
    assert names == ["sglang", "gpu", "precision_int4"]


@pytest.mark.parametrize(("tp", "pp"), [(2, 1), (1, 2), (2, 2)])
def test_multi_gpu_marks_gpu_targets_spanning_several_gpus(tp: int, pp: int) -> None:
    assert "multi_gpu" in marker_names(target(device="gpu", tp=tp, pp=pp))


def test_single_gpu_target_is_not_multi_gpu() -> None:
    assert "multi_gpu" not in marker_names(target(device="gpu"))


def test_cpu_target_with_several_ranks_is_not_multi_gpu() -> None:
    names = marker_names(target(device="cpu", tp=4, pp=2))
    assert "multi_gpu" not in names
    assert "gpu" not in names


def test_slow_marker_only_when_profile_says_slow() -> None:
    assert "slow" in marker_names(target(slow=True))
    assert "slow" not in marker_names(target())


def test_marks_for_returns_pytest_marks_with_those_names() -> None:
    t = target(device="gpu", tp=2, slow=True, precision="fp8")
    assert [m.name for m in marks_for(t)] == marker_names(t)
    assert all(isinstance(m, pytest.MarkDecorator) for m in marks_for(t))


def test_marker_lines_register_every_marker_a_target_can_carry() -> None:
    registered = {line.split(":", 1)[0] for line in marker_lines()}
    expected = {*registry.names(), "cpu", "gpu", "multi_gpu", "slow", QUICK}
    expected |= {f"precision_{p}" for p in PRECISIONS}
    assert registered == expected
    # and every name marker_names can produce is among them
    for fw in registry.names():
        for p in PRECISIONS:
            t = target(framework=fw, precision=p, device="gpu", tp=2, slow=True)
            assert set(marker_names(t)) <= registered


def test_marker_lines_have_descriptions_and_no_duplicates() -> None:
    lines = marker_lines()
    names = [line.split(":", 1)[0] for line in lines]
    assert len(names) == len(set(names))
    assert all(line.split(":", 1)[1].strip() for line in lines)
