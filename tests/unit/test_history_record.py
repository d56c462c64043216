"""Run records: built from a session's results, round-trip, and never hold a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmserve.checklist.results import Figure, TargetResults
from pytest_llmserve.history import machine
from pytest_llmserve.history.record import (
    SCHEMA_VERSION,
    RecordError,
    build_record,
    from_json,
    git_state,
    model_identity,
    new_run_id,
)
from pytest_llmserve.launch.auth import redact_argv
from pytest_llmserve.launch.external import ExternalSettings
from pytest_llmserve.profile.model import Profile
from tests.unit.history_helpers import record, target

SECRET = "sk-planted-9f8e7d6c5b4a"


def test_record_round_trips_every_figure_field() -> None:
    rec = record("r1", 120.0, 6.0)
    back = from_json(rec.to_json())
    assert back == rec
    f = back.figures["output_tok_s"]
    assert (f.value, f.unit, f.n, f.interval, f.better) == (
        120.0,
        "tok/s",
        10,
        (114.0, 126.0),
        "higher",
    )
    assert json.loads(rec.to_json())["version"] == SCHEMA_VERSION


def test_no_secret_enters_a_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTED_API_KEY", SECRET)
    t = target(
        "secretive",
        env=(("HF_TOKEN", SECRET), ("VLLM_CPU_KVCACHE_SPACE", "1")),
        args=("--api-key", SECRET, f"--hf-token={SECRET}", "--max-num-seqs", "4"),
        launch=ExternalSettings(f"http://user:{SECRET}@127.0.0.1:8000/v1?token={SECRET}"),
        launcher="external",
        api_key_env="PLANTED_API_KEY",
    )
    results = TargetResults("secretive")
    results.add(Figure("output_tok_s", 1.0, "tok/s"))
    rec = build_record(
        run_id="r",
        target=t,
        results=results,
        server={"log_path": "/tmp/x.log"},
        framework_version="1",
        model_path=None,
        machine=machine.describe(),
        project={"commit": None, "dirty": None},
        profile=Profile("p", "p", (t,)),
    )
    text = rec.to_json()
    assert SECRET not in text
    info = rec.target_info
    assert info["env_names"] == ["HF_TOKEN", "VLLM_CPU_KVCACHE_SPACE"]
    assert info["args"] == [
        "--api-key",
        "***",
        "--hf-token=***",
        "--max-num-seqs",
        "4",
    ]
    assert info["url"] == "http://127.0.0.1:8000/v1"
    assert info["api_key_env"] == "PLANTED_API_KEY"


def test_redact_keeps_ordinary_arguments() -> None:
    assert redact_argv(("--enforce-eager", "--max-num-seqs", "1")) == [
        "--enforce-eager",
        "--max-num-seqs",
        "1",
    ]


def test_future_schema_and_foreign_json_are_refused_with_reasons() -> None:
    data = json.loads(record("r").to_json())
    data["version"] = SCHEMA_VERSION + 1
    with pytest.raises(RecordError, match="newer than this pytest-llmserve reads"):
        from_json(json.dumps(data))
    with pytest.raises(RecordError, match="not a run record"):
        from_json(json.dumps({"hello": 1}))
    with pytest.raises(RecordError, match="not JSON"):
        from_json(record("r").to_json()[:50])


def test_local_model_hash_follows_config_and_weight_sizes(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"hidden": 1}')
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    t = target(model=str(tmp_path))
    first = model_identity(t, str(tmp_path))["model_hash"]
    (tmp_path / "model.safetensors").write_bytes(b"x" * 11)
    second = model_identity(t, str(tmp_path))["model_hash"]
    (tmp_path / "config.json").write_text('{"hidden": 2}')
    third = model_identity(t, str(tmp_path))["model_hash"]
    assert len({first, second, third}) == 3


def test_embedded_model_hash_is_its_build_key(tmp_path: Path) -> None:
    (tmp_path / "llmserve-build.json").write_text(json.dumps({"key": "k" * 64}))
    ident = model_identity(target(), str(tmp_path))
    assert ident == {"model_hash": "k" * 32, "model_hash_method": "embedded build key"}


def test_embedded_gguf_file_hash_is_its_folders_build_key(tmp_path: Path) -> None:
    # llama.cpp serves the one file inside the variant's build folder.
    (tmp_path / "llmserve-build.json").write_text(json.dumps({"key": "g" * 64}))
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    ident = model_identity(target(), str(tmp_path / "model.gguf"))
    assert ident == {"model_hash": "g" * 32, "model_hash_method": "embedded build key"}


def test_git_state_outside_and_inside_a_repo(tmp_path: Path) -> None:
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
    here = git_state(Path(__file__).parent)
    assert here["commit"] is not None
    assert len(here["commit"]) == 40


def test_machine_description_hashes_the_hostname() -> None:
    import socket

    info = machine.describe()
    assert socket.gethostname() not in json.dumps(info)
    assert info["cpu_cores"]
    assert info["memory_bytes"] > 0


def test_run_ids_sort_by_time_and_are_unique() -> None:
    a, b = new_run_id(1000.0), new_run_id(2000.0)
    assert a < b
    assert new_run_id(1000.0) != a
