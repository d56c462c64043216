"""What a running server looks like to the rest of the plugin, whoever launched it.

Checks ask a server what it can do (was it launched here, is its model on this
machine, which processes are its own, which version does it report), never which
launcher started it: a new launcher then needs no change anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pytest_llmserve.frameworks.base import EngineFacts, Framework
from pytest_llmserve.launch.readiness import ReadyReport
from pytest_llmserve.measure.memory import ServerMemory
from pytest_llmserve.profile.model import Target


class Server(Protocol):
    """A server for one target; ``stop`` is safe to call more than once.

    A launcher returns it started but not yet ready; ``launch.start`` waits for it
    and fills in ``ready``, ``facts`` and ``version``.
    """

    target: Target
    framework: Framework
    base_url: str
    served_name: str
    model_path: str  # as the server was given it (may be a path only the server sees)
    log_path: Path | None
    started_at: float  # time.monotonic() at launch; readiness is timed from it
    ready: ReadyReport
    facts: EngineFacts
    version: str | None  # as the running server reports it, else None

    @property
    def launched_here(self) -> bool:
        """Started (and stopped) by this session: its startup time is ours to measure."""
        ...

    @property
    def local_model(self) -> Path | None:
        """The served model as a folder or file on this machine; None when it is not here."""
        ...

    def exited(self) -> str | None:
        """None while the server should be answering, else why it is gone."""
        ...

    def startup_log(self) -> str:
        """Its own output from launch on ('' when we do not hold its log)."""
        ...

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's own output ('' when we do not hold its log)."""
        ...

    def pids(self) -> list[int]:
        """Every process of the server on this machine (memory accounting); empty when remote."""
        ...

    def memory(self) -> ServerMemory | None:
        """Its host memory now; None when none of it can be read here."""
        ...

    def stop(self) -> None: ...


def read_tail(path: Path | None, lines: int = 40, max_bytes: int = 256_000) -> str:
    """The last ``lines`` lines of a log file, reading at most ``max_bytes`` from its end."""
    if path is None or not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - max_bytes))
        text = f.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])
