"""A server as a local process group: free port, log file, readiness, clean stop.

The server's output goes straight to a log file (an unread pipe fills up and
blocks the server). The process leads its own session, so stopping it signals the
whole group: terminate, wait, kill. Whatever escaped the group is found by its
label. Any exception during startup, KeyboardInterrupt included, stops what was
started before it propagates.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psutil

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks.base import EngineFacts, Framework
from pytest_llmserve.launch import auth, labels
from pytest_llmserve.launch.ports import free_port
from pytest_llmserve.launch.readiness import NotReady, ReadyReport, standard_probes, wait_ready
from pytest_llmserve.launch.server import read_tail
from pytest_llmserve.profile.model import Target

HOST = "127.0.0.1"
STOP_GRACE_S = 20.0
_PORT_TAKEN = ("address already in use", "errno 98")


class ProcessServer:
    """One server process for one target; start with ``ProcessServer.start``."""

    def __init__(
        self, target: Target, framework: Framework, model_path: str, log_path: Path
    ) -> None:
        self.target = target
        self.framework = framework
        self.model_path = model_path
        self.log_path: Path | None = log_path
        self.served_name = target.served_name or target.name
        self.server_id = uuid.uuid4().hex[:12]
        self.base_url = ""
        self.ready = ReadyReport()
        self.facts = EngineFacts()
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(
        cls, target: Target, framework: Framework, model_path: str, log_path: Path
    ) -> ProcessServer:
        """Launch and wait until ready; on any failure nothing of it is left running."""
        server = cls(target, framework, model_path, log_path)
        try:
            server._launch_until_ready()
        except BaseException:
            server.stop()
            raise
        server.facts = framework.engine_facts(
            read_tail(log_path, lines=100_000, max_bytes=4_000_000)
        )
        return server

    def _launch_until_ready(self) -> None:
        assert self.log_path is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        auth.ensure_api_key(self.target)  # before the spec: the framework passes it by env
        for attempt in (1, 2):
            port = free_port(HOST)
            self.base_url = f"http://{HOST}:{port}"
            spec = self.framework.launch_spec(self.target, self.model_path, HOST, port)
            env = {
                **os.environ,
                **spec.env,
                labels.OWNER_VAR: labels.owner_label(),
                labels.SERVER_VAR: self.server_id,
            }
            with self.log_path.open("ab") as log:
                argv = shlex.join(auth.redact_argv(spec.argv))
                log.write(f"# llmserve: attempt {attempt}: {argv}\n".encode())
                log.flush()
                started = time.monotonic()
                self._proc = subprocess.Popen(
                    spec.argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            probes = standard_probes(
                self.framework.health_path, self.framework.models_path, self.served_name
            )
            try:
                self.ready = wait_ready(
                    self.base_url,
                    probes,
                    self.exited,
                    self.target.startup_timeout_s,
                    started_at=started,
                    headers=auth.auth_headers(self.target),
                )
                return
            except NotReady as exc:
                tail = self.log_tail()
                self._stop_process()
                if attempt == 1 and any(s in tail.lower() for s in _PORT_TAKEN):
                    continue  # another process took the port between our probe and its bind
                raise ServerStartError(
                    f"{self.target.name}: {exc}", tail, str(self.log_path)
                ) from None

    def exited(self) -> str | None:
        if self._proc is None:
            return "never started"
        rc = self._proc.poll()
        if rc is None:
            return None
        if rc < 0:
            return f"was killed by {signal.Signals(-rc).name}"
        return f"exited with code {rc}"

    def log_tail(self, lines: int = 40) -> str:
        # Failure messages quote this tail: a key the server echoed must not reach them.
        return auth.redact(read_tail(self.log_path, lines), self.target.api_key())

    def pids(self) -> list[int]:
        if self._proc is None or self._proc.poll() is not None:
            return []
        try:
            root = psutil.Process(self._proc.pid)
            return [root.pid, *(c.pid for c in root.children(recursive=True))]
        except psutil.Error:
            return []

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
