"""One contract for every history store: folder, SQLite and PostgreSQL pass the same tests.

The ``postgres`` kind runs on a throwaway server (tests/pg_server.py), a fresh
database per test, and is marked live: the fast tier needs no PostgreSQL.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.history.postgres import STORE_SCHEMA, PostgresStore
from pytest_llmserve.history.record import SCHEMA_VERSION
from pytest_llmserve.history.store import FolderStore, HistoryStore, SqliteStore, open_store
from pytest_llmserve.launch.ports import free_port
from tests import pg_server as pg
from tests.pg_server import PgServer, dbname_of, running_postgres
from tests.unit.history_helpers import record

SPAWN = multiprocessing.get_context("spawn")  # no forked copies of pytest's state


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PgServer]:
    # The system temp folder, not pytest's: as root the server runs as `postgres`,
    # which cannot enter pytest's (root-only) temp root.
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_uri(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database of the module's server, so tests do not see each other."""
    uri = pg_server.new_database()
    yield uri
    pg_server.drop_database(uri)


@pytest.fixture(params=["folder", "sqlite", pytest.param("postgres", marks=pytest.mark.live)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The one parametrized fixture: a ``--llmserve-history`` value of each kind."""
    if request.param == "folder":
        return str(tmp_path / "hist")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'h.db'}"
    return str(request.getfixturevalue("pg_uri"))


@pytest.fixture
def store(store_uri: str, tmp_path: Path) -> HistoryStore:
    opened = open_store(store_uri, tmp_path)
    assert opened is not None
    return opened


def _insert_raw(store: HistoryStore, record_id: str, body: str) -> str:
    """A record the store did not write (target t1); returns how a warning names it."""
    if isinstance(store, FolderStore):
        path = store.root / "runs" / "t1" / f"{record_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        return str(path)
    if isinstance(store, SqliteStore):
        store.records()  # creates the tables
        with sqlite3.connect(store.path) as db:
            db.execute("INSERT INTO runs VALUES (?, 'raw', 't1', 0.5, ?)", (record_id, body))
        return record_id
    assert isinstance(store, PostgresStore)
    with store._connection() as db:  # the store's own connection; raw SQL
        db.execute(
            "INSERT INTO llmserve_runs (record_id, run_id, target, created, body) "
            "VALUES (%s, 'raw', 't1', 0.5, %s)",
            (record_id, body),
        )
    return record_id


def _still_there(store: HistoryStore, record_id: str) -> bool:
    if isinstance(store, FolderStore):
        return (store.root / "runs" / "t1" / f"{record_id}.json").exists()
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            query = "SELECT count(*) FROM runs WHERE record_id = ?"
            return bool(db.execute(query, (record_id,)).fetchone()[0])
    assert isinstance(store, PostgresStore)
    with store._connection() as db:
        query = "SELECT count(*) FROM llmserve_runs WHERE record_id = %s"
        row = db.execute(query, (record_id,)).fetchone()
        return bool(row and row[0])


def test_write_then_read_back_equal_records_oldest_first(store: HistoryStore) -> None:
    written = [
        record("20260103T000000Z-cccc", 70.0, created=3.0),
        record("20260101T000000Z-aaaa", 100.0, created=1.0),
        record("20260102T000000Z-bbbb", 90.0, created=2.0),
    ]
    for rec in written:
        assert store.write(rec)
    assert store.records() == sorted(written, key=lambda r: r.created)
    store.write(replace(written[0], gate={"regressed": ["output_tok_s"]}))  # rewritten in place
    assert [r.regressed for r in store.records()] == [False, False, True]
    assert store.warnings == []


def test_records_filters_by_target(store: HistoryStore) -> None:
    store.write(record("20260101T000000Z-aaaa", name="t1", created=1.0))
    store.write(record("20260101T000000Z-aaaa", name="t2", created=1.0))
    store.write(record("20260102T000000Z-bbbb", name="t2", created=2.0))
    assert [r.run_id for r in store.records("t1")] == ["20260101T000000Z-aaaa"]
    assert [(r.target, r.run_id) for r in store.records("t2")] == [
        ("t2", "20260101T000000Z-aaaa"),
        ("t2", "20260102T000000Z-bbbb"),
    ]
    assert store.records("nobody") == []
    assert len(store.records()) == 3


def _write_many(uri: str, base: str, worker: int, go: Any) -> None:
    store = open_store(uri, Path(base))
    assert store is not None
    go.wait(60)
    for i in range(20):
        store.write(record(f"20260101T000000Z-w{worker}i{i:02d}", name=f"t{i % 2}", created=i))


def test_two_processes_writing_at_once_lose_nothing(store_uri: str, tmp_path: Path) -> None:
    go = SPAWN.Barrier(2)  # both write from the same moment on
    procs = [
        SPAWN.Process(target=_write_many, args=(store_uri, str(tmp_path), w, go)) for w in (1, 2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = open_store(store_uri, tmp_path)
    assert store is not None
    assert len({r.record_id for r in store.records()}) == 40
    assert store.warnings == []


def test_a_corrupt_record_is_skipped_named_and_kept(store: HistoryStore) -> None:
    store.write(record("20260101T000000Z-good"))
    name = _insert_raw(store, "20260102T000000Z-bad.t1", '{"schema": "pytest-llmserve/run-r')
    assert [r.run_id for r in store.records()] == ["20260101T000000Z-good"]
    assert name in "\n".join(store.warnings)
    assert _still_there(store, "20260102T000000Z-bad.t1")
    assert [r.run_id for r in store.records("t1")] == ["20260101T000000Z-good"]


def test_a_record_from_a_newer_schema_is_skipped_with_a_warning(store: HistoryStore) -> None:
    store.write(record("20260101T000000Z-good"))
    data = json.loads(record("20260102T000000Z-next").to_json())
    data["version"] = SCHEMA_VERSION + 1
    name = _insert_raw(store, "20260102T000000Z-next.t1", json.dumps(data))
    assert [r.run_id for r in store.records()] == ["20260101T000000Z-good"]
    warning = "\n".join(store.warnings)
    assert name in warning
    assert "newer than this pytest-llmserve reads" in warning
    assert _still_there(store, "20260102T000000Z-next.t1")


def test_accept_baseline_baselines(store: HistoryStore) -> None:
    store.write(record("20260101T000000Z-aaaa", name="t1", created=1.0))
    store.write(record("20260101T000000Z-aaaa", name="t2", created=1.0))
    store.write(record("20260102T000000Z-bbbb", created=2.0))
    assert store.baselines() == {}
    assert store.accept("20260101T000000Z-aaaa", "golden") == 2
    assert store.accept("20260102T000000Z-bbbb", "nightly") == 1
    assert store.accept("nope", "other") == 0
    assert store.baseline("golden") == "20260101T000000Z-aaaa"
    assert store.baseline("other") is None
    assert store.accept("20260102T000000Z-bbbb", "golden") == 1  # moved
    assert store.baselines() == {
        "golden": "20260102T000000Z-bbbb",
        "nightly": "20260102T000000Z-bbbb",
    }


def test_records_in_group(store: HistoryStore) -> None:
    store.write(record("20260102T000000Z-s2", created=2.0, group="g1", shard="2/2"))
    store.write(record("20260101T000000Z-s1", created=1.0, group="g1", shard="1/2"))
    store.write(record("20260101T000000Z-x", created=1.5, group="g2", shard="1/1"))
    store.write(record("20260101T000000Z-own", created=0.5))  # its own group
    group = store.records_in_group("g1")
    assert [r.run_id for r in group] == ["20260101T000000Z-s1", "20260102T000000Z-s2"]
    assert [r.profile["shard"] for r in group] == ["1/2", "2/2"]
    assert [r.run_id for r in store.records_in_group("g2")] == ["20260101T000000Z-x"]
    assert [r.run_id for r in store.records_in_group("20260101T000000Z-own")] == [
        "20260101T000000Z-own"
    ]
    assert store.records_in_group("g3") == []


def _write_until_killed(uri: str, base: str, committed: Any) -> None:
    store = open_store(uri, Path(base))
    assert store is not None
    for i in range(5):
        store.write(record(f"20260101T000000Z-c{i}", created=float(i)))
    committed.set()
    for i in range(100_000):  # killed somewhere in here, most likely mid-write
        store.write(record(f"20260102T000000Z-k{i:05d}", created=10.0 + i))


def test_a_writer_killed_mid_write_loses_no_committed_record(
    store_uri: str, tmp_path: Path
) -> None:
    committed = SPAWN.Event()
    child = SPAWN.Process(target=_write_until_killed, args=(store_uri, str(tmp_path), committed))
    child.start()
    assert committed.wait(120), f"the writer did not commit (exit code {child.exitcode})"
    os.kill(child.pid or 0, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    store = open_store(store_uri, tmp_path)
    assert store is not None
    runs = [r.run_id for r in store.records()]
    assert runs[:5] == [f"20260101T000000Z-c{i}" for i in range(5)]
    assert store.warnings == []  # no half-written record anywhere
    store.write(record("20260103T000000Z-after", created=1e9))  # still writable
    assert store.records()[-1].run_id == "20260103T000000Z-after"


# PostgreSQL only. These need no server: the URI and the driver are checked first.


def test_postgres_refuses_a_password_in_the_uri(tmp_path: Path) -> None:
    for uri in (
        "postgresql://ci:s3cret-pw@db.example:5432/hist",
        "postgres://ci@db.example/hist?password=s3cret-pw",
    ):
        with pytest.raises(ProfileError, match="password_env=NAME") as info:
            open_store(uri, tmp_path)
        assert "s3cret-pw" not in str(info.value)


def test_postgres_location_never_shows_the_password(tmp_path: Path) -> None:
    store = open_store("postgres://ci@db.example:6543/hist?password_env=HIST_PW", tmp_path)
    assert isinstance(store, PostgresStore)
    assert store.location == "postgresql://ci@db.example:6543/hist"
    bare = PostgresStore("postgresql://db.example/hist")
    assert bare.location == "postgresql://db.example/hist"
    with pytest.raises(ProfileError, match="names no database"):
        PostgresStore("postgresql://ci@db.example")


def test_postgres_unreachable_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIST_PW", "s3cret-pw")
    port = free_port()  # nobody listens there
    store = PostgresStore(f"postgresql://ci@127.0.0.1:{port}/hist?password_env=HIST_PW")
    with pytest.raises(ProfileError) as info:
        store.records()
    text = str(info.value)
    assert f"cannot connect to the history database postgresql://ci@127.0.0.1:{port}/hist" in text
    assert "refused" in text.lower()  # the driver's own message
    assert "s3cret-pw" not in text


def test_postgres_unset_password_variable_and_missing_driver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HIST_PW_UNSET", raising=False)
    store = PostgresStore("postgresql://ci@127.0.0.1:1/hist?password_env=HIST_PW_UNSET")
    with pytest.raises(ProfileError, match="password_env=HIST_PW_UNSET names an environment"):
        store.write(record("20260101T000000Z-aaaa"))
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` fails
    with pytest.raises(ProfileError, match=r"pip install 'pytest-llmserve\[postgres\]'"):
        store.records()


def test_no_postgresql_skips_here_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "pg_bin", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not installed"):
        running_postgres().__enter__()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI installs it"):
        running_postgres().__enter__()


# PostgreSQL only, on the server.


@pytest.mark.live
def test_postgres_secret_stays_out_of_what_the_store_keeps(
    pg_server: PgServer, pg_uri: str
) -> None:
    store = PostgresStore(pg_uri)
    where = store.write(record("20260101T000000Z-aaaa"))
    assert pg_server.password not in where + store.location + repr(vars(store))
    assert "password_env" not in store.location
    assert store.location == pg_uri.split("?")[0]


@pytest.mark.live
def test_postgres_newer_database_schema_is_read_but_never_written(
    pg_server: PgServer, pg_uri: str
) -> None:
    PostgresStore(pg_uri).write(record("20260101T000000Z-aaaa"))
    dbname = dbname_of(pg_uri)
    with pg_server.connect(dbname) as db:
        db.execute("INSERT INTO llmserve_schema VALUES (%s, 0)", (STORE_SCHEMA + 1,))
    store = PostgresStore(pg_uri)
    assert [r.run_id for r in store.records()] == ["20260101T000000Z-aaaa"]
    assert f"schema version {STORE_SCHEMA + 1}, newer" in store.warnings[0]
    both = rf"schema version {STORE_SCHEMA + 1}; this pytest-llmserve writes version {STORE_SCHEMA}"
    with pytest.raises(ProfileError, match=both):
        store.write(record("20260102T000000Z-bbbb"))
    with pytest.raises(ProfileError, match=both):
        store.accept("20260101T000000Z-aaaa", "golden")
    assert [r.run_id for r in store.records()] == ["20260101T000000Z-aaaa"]
    with pg_server.connect(dbname) as db:
        versions = db.execute("SELECT version FROM llmserve_schema ORDER BY version").fetchall()
    assert versions == [(1,), (STORE_SCHEMA + 1,)]  # nothing migrated, nothing removed


def _open_and_write(uri: str, worker: int, go: Any) -> None:
    go.wait(60)
    PostgresStore(uri).write(record(f"20260101T000000Z-w{worker}"))


@pytest.mark.live
def test_postgres_schema_made_once_by_concurrent_first_runners(
    pg_server: PgServer, pg_uri: str
) -> None:
    go = SPAWN.Barrier(6)  # all six open the empty database at once
    procs = [SPAWN.Process(target=_open_and_write, args=(pg_uri, w, go)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = PostgresStore(pg_uri)
    assert len(store.records()) == 6
    dbname = dbname_of(pg_uri)
    with pg_server.connect(dbname) as db:
        assert db.execute("SELECT version FROM llmserve_schema").fetchall() == [(STORE_SCHEMA,)]


def _killed_inside_a_transaction(uri: str, uncommitted: Any) -> None:
    store = PostgresStore(uri)
    for i in range(3):
        store.write(record(f"20260101T000000Z-c{i}", created=float(i)))
    with store._connection() as db:  # the next write, stopped before its commit
        late = record("20260102T000000Z-late")
        db.execute(
            "INSERT INTO llmserve_runs (record_id, run_id, target, created, body) "
            "VALUES (%s, %s, 't1', 9.0, %s)",
            (late.record_id, late.run_id, late.to_json()),
        )
        uncommitted.set()
        signal.pause()


@pytest.mark.live
def test_postgres_writer_killed_inside_its_transaction_loses_only_that_row(pg_uri: str) -> None:
    uncommitted = SPAWN.Event()
    child = SPAWN.Process(target=_killed_inside_a_transaction, args=(pg_uri, uncommitted))
    child.start()
    assert uncommitted.wait(120), f"the writer did not get there (exit code {child.exitcode})"
    os.kill(child.pid or 0, signal.SIGKILL)
    child.join(30)
    store = PostgresStore(pg_uri)
    assert [r.run_id for r in store.records()] == [f"20260101T000000Z-c{i}" for i in range(3)]
    # Its row lock went with it: the same record can be written now.
    store.write(record("20260102T000000Z-late", created=9.0))
    assert store.records()[-1].run_id == "20260102T000000Z-late"
    assert store.warnings == []


@pytest.mark.live
def test_postgres_group_and_shard_columns_come_from_the_profile(
    pg_server: PgServer, pg_uri: str
) -> None:
    store = PostgresStore(pg_uri)
    store.write(record("20260101T000000Z-s1", group="nightly-7", shard="1/2"))
    store.write(replace(record("20260101T000000Z-old"), profile={"name": "test"}))  # older record
    dbname = dbname_of(pg_uri)
    with pg_server.connect(dbname) as db:
        rows = db.execute("SELECT run_id, run_group, shard FROM llmserve_runs ORDER BY run_id")
        assert rows.fetchall() == [
            ("20260101T000000Z-old", None, None),
            ("20260101T000000Z-s1", "nightly-7", "1/2"),
        ]
