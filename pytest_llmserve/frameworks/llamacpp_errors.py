"""llama.cpp's answers to the error battery, its error body, and what it leaves open.

Measured on 2026-12-02 against ``llama-server`` built from the ``llama-cpp-python``
0.3.36 sdist (llama.cpp 0c1e570, ``system_fingerprint`` b0-0c1e570) serving
SmolLM2-135M at F16. Every expectation is the honest one (a 4xx, as OpenAI's API
and FRAMEWORKS.md document); where this build deviates, the deviation is declared
as a ``known_gap``, reported as xfail on every run and failing once it is gone.
Its 500s for bodies that are not JSON (and a message without a role) are gaps too:
``gap_status`` lets exactly those 500s be the xfail; any other 5xx still fails.

By design rather than by accident, and still gaps for a gate: one server serves
one model, so the ``model`` field is not checked; a negative temperature means
greedy sampling; the JSON body is parsed whatever the content type says.
"""

from __future__ import annotations

from typing import Any

from pytest_llmserve.frameworks.contract import ErrorExpectation
from pytest_llmserve.frameworks.openai_compat import openai_error_body_problems

BAD_REQUEST = (400,)
SEEN = "0c1e570:"

# With a key set, only health answers without it (GET /health and /v1/health 200;
# /metrics, /v1/models, /props, /slots, /tokenize and the generation paths 401).
OPEN_PATHS: tuple[str, ...] = ("/health",)


def _gap(status: tuple[int, ...], what: str, *, seen: int = 200) -> ErrorExpectation:
    return ErrorExpectation(
        status,
        known_gap=f"llama.cpp {SEEN} {what}",
        gap_status=(seen,) if seen >= 500 else (),
    )


EXPECTED: dict[str, ErrorExpectation] = {
    "prompt_longer_than_context": ErrorExpectation(
        BAD_REQUEST, f"{SEEN} 400 exceed_context_size_error, with n_prompt_tokens and n_ctx"
    ),
    "max_tokens_zero": _gap(BAD_REQUEST, "max_tokens 0 is served (200, one token)"),
    "max_tokens_negative": ErrorExpectation(
        BAD_REQUEST, f'{SEEN} 400 "Value must be between -1 <= value" (-1 means no limit)'
    ),
    "temperature_negative": _gap(
        BAD_REQUEST, "a negative temperature is served as greedy sampling (200), by design"
    ),
    "top_p_above_one": _gap(BAD_REQUEST, "top_p above 1 is served (200)"),
    "top_p_negative": _gap(BAD_REQUEST, "a negative top_p is served (200)"),
    "malformed_json": _gap(BAD_REQUEST, "malformed JSON gets 500 (a JSON parse_error)", seen=500),
    "wrong_content_type": _gap(
        BAD_REQUEST, "the body is parsed as JSON whatever the content type (200)"
    ),
    "form_encoded_body": _gap(
        BAD_REQUEST, "a form-encoded body gets 500 (a JSON parse_error)", seen=500
    ),
    "missing_prompt": ErrorExpectation(BAD_REQUEST, f"{SEEN} 400 \"key 'prompt' not found\""),
    "missing_messages": ErrorExpectation(BAD_REQUEST, f"{SEEN} 400 \"'messages' is required\""),
    "unknown_model": _gap(
        (404,), "an unknown model name is served by the one model (200): model is not checked"
    ),
    "oversized_body": _gap(
        (413, 400), "has no request size limit: a 64 MiB body is read and served (200 in 1.4 s)"
    ),
    "invalid_utf8": _gap(BAD_REQUEST, "ill-formed UTF-8 gets 500 (a JSON parse_error)", seen=500),
    "n_absurd": ErrorExpectation(
        BAD_REQUEST, f"{SEEN} 400 \"'n': Value must be between 1 <= value <= 16\""
    ),
    "logprobs_absurd": _gap(BAD_REQUEST, "an absurd logprobs count is served (200)"),
    "max_tokens_wrong_type": ErrorExpectation(BAD_REQUEST, f"{SEEN} 400 type_error.302"),
    "prompt_wrong_type": ErrorExpectation(BAD_REQUEST, f'{SEEN} 400 "prompt elements must be..."'),
    "body_not_an_object": ErrorExpectation(BAD_REQUEST, f"{SEEN} 400 type_error.304"),
    "empty_body": _gap(BAD_REQUEST, "an empty body gets 500 (a JSON parse_error)", seen=500),
    "chat_empty_messages": _gap(BAD_REQUEST, "an empty conversation is served (200)"),
    "chat_message_without_role": _gap(
        BAD_REQUEST, "a message without a role gets 500 (\"Missing 'role'\")", seen=500
    ),
}


# The keys llama.cpp's ``format_error_response`` writes (tools/server/server-common.cpp),
# and the two a context overflow adds.
BODY_KEYS = frozenset({"code", "message", "type", "n_prompt_tokens", "n_ctx"})


def body_problems(body: Any) -> list[str]:
    """llama.cpp's error body: ``{"error": {"code": int, "message": str, "type": str}}``,
    exactly (OpenAI's without ``param``; a context overflow adds ``n_prompt_tokens`` and
    ``n_ctx``): a body with other keys came from something else (a proxy, another server)."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        keys = ", ".join(sorted(map(str, body))) if isinstance(body, dict) else type(body).__name__
        return [f'expected {{"error": {{...}}}} (got: {keys or "none"})']
    out = []
    if extra := sorted(set(map(str, body["error"])) - BODY_KEYS) + sorted(set(body) - {"error"}):
        out.append(f"keys llama.cpp does not write: {', '.join(extra)}")
    return out + openai_error_body_problems(body, param=False)
