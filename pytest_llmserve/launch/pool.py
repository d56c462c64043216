"""The session's servers: each target started lazily, once, and stopped when done.

A target that failed to start is not retried within the session: every test that
needs it gets the same error at once instead of another multi-minute attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_llmserve.errors import LLMServeError
from pytest_llmserve.frameworks import registry
from pytest_llmserve.launch.external import ExternalServer
from pytest_llmserve.launch.process import ProcessServer
from pytest_llmserve.launch.server import Server
from pytest_llmserve.models import catalog
from pytest_llmserve.profile.model import Target


@dataclass
class StartRecord:
    """What starting one target cost: for the terminal summary and run records."""

    target: str
    model_path: str = ""
    model_seconds: float = 0.0  # resolving (building, on first use) the model
    ready_s: float | None = None  # launch → every readiness probe passed
    log_path: str | None = None
    error: str | None = None


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
        record.ready_s = server.ready.ready_s
        self._servers[target.name] = server
        return server

    def _start(self, target: Target, record: StartRecord) -> Server:
        framework = registry.get(target.framework)
        if target.launcher == "external":
            return ExternalServer.start(target, framework)
        began = time.monotonic()
        model_path = self.model_path(target)
        record.model_seconds = time.monotonic() - began
        record.model_path = model_path
        log_path = self.log_dir / f"{target.name}.log"
        record.log_path = str(log_path)
        return ProcessServer.start(target, framework, model_path, log_path)

    def model_path(self, target: Target) -> str:
        if not target.is_embedded:
            return target.model
        v = catalog.variant_for(target.embedded_name, target.precision, target.method)
        return str(self._resolve_embedded(v))

    def release(self, target: Target) -> None:
        server = self._servers.pop(target.name, None)
        if server is not None:
            server.stop()

    def stop_all(self) -> None:
        for name in list(self._servers):
            self._servers.pop(name).stop()
