"""The llama.cpp module's own logic: argv, file-type precision, error body, the key kept
off argv. What the real server logs and answers is held by the golden files
(``test_conformance.py``) and the live tier."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_llmserve.builds import llamacpp as build
from pytest_llmserve.frameworks.base import EngineFacts
from pytest_llmserve.frameworks.llamacpp import LlamaCpp, gguf_file
from pytest_llmserve.frameworks.llamacpp_errors import EXPECTED, body_problems
from pytest_llmserve.profile.model import Target


@pytest.fixture
def server_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(build.ENV_SERVER, str(binary))
    return binary


def _target(**changes: object) -> Target:
    fields: dict[str, object] = {
        "name": "l",
        "framework": "llamacpp",
        "model": "m.gguf",
        "precision": "int8",
        "method": "q8_0",
        "max_model_len": 2048,
    }
    fields.update(changes)
    return Target(**fields)  # type: ignore[arg-type]


def test_argv_serves_the_one_gguf_of_a_folder_with_slots_of_max_model_len(
    server_binary: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "variant"
    folder.mkdir()
    (folder / "model.gguf").write_bytes(b"GGUF")
    (folder / "build.log").write_text("")
    spec = LlamaCpp().launch_spec(_target(served_name="smol"), str(folder), "127.0.0.1", 8080)
    argv = list(spec.argv)
    assert argv[0] == str(server_binary)
    assert argv[argv.index("--model") + 1] == str(folder / "model.gguf")
    assert argv[argv.index("--alias") + 1] == "smol"
    assert argv[argv.index("--parallel") + 1] == "16"
    assert argv[argv.index("--ctx-size") + 1] == str(16 * 2048)
    assert "--metrics" in argv
    assert argv[argv.index("--log-verbosity") + 1] == "4"
    assert "--n-gpu-layers" not in argv


def test_target_args_win_over_the_defaults_they_name(server_binary: Path) -> None:
    target = _target(args=("-np", "4", "-c", "8192", "-lv", "3"), device="gpu", tp=2)
    argv = list(LlamaCpp().launch_spec(target, "m.gguf", "h", 1).argv)
    assert "--parallel" not in argv
    assert "--ctx-size" not in argv
    assert "--log-verbosity" not in argv
    assert argv[-6:] == ["-np", "4", "-c", "8192", "-lv", "3"]
    assert argv[argv.index("--n-gpu-layers") + 1] == "999"
    assert argv[argv.index("--split-mode") + 1] == "layer"


def test_a_split_mode_in_the_args_is_the_only_one_on_argv(server_binary: Path) -> None:
    for flag in ("-sm", "--split-mode"):
        target = _target(args=(flag, "row"), device="gpu", tp=4)
        argv = list(LlamaCpp().launch_spec(target, "m.gguf", "h", 1).argv)
        assert [a for a in argv if a in ("-sm", "--split-mode")] == [flag]
        assert argv[-2:] == [flag, "row"]


def test_slots_a_target_sets_share_the_context_it_gets(server_binary: Path) -> None:
    argv = list(LlamaCpp().launch_spec(_target(args=("--parallel", "4")), "m.gguf", "h", 1).argv)
    assert argv[argv.index("--ctx-size") + 1] == str(4 * 2048)


def test_api_key_goes_to_the_environment_never_argv(
    server_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", "sekrit-123")
    spec = LlamaCpp().launch_spec(_target(api_key_env="MY_KEY"), "m.gguf", "h", 1)
    assert spec.env["LLAMA_API_KEY"] == "sekrit-123"
    assert not any("sekrit" in a for a in spec.argv)


@pytest.mark.parametrize("files", [[], ["a.gguf", "b.gguf"]])
def test_a_folder_without_exactly_one_gguf_is_refused(tmp_path: Path, files: list[str]) -> None:
    for name in files:
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match=r"exactly one \.gguf"):
        gguf_file(str(tmp_path))


@pytest.mark.parametrize(
    ("file_type", "precision", "method", "problem"),
    [
        ("F16", "fp16", None, None),
        ("Q8_0", "int8", "q8_0", None),
        ("Q4_K - Medium", "int4", "q4_k_m", None),
        ("Q4_K - Medium", "int4", None, None),  # no method declared: any int4 type
        ("Q4_1", "int4", "q4_k_m", "declared method q4_k_m"),
        ("Q8_0", "int4", None, "(int8), declared int4"),
        ("F16", "bf16", None, "(fp16), declared bf16"),
        ("IQ2_XXS - 2.0625 bpw", "int4", None, "not one this module maps"),
        (None, "fp16", None, "no GGUF file type"),
    ],
)
def test_precision_is_the_file_type_the_server_loaded(
    file_type: str | None, precision: str, method: str | None, problem: str | None
) -> None:
    target = _target(precision=precision, method=method)
    problems = LlamaCpp().precision_problems(target, EngineFacts(dtype=file_type))
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1
        assert problem in problems[0]


def test_an_fp8_kv_cache_is_unsupported_with_its_reason() -> None:
    assert LlamaCpp().unsupported_here(_target()) is None
    why = LlamaCpp().unsupported_here(_target(kv_cache_dtype="fp8"))
    assert why is not None
    assert "no fp8 KV cache" in why


def test_tokenize_body_is_llamacpps() -> None:
    assert LlamaCpp().tokenize_body("m", "hi") == {"content": "hi", "add_special": False}


def test_error_body_is_exactly_llamacpps() -> None:
    own = {"error": {"code": 400, "message": "bad", "type": "invalid_request_error"}}
    overflow = {"error": {**own["error"], "n_prompt_tokens": 9, "n_ctx": 8}}
    assert body_problems(own) == body_problems(overflow) == []
    openai = {"error": {**own["error"], "param": None}}
    assert body_problems(openai) == ["keys llama.cpp does not write: param"]
    assert body_problems({"detail": "x"})[0].startswith('expected {"error"')
    no_code = {"error": {"message": "m", "type": "t"}}
    assert "error.code missing or not an integer" in body_problems(no_code)


def test_every_5xx_it_may_answer_is_a_declared_known_gap() -> None:
    for case, expectation in EXPECTED.items():
        assert all(s < 500 for s in expectation.status), case
        if expectation.gap_status:
            assert expectation.known_gap, case


def test_version_says_which_server_would_start_without_building(
    server_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert str(server_binary) in (LlamaCpp().version() or "")
    monkeypatch.delenv(build.ENV_SERVER)
    monkeypatch.setenv("PATH", os.defpath)
    monkeypatch.setenv("LLMSERVE_CACHE_DIR", str(server_binary.parent / "empty-cache"))
    assert LlamaCpp().version() == (
        f"{build.LLAMACPP_COMMIT} from {build.SDIST} {build.SDIST_VERSION}, built on first use"
    )
    assert not (server_binary.parent / "empty-cache").exists()


def test_a_given_server_that_is_not_executable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(build.ENV_SERVER, str(tmp_path / "nope"))
    with pytest.raises(Exception, match="is not an executable file"):
        build.server_binary()


def test_a_first_start_says_it_builds_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build (minutes on first use) reports through the session's progress, before
    launch_spec, which then finds the server built."""
    monkeypatch.delenv(build.ENV_SERVER, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no llama-server on PATH either
    built: list[bool] = []

    def binaries(progress: Callable[[str], None] | None = None, **kw: object) -> Path:
        if not built:  # as the real one: only a build says anything
            assert progress is not None
            progress("building llama.cpp (CPU) ... (first use; several minutes)")
            built.append(True)
        return tmp_path

    monkeypatch.setattr(build, "binaries", binaries)
    lines: list[str] = []
    LlamaCpp().prepare(_target(), lines.append)
    assert lines == ["building llama.cpp (CPU) ... (first use; several minutes)"]
    argv = LlamaCpp().launch_spec(_target(), "m.gguf", "h", 1).argv
    assert argv[0] == str(tmp_path / "llama-server")
    assert len(lines) == 1  # built once
