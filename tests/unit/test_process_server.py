"""ProcessServer with a fake framework whose "server" is a small Python script.

Startup failures raise ServerStartError with the log tail and path and leave nothing
running; a real (tiny) HTTP server starts, reports its pids, and stop() ends all of
them, including a grandchild that left the process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks.base import ApiPaths, EngineFacts, LaunchSpec
from pytest_llmserve.frameworks.openai_compat import OpenAICompatible
from pytest_llmserve.launch import labels
from pytest_llmserve.launch.process import ProcessServer
from pytest_llmserve.profile.model import Target

EXITS_AT_ONCE = """
import sys
print("fake-engine: CUDA out of memory while loading weights", flush=True)
sys.exit(3)
"""

# Never listens; starts a grandchild in its process group and one in its own session.
NEVER_LISTENS = """
import os, subprocess, sys, time
in_group = subprocess.Popen(["sleep", "60"])
escaped = subprocess.Popen(["sleep", "60"], start_new_session=True)
with open(sys.argv[4], "w") as f:
    f.write(f"{os.getpid()} {in_group.pid} {escaped.pid}")
print("fake-engine: loading forever", flush=True)
time.sleep(60)
"""

# A real tiny OpenAI-ish server with a grandchild in its process group. Options:
# "escape" starts a second grandchild in its own session (only its label finds it);
# "clash=PATH" pretends, on the first launch only, that the port was taken.
HTTP_SERVER = """
import json, os, subprocess, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

host, port, served, pid_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
options = dict(a.partition("=")[::2] for a in sys.argv[5:])
if "clash" in options and not os.path.exists(options["clash"]):
    open(options["clash"], "w").close()
    print("OSError: [Errno 98] Address already in use", flush=True)
    sys.exit(1)
pids = [os.getpid(), subprocess.Popen(["sleep", "60"]).pid]
if "escape" in options:
    pids.append(subprocess.Popen(["sleep", "60"], start_new_session=True).pid)
with open(pid_file, "w") as f:
    f.write(" ".join(map(str, pids)))

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self.send({})
        else:
            self.send({"data": [{"id": served}]})

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send({"choices": [{"text": "!"}]})

