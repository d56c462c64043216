"""The session's servers: each target started lazily, once, and stopped when done.

A target that failed to start is not retried within the session: every test that
needs it gets the same error at once instead of another multi-minute attempt.
A GPU target started here leases its GPUs (``launch.gpu_slots``) once its model is
resolved, just before its server is spawned, and gives them back when it stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_llmserve.errors import LLMServeError, ServerStartError
from pytest_llmserve.frameworks import registry as frameworks
from pytest_llmserve.launch import registry as launchers
from pytest_llmserve.launch.gpu_slots import GpuSlots
from pytest_llmserve.launch.launcher import StartContext
from pytest_llmserve.launch.server import Server
from pytest_llmserve.launch.start import start_server
from pytest_llmserve.models import catalog
from pytest_llmserve.models.artifact import quiet
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
        slots: GpuSlots | None = None,  # None: GPU targets share whatever GPUs they see
        progress: Callable[[str], None] = quiet,  # what a launcher builds first
    ) -> None:
        self.log_dir = log_dir
        self._resolve_embedded = resolve_embedded
        self._slots = slots
        self._progress = progress
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

        launcher = launchers.get(target.launcher)
        leases = target.device == "gpu" and launcher.runs_here and not target.share_gpus
        slots = self._slots if leases else None
        if slots is None:
            ctx = StartContext(model_path, log_path, self._progress)
            return start_server(launcher, target, frameworks.get(target.framework), ctx)
        # Resolve (maybe build, for minutes) the model before holding GPUs others wait for.
        path = model_path(target)
        ctx = StartContext(lambda _t: path, log_path, self._progress)
        leased = slots.take(target)  # the target with CUDA_VISIBLE_DEVICES in its env
        try:
            return start_server(launcher, leased, frameworks.get(target.framework), ctx)
        except BaseException:
            slots.release(target.name)
            raise

    def model_path(self, target: Target) -> str:
        if not target.is_embedded:
            return target.model
        fmt = frameworks.get(target.framework).model_format
        v = catalog.variant_for(target.embedded_name, target.precision, target.method, fmt)
        folder = self._resolve_embedded(v)
        return str(folder / v.entry if v.entry else folder)

    def release(self, target: Target) -> None:
        server = self._servers.pop(target.name, None)
        if server is None:
            return
        try:
            server.stop()
        finally:
            if self._slots is not None:
                self._slots.release(target.name)

    def stop_all(self) -> None:
        try:
            for name in list(self._servers):
                self._servers.pop(name).stop()
        finally:
            if self._slots is not None:
                self._slots.release_all()
