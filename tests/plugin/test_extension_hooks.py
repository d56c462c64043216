"""A framework added by another package, through the documented hook, runs end to end.

The root conftest of an inner pytest session registers a framework module (an
OpenAI-compatible server: a tiny real HTTP process) and a launcher that only
renames the external one. The profile names both, `-m` selects by the new
framework's marker, and the built-in suites' fixtures serve it: a new framework
or launcher needs no edit of this package.
"""

from __future__ import annotations

import pytest

SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

host, port, served = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/ping":
            self.send(200, {"ok": True})
        elif self.path == "/about":
            self.send(200, {"version": "9.9.9"})
        elif self.path == "/v1/models":
            self.send(200, {"data": [{"id": served}]})
        else:
            self.send(404, {"error": {"message": "no", "type": "x", "param": None, "code": 404}})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send(200, {"choices": [{"text": " Paris", "index": 0, "finish_reason": "length"}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 1}})

print("tinyserve: listening", flush=True)
HTTPServer((host, port), Handler).serve_forever()
"""

CONFTEST = f"""
import sys
from pytest_llmserve.frameworks.base import ApiPaths, LaunchSpec
from pytest_llmserve.frameworks.openai_compat import OpenAICompatible
from pytest_llmserve.launch.external import ExternalLauncher

SERVER = {SERVER!r}


class TinyServe(OpenAICompatible):
    name = "tinyserve"
    paths = ApiPaths(health="/ping", version="/about", tokenize=None)

    def unsupported_here(self, target):
        if target.precision == "int4":
            return f"target {{target.name}}: tinyserve has no int4 kernel on this machine"
        return None

    def launch_spec(self, target, model_path, host, port):
        served = target.served_name or target.name
        return LaunchSpec(argv=(sys.executable, "-c", SERVER, host, str(port), served))


class Elsewhere(ExternalLauncher):
    name = "elsewhere"


def pytest_llmserve_frameworks(config):
    return [TinyServe()]


def pytest_llmserve_launchers(config):
    return [Elsewhere()]
"""

PROFILE = """
[[targets]]
name = "tiny"
framework = "tinyserve"
model = "ckpt"
precision = "bf16"
startup_timeout_s = 30
"""

TESTS = """
def test_serves(llm_server, llm_client, llm_endpoint):
    assert llm_endpoint.framework.name == "tinyserve"
    assert llm_server.version == "9.9.9"  # what the server says, not what is installed
    assert llm_server.ready.ready_s > 0
    reply = llm_client.completion("The capital of France is", max_tokens=1)
    assert reply.text == " Paris"
"""


def test_a_framework_from_a_plugin_is_launched_and_selected_by_its_marker(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    (pytester.path / "ckpt").mkdir()
    pytester.makefile(".toml", profile=PROFILE)
    pytester.makepyfile(test_tiny=TESTS)
    result = pytester.runpytest_subprocess(
        "--llmserve-profile", "profile.toml", "-m", "tinyserve", "-p", "no:cacheprovider",
        "--llmserve-history", "none", "--llmserve-report", "none", "-v",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*tiny: tinyserve bf16 tp1pp1 cpu via process*"])


def test_a_launcher_from_a_plugin_owns_its_keys_in_the_profile(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makefile(".toml", profile=PROFILE + 'launcher = "elsewhere"\n')
    pytester.makepyfile(test_tiny=TESTS)
    result = pytester.runpytest_subprocess("--llmserve-profile", "profile.toml", "--co")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*url: required when launcher is 'elsewhere'*"])

    pytester.makefile(".toml", profile=PROFILE + 'url = "http://127.0.0.1:1"\n')
    result = pytester.runpytest_subprocess("--llmserve-profile", "profile.toml", "--co")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*url: only valid with launcher = 'elsewhere' or 'external'*"])


def test_a_target_the_framework_cannot_serve_here_is_skipped_with_why_and_never_started(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    (pytester.path / "ckpt").mkdir()
    pytester.makefile(".toml", profile=PROFILE.replace('"bf16"', '"int4"'))
    pytester.makepyfile(test_tiny=TESTS)
    result = pytester.runpytest_subprocess(
        "--llmserve-profile", "profile.toml", "-rs", "-p", "no:cacheprovider",
        "--llmserve-history", "none", "--llmserve-report", "none",
    )  # fmt: skip
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*tiny: tinyserve has no int4 kernel on this machine*"])
    result.stdout.no_fnmatch_line("*llmserve servers*")  # nothing was started
