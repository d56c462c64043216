"""Where built artefacts live, and the two primitives that keep them whole.

Builds take minutes and several pytest processes (xdist workers, parallel CI jobs)
may ask for the same artefact at once. ``file_lock`` makes the second one wait
instead of building twice; ``atomic_dir`` makes a directory appear only when it is
complete, so a crash or Ctrl-C mid-build never leaves something that looks usable.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

ENV_CACHE_DIR = "LLMSERVE_CACHE_DIR"
_APP_DIR = "pytest-llmserve"
_TMP_MARK = ".tmp-"


def cache_root(override: str | Path | None = None) -> Path:
    """The cache directory: the argument, ``$LLMSERVE_CACHE_DIR``, then the XDG default.

    Not created here: callers that only look (``path``, ``variant_path_if_built``)
    must not leave directories behind.
    """
    if override:
        return Path(override).expanduser()
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / _APP_DIR
    return Path.home() / ".cache" / _APP_DIR


@contextlib.contextmanager
def file_lock(path: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    flock is released by the kernel when its holder dies, so a killed builder never
    leaves a stale lock. ``on_wait`` is told once when another holder makes us wait,
    so that a user watching a silent terminal knows why.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(f"waiting for {path} (another process is building the same thing)")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(final: Path) -> list[Path]:
    """Remove temp siblings of ``final`` whose creating process is gone.

    The creator's pid is in the name; a live one may still be building (it would
    hold the lock, but this function does not assume its caller holds one).
    """
    removed: list[Path] = []
    if not final.parent.is_dir():
        return removed
    prefix = f".{final.name}{_TMP_MARK}"
    for entry in final.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        pid_text = entry.name[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and _pid_alive(int(pid_text)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temp directory beside ``final``; rename it to ``final`` on success.

    The temp dir sits in the same parent, so the rename is one ``rename(2)`` on one
    file system. On an exception the temp dir is removed and ``final`` untouched.
    An existing ``final`` is replaced (the caller, holding the lock, decided it is
    out of date or incomplete). Call it with ``final``'s lock held.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}{_TMP_MARK}{os.getpid()}-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        # Move the old one aside first: rename(2) will not replace a non-empty dir.
        old = final.with_name(f".{final.name}{_TMP_MARK}{os.getpid()}-old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, final)
