"""Error handling: every bad input is refused with the framework's documented 4xx, never a
5xx or a hang, with an error body in its schema, and the server serves on afterwards.

The bad inputs are framework-neutral (``checklist.error_battery.CASES``), sent to the
paths the framework serves; what each framework answers is declared in its own
module (``error_expectations``).
"""

from __future__ import annotations

import pytest

from pytest_llmserve.checklist import error_battery as eb
from pytest_llmserve.checklist.results import Figure, TargetResults
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.client.openai import OpenAIClient
from pytest_llmserve.profile.contract_checks import error_checks
from pytest_llmserve.profile.model import Target


def _context(target: Target, endpoint: Endpoint, client: OpenAIClient) -> eb.Context:
    # A framework whose models path does not list its model says nothing there.
    cards = {m["id"]: m for m in client.models()} if endpoint.framework.lists_served_model else {}
    length = cards.get(endpoint.served_name, {}).get("max_model_len") or target.max_model_len
    if not length:
        pytest.skip("the server reports no context length and the target sets no max_model_len")
    return eb.Context(endpoint.served_name, int(length), endpoint.framework.paths)


@pytest.mark.parametrize("case", eb.CASES, ids=lambda c: c.id)
def test_bad_input_is_refused_cleanly(
    case: eb.Case,
    llm_target: Target,
    llm_endpoint: Endpoint,
    llm_client: OpenAIClient,
    llm_results: TargetResults,
) -> None:
    framework = llm_endpoint.framework
    expected = framework.error_expectations().get(case.id)
    if expected is None:
        pytest.skip(f"{framework.name} documents no answer for {case.id}")
    spec = error_checks(llm_target.checks, f"target {llm_target.name}")
    timeout_s = case.timeout_s(spec.timeout_s)
    request = case.build(_context(llm_target, llm_endpoint, llm_client))

    answer = eb.send(llm_endpoint, request, timeout_s)
    llm_results.add(
        Figure(f"error_{case.id}_status", answer.status, "HTTP status",
               definition=f"status for {case.what}", note=answer.error),
        Figure(f"error_{case.id}_s", answer.seconds, "s",
               definition=f"request sent -> answer (or timeout) for {case.what}"),
    )  # fmt: skip
    problems = eb.problems(answer, expected.status, framework.error_body_problems)
    unsafe = answer.status is None or (
        answer.status >= 500 and answer.status not in expected.gap_status
    )
    afterwards = eb.server_still_serves(llm_endpoint)
    shown = (
        f"\nrequest: {request.describe()}\nanswer: {answer.status} in {answer.seconds:.2f} s: "
        f"{answer.raw[:300]}"
    )
    # Never acceptable: a hang, a server hurt by the input, a 5xx no known gap declares.
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
