"""A history store in PostgreSQL, for runners on several machines sharing one history.

``postgresql://USER@HOST[:PORT]/DBNAME?password_env=VARNAME`` (or ``postgres://``).
The password is read from the variable the URI names, at each connection, and
never kept on the store: a URI (or a store) may then be logged, pickled to a
worker, or written into a record without carrying a secret. Without
``password_env`` libpq's own ``PGPASSWORD`` / ``.pgpass`` apply. A password
inside the URI is refused, and ``location`` shows ``postgresql://user@host:port/db``.

The store keeps the folder and SQLite stores' guarantees:

- each call opens its own connection and writes in one transaction, so any
  number of processes on any number of hosts write at once, and a writer killed
  mid-write loses only its uncommitted record;
- a row it cannot read (corrupt, from a newer record schema) is skipped with a
  warning naming its record id, and never deleted or rewritten.

It creates and migrates its tables itself, under an advisory lock so runners
starting together do not race. A database whose tables are newer than this code
knows is read as far as possible and never written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.history.record import RecordError, RunRecord, from_json

if TYPE_CHECKING:
    import psycopg

STORE_SCHEMA = 1  # the tables' version: a change a reader must know of raises it
_LOCK_KEY = 0x6C6C_6D73_7276  # pg_advisory_xact_lock key for creating/migrating tables

# _MIGRATIONS[v] brings the tables from version v - 1 to v.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE llmserve_runs (record_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, "
        "target TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, run_group TEXT, "
        "shard TEXT, body TEXT NOT NULL)",
        "CREATE INDEX llmserve_runs_target ON llmserve_runs (target)",
        "CREATE INDEX llmserve_runs_run_group ON llmserve_runs (run_group)",
        "CREATE TABLE llmserve_baselines (name TEXT PRIMARY KEY, run_id TEXT NOT NULL, "
        "accepted DOUBLE PRECISION NOT NULL)",
    ),
}
_SELECT = "SELECT record_id, body FROM llmserve_runs"
_ORDER = " ORDER BY created, run_id"


def parse_uri(uri: str) -> tuple[dict[str, str], str | None, str]:
    """libpq parameters (no password), the password's variable name, and the location."""
    parts = urlsplit(uri.strip())
    if parts.scheme not in ("postgresql", "postgres"):
        raise ProfileError("a PostgreSQL history URI starts with postgresql:// or postgres://")
    try:
        port = parts.port
    except ValueError:
        raise ProfileError(f"the history URI's port is not a number: {parts.hostname}") from None
    location = _location(parts.username, parts.hostname, port, parts.path)
    if parts.password is not None:
        raise ProfileError(
            f"the history URI {location} carries a password: put it in an environment "
            "variable and name that in the URI (?password_env=NAME)"
        )
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise ProfileError(f"the history URI {location} names no database (.../DBNAME)")
    params = {"dbname": dbname}
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.hostname:
        params["host"] = parts.hostname
    if port:
        params["port"] = str(port)
    password_env = None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "password_env":
            password_env = value
        elif key == "password":
            raise ProfileError(
                f"the history URI {location} carries a password: use ?password_env=NAME"
            )
        else:
            params[key] = value  # sslmode and the like, passed on to libpq
    return params, password_env, location


def _location(user: str | None, host: str | None, port: int | None, path: str) -> str:
    where = f"[{host}]" if host and ":" in host else host or ""
    return (
        f"postgresql://{unquote(user) + '@' if user else ''}{where}"
        f"{f':{port}' if port else ''}{path}"
    )


