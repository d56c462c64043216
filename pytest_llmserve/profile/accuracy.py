"""The ``accuracy`` table of a target, typed: its baseline target and its loss budgets.

A quantized (or migrated) target is judged against a baseline target measured in
the same session on the same tokens and items, never against a published number:
the baseline names another target of the profile (possibly another framework,
for a migration). Budgets are the MLPerf form: perplexity may rise by at most a
fraction, the task score must keep at least a fraction of the baseline's. A budget
left out is not judged (its test skips and says so).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.profile.checks import parse_table


@dataclass(frozen=True)
class AccuracyChecks:
    """``baseline``: a target name; budgets as fractions; sizes of what is measured.

    ``ppl_tokens`` of held-out text are scored in windows of ``window_tokens``
    (each window's first token has no context and is not scored); ``task_items``
    caps the built-in task set (0: every item).
    """

    baseline: str
    max_ppl_increase: float | None = None
    min_score_ratio: float | None = None
    ppl_tokens: int = 16384
    window_tokens: int = 1024
    task_items: int = 0
    concurrency: int = 8  # task requests in flight
    ppl_concurrency: int = 2  # perplexity windows in flight (long prefills: few suffice)
    seed: int = 0


def accuracy_checks(
    checks: dict[str, Any], where: str, target_names: Iterable[str] | None = None
) -> AccuracyChecks | None:
    """The typed ``checks.accuracy`` of one target (None when absent).

    ``target_names`` (the profile's targets) lets the baseline name be checked at
    profile load; a ``ProfileError`` names the field and the valid values.
    """
    raw = checks.get("accuracy")
    spot = f"{where}: checks.accuracy"
    if raw is not None and isinstance(raw, dict) and "baseline" not in raw:
        raise ProfileError(f"{spot}: missing baseline (the name of the target to compare with)")
    parsed = parse_table(raw, AccuracyChecks, spot)
    if parsed is None:
        return None
    names = tuple(target_names) if target_names is not None else None
    if names is not None and parsed.baseline not in names:
        raise ProfileError(
            f"{spot}.baseline: {parsed.baseline!r} is not a target of this profile "
            f"(valid: {', '.join(names)})"
        )
    if parsed.max_ppl_increase is not None and parsed.max_ppl_increase > 10:
        raise ProfileError(
            f"{spot}.max_ppl_increase: a fraction (0.02 = +2%), got {parsed.max_ppl_increase}"
        )
    if parsed.min_score_ratio is not None and not 0 < parsed.min_score_ratio <= 1.5:
        raise ProfileError(
            f"{spot}.min_score_ratio: a fraction of the baseline score in (0, 1.5] "
            f"(0.99 = 99%), got {parsed.min_score_ratio}"
        )
    for name, least in (("window_tokens", 2), ("ppl_tokens", 2), ("ppl_concurrency", 1)):
        if getattr(parsed, name) < least:
            raise ProfileError(f"{spot}.{name}: must be >= {least}, got {getattr(parsed, name)}")
    if parsed.ppl_tokens < parsed.window_tokens:
        raise ProfileError(
            f"{spot}.ppl_tokens: must be >= window_tokens ({parsed.window_tokens}), "
            f"got {parsed.ppl_tokens}"
        )
    return parsed
