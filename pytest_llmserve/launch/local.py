"""What every server started on this machine shares, whichever launcher started it.

A process and a container alike are launched by this session, write their output
to a log file of ours and serve a model path of this machine; only how they start,
stop and are watched differs (``launch.process``, ``launch.docker``).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from pytest_llmserve.frameworks.base import EngineFacts, Framework
from pytest_llmserve.launch import auth
from pytest_llmserve.launch.readiness import ReadyReport
from pytest_llmserve.launch.server import read_tail
from pytest_llmserve.profile.model import Target

HOST = "127.0.0.1"
STARTUP_LOG_MAX_BYTES = 4_000_000


class LocalServer:
    """The fields and log reading of a server started here; subclasses launch and stop it."""

    launched_here = True

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
        self.started_at = 0.0
        self.ready = ReadyReport()
        self.facts = EngineFacts()
        self.version: str | None = None
        self._log_start = 0  # where this launch's output begins in the (appended) log file

    @property
    def local_model(self) -> Path | None:
        path = Path(self.model_path)
        return path if path.exists() else None

    def startup_log(self) -> str:
        """This launch's output (an earlier attempt's lines in the same file are not read)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(self._log_start)
            text = f.read(STARTUP_LOG_MAX_BYTES).decode("utf-8", errors="replace")
        return auth.redact(text, self.target.api_key())

    def log_tail(self, lines: int = 40) -> str:
        # Failure messages quote this tail: a key the server echoed must not reach them.
        return auth.redact(read_tail(self.log_path, lines), self.target.api_key())
