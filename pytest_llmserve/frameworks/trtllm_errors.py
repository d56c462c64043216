"""TensorRT-LLM 1.2.1's answers to the error battery, from its source (no server was run).

Its handlers answer an exception with OpenAI's older flat body, ``{"object": "error",
"message", "type": "BadRequestError", "param": null, "code": 400}`` (``serve/openai_server.py``
``create_error_response`` over ``openai_protocol.py`` ``ErrorResponse``, the same in the
2025 and the early-2026 source). Only the cases whose 1.2.x status *and* body the
sources pin are listed; every other case is left out, so the suite skips it rather than
guess:

- the request-validation cases (``malformed_json``, ``missing_prompt``,
  ``missing_messages``, ``prompt_wrong_type``, ``empty_body``, ``max_tokens_wrong_type``,
  ``chat_message_without_role``): 400 in every source, but the body changed between
  them (the 2025 server answered the flat body above, the early-2026 one
  ``{"error": str(exc)}``), and which of the two 1.2.1 ships is not pinned;
- ``wrong_content_type``, ``form_encoded_body``, ``body_not_an_object``: only inferred
  (a 500 from the before-validators' ``data.get`` on raw bytes or a list), from newer code;
- ``invalid_utf8``: FastAPI's own ``{"detail": ...}`` is a guess for this version;
- ``temperature_negative``, ``top_p_above_one``, ``top_p_negative``,
  ``max_tokens_negative``: no bounds in the request model, and the sources disagree on
  what the engine does (TRT-LLM's own late-2025 negative tests expect 400 for chat,
  an open 2026 PR says such values crash the server);
- ``chat_empty_messages``: passes the schema; 400 or 200 depends on the chat template;
- ``unknown_model`` (any name is served: no model check), ``n_absurd`` (the PyTorch
  backend's "Multiple response is not supported" 400 was removed around 1.2),
  ``logprobs_absurd`` and ``oversized_body`` (no limit traced for 1.2).
"""

from __future__ import annotations

from pytest_llmserve.frameworks.contract import ErrorExpectation

BAD_REQUEST = (400,)

EXPECTED: dict[str, ErrorExpectation] = {
    "prompt_longer_than_context": ErrorExpectation(
        BAD_REQUEST,
        '1.2.x: 400 BadRequestError "`default_max_tokens` (N) must be greater '
        'than 0" (executor base_worker _deduce_max_tokens: max_seq_len - prompt length '
        "< 1; the handler's except → create_error_response)",
    ),
    "max_tokens_zero": ErrorExpectation(
        BAD_REQUEST,
        '1.2.x: 400 BadRequestError ("`max_tokens` (0) must be greater than 0"; '
        "late-2025 builds: an 'Assertion failed' message, TRT-LLM PR #8580's negative test)",
    ),
}
