"""The launcher seam: how a target's server comes to life, one module per way.

A launcher owns the keys of a target's table that only it reads (its typed
settings), starts a server for a target and hands it back *not yet ready*, and
sweeps what a killed session of ours left behind. Everything every launcher
shares (the API key, readiness raced against the server's exit, the engine
facts, the version) is ``launch.start``, written once.

A launcher is registered in ``launch.registry``; other packages add theirs through
the ``pytest_llmserve_launchers`` hook (``hookspec.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pytest_llmserve.frameworks.base import Framework
from pytest_llmserve.launch.server import Server
from pytest_llmserve.models.artifact import quiet
from pytest_llmserve.profile.model import Target


@dataclass(frozen=True)
class StartContext:
    """What a launcher may use from the session: the model resolver and where logs go."""

    # A target's model as a path the server can load: builds an embedded variant on
    # first use (minutes), returns a local path or the profile's string unchanged.
    model_path: Callable[[Target], str]
    # The file a target's server output goes to (the session's log folder).
    log_path: Callable[[Target], Path]
    # Where a launcher says what takes long before a server starts (a build).
    progress: Callable[[str], None] = quiet


class Launcher(Protocol):
    name: str
    # Target-table keys only this launcher reads (e.g. the external launcher's "url").
    keys: tuple[str, ...]
    # Whether it starts the server itself: then a missing API key may be generated for it.
    launches: bool
    # Whether the server runs on this machine: then a target's model path must exist
    # here before anything starts, and this machine's limits apply to it (a framework's
    # ``unsupported_here``); a cluster's launcher, like the external one, says no.
    runs_here: bool

    def settings(self, values: Mapping[str, Any], where: str) -> Any:
        """Its typed, frozen settings from the target's values of ``keys``.

        Raises ``ProfileError`` naming ``where``, the key and the valid values.
        """
        ...

    def spawn(self, target: Target, framework: Framework, ctx: StartContext) -> Server:
        """Start the server; return at once, before it is ready.

        On any failure, nothing it started may be left running.
        """
        ...

    def retry_after(self, log_tail: str) -> bool:
        """Whether a start that failed with this log tail is worth one more attempt."""
        ...

    def sweep_orphans(self) -> list[str]:
        """Stop what sessions of ours that are gone left running; one line per thing stopped.

        Never touches anything of a session still running.
        """
        ...
