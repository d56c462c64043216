"""GPU slots end to end, without a GPU: fake GPU targets served by a tiny real process.

The inner session's root conftest says the machine has two GPUs (a fake NVML
inventory) and adds a framework whose server answers its own
``CUDA_VISIBLE_DEVICES`` as its version: what the process launcher really gave it.
Its launch spec leaves the target's env out, so the slot must come from the
launcher. The lease file lives in the test's own folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmserve.launch.gpu_slots import DIR_ENV

SERVER = r"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

host, port, served = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = {"/ping": {"ok": True}, "/v1/models": {"data": [{"id": served}]},
                "/about": {"version": os.environ.get("CUDA_VISIBLE_DEVICES", "unset")}}
        self.send(200 if self.path in body else 404, body.get(self.path, {}))

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send(200, {"choices": [{"text": " Paris", "index": 0, "finish_reason": "length"}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 1}})

    def send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

if served.startswith("broken"):
    sys.exit(3)
HTTPServer((host, port), Handler).serve_forever()
"""

CONFTEST = f"""
import sys
from pytest_llmserve.frameworks.base import ApiPaths, LaunchSpec
from pytest_llmserve.frameworks.openai_compat import OpenAICompatible
from pytest_llmserve.measure import gpus

SERVER = {SERVER!r}
gpus.inventory = lambda: gpus.GpuInventory(("fake GPU 0", "fake GPU 1"))


class FakeGpuServe(OpenAICompatible):
    name = "fakegpu"
    paths = ApiPaths(health="/ping", version="/about", tokenize=None)

    def launch_spec(self, target, model_path, host, port):
        served = target.served_name or target.name
        return LaunchSpec(argv=(sys.executable, "-c", SERVER, host, str(port), served))


def pytest_llmserve_frameworks(config):
    return [FakeGpuServe()]
"""

TARGET = """
[[targets]]
name = "{name}"
framework = "fakegpu"
model = "ckpt"
precision = "bf16"
device = "gpu"
startup_timeout_s = 20
"""

TESTS = """
import json, os, time
from pathlib import Path
from pytest_llmserve.measure.gpu_telemetry import visible_devices

OUT = Path(os.environ["SLOTS_OUT"])


def test_sees_its_own_gpus(llm_server, llm_target):
    seen = {
        "server": llm_server.version,  # the server process's own CUDA_VISIBLE_DEVICES
        "telemetry": visible_devices(llm_server.target.env_dict()),  # what the sampler reads
        "profile": llm_target.env_dict().get("CUDA_VISIBLE_DEVICES"),
        "worker": os.environ.get("PYTEST_XDIST_WORKER"),
    }
    (OUT / f"{llm_target.name}.json").write_text(json.dumps(seen))
    if os.environ.get("SLOTS_TOGETHER"):  # both servers hold their GPUs at the same time
        deadline = time.monotonic() + 20
        while len(list(OUT.glob("*.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(OUT.glob("*.json"))) == 2, "the other target never ran alongside"
"""


def _session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, names: list[str]
) -> tuple[Path, Path]:
    pytester.makeconftest(CONFTEST)
    (pytester.path / "ckpt").mkdir()
    pytester.makefile(".toml", profile="".join(TARGET.format(name=n) for n in names))
    pytester.makepyfile(test_slots=TESTS)
    out, leases = pytester.path / "seen", pytester.path / "leases"
    out.mkdir()
    monkeypatch.setenv("SLOTS_OUT", str(out))
    monkeypatch.setenv(DIR_ENV, str(leases))
    return out, leases / "leases.json"


ARGS = ("--llmserve-profile", "profile.toml", "-p", "no:cacheprovider",
        "--llmserve-history", "none", "--llmserve-report", "none")  # fmt: skip


def test_two_gpu_targets_under_xdist_each_get_their_own_gpu(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, leases = _session(pytester, monkeypatch, ["one", "two"])
    monkeypatch.setenv("SLOTS_TOGETHER", "1")
    result = pytester.runpytest_subprocess(
        *ARGS, "-p", "xdist", "-n", "2", "--llmserve-gpus", "0,1"
    )
    result.assert_outcomes(passed=2)
    seen = [json.loads((out / f"{n}.json").read_text()) for n in ("one", "two")]
    assert sorted(s["server"] for s in seen) == ["0", "1"]  # disjoint, and each really got one
    assert [s["telemetry"] for s in seen] == [[int(s["server"])] for s in seen]
    assert [s["profile"] for s in seen] == [None, None]  # the profile's target is untouched
    assert seen[0]["worker"] != seen[1]["worker"]  # two processes, one lease file
    assert json.loads(leases.read_text()) == []  # every lease given back at the end
    result.stdout.fnmatch_lines(["*GPU slots from GPUs 0,1 (--llmserve-gpus allows 2 (0,1))*"])


def test_one_gpu_passes_from_target_to_target_even_after_a_failed_start(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, leases = _session(pytester, monkeypatch, ["broken", "first", "second"])
    result = pytester.runpytest_subprocess(*ARGS, "--llmserve-gpus", "1")
    # Were a lease kept by the broken start or by a stopped server, the next target
    # would find GPU 1 held by this session and fail at once.
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*broken: server exited with code 3*"])
    assert [json.loads((out / f"{n}.json").read_text())["server"] for n in ("first", "second")] == [
        "1",
        "1",
    ]
    assert json.loads(leases.read_text()) == []


def test_a_target_needing_more_gpus_than_allowed_is_skipped_naming_both(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _session(pytester, monkeypatch, ["wide"])
    (pytester.path / "profile.toml").write_text(TARGET.format(name="wide") + "tp = 2\n")
    result = pytester.runpytest_subprocess(*ARGS, "-rs", "--llmserve-gpus", "0")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*target wide needs 2 GPU(s); --llmserve-gpus allows 1 (0)*"])


def test_targets_the_profile_lets_share_run_together_on_one_gpu(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, leases = _session(pytester, monkeypatch, [])
    shared = "".join(TARGET.format(name=n) + "share_gpus = true\n" for n in ("one", "two"))
    (pytester.path / "profile.toml").write_text(shared)
    monkeypatch.setenv("SLOTS_TOGETHER", "1")
    result = pytester.runpytest_subprocess(*ARGS, "-p", "xdist", "-n", "2", "--llmserve-gpus", "0")
    result.assert_outcomes(passed=2)  # one GPU allowed, yet both servers ran at once
    seen = [json.loads((out / f"{n}.json").read_text())["server"] for n in ("one", "two")]
    assert seen == ["unset", "unset"]  # no lease: each sees what the session sees
    assert not leases.exists()
