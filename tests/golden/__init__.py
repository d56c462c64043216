"""Recorded artefacts of real servers, one folder per framework and version (README.md).

This module is how tests read them: ``recorded(framework)`` lists the version
folders of a framework, each a ``Golden`` whose files are read on demand;
``foreign_bodies()`` are documented error bodies of frameworks we do not run.
``sanitize`` is what the recorder (``tests/live/test_golden_vllm.py``) applies
before writing, and ``shape`` what a live answer is compared by (keys and value
types, never values).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent
FOREIGN = ROOT / "foreign"
REPO = ROOT.parents[1]
RECORD_ENV = "LLMSERVE_RECORD_GOLDEN"

METRICS = "metrics.txt"
STREAM = "stream.txt"
ERRORS = "errors"
EXPECTED = "expected.json"
FAILURE_SUFFIX = "-failure.log"  # startup*-failure.log: a start that failed
# A failed start quotes the log's last lines (launch.server.read_tail's default); the
# first error must be found above them when the log says so (expected.json).
TAIL_LINES = 40

HOW_TO_RECORD = (
    "record them from a real server: LLMSERVE_RECORD_GOLDEN=1 pytest "
    "tests/live/test_golden_<framework>.py (see tests/golden/README.md)"
)


def recording() -> bool:
    """Whether this run re-records the golden files instead of comparing against them."""
    return os.environ.get(RECORD_ENV, "") not in ("", "0")


@dataclass(frozen=True)
class ErrorBody:
    """One recorded (or documented) error answer: the request's case, status and body."""

    framework: str
    case: str
    status: int
    body: Any
    path: Path
    source: str | None = None  # where a foreign body's shape is documented

    @property
    def id(self) -> str:
        return f"{self.framework}-{self.case}"


def _read_error(path: Path, framework: str) -> ErrorBody:
    data = json.loads(path.read_text(encoding="utf-8"))
    return ErrorBody(
        framework=data.get("framework", framework),
        case=data.get("case", path.stem),
        status=int(data["status"]),
        body=data["body"],
        path=path,
        source=data.get("source"),
    )


@dataclass(frozen=True)
class Golden:
    """The recorded files of one framework version (``tests/golden/<framework>/<version>/``)."""

    framework: str
    version: str
    folder: Path

    @property
    def id(self) -> str:
        return f"{self.framework}-{self.version}"

    def metrics(self) -> str | None:
        path = self.folder / METRICS
        return path.read_text(encoding="utf-8") if path.exists() else None

    def stream(self) -> bytes | None:
        path = self.folder / STREAM
        return path.read_bytes() if path.exists() else None

    def startup_logs(self) -> dict[str, str]:
        """Logs of starts that came up (``startup*.log``, failures excluded), by file name."""
        return {
            p.name: p.read_text(encoding="utf-8")
            for p in sorted(self.folder.glob("startup*.log"))
            if not p.name.endswith(FAILURE_SUFFIX)
        }

    def failure_logs(self) -> dict[str, str]:
        """Logs of starts that failed (``startup*-failure.log``), by file name."""
        return {
            p.name: p.read_text(encoding="utf-8")
            for p in sorted(self.folder.glob(f"startup*{FAILURE_SUFFIX}"))
        }

    def errors(self) -> list[ErrorBody]:
        return [
            _read_error(p, self.framework) for p in sorted((self.folder / ERRORS).glob("*.json"))
        ]

    def expected(self) -> dict[str, Any]:
        """What the recorder knew independently of the parsers (see README.md)."""
        path = self.folder / EXPECTED
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        return data


def framework_folder(framework: str) -> Path:
    return ROOT / framework


def recorded(framework: str) -> list[Golden]:
    """Every recorded version of ``framework``, oldest name first ([] when none)."""
    folder = framework_folder(framework)
    if not folder.is_dir():
        return []
    return [Golden(framework, p.name, p) for p in sorted(folder.iterdir()) if p.is_dir()]


def all_recorded() -> list[Golden]:
    frameworks = [p.name for p in sorted(ROOT.iterdir()) if p.is_dir() and p != FOREIGN]
    return [g for name in frameworks if not name.startswith(("_", ".")) for g in recorded(name)]


def foreign_bodies() -> list[ErrorBody]:
    """Documented error bodies of frameworks this project does not run (``foreign/``)."""
    return [_read_error(p, p.stem.split("-")[0]) for p in sorted(FOREIGN.glob("*.json"))]


def placeholders(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Machine-specific strings → the placeholder written instead, most specific first."""
    found = dict(extra or {})
    found[str(REPO)] = "<REPO>"
    found[str(Path.home())] = "<HOME>"
    found[tempfile.gettempdir()] = "<TMP>"
    host = socket.gethostname()
    if len(host) >= 4 and host != "localhost":  # a short name would replace ordinary words
        found[host] = "<HOST>"
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                found[a.address] = "<IP>"
    return dict(sorted(found.items(), key=lambda kv: -len(kv[0])))


def sanitize(text: str, extra: dict[str, str] | None = None) -> str:
    """``text`` without this machine's paths and host name (``placeholders``)."""
    for value, placeholder in placeholders(extra).items():
        if value and value != "/":
            text = text.replace(value, placeholder)
    return text


def shape(value: Any) -> Any:
    """A JSON value's structure: object keys with their shapes, a list's distinct element
    shapes, and a scalar's type name (``None`` as "null"), so that two answers to the
    same request compare equal however their text, ids and timings differ."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        shapes: list[Any] = []
        for item in value:
            s = shape(item)
            if s not in shapes:
                shapes.append(s)
        return shapes
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__
