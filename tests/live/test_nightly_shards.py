"""The nightly example's own commands, run as shards against a real PostgreSQL.

``examples/nightly-gate.yml`` is read, and the ``run`` of its shard job and its
verdict job are executed by bash as GitHub would (``-eo pipefail``), with the
workflow's env, the matrix value, and only what a runner here must change: the
database (a throwaway cluster, its password in the secret's variable), the profile
(two llama.cpp targets on the embedded F16 GGUF, a short throughput run), the
markers (``llamacpp``, not ``gpu``) and the test selection (``PYTEST_ADDOPTS``).

Night 1: two shard sessions at once (processes), one run group; the verdict has
nothing earlier to judge against and passes. Night 2: the same, with one target's
batching taken away (``--parallel 1``) in its shard: that shard's own gate fails,
and the night's one verdict names that target's regression and no other.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.history.store import open_store
from pytest_llmserve.models.cache import cache_root
from tests.live.targets import SHORT_THROUGHPUT, checks_toml, llamacpp_toml
from tests.pg_server import running_postgres

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nightly-gate.yml"
CACHE = cache_root()
SHARDS = 2
TARGETS = ("night-a", "night-b")
SLOWED = "night-b"
CHECKS = checks_toml("defaults", SHORT_THROUGHPUT)


def _profile(folder: Path, slowed: str | None) -> None:
    # One thread a server: two servers at once on two cores, each at its own pace (llama.cpp's
    # threads spin while they wait: more threads than cores slow every server many times).
    targets = "".join(
        "\n[[targets]]\n" + llamacpp_toml("embedded:smollm2", name=name, args=[
            "--threads", "1", *(["--parallel", "1"] if name == slowed else [])])
        for name in TARGETS
    )  # fmt: skip
    (folder / "profiles").mkdir(exist_ok=True)
    (folder / "profiles" / "nightly.toml").write_text('name = "nightly"\n' + CHECKS + targets)


def _script(step: dict[str, Any], shard: int | None = None) -> str:
    text = str(step["run"])
    if shard is not None:
        text = text.replace("${{ matrix.shard }}", str(shard))
    left = re.findall(r"\$\{\{[^}]*\}\}", text)
    assert not left, f"the example's step uses expressions this test does not give: {left}"
    return text


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps a runner here can execute: every ``run`` but the package install."""
    return [s for s in job["steps"] if "run" in s and s.get("name") != "Install"]


def _night(flow: dict[str, Any], workdir: Path, env: dict[str, str], group: str
           ) -> tuple[list[int], list[tuple[int, str]]]:  # fmt: skip
    """The shard jobs at once, then the verdict job's steps; their exit codes and outputs."""
    env = {**env, "LLMSERVE_RUN_GROUP": group}
    [gate] = _steps(flow["jobs"]["shard"])
    shards = [
        subprocess.Popen(["bash", "-eo", "pipefail", "-c", _script(gate, k)], cwd=workdir,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for k in range(1, SHARDS + 1)
    ]  # fmt: skip
    codes = []
    for k, proc in enumerate(shards, 1):
        out, _ = proc.communicate(timeout=600)
        codes.append(proc.returncode)
        print(f"----- {group} shard {k}/{SHARDS}: exit {proc.returncode} -----\n{out[-1500:]}")
    verdict = []
    for step in _steps(flow["jobs"]["verdict"]):
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", _script(step)], cwd=workdir,
                              env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        print(f"----- {group} verdict: {step['name']}: exit {done.returncode} -----\n"
              f"{done.stdout}{done.stderr}")  # fmt: skip
        verdict.append((done.returncode, done.stdout + done.stderr))
    return codes, verdict


def test_the_nightly_example_runs_as_shards_with_one_verdict(
    f16_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    yaml = pytest.importorskip("yaml")
    flow = yaml.safe_load(EXAMPLE.read_text())
    with running_postgres() as pg:
        # The example's own variable for the password, as its secret would set it.
        uri = pg.uri.replace(pg.password_env, "LLMSERVE_DB_PASSWORD")
        env = {
            **os.environ,
            **{k: str(v) for k, v in flow["env"].items()},
            # The job's `pytest` and `llmserve` are this environment's, as after its install.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "LLMSERVE_HISTORY": uri,
            "LLMSERVE_DB_PASSWORD": pg.password,  # what the workflow's secret gives
            "LLMSERVE_MARKERS": "llamacpp",
            "SHARDS": str(SHARDS),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "PYTEST_ADDOPTS": f"-k test_output_throughput_floor -p no:randomly "
                              f"-p no:cacheprovider --llmserve-cache-dir={CACHE}",
        }  # fmt: skip
        env.pop("CI", None)  # the example's own pytest sessions, not this project's CI
        _profile(tmp_path, slowed=None)
        began = time.monotonic()
        codes, verdict = _night(flow, tmp_path, env, "night-1")
        night1_s = time.monotonic() - began
        assert codes == [0] * SHARDS
        assert [code for code, _ in verdict] == [0, 0]
        assert (tmp_path / "reports" / "nightly.html").exists()

        _profile(tmp_path, slowed=SLOWED)
        began = time.monotonic()
        codes, verdict = _night(flow, tmp_path, env, "night-2")
        night2_s = time.monotonic() - began
        with capsys.disabled():  # the figures the closing note gives, in CI's log too
            print(f"\nnightly shards: PostgreSQL started in {pg.start_s:.1f} s; "
                  f"night 1 ({SHARDS} shards at once + verdict) {night1_s:.0f} s, "
                  f"night 2 {night2_s:.0f} s")  # fmt: skip
        assert sorted(codes) == [0] * (SHARDS - 1) + [1], "only the slowed shard's gate fails"
        (report_code, _), (compare_code, compared) = verdict
        assert report_code == 0
        assert compare_code == 1, "the night's verdict missed the planted regression"
        shards = ", ".join(f"{k}/{SHARDS}" for k in range(1, SHARDS + 1))
        rows = [line for line in compared.splitlines() if line.startswith(TARGETS)]
        regressed = {line.split()[0] for line in rows if "REGRESSION" in line}
        assert regressed == {SLOWED}
        assert f"run group night-2: {len(TARGETS)} target(s) from shard(s) {shards}" in compared

        monkeypatch.setenv("LLMSERVE_DB_PASSWORD", pg.password)  # this process's own look
        store = open_store(uri, tmp_path)
        assert store is not None
        night2 = store.records_in_group("night-2")
        assert sorted(r.target for r in night2) == sorted(TARGETS)
        assert {r.profile["shard"] for r in night2} == {
            f"{k}/{SHARDS}" for k in range(1, SHARDS + 1)
        }
        # The password reached the store through the variable alone: no artefact has it.
        for artefact in (tmp_path / "reports").glob("*.html"):
            assert pg.password not in artefact.read_text()
        assert pg.password not in "".join(r.to_json() for r in night2)
        assert pg.password not in (tmp_path / "summary.md").read_text()
