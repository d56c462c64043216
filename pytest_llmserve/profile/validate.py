"""Every ``checks`` table of a target, validated when the profile loads.

Each check area parses its own table (performance, accuracy, the production
checklist); this is the one place that runs them all, so a typo in any floor,
budget or bound stops the session before a server starts, naming the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_llmserve.profile.accuracy import accuracy_checks
from pytest_llmserve.profile.checks import perf_checks
from pytest_llmserve.profile.contract_checks import error_checks, metrics_checks
from pytest_llmserve.profile.layouts import layout_scaling
from pytest_llmserve.profile.production import footprint_budgets, robustness_checks


def validate_checks(checks: dict[str, Any], where: str, target_names: Sequence[str]) -> None:
    """Raise ``ProfileError`` for the first bad table (unknown tables included)."""
    perf_checks(checks, where)
    accuracy_checks(checks, where, target_names)
    metrics_checks(checks, where)
    error_checks(checks, where)
    robustness_checks(checks, where)
    footprint_budgets(checks, where)
    layout_scaling(checks, where, target_names)
