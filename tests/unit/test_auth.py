"""API keys: from the profile's variable name to the server's env and every client,
never onto argv or into a message; the auth check fails a server that ignores its key."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pytest_llmserve.checklist import auth as auth_check
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.errors import ProfileError, ServerStartError
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.launch import auth
from pytest_llmserve.profile.load import parse_profile
from pytest_llmserve.profile.model import Target
from tests.stubs.misbehaving import MODEL, Faults, serve

KEY = "sk-test-0123456789abcdef"


def target(**kw: object) -> Target:
    fields: dict[str, object] = {
        "name": "t",
        "framework": "vllm",
        "model": "/m",
        "precision": "bf16",
        "api_key_env": "LLMSERVE_TEST_KEY",
    }
    fields.update(kw)
    return Target(**fields)  # type: ignore[arg-type]


def test_profile_takes_a_variable_name_never_a_key(tmp_path: Path) -> None:
    base = {"name": "x", "framework": "vllm", "model": str(tmp_path), "precision": "bf16"}
    p = parse_profile({"targets": [{**base, "api_key_env": "MY_KEY"}]}, "p", tmp_path)
    assert p.targets[0].api_key_env == "MY_KEY"
    with pytest.raises(ProfileError, match="api_key_env: 'sk-abc/def' must be the NAME"):
        parse_profile({"targets": [{**base, "api_key_env": "sk-abc/def"}]}, "p", tmp_path)
    with pytest.raises(ProfileError, match="api_key_env: expected str"):
        parse_profile({"targets": [{**base, "api_key_env": 3}]}, "p", tmp_path)


def test_key_is_read_from_the_environment_at_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVE_TEST_KEY", KEY)
    t = target()
    assert t.api_key() == KEY
    assert KEY not in repr(t)
    assert auth.auth_headers(t) == {"Authorization": f"Bearer {KEY}"}
    assert auth.auth_headers(target(api_key_env=None)) == {}


def test_unset_key_is_generated_for_launched_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMSERVE_TEST_KEY", raising=False)
    key = auth.ensure_api_key(target(), generate=True)
    assert key
    assert len(key) >= 24
    assert os.environ["LLMSERVE_TEST_KEY"] == key
    assert auth.ensure_api_key(target(), generate=True) == key  # one key per session


def test_unset_key_of_an_external_server_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMSERVE_TEST_KEY", raising=False)
    with pytest.raises(ServerStartError, match="LLMSERVE_TEST_KEY is not set"):
        auth.ensure_api_key(target(launcher="external"), generate=False)


def test_vllm_gets_the_key_by_environment_not_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVE_TEST_KEY", KEY)
    spec = VLLM().launch_spec(target(), "/m", "127.0.0.1", 8000)
    assert spec.env["VLLM_API_KEY"] == KEY
    assert not any(KEY in a for a in spec.argv)
    assert "VLLM_API_KEY" not in VLLM().launch_spec(target(api_key_env=None), "/m", "h", 1).env


def test_redaction_masks_secret_flags_known_keys_and_bearer_tokens() -> None:
    argv = ["serve", "--api-key", KEY, f"--hf-token={KEY}", "--port", "8000"]
    assert auth.redact_argv(argv) == ["serve", "--api-key", "***", "--hf-token=***", "--port",
                                      "8000"]  # fmt: skip
    text = f"key={KEY} header Authorization: Bearer other-token-xyz"
    out = auth.redact(text, KEY)
    assert KEY not in out
    assert "other-token-xyz" not in out
    assert auth.redact("short words stay", "stay") == "short words stay"


def test_auth_check_passes_a_server_that_guards_v1() -> None:
    with serve(Faults(key=KEY)) as url:
        p = auth_check.probe(Endpoint(url, MODEL, VLLM(), {"Authorization": f"Bearer {KEY}"}))
    assert (p.without_key, p.wrong_key, p.with_key) == (401, 401, 200)
    assert p.unguarded["/health"] == 200
    verdicts = auth_check.auth_verdicts(p)
    assert {v.outcome for v in verdicts} == {"pass"}
    assert not any(KEY in v.reason for v in verdicts)


def test_auth_check_fails_a_server_that_ignores_its_key() -> None:
    with serve(Faults(key=KEY, open_auth=True)) as url:
        p = auth_check.probe(Endpoint(url, MODEL, VLLM(), {"Authorization": f"Bearer {KEY}"}))
    got = {v.metric: v.outcome for v in auth_check.auth_verdicts(p)}
    assert got == {"auth_without_key_status": "fail", "auth_wrong_key_status": "fail",
                   "auth_with_key_status": "pass"}  # fmt: skip


def test_process_log_header_never_shows_a_key_given_on_argv(tmp_path: Path) -> None:
    from pytest_llmserve.launch.process import ProcessServer
    from tests.unit.test_process_server import EXITS_AT_ONCE, FakeFramework

    fw = FakeFramework(EXITS_AT_ONCE, tmp_path / "pids", "--api-key", KEY)
    log = tmp_path / "server.log"
    with pytest.raises(ServerStartError) as info:
        ProcessServer.start(target(framework="fake", api_key_env=None), fw, "/m", log)
    assert KEY not in log.read_text()
    assert KEY not in str(info.value)
    assert sys.executable in log.read_text()  # the header is there, masked


def test_keys_and_auth_headers_repr_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVE_TEST_KEY", KEY)
    key = target().api_key()
    headers = auth.auth_headers(target())
    assert key == KEY  # a plain str to everything that uses it
    assert f"{key}" == KEY
    assert KEY not in repr(key)
    assert KEY not in repr(headers)
    assert KEY not in repr({"locals": [key, headers]})  # what `pytest -l` prints