print("fake-engine: dtype=bf16 listening", flush=True)
HTTPServer((host, port), Handler).serve_forever()
"""


class FakeFramework(OpenAICompatible):
    """An OpenAI-compatible framework whose server is ``python -c script``."""

    name = "fake"
    paths = ApiPaths(version=None)

    def __init__(self, script: str, pid_file: Path, *extra: str) -> None:
        self.script = textwrap.dedent(script)
        self.pid_file = pid_file
        self.extra = extra
        self.launches = 0

    def version(self) -> str | None:
        return "0-fake"

    def launch_spec(self, target: Target, model_path: str, host: str, port: int) -> LaunchSpec:
        self.launches += 1
        served = target.served_name or target.name
        argv = (sys.executable, "-c", self.script, host, str(port), served, str(self.pid_file))
        return LaunchSpec(argv=argv + self.extra, env={"FAKE_ENV": "1"})

    def engine_facts(self, log_text: str) -> EngineFacts:
        return EngineFacts(dtype="bf16" if "dtype=bf16" in log_text else None)

    def precision_problems(self, target: Target, facts: EngineFacts) -> list[str]:
        return []


def target(timeout_s: float = 10.0) -> Target:
    return Target(
        name="fake-target",
        framework="fake",
        model="/nonexistent/model",
        precision="bf16",
        startup_timeout_s=timeout_s,
    )


def pids_in(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def eventually(condition: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def live_members_of_group(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def kill_leftovers(pids: list[int]) -> None:
    """Test hygiene only: whatever the code under test left behind dies here."""
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def test_child_that_exits_at_once_fails_fast_with_code_log_tail_and_path(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "server.log"
    fw = FakeFramework(EXITS_AT_ONCE, tmp_path / "pids")
    t0 = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        ProcessServer.start(target(timeout_s=30), fw, "/nonexistent/model", log_path)
    assert time.monotonic() - t0 < 3.0  # the exit is noticed, not the 30 s timeout
    message = str(info.value)
    assert message.startswith("fake-target: server exited with code 3 during startup")
    assert "CUDA out of memory while loading weights" in message
    assert str(log_path) in message
    assert info.value.log_path == str(log_path)
    assert "CUDA out of memory" in info.value.log_tail
    assert fw.launches == 1  # not a port clash: no second attempt
    # The log file names the command it ran.
    assert log_path.read_text().count("# llmserve: launching: ") == 1


def test_child_that_never_listens_times_out_and_leaves_nothing(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    fw = FakeFramework(NEVER_LISTENS, pid_file)
    t0 = time.monotonic()
    try:
        with pytest.raises(ServerStartError) as info:
            ProcessServer.start(target(timeout_s=2), fw, "/m", tmp_path / "server.log")
        assert time.monotonic() - t0 < 8.0
        message = str(info.value)
        assert "not ready after 2 s" in message
        assert "stuck at: GET /health 200" in message
        assert "loading forever" in message
        server_pid, in_group_pid, escaped_pid = pids_in(pid_file)
        for pid in (server_pid, in_group_pid, escaped_pid):  # escaped: found by its label
            assert eventually(lambda pid=pid: gone(pid)), pid
        assert live_members_of_group(server_pid) == []
    finally:
        if pid_file.exists():
            kill_leftovers(pids_in(pid_file))


def test_real_http_child_starts_and_stop_leaves_no_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    fw = FakeFramework(HTTP_SERVER, pid_file, "escape")
    server = ProcessServer.start(target(), fw, "/m", tmp_path / "server.log")
    try:
        server_pid, in_group_pid, escaped_pid = pids_in(pid_file)
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.exited() is None
        assert list(server.ready.passed_at) == [
            "GET /health 200", "fake-target listed", "1-token generation"
        ]  # fmt: skip
        assert server.facts.dtype == "bf16"  # read from the log once ready
        pids = server.pids()
        assert pids[0] == server_pid
        assert {server_pid, in_group_pid, escaped_pid} <= set(pids)
        env = psutil.Process(server_pid).environ()
        assert env["FAKE_ENV"] == "1"
        assert env[labels.OWNER_VAR] == labels.owner_label()
        assert env[labels.SERVER_VAR] == server.server_id

        server.stop()

        assert server.exited() is not None
        assert server.pids() == []
        for pid in (server_pid, in_group_pid, escaped_pid):  # escaped: found by its label
            assert eventually(lambda pid=pid: gone(pid)), pid
        assert live_members_of_group(server_pid) == []
        server.stop()  # a second stop is harmless
    finally:
        server.stop()
        if pid_file.exists():
            kill_leftovers(pids_in(pid_file))


def test_port_clash_on_first_attempt_is_retried_on_a_new_port(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    fw = FakeFramework(HTTP_SERVER, pid_file, f"clash={tmp_path / 'clashed-once'}")
    log_path = tmp_path / "server.log"
    server = ProcessServer.start(target(), fw, "/m", log_path)
    try:
        assert fw.launches == 2
        assert server.exited() is None
        log = log_path.read_text()
        assert log.count("# llmserve: launching: ") == 2
        assert "Address already in use" in log
    finally:
        server.stop()
        if pid_file.exists():
            kill_leftovers(pids_in(pid_file))


def test_leader_killed_by_signal_is_reported_and_stop_still_ends_its_children(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pids"
    server = ProcessServer.start(target(), FakeFramework(HTTP_SERVER, pid_file), "/m",
                                 tmp_path / "server.log")  # fmt: skip
    try:
        server_pid, grandchild_pid = pids_in(pid_file)
        os.kill(server_pid, signal.SIGKILL)
        assert eventually(lambda: server.exited() is not None)
        assert server.exited() == "was killed by SIGKILL"
        assert not gone(grandchild_pid)  # orphaned, still running

        server.stop()

        assert eventually(lambda: gone(grandchild_pid))
    finally:
        server.stop()
        if pid_file.exists():
            kill_leftovers(pids_in(pid_file))


def test_exited_before_start_says_never_started(tmp_path: Path) -> None:
    server = ProcessServer(target(), FakeFramework(HTTP_SERVER, tmp_path / "p"), "/m",
                           tmp_path / "log")  # fmt: skip
    assert server.exited() == "never started"
    assert server.pids() == []
    server.stop()  # nothing to stop, no error


def test_the_launcher_has_the_framework_prepare_first_and_says_so(tmp_path: Path) -> None:
    """What a framework builds before its first start is told through the session's
    progress, and happens before any process is launched."""
    from pytest_llmserve.launch.launcher import StartContext
    from pytest_llmserve.launch.process import ProcessLauncher

    events: list[str] = []

    class Builds(OpenAICompatible):
        name = "builds"
        paths = ApiPaths()

        def prepare(self, target: Target, progress: Callable[[str], None]) -> None:
            progress(f"building for {target.name}")

        def launch_spec(self, *args: object, **kw: object) -> LaunchSpec:
            events.append("launch_spec")
            raise RuntimeError("stop here")

    ctx = StartContext(lambda t: t.model, lambda t: tmp_path / "t.log", events.append)
    target = Target(name="t1", framework="builds", model="/m", precision="bf16")
    with pytest.raises(RuntimeError, match="stop here"):
        ProcessLauncher().spawn(target, Builds(), ctx)
    assert events == ["building for t1", "launch_spec"]
