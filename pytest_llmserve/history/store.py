"""Where run records live: a folder of JSON files, one SQLite file, or PostgreSQL, by URI.

``--llmserve-history`` takes ``none``, a folder path (``folder:`` prefix optional),
``sqlite:///relative.db`` / ``sqlite:////absolute.db``, or
``postgresql://USER@HOST[:PORT]/DBNAME?password_env=VARNAME`` (``postgres://`` too;
see ``history/postgres.py``: the password only ever comes from the environment).
Every store:

- writes atomically (folder: a unique temp file, then ``os.replace``; SQLite: one
  transaction, WAL journal, a busy timeout; PostgreSQL: one transaction on a
  connection of its own), so several sessions, xdist workers or hosts may write
  at once and a reader never sees half a record;
- names every record by its run id (time + random) and target, so writers never
  collide;
- skips a file or row it cannot read (corrupt, truncated, foreign, from a newer
  schema) with a warning naming it, and never deletes or rewrites it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Protocol

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.history.postgres import PostgresStore
from pytest_llmserve.history.record import RecordError, RunRecord, from_json

URI_FORMS = (
    "none, a folder path (or folder:PATH), sqlite:///relative.db, sqlite:////absolute.db, "
    "postgresql://USER@HOST[:PORT]/DBNAME?password_env=VARNAME"
)


class HistoryStore(Protocol):
    location: str
    warnings: list[str]  # what was skipped while reading, each naming the file or row

    def write(self, record: RunRecord) -> str:
        """Keep a record; returns where it went."""

    def records(self, target: str | None = None) -> list[RunRecord]:
        """Every readable record (of one target), oldest first."""

    def records_in_group(self, group: str) -> list[RunRecord]:
        """Every readable record of run group ``group`` (``RunRecord.run_group``), oldest first."""

    def accept(self, run_id: str, name: str) -> int:
        """Name a run as a baseline; returns how many target records it has."""

    def baseline(self, name: str) -> str | None:
        """The run id accepted under ``name``, if any."""

    def baselines(self) -> dict[str, str]:
        """Every baseline name and its run id."""


def open_store(uri: str, base: Path) -> HistoryStore | None:
    """The store a ``--llmserve-history`` value names; relative paths are under ``base``."""
    value = uri.strip()
    if value.lower() == "none":
        return None
    if value.startswith("sqlite:"):
        if not value.startswith("sqlite:///") or len(value) == len("sqlite:///"):
            raise ProfileError(f"--llmserve-history: {uri!r} is not valid (valid: {URI_FORMS})")
        return SqliteStore(_anchor(Path(value[len("sqlite:///") :]), base))
    if value.lower().startswith(("postgresql://", "postgres://")):
        return PostgresStore(value)
    if value.startswith("folder:"):
        value = value[len("folder:") :]
    if "://" in value or not value:
        raise ProfileError(f"--llmserve-history: {uri!r} is not valid (valid: {URI_FORMS})")
    return FolderStore(_anchor(Path(value), base))


def resolve_run(store: HistoryStore, prefix: str) -> str:
    """A full run id from a unique prefix (or a baseline name); ``KeyError`` says why not."""
    named = store.baseline(prefix)
    if named is not None:
        return named
    ids = sorted({r.run_id for r in store.records()})
    hits = [i for i in ids if i.startswith(prefix)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise KeyError(f"no run {prefix!r} in {store.location} ({len(ids)} runs there)")
    raise KeyError(f"run {prefix!r} is ambiguous: {', '.join(hits[:5])}")


def _anchor(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class FolderStore:
    """``runs/<target>/<run id>.json`` and ``baselines/<name>.json`` under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self.warnings: list[str] = []

    def write(self, record: RunRecord) -> str:
        path = self.root / "runs" / record.target / f"{record.run_id}.json"
        _atomic_write(path, record.to_json())
        return str(path)

    def records(self, target: str | None = None) -> list[RunRecord]:
        runs = self.root / "runs"
        folders = [runs / target] if target else sorted(p for p in runs.glob("*") if p.is_dir())
        out = []
        for folder in folders:
            for path in sorted(folder.glob("*.json")):
                try:
                    rec = from_json(path.read_text(encoding="utf-8"))
                except (RecordError, OSError, UnicodeDecodeError) as exc:
                    self._warn(f"skipped history file {path}: {exc}")
                    continue
                if target is None or rec.target == target:
                    out.append(rec)
        return sorted(out, key=lambda r: (r.created, r.run_id))

    def records_in_group(self, group: str) -> list[RunRecord]:
        return [r for r in self.records() if r.run_group == group]

    def accept(self, run_id: str, name: str) -> int:
        count = sum(1 for r in self.records() if r.run_id == run_id)
        if count:
            body = {"run_id": run_id, "accepted": time.time()}
            _atomic_write(self.root / "baselines" / f"{_safe(name)}.json", json.dumps(body))
        return count

    def baseline(self, name: str) -> str | None:
        path = self.root / "baselines" / f"{_safe(name)}.json"
        if not path.is_file():
            return None
        try:
            return str(json.loads(path.read_text(encoding="utf-8"))["run_id"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._warn(f"skipped baseline file {path}: {exc.__class__.__name__}: {exc}")
            return None

    def baselines(self) -> dict[str, str]:
        names = sorted(p.stem for p in (self.root / "baselines").glob("*.json"))
        return {n: run for n in names if (run := self.baseline(n)) is not None}

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


class SqliteStore:
    """Two tables, ``runs`` (one JSON body per target record) and ``baselines``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = f"sqlite:///{path}"
        self.warnings: list[str] = []

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=60.0)
        db.execute("PRAGMA busy_timeout = 60000")
        _switch_to_wal(db)
        db.execute(
            "CREATE TABLE IF NOT EXISTS runs (record_id TEXT PRIMARY KEY, run_id TEXT, "
            "target TEXT, created REAL, body TEXT)"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS baselines (name TEXT PRIMARY KEY, run_id TEXT, "
            "accepted REAL)"
        )
        return db

    def write(self, record: RunRecord) -> str:
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
                (record.record_id, record.run_id, record.target, record.created, record.to_json()),
            )
        return f"{self.location}#{record.record_id}"

    def records(self, target: str | None = None) -> list[RunRecord]:
        try:
            with closing(self._connect()) as db:
                query = "SELECT record_id, body FROM runs"
                rows = (
                    db.execute(query + " WHERE target = ?", (target,))
                    if target
                    else db.execute(query)
                ).fetchall()
        except sqlite3.DatabaseError as exc:
            self._warn(f"skipped history database {self.path}: {exc}")
            return []
        out = []
        for record_id, body in rows:
            try:
                out.append(from_json(body if isinstance(body, str) else ""))
            except RecordError as exc:
                self._warn(f"skipped row {record_id!r} of {self.path}: {exc}")
        return sorted(out, key=lambda r: (r.created, r.run_id))

    def records_in_group(self, group: str) -> list[RunRecord]:
        return [r for r in self.records() if r.run_group == group]

    def accept(self, run_id: str, name: str) -> int:
        count = sum(1 for r in self.records() if r.run_id == run_id)
        if count:
            with closing(self._connect()) as db, db:
                db.execute(
                    "INSERT OR REPLACE INTO baselines VALUES (?, ?, ?)", (name, run_id, time.time())
                )
        return count

    def baseline(self, name: str) -> str | None:
        return self.baselines().get(name)

    def baselines(self) -> dict[str, str]:
        try:
            with closing(self._connect()) as db:
                rows = db.execute("SELECT name, run_id FROM baselines ORDER BY name").fetchall()
        except sqlite3.DatabaseError as exc:
            self._warn(f"skipped history database {self.path}: {exc}")
            return {}
        return {str(n): str(r) for n, r in rows}

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


def _switch_to_wal(db: sqlite3.Connection, wait_s: float = 60.0) -> None:
    """WAL journal, once per file. Two processes opening a new file at once may both ask,
    and SQLite answers "database is locked" at once, without its busy timeout: wait."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _safe(name: str) -> str:
    """A baseline name as a file name (letters, digits, ``.``, ``_``, ``-``)."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    if not cleaned or cleaned.startswith("."):
        raise ValueError(f"baseline name {name!r}: use letters, digits, '.', '_' or '-'")
    return cleaned
