"""Launcher name → implementation: the one place that lists them.

Other packages add theirs through the ``pytest_llmserve_launchers`` hook
(``hookspec.py``), asked once at configure time, before the profile is read.
"""

from __future__ import annotations

from collections.abc import Iterable

from pytest_llmserve.launch.external import ExternalLauncher
from pytest_llmserve.launch.launcher import Launcher
from pytest_llmserve.launch.process import ProcessLauncher

DEFAULT = "process"  # also the default of profile.model.Target.launcher
_BUILTIN: tuple[Launcher, ...] = (ProcessLauncher(), ExternalLauncher())
_LAUNCHERS: dict[str, Launcher] = {launcher.name: launcher for launcher in _BUILTIN}


def names() -> tuple[str, ...]:
    return tuple(sorted(_LAUNCHERS))


def get(name: str) -> Launcher:
    try:
        return _LAUNCHERS[name]
    except KeyError:
        raise KeyError(f"unknown launcher {name!r} (valid: {', '.join(names())})") from None


def all_launchers() -> tuple[Launcher, ...]:
    return tuple(_LAUNCHERS[name] for name in names())


def install(added: Iterable[Launcher]) -> None:
    """The built-ins plus ``added``; the first of each name wins (a plugin may replace one)."""
    chosen: dict[str, Launcher] = {}
    for launcher in (*added, *_BUILTIN):
        chosen.setdefault(launcher.name, launcher)
    _LAUNCHERS.clear()
    _LAUNCHERS.update(chosen)


def sweep_orphans() -> list[str]:
    """Every launcher's leftovers of killed sessions, stopped; one line per thing stopped."""
    swept: list[str] = []
    for launcher in all_launchers():
        swept.extend(launcher.sweep_orphans())
    return swept
