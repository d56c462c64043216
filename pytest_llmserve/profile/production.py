"""The ``robustness`` and ``footprint`` tables of a target's checks, typed.

Robustness has working defaults: its bounds say "the server recovered at all", not
"it is fast", so a profile need not set them. Footprint budgets are a target's own
numbers: a budget the profile leaves out is reported, never judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.profile.checks import parse_table


@dataclass(frozen=True)
class Robustness:
    """Faults the server must survive: clients that vanish mid-stream, a burst past capacity.

    ``drain_max_s``: after the disconnects, running and waiting requests must be 0
    within this; ``kv_tolerance``: KV-cache use must come back within this share
    (0.02 = 2 points) of its idle reading. ``burst_max_s``: every request of the
    burst completed or was refused (429/503) within this.
    """

    disconnect_streams: int = 16
    disconnect_max_tokens: int = 512
    disconnect_after_chunks: int = 3
    drain_max_s: float = 15.0
    kv_tolerance: float = 0.02
    burst_requests: int = 256
    burst_max_tokens: int = 8
    burst_max_s: float = 180.0


@dataclass(frozen=True)
class Footprint:
    """Budgets for cold start and memory; each left out is reported, not judged.

    ``max_startup_s``: launch → every readiness probe passed. ``max_host_memory_gib``:
    PSS summed over all the server's processes (GiB = 2**30 bytes).
    ``max_gpu_memory_gib``: device memory NVML attributes to those processes.
    ``max_checkpoint_gib``: the model's files on disk.
    """

    max_startup_s: float | None = None
    max_host_memory_gib: float | None = None
    max_gpu_memory_gib: float | None = None
    max_checkpoint_gib: float | None = None


def robustness_checks(checks: dict[str, Any], where: str) -> Robustness:
    """The target's ``checks.robustness`` (defaults where it is absent)."""
    parsed = parse_table(checks.get("robustness"), Robustness, f"{where}: checks.robustness")
    spec = parsed or Robustness()
    for name in ("disconnect_streams", "disconnect_max_tokens", "disconnect_after_chunks",
                 "burst_requests", "burst_max_tokens"):  # fmt: skip
        if getattr(spec, name) < 1:
            raise ProfileError(f"{where}: checks.robustness.{name}: must be >= 1")
    for name in ("drain_max_s", "burst_max_s"):
        if getattr(spec, name) <= 0:
            raise ProfileError(f"{where}: checks.robustness.{name}: must be > 0")
    if spec.kv_tolerance > 1:
        raise ProfileError(
            f"{where}: checks.robustness.kv_tolerance: a share of the cache, 0..1, "
            f"got {spec.kv_tolerance}"
        )
    return spec


def footprint_budgets(checks: dict[str, Any], where: str) -> Footprint:
    """The target's ``checks.footprint`` (no budgets where it is absent)."""
    parsed = parse_table(checks.get("footprint"), Footprint, f"{where}: checks.footprint")
    spec = parsed or Footprint()
    for name in ("max_startup_s", "max_host_memory_gib", "max_gpu_memory_gib",
                 "max_checkpoint_gib"):  # fmt: skip
        value = getattr(spec, name)
        if value is not None and value <= 0:
            raise ProfileError(f"{where}: checks.footprint.{name}: must be > 0, got {value}")
    return spec
