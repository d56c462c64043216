"""A small synchronous client for the OpenAI-compatible API every framework speaks.

The readiness suites use it for single requests; it keeps each answer's status and
body (an error is data to check, not an exception) and, for streams, the arrival
time of every event, so the same records can feed latency measurements. It calls
the paths it is given (a framework's ``ApiPaths``; OpenAI's own by default).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from pytest_llmserve.client.sse import SSEParser
from pytest_llmserve.client.stale import RetryStale
from pytest_llmserve.frameworks.base import ApiPaths


@dataclass
class Reply:
    """One non-streaming answer."""

    status: int
    body: dict[str, Any]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def text(self) -> str:
        choice = self.body["choices"][0]
        if "message" in choice:
            return str(choice["message"].get("content") or "")
        return str(choice.get("text", ""))

    @property
    def usage(self) -> dict[str, int]:
        return dict(self.body.get("usage") or {})


@dataclass
class StreamReply:
    """One streamed answer: text pieces with their arrival times (seconds after send)."""

    status: int
    pieces: list[tuple[float, str]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    done: bool = False  # the stream ended with `data: [DONE]`
    error: str | None = None
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return "".join(p for _, p in self.pieces)

    @property
    def first_token_s(self) -> float | None:
        return next((t for t, p in self.pieces if p), None)


class OpenAIClient:
    """Requests against one served model of one server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        paths: ApiPaths | None = None,
    ) -> None:
        self.model = model
        self.paths = paths or ApiPaths()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout_s, headers=headers, transport=RetryStale()
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str) -> httpx.Response:
        return self._http.get(path)

    def models(self) -> list[dict[str, Any]]:
        r = self._http.get(self.paths.models)
        r.raise_for_status()
        return list(r.json()["data"])

    def completion(self, prompt: str | list[int], **params: Any) -> Reply:
        body = {"model": self.model, "prompt": prompt, **params}
        return self._post(self.paths.completions, body)

    def chat(self, messages: list[dict[str, str]], **params: Any) -> Reply:
        body = {"model": self.model, "messages": messages, **params}
        return self._post(self.paths.chat, body)

    def stream_completion(self, prompt: str | list[int], **params: Any) -> StreamReply:
        body = {"model": self.model, "prompt": prompt, **params}
        return self._stream(self.paths.completions, body)

    def stream_chat(self, messages: list[dict[str, str]], **params: Any) -> StreamReply:
        body = {"model": self.model, "messages": messages, **params}
        return self._stream(self.paths.chat, body)

    def _post(self, path: str, body: dict[str, Any]) -> Reply:
        start = time.perf_counter()
        r = self._http.post(path, json=body)
        seconds = time.perf_counter() - start
        try:
            data = r.json()
        except ValueError:
            data = {"raw": r.text}
        return Reply(r.status_code, data if isinstance(data, dict) else {"raw": data}, seconds)

    def _stream(self, path: str, body: dict[str, Any]) -> StreamReply:
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        parser = SSEParser()
        start = time.perf_counter()
        with self._http.stream("POST", path, json=body) as r:
            reply = StreamReply(status=r.status_code)
            if r.status_code != 200:
                reply.error = r.read().decode("utf-8", errors="replace")
                return reply
            for chunk in r.iter_bytes():
                now = time.perf_counter() - start
                for event in parser.feed(chunk):
                    if event.data == "[DONE]":
                        reply.done = True
                        continue
                    _apply(reply, json.loads(event.data), now)
        reply.seconds = time.perf_counter() - start
        return reply


def _apply(reply: StreamReply, payload: dict[str, Any], at: float) -> None:
    if "error" in payload:
        reply.error = json.dumps(payload["error"])
    if payload.get("usage"):
        reply.usage = dict(payload["usage"])
    for choice in payload.get("choices") or []:
        delta = choice.get("delta")
        piece = (delta or {}).get("content") if delta is not None else choice.get("text")
        if piece:
            reply.pieces.append((at, piece))
        if choice.get("finish_reason"):
            reply.finish_reason = choice["finish_reason"]
