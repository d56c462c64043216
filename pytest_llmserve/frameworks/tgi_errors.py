"""TGI 3.3's answers to the error battery, from its v3.3.7 source (no server was run).

The battery is sent to its OpenAI routes. TGI's own refusals are ``{"error": str,
"error_type": str}`` (router/src/lib.rs ``ErrorResponse``): 422 for validation.
What axum's JSON extractor refuses first, before any TGI code, is answered in plain
text (400 unparsable, 415 wrong content type, 422 a field of the wrong type or
missing, 413 past ``--payload-limit``): not its error schema, so each such case is a
``known_gap`` (reported as xfail on every run, failed once TGI answers in its schema).
Served instead of refused, also known gaps: ``n`` and ``logprobs`` (ignored on
completions). Left out: ``unknown_model`` (any name is served by the base model, as
an unknown LoRA adapter), ``chat_empty_messages`` (depends on the chat template).
tests/golden/tgi/3.3.6-dev0/errors/ names the source of each answer.
"""

from __future__ import annotations

from typing import Any

from pytest_llmserve.frameworks.contract import ErrorExpectation

VALIDATION = (422,)
_PLAIN = "answers axum's plain-text rejection, not its {error, error_type} body"


def _plain(status: int, what: str) -> ErrorExpectation:
    return ErrorExpectation((status,), known_gap=f"TGI 3.3 {_PLAIN}: {what}")


EXPECTED: dict[str, ErrorExpectation] = {
    "prompt_longer_than_context": ErrorExpectation(
        VALIDATION,
        '3.3: 422 validation "`inputs` tokens + `max_new_tokens` must be <= N" '
        "(checked before max_input_tokens)",
    ),
    "max_tokens_zero": ErrorExpectation(
        VALIDATION, '3.3: 422 validation "`max_new_tokens` must be strictly positive"'
    ),
    "temperature_negative": ErrorExpectation(
        VALIDATION, '3.3: 422 validation "`temperature` must be strictly positive"'
    ),
    "top_p_above_one": ErrorExpectation(
        VALIDATION, '3.3: 422 validation "`top_p` must be > 0.0 and < 1.0" (1.0 too)'
    ),
    "top_p_negative": ErrorExpectation(VALIDATION, "3.3: 422, as top_p_above_one"),
    "max_tokens_negative": _plain(422, "max_tokens is a u32"),
    "max_tokens_wrong_type": _plain(422, "max_tokens is a u32"),
    "malformed_json": _plain(400, "the body does not parse"),
    "empty_body": _plain(400, "the body does not parse"),
    "invalid_utf8": _plain(400, "the body does not parse"),
    "wrong_content_type": _plain(415, "only application/json is read"),
    "form_encoded_body": _plain(415, "only application/json is read"),
    "missing_prompt": _plain(422, "a required field is missing"),
    "missing_messages": _plain(422, "a required field is missing"),
    "chat_message_without_role": _plain(422, "a required field is missing"),
    "prompt_wrong_type": _plain(422, "the prompt is a string or strings"),
    "body_not_an_object": _plain(422, "the body is not a request object"),
    "oversized_body": _plain(413, "past --payload-limit (2 MB by default)"),
    "n_absurd": ErrorExpectation(
        (422,), known_gap="TGI 3.3 ignores n on /v1/completions: one completion is served (200)"
    ),
    "logprobs_absurd": ErrorExpectation(
        (422,), known_gap="TGI 3.3 ignores logprobs on /v1/completions: served (200)"
    ),
}


def body_problems(body: Any) -> list[str]:
    """TGI's error body: ``{"error": str, "error_type": str}``, exactly."""
    if not isinstance(body, dict):
        return [f'expected {{"error": str, "error_type": str}}, got {type(body).__name__}']
    out = [f"{key} missing or not a string" for key in ("error", "error_type")
           if not isinstance(body.get(key), str)]  # fmt: skip
    if extra := sorted(set(map(str, body)) - {"error", "error_type"}):
        out.append(f"keys TGI does not write: {', '.join(extra)}")
    return out
