"""``transformers serve``'s answers to the error battery (FastAPI's ``{"detail": ...}`` body).

The honest expectation for every case is a 4xx: FastAPI's 422 for a body it cannot
validate, 400 for the handler's own refusals. Notes say what transformers 5.19 on
CPU (continuous batching, SmolLM2-135M) answered, each case on a fresh server:

- it accepts out-of-range sampling values and ignores fields it does not use
  (200): declared as known gaps, so they show as xfail until fixed;
- a prompt-less completion kills its continuous-batching worker ("cannot reshape
  tensor of 0 elements"): every later request gets 503 until a restart. A 5xx is
  never a gap here: the suite fails it, and it must;
- ``max_tokens = 0`` and a prompt of twice the context hang (no answer in 30 s);
- a chat request without messages, with an empty list or a role-less message, and
  ``max_tokens = "ten"``, get a bare 500 "Internal Server Error".
"""

from __future__ import annotations

from pytest_llmserve.frameworks.contract import ErrorExpectation

REFUSED = (400, 422)


def _accepted(what: str) -> ErrorExpectation:
    return ErrorExpectation(REFUSED, known_gap=f"transformers 5.19 accepts {what} (200)")


EXPECTED: dict[str, ErrorExpectation] = {
    "prompt_longer_than_context": ErrorExpectation(REFUSED, "5.19: no answer in 30 s (hangs)"),
    "max_tokens_zero": ErrorExpectation(REFUSED, "5.19: no answer in 30 s (hangs)"),
    "max_tokens_negative": _accepted("max_tokens = -5, answering no text"),
    "temperature_negative": _accepted("temperature = -1"),
    "top_p_above_one": _accepted("top_p = 1.5"),
    "top_p_negative": _accepted("top_p = -0.5"),
    "malformed_json": ErrorExpectation((422,), "5.19: 422 json_invalid"),
    "wrong_content_type": ErrorExpectation((422,), "5.19: 422 (FastAPI reads no JSON body)"),
    "form_encoded_body": ErrorExpectation((422,), "5.19: 422, as wrong_content_type"),
    "missing_prompt": ErrorExpectation(
        REFUSED, "5.19: its continuous-batching worker dies; 503 to every request after"
    ),
    "missing_messages": ErrorExpectation(REFUSED, '5.19: 500 "Internal Server Error"'),
    "unknown_model": ErrorExpectation((400,), '5.19: 400 "Server is pinned to ..."'),
    "oversized_body": _accepted("a 64 MiB body (its unused field ignored)"),
    "invalid_utf8": ErrorExpectation((400,), '5.19: 400 "There was an error parsing the body"'),
    "n_absurd": _accepted("n = 100000 (n is ignored)"),
    "logprobs_absurd": _accepted("logprobs = 100000 (logprobs are ignored)"),
    "max_tokens_wrong_type": ErrorExpectation(REFUSED, '5.19: 500 "Internal Server Error"'),
    "prompt_wrong_type": ErrorExpectation((400,), '5.19: 400 "prompt must be a string."'),
    "body_not_an_object": ErrorExpectation((422,), "5.19: 422 dict_type"),
    "empty_body": ErrorExpectation((422,), "5.19: 422 body Field required"),
    "chat_empty_messages": ErrorExpectation(REFUSED, '5.19: 500 "Internal Server Error"'),
    "chat_message_without_role": ErrorExpectation(REFUSED, '5.19: 500 "Internal Server Error"'),
}
