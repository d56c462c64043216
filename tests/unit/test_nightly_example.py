"""The nightly-gate example parses and does what its comment promises."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nightly-gate.yml"


def test_the_example_runs_gpu_suites_keeps_history_uploads_the_report() -> None:
    yaml = pytest.importorskip("yaml")
    flow = yaml.safe_load(EXAMPLE.read_text())
    steps = flow["jobs"]["gate"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    run = "\n".join(s.get("run", "") for s in steps)
    assert any(u.startswith("actions/cache/restore") for u in uses)
    save = next(s for s in steps if s.get("uses", "").startswith("actions/cache/save"))
    assert save["if"] == "always()"
    assert any(u.startswith("actions/upload-artifact") for u in uses)
    # The suites installed with the package: the user's repository has no suites/ folder.
    assert "pytest --pyargs pytest_llmserve.suites -m gpu" in run
    assert "pytest suites/" not in run
    install = next(s["run"] for s in steps if s.get("name") == "Install")
    assert "pytest-llmserve" in install
    assert "--llmserve-fail-on output_tok_s:-5%" in run
    assert "--llmserve-report" in run
    from pytest_llmserve.history.compare import parse_rule

    for token in run.split():
        if ":" in token and token.endswith("%"):
            parse_rule(token)  # every rule in the example is valid
