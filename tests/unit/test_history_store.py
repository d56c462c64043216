"""History stores: chosen by URI, atomic, safe with concurrent writers, and forgiving readers."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.history.record import SCHEMA_VERSION
from pytest_llmserve.history.store import (
    FolderStore,
    HistoryStore,
    SqliteStore,
    open_store,
    resolve_run,
)
from tests.unit.history_helpers import record


def _stores(tmp_path: Path) -> list[HistoryStore]:
    return [FolderStore(tmp_path / "folder"), SqliteStore(tmp_path / "h.db")]


def test_uri_picks_the_store(tmp_path: Path) -> None:
    assert open_store("none", tmp_path) is None
    folder = open_store("hist", tmp_path)
    assert isinstance(folder, FolderStore)
    assert folder.root == tmp_path / "hist"
    assert isinstance(open_store("folder:/abs/h", tmp_path), FolderStore)
    db = open_store("sqlite:///rel.db", tmp_path)
    assert isinstance(db, SqliteStore)
    assert db.path == tmp_path / "rel.db"
    absolute = open_store("sqlite:////abs/x.db", tmp_path)
    assert isinstance(absolute, SqliteStore)
    assert absolute.path == Path("/abs/x.db")
    for bad in ("s3://bucket/x", "sqlite://x.db", "sqlite:///", ""):
        with pytest.raises(ProfileError, match="valid: none, a folder path"):
            open_store(bad, tmp_path)


@pytest.mark.parametrize("kind", ["folder", "sqlite"])
def test_write_read_accept(tmp_path: Path, kind: str) -> None:
    store = _stores(tmp_path)[0 if kind == "folder" else 1]
    store.write(record("20260101T000000Z-aaaa", 100.0, created=1.0))
    store.write(record("20260102T000000Z-bbbb", 90.0, created=2.0))
    store.write(record("20260102T000000Z-bbbb", 50.0, name="t2", created=2.0))
    assert [r.run_id for r in store.records("t1")] == [
        "20260101T000000Z-aaaa",
        "20260102T000000Z-bbbb",
    ]
    assert len(store.records()) == 3
    assert store.accept("20260101T000000Z-aaaa", "golden") == 1
    assert store.baseline("golden") == "20260101T000000Z-aaaa"
    assert resolve_run(store, "golden") == "20260101T000000Z-aaaa"
    assert resolve_run(store, "20260102") == "20260102T000000Z-bbbb"
    with pytest.raises(KeyError):
        resolve_run(store, "2026")  # ambiguous
    assert store.accept("nope", "x") == 0
    assert store.baseline("x") is None
    assert store.warnings == []


def _write_many(uri: str, base: str, worker: int) -> None:
    store = open_store(uri, Path(base))
    assert store is not None
    for i in range(15):
        store.write(
            record(
                f"20260101T000000Z-w{worker}i{i:02d}",
                100.0 + i,
                name=f"t{worker % 3}",
                created=float(i),
            )
        )


@pytest.mark.parametrize("uri", ["hist", "sqlite:///hist.db"])
def test_concurrent_writers_lose_nothing(tmp_path: Path, uri: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(uri, str(tmp_path), w)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = open_store(uri, tmp_path)
    assert store is not None
    records = store.records()
    assert len(records) == 6 * 15
    assert store.warnings == []
    if uri == "hist":
        assert not list(tmp_path.rglob("*.tmp"))


def test_folder_skips_truncated_foreign_and_future_files_and_keeps_them(tmp_path: Path) -> None:
    store = FolderStore(tmp_path)
    store.write(record("20260101T000000Z-good"))
    folder = tmp_path / "runs" / "t1"
    truncated = folder / "20260102T000000Z-trunc.json"
    truncated.write_text(record("20260102T000000Z-trunc").to_json()[:120])
    foreign = folder / "notes.json"
    foreign.write_text('{"author": "someone else"}')
    future = folder / "20260103T000000Z-future.json"
    data = json.loads(record("20260103T000000Z-future").to_json())
    data["version"] = SCHEMA_VERSION + 1
    future.write_text(json.dumps(data))
    binary = folder / "20260104T000000Z-bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")

    runs = store.records("t1")
    assert [r.run_id for r in runs] == ["20260101T000000Z-good"]
    text = "\n".join(store.warnings)
    for path in (truncated, foreign, future, binary):
        assert str(path) in text
        assert path.exists()  # never deleted
    assert "newer than this pytest-llmserve reads" in text


def test_sqlite_skips_bad_rows_and_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.db")
    store.write(record("20260101T000000Z-good"))
    with sqlite3.connect(tmp_path / "h.db") as db:
        db.execute("INSERT INTO runs VALUES ('bad.t1', 'bad', 't1', 2.0, '{\"trunc')")
    assert [r.run_id for r in store.records()] == ["20260101T000000Z-good"]
    assert "bad.t1" in store.warnings[0]

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    broken = SqliteStore(junk)
    assert broken.records() == []
    assert str(junk) in broken.warnings[0]
    assert junk.read_bytes().startswith(b"this is not sqlite")
