"""Markers: registered once, and attached to every test that runs against a target."""

from __future__ import annotations

import pytest

from pytest_llmserve.frameworks import registry
from pytest_llmserve.profile.model import PRECISIONS, Target

_DESCRIPTIONS = {
    "gpu": "runs against a target served on GPU",
    "cpu": "runs against a target served on CPU",
    "multi_gpu": "runs against a target that spans more than one GPU",
    "slow": "runs against a target the profile marks slow",
}


QUICK = "llmserve_quick"


def marker_lines() -> list[str]:
    """The `markers` ini lines for every marker a target can carry, and the quick one."""
    lines = [f"{QUICK}: part of the quick checklist (--llmserve-checklist=quick) (pytest-llmserve)"]
    lines += [f"{fw}: runs against a {fw} target (pytest-llmserve)" for fw in registry.names()]
    lines += [f"{name}: {text} (pytest-llmserve)" for name, text in _DESCRIPTIONS.items()]
    lines += [
        f"precision_{p}: runs against a target served at {p} (pytest-llmserve)" for p in PRECISIONS
    ]
    return lines


def marker_names(target: Target) -> list[str]:
    names = [target.framework, target.device, f"precision_{target.precision}"]
    if target.gpus > 1:
        names.append("multi_gpu")
    if target.slow:
        names.append("slow")
    return names


def marks_for(target: Target) -> list[pytest.MarkDecorator]:
    return [getattr(pytest.mark, name) for name in marker_names(target)]
