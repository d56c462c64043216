"""Every timing figure we report, checked against a server whose timing is known.

The metronome (``tests/stubs/metronome.py``) writes each chunk on a seeded plan and
stamps every request's arrival (the kernel's receive time) and every write with the
clock the client stamps with. Its stamps, put into ``RequestRecord``s, are the
truth: the same definitions (``measure.latency``) applied to them give each figure
as the server produced it, so the difference is our measurement's own error
(transport, parsing, the first-chunk rule, connection handling, the window), never
a definition (those are tested on hand-made records in ``test_latency.py``).

Tolerance, from what a client on the same host can and cannot see:

- The client sees a chunk only after it was written and the server sees a request
  only after it was sent, so every per-event error is a delay, never an advance:
  asserted per request.
- Central figures (means, medians) and rates: 1% of the true value or 1 ms per
  delivery the figure spans, whichever is larger: TTFT and E2E span two (the
  request out, a chunk back), so 2 ms; ITL and TPOT one. (0.5 ms a delivery held on a
  quiet machine; at 16 streams on 2 busy cores the median TTFT was seen 1.2 and
  1.3 ms off the truth, with median delivery delays of 0.2 ms.) A systematic delay in
  how we stamp, parse, connect or cut the window shows here: a TTFT taken from
  the chat stream's role-only chunk would be 40 ms early; connecting inside the
  timed request cost the first wave at c=16 about 5 ms each (found here, fixed:
  ``run_load`` opens a run's connections first).
- A case whose figures are off gets a second, fresh run, and fails only when both are
  off: a scheduler stall can land on the few requests around a median of 16 once
  (seen in a CI rehearsal, live servers busy beside it), a systematic error every time.
- Tails (p99s) are not asserted here: ours and the truth pair
  request by request, so a p99 can differ by at most the worst single request's
  delay, and on a shared 2-core machine that is the OS scheduler's (up to 9 ms
  seen with a model build on both cores). Their agreement on a quiet machine is
  measured by ``benchmarks/timing_truth.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

import pytest

from pytest_llmserve.client import dialects
from pytest_llmserve.client.dialects import Prompt
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.load.records import LoadRun
from pytest_llmserve.load.runner import Schedule, run_sync
from pytest_llmserve.measure.latency import SLO, RunMetrics, run_metrics, ttft
from tests.stubs.metronome import MODEL, Tempo, beats, metronome, request_key, truth_run

TOLERANCE = 0.01
FLOOR_S = 0.001
OUTPUT_TOKENS = 24
TEMPO = Tempo(ttft_s=0.04, itl_s=0.008, jitter=0.3, seed=7, slow_share=0.3)


@dataclass(frozen=True)
class Case:
    dialect: str
    schedule: Schedule
    tempo: Tempo = TEMPO

    @property
    def id(self) -> str:
        chunks = f"-chunks{self.tempo.chunk_tokens}" if self.tempo.chunk_tokens > 1 else ""
        return f"{self.dialect}-{self.schedule.label}{chunks}".replace(" ", "")


CASES = [
    Case("openai-completions", Schedule(16, concurrency=1, warmup=1)),
    Case("openai-completions", Schedule(64, concurrency=16, warmup=4)),
    Case("openai-completions", Schedule(48, rate_rps=40.0, warmup=2)),
    Case(
        "openai-completions",
        Schedule(64, concurrency=16, warmup=4),
        Tempo(0.04, 0.012, chunk_tokens=3, jitter=0.3, seed=7, slow_share=0.3),
    ),
    Case("openai-chat", Schedule(16, concurrency=1, warmup=1)),
    Case("openai-chat", Schedule(64, concurrency=16, warmup=4)),
    Case("tgi-generate", Schedule(16, concurrency=1, warmup=1)),
    Case("tgi-generate", Schedule(64, concurrency=16, warmup=4)),
]


@pytest.fixture(scope="module")
def metronomes() -> Iterator[dict[Tempo, str]]:
    """One metronome per tempo the cases use, each in its own process."""
    tempos = sorted({c.tempo for c in CASES}, key=lambda t: t.chunk_tokens)
    with metronome(tempos[0]) as one, metronome(tempos[1]) as three:
        yield {tempos[0]: one, tempos[1]: three}


def slo_in_the_gap(truth: LoadRun) -> SLO:
    """A TTFT bound in the widest gap between true TTFTs (the metronome queues a share
    of requests, so there is one between its fast and slow ones), so goodput's count
    is decided by the truth, not by which side of a bound a delivery delay lands."""
    values = sorted(v for r in truth.measured if (v := ttft(r)) is not None)
    a, b = max(pairwise(values), key=lambda ab: ab[1] - ab[0])
    return SLO(ttft_s=(a + b) / 2)


def figures(m: RunMetrics, slo: SLO) -> dict[str, float | None]:
    """The figures asserted: every central one and every rate (tails: the docstring)."""
    out: dict[str, float | None] = {
        f"{s.name} {stat}": s.point(stat)
        for s in (m.ttft, m.tpot, m.itl, m.e2e)
        for stat in ("mean", "p50")
    }
    out["output tok/s"] = m.output_throughput.point
    out["total tok/s"] = m.total_throughput.point
    out["req/s"] = m.request_throughput.point
    out["goodput"] = m.goodput(slo).point
    return out


def _one_run(case: Case, url: str, tag: str) -> tuple[list[str], str | None]:
    """One run of ``case`` against the metronome: its request keys, and how its figures
    are off the truth (None: every one within tolerance). What can never happen (an
    event seen before it happened, a lost request) fails at once."""
    n = case.schedule.warmup + case.schedule.requests
    texts = [f"{tag} request {i} of {n}" for i in range(n)]
    prompts = [Prompt(t, len(t.split()), OUTPUT_TOKENS) for t in texts]
    dialect = dialects.get(case.dialect)
    keys = [request_key(*dialect.request(MODEL, p)) for p in prompts]

    run = run_sync(Endpoint(url, MODEL, VLLM()), prompts, case.schedule, dialect=case.dialect)
    truth = truth_run(run, keys, beats(url))

    ours, real = run_metrics(run, resamples=0), run_metrics(truth, resamples=0)
    assert (ours.completed, ours.failed) == (case.schedule.requests, 0), ours.notes
    assert ours.output_tokens == case.schedule.requests * OUTPUT_TOKENS
    # Per request: never a chunk seen before it was written, nor a request received
    # before it was sent; what remains is each event's delivery delay.
    delays = []
    for r in run.measured:
        t = truth.records[r.index]
        assert t.last_byte_at is not None
        assert r.last_byte_at is not None
        delays += [t.sent_at - r.sent_at, r.last_byte_at - t.last_byte_at]
        delays += [a - b for a, b in zip(r.chunk_times, t.chunk_times, strict=True)]
        assert min(delays) >= 0, f"request {r.index}: an event seen before it happened"
    delays.sort()

    slo = slo_in_the_gap(truth)
    assert 0 < real.goodput(slo).total < case.schedule.requests, "the SLO splits the requests"
    got, want = figures(ours, slo), figures(real, slo)
    spans = {"ttft": 2, "e2e": 2}  # deliveries a figure spans: the request out, a chunk back
    off = {
        name: f"ours {got[name]:.6g}, truth {value:.6g}"
        for name, value in want.items()
        if value is not None
        and (
            got[name] is None
            or abs(got[name] - value)
            > max(TOLERANCE * value, FLOOR_S * spans.get(name.split()[0], 1))
        )
    }
    if off:
        return keys, (
            f"{case.id}: figures off the metronome's truth (delivery delays: median "
            f"{delays[len(delays) // 2] * 1e3:.3f} ms, worst {delays[-1] * 1e3:.3f} ms): {off}"
        )
    return keys, None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_figure_matches_the_metronome(case: Case, metronomes: dict[Tempo, str]) -> None:
    url = metronomes[case.tempo]
    # A second, fresh run where the first is off: the OS scheduler can delay the few
    # requests around a median of 16 by 2 ms on 2 busy cores (a CI rehearsal's live
    # tests beside it: TTFT p50 2.0 ms off, median delivery delay 0.26 ms), once; a
    # systematic error in how we stamp, parse or connect is off in both runs.
    misses = []
    for attempt in (1, 2):
        keys, miss = _one_run(case, url, f"{case.id} run {attempt}")
        if miss is None:
            break
        misses.append(f"run {attempt}: {miss}")
    assert len(misses) < 2, "; ".join(misses)

    # The truth is what the metronome did; how far that strayed from its plan (asyncio
    # wakes up to a millisecond late) only says the tempo was roughly kept.
    served = {b["key"]: b for b in beats(url)}
    late = sorted(
        served[k]["writes"][0] - served[k]["arrived"] - served[k]["planned_ttft_s"] for k in keys
    )
    median = late[len(late) // 2]
    assert 0 <= median < 0.003, f"median TTFT lateness {median:.4f} s"
