"""The ``layout_scaling`` table of a target's checks: the same model spread over more devices.

A profile lists one model at several parallel layouts as targets (``tp``/``pp``,
or a framework's own split mode through ``args``), and each multi-device layout
names its one-device reference. The check runs the same workload on both and
judges the scaling efficiency ``tok/s(layout) / (n x tok/s(reference))``, where
``n`` is how many times more devices the layout has. The reference must be the
same framework, model and precision, or the ratio would measure something else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.profile.checks import parse_table
from pytest_llmserve.profile.model import Target


@dataclass(frozen=True)
class LayoutScaling:
    """``reference``: the target this layout is compared with (itself: it is measured as
    the reference). ``min_efficiency``: the floor on tok/s(n) / (n x tok/s(1)).
    ``max_memory_per_device_gib``: a GPU layout's peak memory on each of its GPUs
    (left out: reported, not judged). The load: a closed loop at ``concurrency``."""

    reference: str
    min_efficiency: float = 0.0
    concurrency: int = 8
    requests: int = 64
    warmup: int = 4
    max_memory_per_device_gib: float | None = None


def layout_scaling(
    checks: Mapping[str, Any], where: str, target_names: Sequence[str] | None = None
) -> LayoutScaling | None:
    """The target's ``checks.layout_scaling`` (None: the profile sets none)."""
    spot = f"{where}: checks.layout_scaling"
    raw = checks.get("layout_scaling")
    if isinstance(raw, dict) and "reference" not in raw:
        raise ProfileError(f"{spot}: missing reference (the one-device layout's target name)")
    spec = parse_table(raw, LayoutScaling, spot)
    if spec is None:
        return None
    if target_names is not None and spec.reference not in target_names:
        raise ProfileError(
            f"{spot}.reference: no target named {spec.reference!r} "
            f"(valid: {', '.join(target_names)})"
        )
    if spec.min_efficiency > 1.5:
        raise ProfileError(f"{spot}.min_efficiency: {spec.min_efficiency} is a share (0-1)")
    for name in ("concurrency", "requests"):
        if getattr(spec, name) < 1:
            raise ProfileError(f"{spot}.{name}: must be >= 1")
    return spec


def check_references(targets: Sequence[Target], labels: Sequence[str]) -> None:
    """Each layout's reference is the same model at the same precision on fewer devices."""
    by_name = {t.name: t for t in targets}
    for target, where in zip(targets, labels, strict=True):
        spec = layout_scaling(target.checks, where)
        if spec is None or spec.reference == target.name:
            continue
        ref = by_name[spec.reference]
        spot = f"{where}: checks.layout_scaling.reference"
        for field in ("framework", "model", "precision", "method", "device"):
            if getattr(ref, field) != getattr(target, field):
                raise ProfileError(
                    f"{spot}: {ref.name} has {field} {getattr(ref, field)!r}, this target "
                    f"{getattr(target, field)!r} (a layout is compared with the same model "
                    "at the same precision on fewer devices)"
                )
        if ref.ranks >= target.ranks:
            raise ProfileError(
                f"{spot}: {ref.name} runs on {ref.ranks} device(s) (tp x pp), this target "
                f"on {target.ranks}: the reference must have fewer"
            )
