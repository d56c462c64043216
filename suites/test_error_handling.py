"""Error handling: every bad input is refused with the framework's documented 4xx, never a
5xx or a hang, with an error body in its schema, and the server serves on afterwards.

The bad inputs are framework-neutral (``checklist.error_battery.CASES``); what each
framework answers is declared in its own module (``error_expectations``).
"""

from __future__ import annotations

import pytest

from pytest_llmserve.checklist import error_battery as eb
from pytest_llmserve.checklist.results import Figure, TargetResults
from pytest_llmserve.client.openai import OpenAIClient
from pytest_llmserve.frameworks import registry
from pytest_llmserve.launch.auth import auth_headers
from pytest_llmserve.launch.server import Server
from pytest_llmserve.profile.contract_checks import error_checks


def _context(server: Server, client: OpenAIClient) -> eb.Context:
    cards = {m["id"]: m for m in client.models()}
    length = cards.get(server.served_name, {}).get("max_model_len") or server.target.max_model_len
    if not length:
        pytest.skip("the server reports no context length and the target sets no max_model_len")
    return eb.Context(server.served_name, int(length))


@pytest.mark.parametrize("case", eb.CASES, ids=lambda c: c.id)
def test_bad_input_is_refused_cleanly(
    case: eb.Case, llm_server: Server, llm_client: OpenAIClient, llm_results: TargetResults
) -> None:
    framework = registry.get(llm_server.target.framework)
    expected = framework.error_expectations().get(case.id)
    if expected is None:
        pytest.skip(f"{framework.name} documents no answer for {case.id}")
    spec = error_checks(llm_server.target.checks, f"target {llm_server.target.name}")
    timeout_s = case.timeout_s(spec.timeout_s)
    request = case.build(_context(llm_server, llm_client))

    auth = auth_headers(llm_server.target)
    answer = eb.send(llm_server.base_url, request, timeout_s, auth)
    llm_results.add(
        Figure(f"error_{case.id}_status", answer.status, "HTTP status",
               definition=f"status for {case.what}", note=answer.error),
        Figure(f"error_{case.id}_s", answer.seconds, "s",
               definition=f"request sent -> answer (or timeout) for {case.what}"),
    )  # fmt: skip
    problems = eb.problems(answer, expected.status, framework.error_body_problems)
    unsafe = answer.status is None or answer.status >= 500
    afterwards = eb.server_still_serves(
        llm_server.base_url, llm_server.served_name, framework.health_path, auth=auth
    )
    shown = (
        f"\nrequest: {request.describe()}\nanswer: {answer.status} in {answer.seconds:.2f} s: "
        f"{answer.raw[:300]}"
    )
    # Never acceptable, known gap or not: a 5xx, a hang, a server hurt by the input.
    hard = (problems if unsafe else []) + afterwards
    assert not hard, f"{case.what}: " + "; ".join(hard) + shown
    if expected.known_gap:
        if problems:
            pytest.xfail(f"known {framework.name} gap: {expected.known_gap}")
        pytest.fail(
            f"{case.what}: {framework.name}'s table declares a known gap ({expected.known_gap}) "
            f"but the server now answers as documented: update the table" + shown,
            pytrace=False,
        )
    assert not problems, (
        f"{case.what}: " + "; ".join(problems) + shown
        + (f"\n{framework.name} notes: {expected.note}" if expected.note else "")
    )  # fmt: skip
