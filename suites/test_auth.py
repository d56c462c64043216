"""Auth: a target with an API key (profile ``api_key_env``) refuses requests without
it or with a wrong one (401) and serves them with it; what the endpoints its
framework leaves open on purpose (``open_paths``: health, metrics, models,
tokenize...) answer without a key is reported, not judged. Targets without a key skip.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_llmserve.checklist import auth as auth_check
from pytest_llmserve.checklist.results import Figure, TargetResults
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.profile.model import Target

Judge = Callable[..., None]


@pytest.fixture
def probed(llm_target: Target, llm_endpoint: Endpoint) -> auth_check.AuthProbe:
    if not llm_target.api_key():
        pytest.skip(f"target {llm_target.name} sets no api_key_env: the server takes no API key")
    return auth_check.probe(llm_endpoint)


def test_requests_need_the_api_key(
    probed: auth_check.AuthProbe, llm_results: TargetResults, llm_judge: Judge
) -> None:
    post = probed.path
    llm_results.add(
        Figure("auth_without_key_status", probed.without_key, "HTTP status",
               definition=f"POST {post} without Authorization"),
        Figure("auth_wrong_key_status", probed.wrong_key, "HTTP status",
               definition=f"POST {post} with a random wrong bearer key"),
        Figure("auth_with_key_status", probed.with_key, "HTTP status",
               definition=f"POST {post} with the target's key"),
    )  # fmt: skip
    llm_judge(*auth_check.auth_verdicts(probed))


def test_endpoints_open_without_key_are_reported(
    probed: auth_check.AuthProbe, llm_results: TargetResults
) -> None:
    for path, status in probed.unguarded.items():
        name = path.strip("/").replace("/", "_")
        note = "answers without a key" if status < 400 else "guarded"
        definition = f"{path} without a key (reported, not judged)"
        llm_results.add(
            Figure(
                f"auth_open_{name}_status", status, "HTTP status", definition=definition, note=note
            )
        )
