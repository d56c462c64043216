"""Process labels: leftovers of a dead owner are swept; a live owner's servers are left alone."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import psutil
import pytest

from pytest_llmserve.launch import labels


def dead_owner_label() -> str:
    """The label of a process that has exited (its pid may be reused; its start time won't)."""
    proc = subprocess.Popen(["sleep", "60"])
    try:
        label = labels.owner_label(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    return label


Spawn = Callable[[str, str], "subprocess.Popen[bytes]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start labelled `sleep 60` children; every one is killed at teardown whatever happens."""
    started: list[subprocess.Popen[bytes]] = []

    def _spawn(owner: str, server: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, labels.OWNER_VAR: owner, labels.SERVER_VAR: server}
        proc = subprocess.Popen(["sleep", "60"], env=env)
        started.append(proc)
        return proc

    yield _spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)


def ended(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is not None


def server_id() -> str:
    return "test-" + uuid.uuid4().hex[:8]


def test_owner_label_is_pid_and_start_time() -> None:
    pid_text, created = labels.owner_label().split(":")
    assert int(pid_text) == os.getpid()
    assert float(created) == pytest.approx(psutil.Process().create_time(), abs=0.01)


def test_owner_alive_only_for_a_running_process_with_that_start_time() -> None:
    assert labels.owner_alive(labels.owner_label())
    assert not labels.owner_alive(dead_owner_label())
    # Same pid, other start time: a reused pid is not the owner.
    assert not labels.owner_alive(f"{os.getpid()}:12345.00")
    assert not labels.owner_alive("garbage")
    assert not labels.owner_alive("")


def test_labelled_processes_finds_a_labelled_child(spawn: Spawn) -> None:
    sid, owner = server_id(), dead_owner_label()
    proc = spawn(owner, sid)
    found = [p for p in labels.labelled_processes() if p.pid == proc.pid]
    assert len(found) == 1
    assert (found[0].owner, found[0].server) == (owner, sid)
    assert "sleep 60" in found[0].cmdline


def test_unlabelled_process_is_not_listed() -> None:
    proc = subprocess.Popen(["sleep", "60"], env={
        k: v for k, v in os.environ.items() if k not in (labels.OWNER_VAR, labels.SERVER_VAR)
    })  # fmt: skip
    try:
        assert proc.pid not in {p.pid for p in labels.labelled_processes()}
    finally:
        proc.kill()
        proc.wait()


def test_sweep_kills_processes_of_a_dead_owner(spawn: Spawn) -> None:
    orphan = spawn(dead_owner_label(), server_id())
    reused_pid = spawn(f"{os.getpid()}:12345.00", server_id())
    swept = labels.sweep_orphans(grace_s=2)
    assert {orphan.pid, reused_pid.pid} <= {p.pid for p in swept}
    assert ended(orphan)
    assert ended(reused_pid)


def test_sweep_leaves_processes_of_a_live_owner(spawn: Spawn) -> None:
    mine = spawn(labels.owner_label(), server_id())
    orphan = spawn(dead_owner_label(), server_id())
    swept = labels.sweep_orphans(grace_s=2)
    assert mine.pid not in {p.pid for p in swept}
    assert not ended(mine)
    assert ended(orphan)


def test_kill_server_processes_kills_only_that_server(spawn: Spawn) -> None:
    target_id, other_id = server_id(), server_id()
    owner = labels.owner_label()
    first, second = spawn(owner, target_id), spawn(owner, target_id)
    other = spawn(owner, other_id)
    killed = labels.kill_server_processes(target_id, grace_s=2)
    assert sorted(killed) == sorted([first.pid, second.pid])
    assert ended(first)
    assert ended(second)
    assert not ended(other)


def test_kill_server_processes_with_no_match_does_nothing() -> None:
    assert labels.kill_server_processes(server_id(), grace_s=1) == []
