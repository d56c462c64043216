"""Framework name → implementation. The only place that lists the modules."""

from __future__ import annotations

from pytest_llmserve.frameworks.base import Framework
from pytest_llmserve.frameworks.vllm import VLLM

_FRAMEWORKS: dict[str, Framework] = {f.name: f for f in (VLLM(),)}


def names() -> tuple[str, ...]:
    return tuple(sorted(_FRAMEWORKS))


def get(name: str) -> Framework:
    try:
        return _FRAMEWORKS[name]
    except KeyError:
        raise KeyError(f"unknown framework {name!r} (valid: {', '.join(names())})") from None
