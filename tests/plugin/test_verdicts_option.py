"""``--llmserve-verdicts`` and its ini twin reach the session; a bad value names the valid ones."""

from __future__ import annotations

import pytest

TEST = """
from pytest_llmserve.session import LLMServeSession

def test_mode(request):
    print("MODE", LLMServeSession.of(request.config).settings.verdicts)
"""


def test_sequential_by_default_fixed_by_ini_and_the_command_line_wins(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(TEST)
    pytester.runpytest("-s").stdout.fnmatch_lines(["*MODE sequential*"])
    pytester.makeini("[pytest]\nllmserve_verdicts = fixed\n")
    pytester.runpytest("-s").stdout.fnmatch_lines(["*MODE fixed*"])
    wins = pytester.runpytest("-s", "--llmserve-verdicts=sequential")
    wins.stdout.fnmatch_lines(["*MODE sequential*"])


def test_a_bad_mode_stops_the_session_naming_the_valid_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TEST)
    bad = pytester.runpytest("--llmserve-verdicts=sometimes")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(
        ["*--llmserve-verdicts: 'sometimes' is not valid (valid: sequential, fixed)*"]
    )
