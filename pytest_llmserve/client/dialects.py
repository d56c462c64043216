"""Streaming request dialects: OpenAI completions and chat, and TGI's native API.

A dialect turns a prompt into (path, body) and reads one streamed event into a
``RequestRecord``; the transport (``client.aio``) is shared. Keeping them apart
lets the SSE edge cases and the per-chunk token accounting be tested without
a server.

A framework names its dialect (``Framework.stream_dialect``); ``for_framework``
gives it, bound to the paths that framework serves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_llmserve.frameworks.base import ApiPaths, Framework
from pytest_llmserve.load.records import RequestRecord


@dataclass(frozen=True)
class Prompt:
    """What to send: text or token ids (ids make tokenisation identical across targets)."""

    prompt: str | list[int]
    prompt_tokens: int
    max_tokens: int
    ignore_eos: bool = True  # generate exactly max_tokens where the framework allows it


class Dialect(Protocol):
    name: str
    # Why output tokens cannot be counted from the chunks (None: each text chunk is one
    # token, and the client's count cross-checks the server's usage).
    uncounted: str | None

    def request(self, model: str, p: Prompt) -> tuple[str, dict[str, Any]]:
        """The path and JSON body of one streaming request."""
        ...

    def apply(self, payload: dict[str, Any], record: RequestRecord, at: float) -> None:
        """Fold one streamed event, which arrived at ``at``, into ``record``."""
        ...

    def at(self, paths: ApiPaths) -> Dialect:
        """This dialect sent to a server answering at ``paths``."""
        ...


def _text_chunk(record: RequestRecord, text: str | None, tokens: int, at: float) -> None:
    if not text:
        return
    if record.first_token_at is None:
        record.first_token_at = at
    record.chunk_times.append(at)
    record.chunk_tokens.append(tokens)


def _usage(record: RequestRecord, usage: dict[str, Any] | None) -> None:
    if usage:
        record.usage_prompt_tokens = usage.get("prompt_tokens")
        record.usage_output_tokens = usage.get("completion_tokens")
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
            record.usage_cached_tokens = details["cached_tokens"]


class OpenAICompletions:
    """OpenAI completions (``ApiPaths.completions``) with ``stream_options.include_usage``
    (vLLM, SGLang, TRT-LLM...)."""

    name = "openai-completions"
    uncounted: str | None = None

    def __init__(self, paths: ApiPaths | None = None) -> None:
        self.paths = paths or ApiPaths()

    def at(self, paths: ApiPaths) -> Dialect:
        return type(self)(paths)

    def request(self, model: str, p: Prompt) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": model,
            "prompt": p.prompt,
            "max_tokens": p.max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if p.ignore_eos:
            body["ignore_eos"] = True
            body["min_tokens"] = p.max_tokens
        return self.paths.completions, body

    def apply(self, payload: dict[str, Any], record: RequestRecord, at: float) -> None:
        if "error" in payload:
            record.error = str(payload["error"])
            return
        for choice in payload.get("choices") or []:
            _text_chunk(record, self._text(choice), 1, at)
            record.finish_reason = choice.get("finish_reason") or record.finish_reason
        _usage(record, payload.get("usage"))

    @staticmethod
    def _text(choice: dict[str, Any]) -> str | None:
        text: str | None = choice.get("text")
        return text


class OpenAIChat(OpenAICompletions):
    """OpenAI chat completions (``ApiPaths.chat``); the prompt is sent as one user message."""

    name = "openai-chat"

    def request(self, model: str, p: Prompt) -> tuple[str, dict[str, Any]]:
        if not isinstance(p.prompt, str):
            raise ValueError("chat requests need a text prompt")
        _, body = super().request(model, p)
        del body["prompt"]
        body["messages"] = [{"role": "user", "content": p.prompt}]
        return self.paths.chat, body

    @staticmethod
    def _text(choice: dict[str, Any]) -> str | None:
        content: str | None = (choice.get("delta") or {}).get("content")
        return content


class HFGenerationConfig(OpenAICompletions):
    """OpenAI completions for ``transformers serve``: it refuses ``ignore_eos`` and
    ``min_tokens`` (422) but takes a ``generation_config`` JSON, whose
    ``min_new_tokens`` holds the output length; greedy by ``do_sample`` false."""

    name = "hf-generation-config"
    uncounted: str | None = (
        "transformers serve streams decoded text, several tokens to a chunk where they "
        "decode together"
    )

    def request(self, model: str, p: Prompt) -> tuple[str, dict[str, Any]]:
        path, body = super().request(model, p)
        for key in ("ignore_eos", "min_tokens", "stream_options", "temperature"):
            body.pop(key, None)
        config = {"max_new_tokens": p.max_tokens, "do_sample": False}
        if p.ignore_eos:
            config["min_new_tokens"] = p.max_tokens
        body["generation_config"] = json.dumps(config)
        return path, body


class TGIGenerate:
    """TGI's native ``/generate_stream``: one token per event, details on the last one.

    TGI has no ``ignore_eos``; a request that stops early is recorded with its real
    count, and the shortfall shows in the run's token accounting.
    """

    name = "tgi-generate"
    uncounted: str | None = None

    def at(self, paths: ApiPaths) -> Dialect:
        return self  # its native paths are not OpenAI's: nothing to rebind

    def request(self, model: str, p: Prompt) -> tuple[str, dict[str, Any]]:
        if not isinstance(p.prompt, str):
            raise ValueError("TGI's native API takes text prompts")
        params = {"max_new_tokens": p.max_tokens, "details": True, "do_sample": False}
        return "/generate_stream", {"inputs": p.prompt, "parameters": params}

    def apply(self, payload: dict[str, Any], record: RequestRecord, at: float) -> None:
        if "error" in payload:
            record.error = str(payload["error"])
            return
        token = payload.get("token") or {}
        if not token.get("special"):
            _text_chunk(record, token.get("text"), 1, at)
        details = payload.get("details")
        if details:
            record.finish_reason = details.get("finish_reason")
            record.usage_output_tokens = details.get("generated_tokens")
            record.usage_prompt_tokens = details.get("input_length")


DIALECTS: dict[str, Dialect] = {
    d.name: d for d in (OpenAICompletions(), OpenAIChat(), HFGenerationConfig(), TGIGenerate())
}


def get(name: str) -> Dialect:
    """The dialect called ``name``; ``ValueError`` names the valid ones."""
    try:
        return DIALECTS[name]
    except KeyError:
        valid = ", ".join(sorted(DIALECTS))
        raise ValueError(f"no streaming dialect {name!r} (valid: {valid})") from None


def for_framework(framework: Framework) -> Dialect:
    """The streaming dialect ``framework`` declares, sent to the paths it serves."""
    try:
        return get(framework.stream_dialect).at(framework.paths)
    except ValueError as exc:
        raise ValueError(f"framework {framework.name}: stream_dialect: {exc}") from None
