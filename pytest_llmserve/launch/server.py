"""What a running server looks like to the rest of the plugin, whoever launched it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pytest_llmserve.frameworks.base import EngineFacts
from pytest_llmserve.launch.readiness import ReadyReport
from pytest_llmserve.profile.model import Target


class Server(Protocol):
    """A ready server for one target; ``stop`` is safe to call more than once."""

    target: Target
    base_url: str
    served_name: str
    model_path: str
    log_path: Path | None
    ready: ReadyReport
    facts: EngineFacts

    def exited(self) -> str | None:
        """None while the server should be answering, else why it is gone."""
        ...

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's own output ('' when we do not hold its log)."""
        ...

    def pids(self) -> list[int]:
        """Every process of the server (for memory accounting); empty when remote."""
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
