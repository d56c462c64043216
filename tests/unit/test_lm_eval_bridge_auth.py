"""lm-eval bridge with a keyed target: local-completions sends the key with every
completion (its ``header``; ``auth_token`` reaches only its remote tokenizer), and the
key is neither in its log line (masked Secret reprs) nor in the results we return."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.measure import lm_eval_bridge
from pytest_llmserve.profile.model import Target

KEY = "sk-bridge-0123456789abcdef"


@dataclass
class FakeServer:
    """What model_args reads of a Server; external, so no tokenizer folder is needed."""

    target: Target
    base_url: str = "http://127.0.0.1:9"
    served_name: str = "m"
    model_path: str | None = None
    framework: Any = field(default_factory=VLLM)
    local_model: Path | None = None


def server(api_key_env: str | None) -> Any:
    t = Target(name="t", framework="vllm", model="/m", precision="bf16", launcher="external",
               api_key_env=api_key_env)  # fmt: skip
    return FakeServer(t)


def test_keyed_target_sends_the_key_with_completions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVE_BRIDGE_KEY", KEY)
    args = lm_eval_bridge.model_args(server("LLMSERVE_BRIDGE_KEY"))
    assert args["header"] == {"Authorization": f"Bearer {KEY}"}
    assert args["auth_token"] == KEY
    assert KEY not in repr(args)  # lm-eval logs the dict with %s: values show as reprs


def test_target_without_key_sends_none() -> None:
    args = lm_eval_bridge.model_args(server(None))
    assert "header" not in args
    assert "auth_token" not in args


def test_results_returned_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVE_BRIDGE_KEY", KEY)
    seen: dict[str, Any] = {}

    def simple_evaluate(**kw: Any) -> dict[str, Any]:
        seen.update(kw)
        return {"results": {}, "config": {"model_args": dict(kw["model_args"])}}

    fake = types.ModuleType("lm_eval")
    fake.simple_evaluate = simple_evaluate  # type: ignore[attr-defined]
    fake_tasks = types.ModuleType("lm_eval.tasks")
    fake_tasks.TaskManager = lambda include_path=None: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lm_eval", fake)
    monkeypatch.setitem(sys.modules, "lm_eval.tasks", fake_tasks)

    out = lm_eval_bridge.evaluate(server("LLMSERVE_BRIDGE_KEY"), ["t"])
    assert seen["model_args"]["header"]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in str(out)
    assert out["config"]["model_args"]["model"] == "m"
