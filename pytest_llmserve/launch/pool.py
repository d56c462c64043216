"""The session's servers: each target started lazily, once, and stopped when done.

A target that failed to start is not retried within the session: every test that
needs it gets the same error at once instead of another multi-minute attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_llmserve.errors import LLMServeError, ServerStartError
from pytest_llmserve.frameworks import registry as frameworks
from pytest_llmserve.launch import registry as launchers
from pytest_llmserve.launch.launcher import StartContext
from pytest_llmserve.launch.server import Server
from pytest_llmserve.launch.start import start_server
from pytest_llmserve.models import catalog
from pytest_llmserve.profile.model import Target


@dataclass
class StartRecord:
    """What starting one target cost: for the terminal summary and run records."""

    target: str
    model_path: str = ""  # the resolved model as the launcher gave it to the server
    model_seconds: float = 0.0  # resolving (building, on first use) the model
    ready_s: float | None = None  # launch → every readiness probe passed
    log_path: str | None = None
    error: str | None = None
    server_version: str | None = None  # as the running server reported it


class ServerPool:
    def __init__(
        self,
        log_dir: Path,
        resolve_embedded: Callable[[catalog.Variant], Path],
    ) -> None:
        self.log_dir = log_dir
        self._resolve_embedded = resolve_embedded
        self._servers: dict[str, Server] = {}
        self._failed: dict[str, LLMServeError] = {}
        self.records: dict[str, StartRecord] = {}

    def get(self, target: Target) -> Server:
        if target.name in self._failed:
            raise self._failed[target.name]
        if target.name in self._servers:
            return self._servers[target.name]
        record = self.records.setdefault(target.name, StartRecord(target.name))
        try:
            server = self._start(target, record)
        except LLMServeError as exc:
            record.error = str(exc).splitlines()[0]
            self._failed[target.name] = exc
            raise
        except Exception as exc:
            # Not one of ours (a framework module's bug, an OS error): keep it, with the
            # target's name, so the summary shows the cause instead of crashing on it.
            error = ServerStartError(f"{target.name}: {type(exc).__name__}: {exc}")
            record.error = str(error).splitlines()[0]
            self._failed[target.name] = error
            raise error from exc
        record.ready_s = server.ready.ready_s
        record.server_version = server.version
        if server.log_path is not None:
            record.log_path = str(server.log_path)
        self._servers[target.name] = server
        return server

    def _start(self, target: Target, record: StartRecord) -> Server:
        def model_path(t: Target) -> str:
            began = time.monotonic()
            record.model_path = self.model_path(t)
            record.model_seconds = time.monotonic() - began
            return record.model_path

        def log_path(t: Target) -> Path:
            path = self.log_dir / f"{t.name}.log"
            record.log_path = str(path)
            return path

        ctx = StartContext(model_path=model_path, log_path=log_path)
        launcher = launchers.get(target.launcher)
        return start_server(launcher, target, frameworks.get(target.framework), ctx)

    def model_path(self, target: Target) -> str:
        if not target.is_embedded:
            return target.model
        fmt = frameworks.get(target.framework).model_format
        v = catalog.variant_for(target.embedded_name, target.precision, target.method, fmt)
        folder = self._resolve_embedded(v)
        return str(folder / v.entry if v.entry else folder)

    def release(self, target: Target) -> None:
        server = self._servers.pop(target.name, None)
        if server is not None:
            server.stop()

    def stop_all(self) -> None:
        for name in list(self._servers):
            self._servers.pop(name).stop()
