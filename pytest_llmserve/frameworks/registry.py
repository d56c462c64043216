"""Framework name → implementation: the one place that lists them.

The built-in modules are registered here; other packages add theirs through the
``pytest_llmserve_frameworks`` hook (``hookspec.py``), which the plugin asks once
at configure time, before the profile is read, so profiles may name them.
"""

from __future__ import annotations

from collections.abc import Iterable

from pytest_llmserve.frameworks.base import Framework
from pytest_llmserve.frameworks.vllm import VLLM

_BUILTIN: tuple[Framework, ...] = (VLLM(),)
_FRAMEWORKS: dict[str, Framework] = {f.name: f for f in _BUILTIN}


def names() -> tuple[str, ...]:
    return tuple(sorted(_FRAMEWORKS))


def get(name: str) -> Framework:
    try:
        return _FRAMEWORKS[name]
    except KeyError:
        raise KeyError(f"unknown framework {name!r} (valid: {', '.join(names())})") from None


def install(added: Iterable[Framework]) -> None:
    """The built-ins plus ``added``; the first of each name wins, so a plugin's module
    (listed before the built-ins by the hook) may replace a built-in one."""
    chosen: dict[str, Framework] = {}
    for framework in (*added, *_BUILTIN):
        chosen.setdefault(framework.name, framework)
    _FRAMEWORKS.clear()
    _FRAMEWORKS.update(chosen)
