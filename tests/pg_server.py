"""A throwaway PostgreSQL server for the history store's tests: its own cluster, port and
password, on 127.0.0.1 only, stopped and removed at the end.

Without PostgreSQL's binaries the caller's tests are skipped with the reason on a
developer machine, and fail in CI (``CI`` set), which installs PostgreSQL: a
missing server there must not pass as a skip.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.launch.ports import free_port

PASSWORD_ENV = "LLMSERVE_TEST_PG_PASSWORD"
SUPERUSER = "llmserve"


@dataclass(frozen=True)
class PgServer:
    uri: str  # postgresql://llmserve@127.0.0.1:PORT/llmserve?password_env=PASSWORD_ENV
    password_env: str
    password: str
    port: int
    folder: Path
    start_s: float  # initdb + start + CREATE DATABASE

    def uri_for(self, dbname: str) -> str:
        return _uri(self.port, dbname)

    def connect(self, dbname: str = "llmserve") -> Any:
        """An autocommit superuser connection (for CREATE / DROP DATABASE and raw rows)."""
        return _connect(self.port, self.password, dbname)

    def new_database(self) -> str:
        """A fresh, empty database; returns its URI."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.connect("postgres") as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.uri_for(name)

    def drop_database(self, uri: str) -> None:
        name = dbname_of(uri)
        with self.connect("postgres") as db:
            db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def dbname_of(uri: str) -> str:
    return uri.split("?")[0].rsplit("/", 1)[1]


def pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: from PATH, else the newest Debian one."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(os.path.realpath(initdb)).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p)],
    )
    return Path(found[-1]).parent if found else None


@contextmanager
def running_postgres(tmp_dir: Path | None = None) -> Iterator[PgServer]:
    """A started server with a database ``llmserve``; its password in ``PASSWORD_ENV``.

    Its folder is made inside ``tmp_dir`` (default: the system temp folder). initdb
    refuses to run as root, so as root the cluster runs as the ``postgres`` user, which
    must be able to enter ``tmp_dir`` (pytest's temp root is private to root: pass None).
    """
    bin_dir = pg_bin()
    if bin_dir is None:
        reason = "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI installs it")
        pytest.skip(reason)
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="llmserve-pg-", dir=tmp_dir))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    password = secrets.token_hex(16)
    (folder / "pwfile").write_text(password + "\n")
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        folder.chmod(0o755)
        subprocess.run(["chown", "-R", "postgres:", str(folder)], check=True)

    def pg(tool: str, *args: str) -> None:
        argv = [*as_user, str(bin_dir / tool), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr}\n{tail}")

    try:
        pg("initdb", "-D", str(data), "-U", SUPERUSER, "-A", "scram-sha-256",
           f"--pwfile={folder / 'pwfile'}", "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        (folder / "pwfile").unlink()
        try:
            port = _start(pg, data, sockets, folder / "server.log")
            with _connect(port, password, "postgres") as db:
                db.execute("CREATE DATABASE llmserve")
            elapsed = time.monotonic() - started
            print(f"\npg_server: PostgreSQL ({bin_dir}) started in {elapsed:.1f} s on port {port}")
            previous = os.environ.get(PASSWORD_ENV)
            os.environ[PASSWORD_ENV] = password
            try:
                yield PgServer(
                    _uri(port, "llmserve"), PASSWORD_ENV, password, port, folder, elapsed
                )
            finally:
                if previous is None:
                    os.environ.pop(PASSWORD_ENV, None)
                else:
                    os.environ[PASSWORD_ENV] = previous
        finally:  # also after a start that timed out; "not running" is no error here
            stop = [*as_user, str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast"]
            subprocess.run([*stop, "-w"], capture_output=True, timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _start(pg: Any, data: Path, sockets: Path, log: Path) -> int:
    """Start on a free port; another process may take the port first, so try three.

    fsync is off: these tests kill clients, never the server, and a 2-core CI
    machine should not spend its time flushing a throwaway cluster.
    """
    for attempt in range(3):
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={sockets} "
        try:
            pg("pg_ctl", "start", "-D", str(data), "-l", str(log), "-w", "-t", "60",
               "-o", options + "-c fsync=off")  # fmt: skip
            return port
        except RuntimeError:
            if attempt == 2 or "could not bind" not in log.read_text(errors="replace"):
                raise
    raise AssertionError("unreachable")


def _uri(port: int, dbname: str) -> str:
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{dbname}?password_env={PASSWORD_ENV}"


def _connect(port: int, password: str, dbname: str) -> Any:
    import psycopg

    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=SUPERUSER,
        password=password,
        dbname=dbname,
        autocommit=True,
        connect_timeout=10,
    )
