"""SGLang 0.5.23's answers to the error battery, from its source (no server was run).

Its body is OpenAI's older flat form, ``{"object": "error", "message", "type",
"param": null, "code"}`` (``srt/entrypoints/openai/protocol.py`` ``ErrorResponse``):
``type`` "Bad Request" where FastAPI's request validation refused the body (SGLang's
handler turns it into 400, never FastAPI's 422), "BadRequestError" where its own
checks or the sampling parameters did. The statuses were read in SGLang's code and,
for the validation cases, seen from its request models and handlers run in a FastAPI
app (tests/golden/sglang/0.5.23/errors/ names each source). Left out, so never sent:
``unknown_model`` (any name is served: there is no model check), ``n_absurd`` and
``logprobs_absurd`` (no bound: the first fans out into that many requests, the second
can take the scheduler down), ``oversized_body`` (no limit found), and
``max_tokens_wrong_type`` (not traced).
"""

from __future__ import annotations

from pytest_llmserve.frameworks.contract import ErrorExpectation

BAD_REQUEST = (400,)
_VALIDATION = "0.5.23: 400 type 'Bad Request' (request validation, RequestValidationError handler)"

EXPECTED: dict[str, ErrorExpectation] = {
    "prompt_longer_than_context": ErrorExpectation(
        BAD_REQUEST,
        '0.5.23: 400 BadRequestError "The input (N tokens) is longer than the '
        "model's context length (C tokens).\" (tokenizer_manager.py)",
    ),
    "max_tokens_zero": ErrorExpectation(
        BAD_REQUEST, "0.5.23: 400 'Bad Request' \"max_tokens must be positive\" (protocol.py)"
    ),
    "max_tokens_negative": ErrorExpectation(BAD_REQUEST, "0.5.23: 400, as max_tokens_zero"),
    "temperature_negative": ErrorExpectation(
        BAD_REQUEST,
        '0.5.23: 400 BadRequestError "temperature must be a non-negative finite '
        'number" (sampling_params.py)',
    ),
    "top_p_above_one": ErrorExpectation(
        BAD_REQUEST, '0.5.23: 400 BadRequestError "top_p must be in (0, 1]" (sampling_params.py)'
    ),
    "top_p_negative": ErrorExpectation(BAD_REQUEST, "0.5.23: 400, as top_p_above_one"),
    "malformed_json": ErrorExpectation(BAD_REQUEST, f"{_VALIDATION}: json_invalid"),
    "wrong_content_type": ErrorExpectation(
        BAD_REQUEST,
        "0.5.23: 400 'Bad Request' \"Unsupported Media Type: Only "
        "'application/json' is allowed\" (validate_json_request; not 415)",
    ),
    "form_encoded_body": ErrorExpectation(BAD_REQUEST, "0.5.23: 400, as wrong_content_type"),
    "missing_prompt": ErrorExpectation(BAD_REQUEST, f"{_VALIDATION}: body.prompt missing"),
    "missing_messages": ErrorExpectation(BAD_REQUEST, f"{_VALIDATION}: body.messages missing"),
    "invalid_utf8": ErrorExpectation(
        BAD_REQUEST,
        f"{_VALIDATION}: json_invalid (orjson; 0.5.15 and older answered "
        'FastAPI\'s own {"detail": ...})',
    ),
    "prompt_wrong_type": ErrorExpectation(BAD_REQUEST, f"{_VALIDATION}: 4 union errors"),
    "body_not_an_object": ErrorExpectation(BAD_REQUEST, f"{_VALIDATION}: model_attributes_type"),
    "empty_body": ErrorExpectation(BAD_REQUEST, f"{_VALIDATION}: body missing"),
    "chat_empty_messages": ErrorExpectation(
        BAD_REQUEST, '0.5.23: 400 BadRequestError "Messages cannot be empty." (serving_chat.py)'
    ),
    "chat_message_without_role": ErrorExpectation(
        BAD_REQUEST, f"{_VALIDATION}: messages.0 role missing"
    ),
}
