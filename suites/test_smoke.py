"""Smoke: the server is up, serves the model asked for, answers every API shape,
and serves the precision the profile declares."""

from __future__ import annotations

import pytest

from pytest_llmserve.checklist.precision import precision_problems
from pytest_llmserve.client.openai import OpenAIClient
from pytest_llmserve.launch.server import Server

pytestmark = pytest.mark.llmserve_quick

PROMPT = "The capital of France is"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_server_is_ready(llm_server: Server, llm_client: OpenAIClient) -> None:
    assert llm_server.exited() is None
    assert llm_client.get(llm_server.framework.paths.health).status_code == 200
    assert llm_server.ready.ready_s > 0


def test_serves_the_requested_model(llm_server: Server, llm_client: OpenAIClient) -> None:
    models = {m["id"]: m for m in llm_client.models()}
    assert llm_server.served_name in models, f"served: {sorted(models)}"
    root = models[llm_server.served_name].get("root")
    if llm_server.local_model is not None and root is not None:
        assert root == llm_server.model_path


def test_completion_returns_text(llm_client: OpenAIClient) -> None:
    reply = llm_client.completion(PROMPT, max_tokens=8, temperature=0)
    assert reply.ok, reply.body
    assert reply.text.strip()
    assert (
        reply.usage["completion_tokens"] == 8 or reply.body["choices"][0]["finish_reason"] == "stop"
    )
    assert reply.usage["prompt_tokens"] > 0


def test_chat_completion_returns_text(llm_client: OpenAIClient) -> None:
    reply = llm_client.chat(QUESTION, max_tokens=16, temperature=0)
    assert reply.ok, reply.body
    assert reply.body["choices"][0]["message"]["role"] == "assistant"
    assert reply.text.strip()


def test_streaming_matches_and_reports_usage(llm_client: OpenAIClient) -> None:
    whole = llm_client.completion(PROMPT, max_tokens=12, temperature=0)
    stream = llm_client.stream_completion(PROMPT, max_tokens=12, temperature=0)
    assert stream.status == 200, stream.error
    assert stream.done, "stream did not end with data: [DONE]"
    assert len(stream.pieces) > 1, "the answer arrived in one piece: not streamed"
    assert stream.text == whole.text, "greedy streamed text differs from the non-streamed text"
    assert stream.usage.get("completion_tokens") == whole.usage["completion_tokens"]
    assert stream.usage.get("prompt_tokens") == whole.usage["prompt_tokens"]


def test_chat_streaming_reports_usage(llm_client: OpenAIClient) -> None:
    stream = llm_client.stream_chat(QUESTION, max_tokens=16, temperature=0)
    assert stream.status == 200, stream.error
    assert stream.done
    assert stream.text.strip()
    assert stream.usage.get("completion_tokens", 0) > 0


def test_declared_precision_applied(llm_server: Server) -> None:
    if not llm_server.startup_log():
        pytest.skip(
            "not measurable: the server's startup log is not readable here (it was not "
            "launched by this session), so what precision its engine applied is unknown"
        )
    problems = precision_problems(llm_server)
    assert not problems, "\n".join([*problems, "evidence:", *llm_server.facts.evidence])
