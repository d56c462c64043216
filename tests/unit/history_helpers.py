"""Records made by hand for the history tests (no session, no server)."""

from __future__ import annotations

from typing import Any

from pytest_llmserve.checklist.results import CheckOutcome, Figure, TargetResults
from pytest_llmserve.history.record import RunRecord, build_record
from pytest_llmserve.profile.model import Profile, Target

MACHINE: dict[str, Any] = {"cpu_model": "Test CPU", "cpus_usable": 2, "gpu_names": []}


def target(name: str = "t1", **changes: Any) -> Target:
    fields: dict[str, Any] = {
        "name": name,
        "framework": "vllm",
        "model": "embedded:smollm2",
        "precision": "bf16",
    }
    fields.update(changes)
    return Target(**fields)


def record(
    run_id: str,
    tok_s: float | None = 100.0,
    half: float | None = 5.0,
    name: str = "t1",
    created: float = 1.0,
    machine: dict[str, Any] | None = None,
    version: str = "0.32.0",
    group: str | None = None,
    shard: str | None = None,
    **figures: Figure,
) -> RunRecord:
    results = TargetResults(name)
    if tok_s is not None:
        interval = (tok_s - half, tok_s + half) if half is not None else None
        results.add(Figure("output_tok_s", tok_s, "tok/s", 10, interval, "higher"))
    results.add(*figures.values())
    results.checks.append(CheckOutcome("test_output_throughput_floor", "pass"))
    t = target(name)
    return build_record(
        run_id=run_id,
        target=t,
        results=results,
        server={"ready_s": 30.0},
        framework_version=version,
        model_path=None,
        machine=machine or MACHINE,
        project={"commit": "abc", "dirty": False},
        profile=Profile("test", "test", (t,)),
        created=created,
        run_group=group,
        shard=shard,
    )