class PostgresStore:
    """Tables ``llmserve_runs`` (one JSON body per target record) and ``llmserve_baselines``."""

    def __init__(self, uri: str) -> None:
        self._params, self._password_env, self.location = parse_uri(uri)
        self.warnings: list[str] = []
        self._db_schema: int | None = None  # the tables' version, once seen

    def write(self, record: RunRecord) -> str:
        with self._connection() as db:
            self._refuse_newer()
            db.execute(
                "INSERT INTO llmserve_runs (record_id, run_id, target, created, run_group, shard, "
                "body) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (record_id) DO UPDATE SET run_id = EXCLUDED.run_id, "
                "target = EXCLUDED.target, created = EXCLUDED.created, "
                "run_group = EXCLUDED.run_group, shard = EXCLUDED.shard, body = EXCLUDED.body",
                (
                    record.record_id,
                    record.run_id,
                    record.target,
                    record.created,
                    _text(record.profile.get("run_group")),
                    _text(record.profile.get("shard")),
                    record.to_json(),
                ),
            )
        return f"{self.location}#{record.record_id}"

    def records(self, target: str | None = None) -> list[RunRecord]:
        if target is None:
            return self._read(_SELECT + _ORDER, ())
        return self._read(_SELECT + " WHERE target = %s" + _ORDER, (target,))

    def records_in_group(self, group: str) -> list[RunRecord]:
        # A record written before run groups is its own run's group (RunRecord.run_group).
        where = " WHERE run_group = %s OR (run_group IS NULL AND run_id = %s)"
        return self._read(_SELECT + where + _ORDER, (group, group))

    def accept(self, run_id: str, name: str) -> int:
        count = len(self._read(_SELECT + " WHERE run_id = %s", (run_id,)))
        if count:
            with self._connection() as db:
                self._refuse_newer()
                db.execute(
                    "INSERT INTO llmserve_baselines (name, run_id, accepted) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET run_id = EXCLUDED.run_id, "
                    "accepted = EXCLUDED.accepted",
                    (name, run_id, time.time()),
                )
        return count

    def baseline(self, name: str) -> str | None:
        return self.baselines().get(name)

    def baselines(self) -> dict[str, str]:
        rows = self._rows("SELECT name, run_id FROM llmserve_baselines ORDER BY name", ())
        return {str(n): str(r) for n, r in rows}

    def _read(self, query: str, args: tuple[str, ...]) -> list[RunRecord]:
        out = []
        for record_id, body in self._rows(query, args):
            try:
                out.append(from_json(body if isinstance(body, str) else ""))
            except RecordError as exc:
                self._warn(f"skipped row {record_id!r} of {self.location}: {exc}")
        return out

    def _rows(self, query: str, args: tuple[str, ...]) -> list[tuple[Any, ...]]:
        """A query's rows; on tables newer than this code, a warning and none if it fails."""
        try:
            with self._connection() as db:
                return db.execute(query, args).fetchall()
        except ProfileError as exc:
            if (self._db_schema or 0) <= STORE_SCHEMA:
                raise
            self._warn(f"could not read {self.location}: {exc}")
            return []

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """One connection and one transaction: committed when the block ends, rolled back
        (only its own rows lost) when it raises; the driver's errors become ProfileError
        naming the location, so the CLI and the session show them without a traceback."""
        try:
            import psycopg
            from psycopg.conninfo import make_conninfo
        except ImportError:
            raise ProfileError(
                f"{self.location}: the PostgreSQL history store needs psycopg: "
                "pip install 'pytest-llmserve[postgres]'"
            ) from None
        try:
            conninfo = make_conninfo("", **self._params, **self._password())
            conn = psycopg.connect(conninfo, connect_timeout=10)
        except psycopg.Error as exc:
            raise ProfileError(
                f"cannot connect to the history database {self.location}: {exc}"
            ) from None
        try:
            with conn:
                if self._db_schema is None:
                    self._db_schema = self._prepare(conn)
                yield conn
        except psycopg.Error as exc:
            raise ProfileError(f"history database {self.location}: {exc}") from exc

    def _password(self) -> dict[str, str]:
        if self._password_env is None:
            return {}
        value = os.environ.get(self._password_env)
        if value is None:
            raise ProfileError(
                f"{self.location}: password_env={self._password_env} names an environment "
                "variable that is not set"
            )
        return {"password": value}

    def _prepare(self, db: psycopg.Connection[tuple[Any, ...]]) -> int:
        """Create or migrate the tables, one process at a time; returns their version.

        The advisory lock lasts until this transaction ends: ``CREATE TABLE IF NOT
        EXISTS`` alone still fails when two sessions create one table at once.
        """
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            db.execute(
                "CREATE TABLE IF NOT EXISTS llmserve_schema "
                "(version INTEGER PRIMARY KEY, applied DOUBLE PRECISION NOT NULL)"
            )
            row = db.execute("SELECT max(version) FROM llmserve_schema").fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > STORE_SCHEMA:
                self._warn(
                    f"history database {self.location} has schema version {version}, newer "
                    f"than this pytest-llmserve knows ({STORE_SCHEMA}): read as far as "
                    "possible, never written"
                )
                return version
            for step in range(version + 1, STORE_SCHEMA + 1):
                for statement in _MIGRATIONS[step]:
                    db.execute(statement)
                db.execute("INSERT INTO llmserve_schema VALUES (%s, %s)", (step, time.time()))
        return max(version, STORE_SCHEMA)

    def _refuse_newer(self) -> None:
        if self._db_schema is not None and self._db_schema > STORE_SCHEMA:
            raise ProfileError(
                f"history database {self.location} has schema version {self._db_schema}; "
                f"this pytest-llmserve writes version {STORE_SCHEMA}: upgrade it to write there"
            )

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
