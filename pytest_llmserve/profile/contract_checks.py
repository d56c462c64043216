"""The ``metrics`` and ``errors`` tables of a target's checks, typed.

Both are optional: without them the metrics contract and the error battery run
with the defaults below, which suit a small model on a shared CPU machine.

    [targets.checks.metrics]
    token_tolerance = 0.0   # relative gap allowed between token counters and the client's count
    idle_timeout_s = 10     # running/waiting gauges must read 0 this soon after the load run
    requests = 16           # the load run measured around (closed loop)
    concurrency = 4
    input_tokens = 32
    output_tokens = 16

    [targets.checks.errors]
    timeout_s = 30          # a bad request unanswered this long counts as a hang
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.profile.checks import parse_table


@dataclass(frozen=True)
class MetricsChecks:
    """The load run the metrics contract is checked around, and its tolerances."""

    token_tolerance: float = 0.0
    idle_timeout_s: float = 10.0
    requests: int = 16
    concurrency: int = 4
    input_tokens: int = 32
    output_tokens: int = 16


@dataclass(frozen=True)
class ErrorChecks:
    """How long a bad request may go unanswered before it counts as a hang."""

    timeout_s: float = 30.0


def metrics_checks(checks: dict[str, Any], where: str) -> MetricsChecks:
    """``checks.metrics`` of one target; ``ProfileError`` names the field and valid values."""
    parsed = parse_table(checks.get("metrics"), MetricsChecks, f"{where}: checks.metrics")
    spec = parsed or MetricsChecks()
    for name in ("requests", "concurrency", "input_tokens", "output_tokens"):
        if getattr(spec, name) < 1:
            raise ProfileError(
                f"{where}: checks.metrics.{name}: must be >= 1, got {getattr(spec, name)}"
            )
    if spec.token_tolerance >= 1:
        raise ProfileError(
            f"{where}: checks.metrics.token_tolerance: a fraction in [0, 1), "
            f"got {spec.token_tolerance}"
        )
    if spec.idle_timeout_s <= 0:
        raise ProfileError(
            f"{where}: checks.metrics.idle_timeout_s: must be > 0, got {spec.idle_timeout_s}"
        )
    return spec


def error_checks(checks: dict[str, Any], where: str) -> ErrorChecks:
    """``checks.errors`` of one target; ``ProfileError`` names the field and valid values."""
    spec = parse_table(checks.get("errors"), ErrorChecks, f"{where}: checks.errors")
    spec = spec or ErrorChecks()
    if spec.timeout_s <= 0:
        raise ProfileError(f"{where}: checks.errors.timeout_s: must be > 0, got {spec.timeout_s}")
    return spec
