"""The error battery's cases and checks, against a stub server that misbehaves on request."""

from __future__ import annotations

import json
import time

import pytest

from pytest_llmserve.checklist import error_battery as eb
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.base import ApiPaths
from pytest_llmserve.frameworks.openai_compat import OpenAICompatible
from pytest_llmserve.frameworks.vllm import VLLM
from tests.stubs.misbehaving import MODEL, Faults, serve

VLLM_ = VLLM()
CTX = eb.Context(MODEL, 64, VLLM_.paths)
error_body_problems = VLLM_.error_body_problems


def at(url: str) -> Endpoint:
    return Endpoint(url, MODEL, VLLM_)


def test_at_least_twelve_distinct_cases_and_vllm_declares_each() -> None:
    ids = [c.id for c in eb.CASES]
    assert len(ids) >= 12
    assert len(set(ids)) == len(ids)
    assert set(VLLM().error_expectations()) == set(ids)
    assert all(s < 500 for e in VLLM().error_expectations().values() for s in e.status)


def test_case_lookup_names_the_valid_ids() -> None:
    assert eb.case("malformed_json").id == "malformed_json"
    with pytest.raises(KeyError, match="valid: prompt_longer_than_context"):
        eb.case("nope")


def test_bodies_are_what_each_case_says() -> None:
    built = {c.id: c.build(CTX) for c in eb.CASES}
    with pytest.raises(json.JSONDecodeError):
        json.loads(built["malformed_json"].body)
    with pytest.raises(UnicodeDecodeError):
        built["invalid_utf8"].body.decode("utf-8")
    assert len(built["oversized_body"].body) == eb.OVERSIZED_BYTES
    assert json.loads(built["oversized_body"].body)["model"] == MODEL
    assert built["wrong_content_type"].headers["Content-Type"] == "text/plain"
    assert json.loads(built["max_tokens_zero"].body)["max_tokens"] == 0
    assert json.loads(built["unknown_model"].body)["model"] != MODEL
    assert "prompt" not in json.loads(built["missing_prompt"].body)
    too_long = json.loads(built["prompt_longer_than_context"].body)["prompt"]
    assert len(too_long.split()) > 2 * CTX.max_model_len
    assert built["empty_body"].body == b""


def test_a_clean_refusal_passes() -> None:
    with serve() as url:
        for c in eb.CASES:
            if c.id == "oversized_body":
                continue  # 64 MiB through a stub: covered by the live suite
            answer = eb.send(at(url), c.build(CTX), timeout_s=c.timeout_s(5))
            assert eb.problems(answer, (400,), error_body_problems) == [], c.id
        assert eb.server_still_serves(at(url)) == []


def test_a_5xx_for_bad_input_fails() -> None:
    with serve(Faults(error_status=500)) as url:
        answer = eb.send(at(url), eb.case("max_tokens_zero").build(CTX), timeout_s=5)
    found = eb.problems(answer, (400,), error_body_problems)
    assert found == ["server error 500 for bad input (a 4xx was expected)"]


def test_another_4xx_than_documented_fails() -> None:
    with serve(Faults(error_status=422)) as url:
        answer = eb.send(at(url), eb.case("top_p_above_one").build(CTX), timeout_s=5)
    assert eb.problems(answer, (400,), error_body_problems) == ["status 422, documented 400"]


def test_a_hang_fails_within_the_timeout() -> None:
    with serve(Faults(hang_s=3)) as url:
        began = time.perf_counter()
        answer = eb.send(at(url), eb.case("malformed_json").build(CTX), timeout_s=0.5)
        assert time.perf_counter() - began < 2
    assert answer.status is None
    assert eb.problems(answer, (400,), error_body_problems) == ["no answer within 0.5 s (hung)"]


def test_an_error_body_outside_the_schema_fails() -> None:
    with serve(Faults(flat_error=True)) as url:
        answer = eb.send(at(url), eb.case("missing_prompt").build(CTX), timeout_s=5)
    found = eb.problems(answer, (400,), error_body_problems)
    assert len(found) == 1
    assert "error body: neither" in found[0]
    assert "keys: detail" in found[0]


def test_a_dead_server_afterwards_fails() -> None:
    with serve() as url:
        pass
    found = eb.server_still_serves(at(url), timeout_s=2)
    assert found
    assert "unreachable afterwards" in found[0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"message": "m", "type": "BadRequestError", "param": None, "code": 400}}, []),
        ({"object": "error", "message": "m", "type": "t", "param": None, "code": 400}, []),
        ({"error": {"message": "", "type": "t", "param": None, "code": 400}},
         ["error.message missing or empty"]),
        ({"error": {"message": "m", "type": "t", "code": "400"}},
         ["error.param missing", "error.code missing or not an integer"]),
        (["x"], ["expected a JSON object, got list"]),
    ],
)  # fmt: skip
def test_vllm_error_schema(body: object, expected: list[str]) -> None:
    assert error_body_problems(body) == expected


class _Prefixed(OpenAICompatible):
    """An OpenAI-compatible server behind a path prefix: the cases follow its paths."""

    paths = ApiPaths(completions="/api/v1/completions", chat="/api/v1/chat/completions")


def test_cases_are_sent_to_the_frameworks_own_paths() -> None:
    ctx = eb.Context(MODEL, 64, _Prefixed().paths)
    built = {c.id: c.build(ctx) for c in eb.CASES}
    chat = {"missing_messages", "chat_empty_messages", "chat_message_without_role"}
    assert {r.path for i, r in built.items() if i in chat} == {"/api/v1/chat/completions"}
    assert {r.path for i, r in built.items() if i not in chat} == {"/api/v1/completions"}
