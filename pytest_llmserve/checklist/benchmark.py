"""Load runs as pytest-benchmark entries, so its autosave, compare and CLI work on them.

pytest-benchmark times a callable with its timer. Our samples are already
measured (per-request E2E latencies), so the test gets a replaying timer through
the public ``benchmark(timer=...)`` marker, and ``pedantic`` runs one round per
sample: each round reads back exactly one measured duration.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from pytest_llmserve.checklist.performance import Measured


class ReplayTimer:
    """A clock while idle; while loaded, returns 0 then d for each recorded duration d."""

    def __init__(self) -> None:
        self._queue: deque[float] = deque()

    def load(self, durations: list[float]) -> None:
        self._queue.clear()
        for d in durations:
            self._queue.extend((0.0, d))

    def clear(self) -> None:
        self._queue.clear()

    def __call__(self) -> float:
        return self._queue.popleft() if self._queue else time.perf_counter()

    def __repr__(self) -> str:  # pytest-benchmark saves the timer's name
        return "pytest_llmserve.replay_timer"


REPLAY = ReplayTimer()


def record(benchmark: Any, measured: Measured) -> None:
    """Store ``measured`` in the test's pytest-benchmark entry (E2E seconds per request)."""
    samples = measured.e2e_samples()
    benchmark.extra_info.update(
        {"llmserve_run": measured.label, "llmserve_samples": "e2e_s per request",
         **measured.metrics.to_dict()}
    )  # fmt: skip
    if measured.telemetry is not None:
        benchmark.extra_info["gpu"] = measured.telemetry.to_dict()
    if not samples:
        return
    REPLAY.load(samples)
    try:
        benchmark.pedantic(lambda: None, rounds=len(samples), iterations=1)
    finally:
        REPLAY.clear()
