"""The error-handling suite as CI runs it, against a stub endpoint that misbehaves.

The suite file itself runs (through pytester, the stub as an external target), so
these show the suite's own tests fail, with a message naming the fault, when a
server answers bad input with a 5xx, hangs, or answers outside the error schema.
The inner session runs in a subprocess: in-process, pytester's module snapshot
gives it a second httpcore whose timeouts the outer httpx would not recognise.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tests.stubs.misbehaving import MODEL, Faults, serve

SUITE = Path(__file__).parents[2] / "suites" / "test_error_handling.py"
CASES = "max_tokens_zero or malformed_json or missing_prompt"


def _run(
    pytester: pytest.Pytester, url: str, *args: str, framework: str = "vllm"
) -> pytest.RunResult:
    profile = pytester.makefile(".toml", profile=textwrap.dedent(f"""
        [[targets]]
        name = "stub"
        framework = "{framework}"
        model = "{MODEL}"
        precision = "bf16"
        launcher = "external"
        url = "{url}"
        served_name = "{MODEL}"
        startup_timeout_s = 5
        [targets.checks.errors]
        timeout_s = 1
    """))  # fmt: skip
    shutil.copy(SUITE, pytester.path / SUITE.name)
    return pytester.runpytest_subprocess(
        SUITE.name, f"--llmserve-profile={profile}", "-p", "no:randomly", "-k", CASES, *args
    )


def test_a_well_behaved_server_passes(pytester: pytest.Pytester) -> None:
    with serve() as url:
        result = _run(pytester, url)
    result.assert_outcomes(passed=3)


def test_a_5xx_for_bad_input_fails_the_suite(pytester: pytest.Pytester) -> None:
    with serve(Faults(error_status=500)) as url:
        result = _run(pytester, url)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*max_tokens = 0: server error 500 for bad input*"])


def test_a_5xx_is_a_known_gap_only_where_the_table_declares_that_5xx(
    pytester: pytest.Pytester,
) -> None:
    """llama.cpp's table declares its 500 for malformed JSON (xfail), not for max_tokens = 0
    (a 200 gap) nor for a missing prompt (no gap): there a 500 still fails."""
    with serve(Faults(error_status=500)) as url:
        result = _run(pytester, url, "-rxf", framework="llamacpp")
    result.assert_outcomes(failed=2, xfailed=1)
    result.stdout.fnmatch_lines(["*XFAIL*malformed_json*known llamacpp gap*500*"])


def test_a_hang_fails_the_suite_within_the_timeout(pytester: pytest.Pytester) -> None:
    with serve(Faults(hang_s=3)) as url:
        result = _run(pytester, url, "-k", "malformed_json")  # the last -k wins
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*body cut off mid-JSON: no answer within *s (hung)*"])


def test_an_error_body_outside_the_schema_fails_the_suite(pytester: pytest.Pytester) -> None:
    with serve(Faults(flat_error=True)) as url:
        result = _run(pytester, url)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(['*error body: neither {"error": {...}}*(keys: detail)*'])


def test_a_known_gap_is_an_xfail_never_a_pass(pytester: pytest.Pytester) -> None:
    """vLLM's table declares invalid_utf8's FastAPI body a known gap: reported, not passed."""
    with serve(Faults(flat_error=True)) as url:
        result = _run(pytester, url, "-k", "invalid_utf8", "-rx")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["*known vllm gap: vLLM 0.32 answers 400 with FastAPI*"])


def test_a_known_gap_that_is_gone_fails_until_the_table_is_updated(
    pytester: pytest.Pytester,
) -> None:
    with serve() as url:
        result = _run(pytester, url, "-k", "invalid_utf8")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*declares a known gap*now answers as documented*"])


def test_a_5xx_fails_even_where_a_gap_is_known(pytester: pytest.Pytester) -> None:
    with serve(Faults(error_status=500)) as url:
        result = _run(pytester, url, "-k", "invalid_utf8")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*server error 500 for bad input*"])
