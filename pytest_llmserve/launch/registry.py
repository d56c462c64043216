"""Launcher name → implementation: the one place that lists them.

Other packages add theirs through the ``pytest_llmserve_launchers`` hook
(``hookspec.py``), asked once at configure time, before the profile is read.
"""

from __future__ import annotations

from pytest_llmserve.launch.docker import DockerLauncher
from pytest_llmserve.launch.external import ExternalLauncher
from pytest_llmserve.launch.launcher import Launcher
from pytest_llmserve.launch.process import ProcessLauncher
from pytest_llmserve.registry import Registry

DEFAULT = "process"  # also the default of profile.model.Target.launcher
LAUNCHERS: Registry[Launcher] = Registry(
    "launcher", (ProcessLauncher(), DockerLauncher(), ExternalLauncher())
)

names = LAUNCHERS.names
get = LAUNCHERS.get
install = LAUNCHERS.install
all_launchers = LAUNCHERS.all


def sweep_orphans() -> list[str]:
    """Every launcher's leftovers of killed sessions, stopped; one line per thing stopped."""
    swept: list[str] = []
    for launcher in all_launchers():
        swept.extend(launcher.sweep_orphans())
    return swept
