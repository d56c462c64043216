"""The process launcher: a server as a local process group, with a free port and a log file.

The server's output goes straight to a log file (an unread pipe fills up and
blocks the server). The process leads its own session, so stopping it signals the
whole group: terminate, wait, kill. Whatever escaped the group is found by its
label (``launch.labels``), and so are the leftovers of a killed session.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from pytest_llmserve.frameworks.base import Framework
from pytest_llmserve.launch import auth, gpu_slots, labels
from pytest_llmserve.launch.launcher import StartContext
from pytest_llmserve.launch.local import HOST, LocalServer
from pytest_llmserve.launch.ports import free_port
from pytest_llmserve.launch.server import Server
from pytest_llmserve.launch.start import start_server
from pytest_llmserve.measure.memory import ServerMemory, server_memory
from pytest_llmserve.profile.model import Target

STOP_GRACE_S = 20.0
_PORT_TAKEN = ("address already in use", "errno 98")


@dataclass(frozen=True)
class ProcessSettings:
    """The process launcher reads no keys of its own: argv and env come from the framework."""


class ProcessLauncher:
    name = "process"
    keys: tuple[str, ...] = ()
    launches = True
    runs_here = True

    def settings(self, values: Mapping[str, Any], where: str) -> ProcessSettings:
        return ProcessSettings()

    def spawn(self, target: Target, framework: Framework, ctx: StartContext) -> ProcessServer:
        framework.prepare(target, ctx.progress)
        server = ProcessServer(target, framework, ctx.model_path(target), ctx.log_path(target))
        server.launch()
        return server

    def retry_after(self, log_tail: str) -> bool:
        # Another process took the port between our probe and the server's bind.
        return any(s in log_tail.lower() for s in _PORT_TAKEN)

    def sweep_orphans(self) -> list[str]:
        return [
            f"process {p.pid} ({p.cmdline[:120]}) of gone session {p.owner}"
            for p in labels.sweep_orphans()
        ]


class ProcessServer(LocalServer):
    """One server process for one target; ``launch.start.start_server`` makes it ready."""

    def __init__(
        self, target: Target, framework: Framework, model_path: str, log_path: Path
    ) -> None:
        super().__init__(target, framework, model_path, log_path)
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, target: Target, framework: Framework, model_path: str, log_path: Path) -> Server:
        """One target through the shared start sequence, with this launcher and this model."""
        ctx = StartContext(model_path=lambda _t: model_path, log_path=lambda _t: log_path)
        return start_server(ProcessLauncher(), target, framework, ctx)

    def launch(self) -> None:
        """Start the process on a free port, its output appended to the log file."""
        assert self.log_path is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        port = free_port(HOST)
        self.base_url = f"http://{HOST}:{port}"
        spec = self.framework.launch_spec(self.target, self.model_path, HOST, port)
        self.served_name = spec.served_as or self.served_name
        env = {
            **os.environ,
            **spec.env,
            # Its GPU slot, also where a framework module leaves the target's env out.
            **gpu_slots.device_env(self.target),
            labels.OWNER_VAR: labels.owner_label(),
            labels.SERVER_VAR: self.server_id,
        }
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
            log.write(
                f"# llmserve: launching: {shlex.join(auth.redact_argv(spec.argv))}\n".encode()
            )
            log.flush()
            self.started_at = time.monotonic()
            self._proc = subprocess.Popen(
                spec.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def exited(self) -> str | None:
        if self._proc is None:
            return "never started"
        rc = self._proc.poll()
        if rc is None:
            return None
        if rc < 0:
            return f"was killed by {signal.Signals(-rc).name}"
        return f"exited with code {rc}"

    def pids(self) -> list[int]:
        if self._proc is None or self._proc.poll() is not None:
            return []
        try:
            root = psutil.Process(self._proc.pid)
            return [root.pid, *(c.pid for c in root.children(recursive=True))]
        except psutil.Error:
            return []

    def memory(self) -> ServerMemory | None:
        pids = self.pids()
        return server_memory(pids) if pids else None

    def stop(self) -> None:
        self._stop_process()
        labels.kill_server_processes(self.server_id)

    def _stop_process(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_GRACE_S)
        # The leader is gone; members of its group may linger a moment.
        _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
