"""Labels on every server process we start, and the sweep of leftovers they allow.

A server's environment carries ``LLMSERVE_OWNER=<pid>:<start time>`` of the pytest
process that started it, and ``LLMSERVE_SERVER=<id>``. Children (vLLM's engine
core, workers) inherit both, even if they leave the process group. A later
session kills labelled processes whose owner is gone (a SIGKILLed pytest), and
never those of an owner that still runs (a concurrent session).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psutil

OWNER_VAR = "LLMSERVE_OWNER"
SERVER_VAR = "LLMSERVE_SERVER"


def owner_label(pid: int | None = None) -> str:
    """This process's label: pid plus its start time, so a reused pid never matches."""
    proc = psutil.Process(pid or os.getpid())
    return f"{proc.pid}:{proc.create_time():.2f}"


def owner_alive(label: str) -> bool:
    try:
        pid_text, created = label.split(":", 1)
        proc = psutil.Process(int(pid_text))
        return f"{proc.create_time():.2f}" == created and proc.status() != psutil.STATUS_ZOMBIE
    except (ValueError, psutil.Error):
        return False


@dataclass(frozen=True)
class Labelled:
    pid: int
    owner: str
    server: str
    cmdline: str


def labelled_processes() -> Iterator[Labelled]:
    """Every process on this machine that carries our label (ours to judge, nobody else's)."""
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            env = proc.environ()
            owner = env.get(OWNER_VAR)
            if owner is None:
                continue
            yield Labelled(proc.pid, owner, env.get(SERVER_VAR, ""), " ".join(proc.cmdline()))
        except psutil.Error:
            continue  # gone, or not ours to read


def kill_server_processes(server_id: str, grace_s: float = 5.0) -> list[int]:
    """Stop every process labelled with ``server_id`` (stragglers outside the process group)."""
    pids = [p.pid for p in labelled_processes() if p.server == server_id]
    return _terminate(pids, grace_s)


def sweep_orphans(grace_s: float = 5.0) -> list[Labelled]:
    """Kill labelled processes whose owning pytest is gone; return what was killed."""
    orphans = [p for p in labelled_processes() if not owner_alive(p.owner)]
    _terminate([p.pid for p in orphans], grace_s)
    return orphans


def _terminate(pids: list[int], grace_s: float) -> list[int]:
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.send_signal(signal.SIGTERM)
            procs.append(proc)
        except psutil.Error:
            continue
    alive = _wait_gone(procs, grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            continue
    _wait_gone(alive, grace_s)
    return [p.pid for p in procs]


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until each process has exited; a zombie counts as exited.

    An orphan's zombie lingers until init reaps it (seconds on some machines);
    waiting for that would only slow every stop down.
    """
    deadline = time.monotonic() + timeout_s
    alive = procs
    while alive:
        alive = [p for p in alive if _running(p)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return alive


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
