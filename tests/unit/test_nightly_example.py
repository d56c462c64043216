"""The nightly-gate example parses and has the shape its comment promises.

``tests/live/test_nightly_shards.py`` runs its commands against a real PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.history.compare import parse_compare, parse_rule

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nightly-gate.yml"


@pytest.fixture
def flow() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    loaded: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return loaded


def _run(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in job["steps"])


def test_a_matrix_of_shards_then_one_verdict(flow: dict[str, Any]) -> None:
    shard, verdict = flow["jobs"]["shard"], flow["jobs"]["verdict"]
    matrix = shard["strategy"]["matrix"]["shard"]
    assert matrix == list(range(1, len(matrix) + 1))
    assert flow["env"]["SHARDS"] == str(len(matrix))
    assert shard["strategy"]["fail-fast"] is False
    assert verdict["needs"] == "shard"
    assert verdict["if"] == "always()"  # a failed shard still gets its verdict
    run = _run(shard)
    # The suites installed with the package: the user's repository has no suites/ folder.
    assert "pytest --pyargs pytest_llmserve.suites" in run
    assert '--llmserve-shard "${{ matrix.shard }}/$SHARDS"' in run
    assert '--llmserve-run-group "$LLMSERVE_RUN_GROUP"' in run
    assert 'history compare --group "$LLMSERVE_RUN_GROUP"' in _run(verdict)
    assert 'report --group "$LLMSERVE_RUN_GROUP"' in _run(verdict)
    assert flow["defaults"]["run"]["shell"] == "bash"  # pipefail: `| tee` hides no failure


def test_the_history_is_postgresql_with_the_password_by_name(flow: dict[str, Any]) -> None:
    uri = flow["env"]["LLMSERVE_HISTORY"]
    assert uri.startswith("postgresql://")
    assert "password_env=LLMSERVE_DB_PASSWORD" in uri
    assert ":" not in uri.split("://")[1].split("@")[0]  # no password in the URI
    for job in flow["jobs"].values():
        assert job["env"]["LLMSERVE_DB_PASSWORD"] == "${{ secrets.LLMSERVE_DB_PASSWORD }}"
        install = next(s["run"] for s in job["steps"] if s.get("name") == "Install")
        assert "postgres" in install


def test_every_rule_and_mode_in_the_example_is_valid(flow: dict[str, Any]) -> None:
    parse_compare(flow["env"]["LLMSERVE_COMPARE"])
    rules = [t for job in flow["jobs"].values() for t in _run(job).split()
             if ":" in t and t.endswith("%")]  # fmt: skip
    assert len(rules) == 8
    for token in rules:
        parse_rule(token)
    shard_rules = [t for t in _run(flow["jobs"]["shard"]).split() if t.endswith("%")]
    verdict_rules = [t for t in _run(flow["jobs"]["verdict"]).split() if t.endswith("%")]
    assert shard_rules == verdict_rules  # the night is judged as each shard judged itself
