"""The chunks a replay server streams, shaped as its framework's golden stream shows.

A golden OpenAI stream gives the shape of a chunk that carries text, of the last one
(which may carry the finish reason) and of those after the text (the finish reason
and the usage, together or apart); chat, and a framework whose golden stream is its
native one, get OpenAI's documented chunk forms. TGI's native stream (``tgi``) is
shaped from its golden one: a token event, and the last one with ``details``.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol


def events(raw: bytes) -> list[dict[str, Any]]:
    """The JSON events of a raw SSE stream ([DONE] and comments left out)."""
    datas = [line[5:].strip() for line in raw.splitlines() if line.startswith(b"data:")]
    return [json.loads(d) for d in datas if d and d != b"[DONE]"]


class Shape(Protocol):
    done: bool  # the stream ends with data: [DONE]

    def text(self, text: str, model: str, *, last: bool) -> dict[str, Any]: ...

    def tail(self, model: str, usage: dict[str, Any] | None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class GoldenShape:
    """A golden OpenAI completions stream's chunks, replayed with other texts and counts."""

    first: dict[str, Any]
    last: dict[str, Any]
    after: tuple[dict[str, Any], ...]
    done: bool

    @classmethod
    def of(cls, raw: bytes) -> GoldenShape:
        found = events(raw)
        texts = [i for i, e in enumerate(found)
                 if any(c.get("text") for c in e.get("choices") or [])]  # fmt: skip
        if not texts:
            raise ValueError("the golden stream has no chunk that carries text")
        a, b = texts[0], texts[-1]
        return cls(found[a], found[b], tuple(found[b + 1 :]), b"[DONE]" in raw)

    def text(self, text: str, model: str, *, last: bool) -> dict[str, Any]:
        chunk = copy.deepcopy(self.last if last else self.first)
        chunk["model"] = model
        choice = chunk["choices"][0]
        choice["text"] = text
        if choice.get("finish_reason"):
            choice["finish_reason"] = "length"
        return chunk

    def tail(self, model: str, usage: dict[str, Any] | None) -> list[dict[str, Any]]:
        out = []
        for shape in self.after:
            chunk = copy.deepcopy(shape)
            chunk["model"] = model
            for choice in chunk.get("choices") or []:
                if choice.get("finish_reason"):
                    choice["finish_reason"] = "length"
            if "usage" in chunk:
                if usage is None:  # not asked for: left out, and a chunk of only usage too
                    del chunk["usage"]
                    if not chunk.get("choices"):
                        continue
                else:
                    chunk["usage"] = usage
            out.append(chunk)
        return out


@dataclass(frozen=True)
class OpenAIShape:
    """OpenAI's documented chunks: text chunks, a finishing one, then the usage alone."""

    chat: bool
    done: bool = True

    def _chunk(self, model: str, choice: dict[str, Any]) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return {"id": "replay", "object": kind, "created": int(time.time()), "model": model,
                "choices": [choice]}  # fmt: skip

    def text(self, text: str, model: str, *, last: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"delta": {"content": text}} if self.chat else {"text": text}
        return self._chunk(model, {"index": 0, **body, "finish_reason": None})

    def tail(self, model: str, usage: dict[str, Any] | None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"delta": {}} if self.chat else {"text": ""}
        out = [self._chunk(model, {"index": 0, **body, "finish_reason": "length"})]
        if usage is not None:
            out.append({**self._chunk(model, {}), "choices": [], "usage": usage})
        return out


@dataclass(frozen=True)
class NativeTGIShape:
    """TGI's ``/generate_stream`` events: a token each, the last with the text and details
    (no [DONE] follows them)."""

    token: dict[str, Any]
    final: dict[str, Any]

    @classmethod
    def of(cls, raw: bytes) -> NativeTGIShape:
        found = [e for e in events(raw) if "token" in e]
        if not found or not found[-1].get("details"):
            raise ValueError("the golden native stream has no token event with details")
        return cls(found[0], found[-1])

    def event(self, index: int, text: str, *, generated: str | None,
              details: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
        event = copy.deepcopy(self.final if details else self.token)
        event["index"] = index
        event["token"].update({"id": ord(text[0]) if text else 0, "text": text})
        event["generated_text"] = generated
        if details:
            event["details"] = {**event["details"], **details}
        return event
