"""Dialects: the request body each API needs, and how streamed events fill a record."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_llmserve.client.dialects import (
    DIALECTS,
    OpenAIChat,
    OpenAICompletions,
    Prompt,
    TGIGenerate,
    for_framework,
)
from pytest_llmserve.frameworks.base import ApiPaths
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.load.records import RequestRecord


def fresh() -> RequestRecord:
    return RequestRecord(index=0, sent_at=1.0, prompt_tokens_sent=4, max_tokens=8)


def feed(dialect: Any, events: list[tuple[float, dict[str, Any]]]) -> RequestRecord:
    record = fresh()
    for at, payload in events:
        dialect.apply(payload, record, at)
    return record


def completion_chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": "m",
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }


def usage_chunk(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": "m",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def tgi_event(tid: int, text: str, special: bool = False, **extra: Any) -> dict[str, Any]:
    event = {
        "index": tid,
        "token": {"id": tid, "text": text, "logprob": -0.1, "special": special},
        "generated_text": None,
        "details": None,
    }
    event.update(extra)
    return event


# --- request bodies ------------------------------------------------------------------------


def test_completions_body_streams_with_usage_greedy_and_exact_length() -> None:
    path, body = OpenAICompletions().request("m", Prompt("hello there", 2, 32))
    assert path == "/v1/completions"
    assert body == {
        "model": "m",
        "prompt": "hello there",
        "max_tokens": 32,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "min_tokens": 32,
    }


def test_completions_body_without_ignore_eos_lets_the_model_stop() -> None:
    _, body = OpenAICompletions().request("m", Prompt("hi", 1, 32, ignore_eos=False))
    assert "ignore_eos" not in body
    assert "min_tokens" not in body
    assert body["max_tokens"] == 32


def test_completions_body_passes_token_ids_through_as_a_list() -> None:
    ids = [101, 7, 7, 2048]
    _, body = OpenAICompletions().request("m", Prompt(ids, 4, 8))
    assert body["prompt"] == ids
    assert isinstance(body["prompt"], list)
    assert all(isinstance(t, int) for t in body["prompt"])


def test_chat_body_puts_the_prompt_in_one_user_message() -> None:
    path, body = OpenAIChat().request("m", Prompt("What is 2+2?", 6, 16))
    assert path == "/v1/chat/completions"
    assert "prompt" not in body
    assert body["messages"] == [{"role": "user", "content": "What is 2+2?"}]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0
    assert body["min_tokens"] == 16


def test_chat_rejects_token_id_prompts() -> None:
    with pytest.raises(ValueError, match="text prompt"):
        OpenAIChat().request("m", Prompt([1, 2, 3], 3, 8))


def test_tgi_body_uses_inputs_and_parameters() -> None:
    path, body = TGIGenerate().request("m", Prompt("Tell me", 2, 20))
    assert path == "/generate_stream"
    assert body["inputs"] == "Tell me"
    assert body["parameters"]["max_new_tokens"] == 20
    assert body["parameters"]["details"] is True
    assert body["parameters"]["do_sample"] is False
    assert "model" not in body


def test_tgi_rejects_token_id_prompts() -> None:
    with pytest.raises(ValueError, match="text prompts"):
        TGIGenerate().request("m", Prompt([5, 6], 2, 8))


def test_dialects_are_registered_by_name() -> None:
    assert set(DIALECTS) == {
        "openai-completions",
        "openai-chat",
        "hf-generation-config",
        "tgi-generate",
    }
    assert all(d.name == name for name, d in DIALECTS.items())


def test_a_dialect_is_sent_to_the_paths_its_framework_serves() -> None:
    paths = ApiPaths(completions="/x/completions", chat="/x/chat")
    assert DIALECTS["openai-completions"].at(paths).request("m", Prompt("hi", 1, 4))[0] == (
        "/x/completions"
    )
    assert DIALECTS["openai-chat"].at(paths).request("m", Prompt("hi", 1, 4))[0] == "/x/chat"
    assert DIALECTS["tgi-generate"].at(paths).request("m", Prompt("hi", 1, 4))[0] == (
        "/generate_stream"
    )  # its native API: OpenAI's paths do not apply
    assert for_framework(VLLM()).request("m", Prompt("hi", 1, 4))[0] == VLLM().paths.completions


# --- streamed events -----------------------------------------------------------------------


def test_completions_chunks_stamp_first_token_once_and_append_each_chunk() -> None:
    r = feed(
        OpenAICompletions(),
        [(2.0, completion_chunk(" The")), (2.5, completion_chunk(" cat")),
         (2.75, completion_chunk(" sat"))],
    )  # fmt: skip
    assert r.first_token_at == 2.0
    assert r.chunk_times == [2.0, 2.5, 2.75]
    assert r.chunk_tokens == [1, 1, 1]
    assert r.client_output_tokens == 3


def test_completions_empty_text_chunks_are_not_tokens() -> None:
    r = feed(
        OpenAICompletions(),
        [(1.5, completion_chunk("")), (2.0, completion_chunk("Hi")), (2.1, completion_chunk(""))],
    )
    assert r.first_token_at == 2.0  # the empty first chunk is not the first token
    assert r.chunk_times == [2.0]
    assert r.chunk_tokens == [1]


def test_completions_finish_reason_is_kept_past_later_chunks() -> None:
    r = feed(
        OpenAICompletions(),
        [(2.0, completion_chunk("a")), (2.1, completion_chunk("b", finish="length")),
         (2.2, usage_chunk(4, 2))],
    )  # fmt: skip
    assert r.finish_reason == "length"


def test_completions_usage_chunk_sets_server_counts_without_adding_a_token() -> None:
    r = feed(
        OpenAICompletions(),
        [(2.0, completion_chunk("a")), (2.1, completion_chunk("b")), (2.2, usage_chunk(17, 2))],
    )
    assert r.usage_prompt_tokens == 17
    assert r.usage_output_tokens == 2
    assert r.chunk_times == [2.0, 2.1]
    assert r.output_tokens == 2


def test_completions_null_usage_on_text_chunks_leaves_counts_unset() -> None:
    r = feed(OpenAICompletions(), [(2.0, completion_chunk("a"))])
    assert r.usage_prompt_tokens is None
    assert r.usage_output_tokens is None


def test_completions_error_payload_is_recorded() -> None:
    payload = {"error": {"message": "context length exceeded", "type": "BadRequestError",
                         "code": 400}}  # fmt: skip
    r = feed(OpenAICompletions(), [(2.0, completion_chunk("a")), (2.1, payload)])
    assert r.error is not None
    assert "context length exceeded" in r.error
    assert r.chunk_times == [2.0]


def test_chat_role_only_first_delta_is_not_a_token() -> None:
    r = feed(
        OpenAIChat(),
        [(1.8, chat_chunk({"role": "assistant", "content": ""})),
         (1.9, chat_chunk({"role": "assistant"})),
         (2.0, chat_chunk({"content": "Four"})),
         (2.2, chat_chunk({"content": "."}, finish="stop")),
         (2.3, {**chat_chunk({}), "choices": [], "usage": {"prompt_tokens": 12,
                                                           "completion_tokens": 2}})],
    )  # fmt: skip
    assert r.first_token_at == 2.0
    assert r.chunk_times == [2.0, 2.2]
    assert r.finish_reason == "stop"
    assert r.usage_prompt_tokens == 12
    assert r.usage_output_tokens == 2


def test_chat_error_payload_is_recorded() -> None:
    r = feed(OpenAIChat(), [(2.0, {"error": "overloaded"})])
    assert r.error == "overloaded"
    assert r.first_token_at is None


def test_tgi_events_count_text_tokens_and_read_final_details() -> None:
    final = tgi_event(
        3, "</s>", special=True, generated_text="Hello world",
        details={"finish_reason": "eos_token", "generated_tokens": 3, "seed": None},
    )  # fmt: skip
    r = feed(
        TGIGenerate(),
        [(2.0, tgi_event(1, "Hello")), (2.1, tgi_event(2, " world")), (2.2, final)],
    )
    assert r.first_token_at == 2.0
    assert r.chunk_times == [2.0, 2.1]  # the special EOS token is not counted
    assert r.client_output_tokens == 2
    assert r.usage_output_tokens == 3
    assert r.finish_reason == "eos_token"


def test_tgi_special_first_token_does_not_stamp_first_token() -> None:
    r = feed(TGIGenerate(), [(1.5, tgi_event(0, "<s>", special=True)), (2.0, tgi_event(1, "A"))])
    assert r.first_token_at == 2.0
    assert r.chunk_times == [2.0]


def test_tgi_error_event_is_recorded() -> None:
    r = feed(TGIGenerate(), [(2.0, {"error": "Request failed during generation",
                                    "error_type": "generation"})])  # fmt: skip
    assert r.error == "Request failed during generation"
    assert r.chunk_times == []
