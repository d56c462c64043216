"""Which bad-input case a request is, so the replay server answers it as documented.

The replay server answers a bad request with the framework's golden answer for that
case (``errors/<case>.json``), so it has to know which case it was sent; these rules
read the request as any strict server would, framework-neutral, in the order a
server checks: the body's encoding and shape, then the fields. The case ids are the
error battery's (``checklist.error_battery.CASES``).
"""

from __future__ import annotations

import json
from typing import Any

OVERSIZED = 16 * 2**20  # bytes: far above any prompt the suites send
ABSURD = 1000  # an n or logprobs no server serves


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def body_case(content_type: str | None, raw: bytes) -> tuple[str | None, Any]:
    """(the case, None) when the body itself is bad, else (None, the parsed body)."""
    if len(raw) > OVERSIZED:
        return "oversized_body", None
    if not raw:
        return "empty_body", None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8", None
    if (content_type or "").split(";")[0].strip() != "application/json":
        return (
            "form_encoded_body" if "form" in (content_type or "") else "wrong_content_type"
        ), None
    try:
        body = json.loads(text)
    except ValueError:
        return "malformed_json", None
    if not isinstance(body, dict):
        return "body_not_an_object", None
    return None, body


def field_case(
    body: dict[str, Any],
    *,
    chat: bool,
    served_name: str | None,
    context_tokens: int,
    prompt_tokens: int,
) -> str | None:
    """The case a well-formed body is, by its fields (None: a good request);
    ``served_name`` None: any model name is served."""
    if chat:
        messages = body.get("messages")
        if messages is None:
            return "missing_messages"
        if messages == []:
            return "chat_empty_messages"
        if any(not isinstance(m, dict) or "role" not in m for m in messages):
            return "chat_message_without_role"
    else:
        if "prompt" not in body:
            return "missing_prompt"
        if isinstance(body["prompt"], dict):
            return "prompt_wrong_type"
    if served_name is not None and body.get("model") not in (None, served_name):
        return "unknown_model"
    max_tokens = body.get("max_tokens", 16)
    if max_tokens is not None and not _int(max_tokens):
        return "max_tokens_wrong_type"
    if _int(max_tokens) and max_tokens == 0:
        return "max_tokens_zero"
    if _int(max_tokens) and max_tokens < 0:
        return "max_tokens_negative"
    if (body.get("temperature") or 0) < 0:
        return "temperature_negative"
    top_p = body.get("top_p", 1.0)
    if top_p > 1:
        return "top_p_above_one"
    if top_p < 0:
        return "top_p_negative"
    if (body.get("n") or 1) >= ABSURD:
        return "n_absurd"
    if _int(body.get("logprobs")) and body["logprobs"] >= ABSURD:
        return "logprobs_absurd"
    if prompt_tokens > context_tokens:
        return "prompt_longer_than_context"
    return None
