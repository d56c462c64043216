"""When a load run cannot support a verdict, and the replaying timer behind benchmark entries."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_llmserve.checklist.benchmark import REPLAY, ReplayTimer, record
from pytest_llmserve.checklist.gate import Verdict
from pytest_llmserve.checklist.performance import Measured, PerfHarness, with_doubts
from pytest_llmserve.frameworks.base import Tokens
from pytest_llmserve.frameworks.tgi import TGI
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.load.records import LoadRun, RequestRecord
from pytest_llmserve.load.runner import Schedule
from pytest_llmserve.measure.latency import run_metrics
from pytest_llmserve.profile.checks import Workload

ITL_S = 0.02


def request(index: int, tokens: int = 5, usage: int | None = None, ok: bool = True,
            warmup: bool = False) -> RequestRecord:  # fmt: skip
    """A streamed request sent at index x 0.1 s: TTFT 0.1 s, then a chunk every ITL_S."""
    sent = index * 0.1
    chunks = [sent + 0.1 + k * ITL_S for k in range(tokens)]
    r = RequestRecord(index=index, sent_at=sent, prompt_tokens_sent=16, max_tokens=tokens,
                      warmup=warmup)  # fmt: skip
    if not ok:
        r.status, r.error, r.last_byte_at = 500, "HTTP 500: engine dead", sent + 0.05
        return r
    r.status = 200
    r.first_token_at = chunks[0]
    r.chunk_times = chunks
    r.chunk_tokens = [1] * tokens
    r.last_byte_at = chunks[-1] + 0.001
    r.usage_prompt_tokens = 16
    r.usage_output_tokens = tokens if usage is None else usage
    return r


def measured(records: list[RequestRecord], lag_s: float = 0.0) -> Measured:
    timed = [r for r in records if not r.warmup]
    run = LoadRun(
        records=records,
        started_at=min(r.sent_at for r in timed),
        ended_at=max(r.last_byte_at or r.sent_at for r in timed),
        concurrency=4,
        max_loop_lag_s=lag_s,
    )
    return Measured("t c=4", run, run_metrics(run, resamples=50))


def clean(n: int = 10, lag_s: float = 0.0) -> Measured:
    return measured([request(i) for i in range(n)], lag_s)


def verdict(outcome: Any) -> Verdict:
    return Verdict(outcome=outcome, reason=f"output_throughput: {outcome} vs 100 tok/s",
                   metric="output_throughput", bound=100.0, point=120.0,
                   interval=(110.0, 130.0), n=10)  # fmt: skip


# --- with_doubts ---------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["pass", "fail", "inconclusive"])
def test_a_clean_run_leaves_the_verdict_alone(outcome: str) -> None:
    v = verdict(outcome)
    assert with_doubts(v, clean()) is v


@pytest.mark.parametrize("outcome", ["pass", "fail"])
def test_a_failed_request_makes_pass_and_fail_inconclusive(outcome: str) -> None:
    run = measured([request(i, ok=i != 3) for i in range(10)])
    assert run.metrics.failed == 1
    v = with_doubts(verdict(outcome), run)
    assert v.outcome == "inconclusive"
    assert v.reason.startswith(f"output_throughput: {outcome} vs 100 tok/s; ")
    assert "1 of 10 requests failed" in v.reason
    # the figures behind the verdict are kept
    assert (v.metric, v.bound, v.point, v.interval, v.n) == (
        "output_throughput", 100.0, 120.0, (110.0, 130.0), 10)  # fmt: skip


@pytest.mark.parametrize("outcome", ["pass", "fail"])
def test_token_disagreement_over_one_percent_makes_pass_and_fail_inconclusive(
    outcome: str,
) -> None:
    # one request's server usage says 10 tokens where the client counted 5: 5 / 55 = 9.1%
    run = measured([request(i, usage=10 if i == 0 else None) for i in range(10)])
    assert run.metrics.token_disagreement_flagged
    v = with_doubts(verdict(outcome), run)
    assert v.outcome == "inconclusive"
    assert "disagree by 9.1% (> 1%)" in v.reason


def test_token_disagreement_within_one_percent_is_tolerated() -> None:
    # 100 requests of 5 tokens; one is off by 4: 4 / 504 = 0.8%
    run = measured([request(i, usage=9 if i == 0 else None) for i in range(100)])
    assert run.metrics.token_disagreement == pytest.approx(4 / 504)
    v = verdict("pass")
    assert with_doubts(v, run) is v


def test_client_lag_over_median_itl_makes_a_fail_inconclusive() -> None:
    run = clean(lag_s=0.05)
    assert run.metrics.itl.p50 == pytest.approx(ITL_S)
    v = with_doubts(verdict("fail"), run)
    assert v.outcome == "inconclusive"
    assert "the client's event loop lagged 50 ms (> median ITL)" in v.reason


def test_client_lag_never_spoils_a_pass() -> None:
    # lag can only make the server look slower, so a pass despite it still stands
    v = verdict("pass")
    assert with_doubts(v, clean(lag_s=0.05)) is v


def test_client_lag_under_median_itl_leaves_a_fail_alone() -> None:
    v = verdict("fail")
    assert with_doubts(v, clean(lag_s=0.01)) is v


def test_an_inconclusive_verdict_stays_as_it_was() -> None:
    v = verdict("inconclusive")
    doubtful = measured([request(i, ok=i > 0) for i in range(10)], lag_s=0.05)
    assert with_doubts(v, doubtful) is v


def test_doubts_from_every_run_behind_a_verdict_are_named() -> None:
    failing = measured([request(i, ok=i > 1) for i in range(10)])
    lagging = clean(lag_s=0.05)
    v = with_doubts(verdict("fail"), clean(), failing, lagging)
    assert v.outcome == "inconclusive"
    assert "2 of 10 requests failed" in v.reason
    assert "lagged 50 ms" in v.reason
    assert with_doubts(verdict("pass"), clean(), lagging).outcome == "pass"


def test_e2e_samples_are_the_measured_successful_requests() -> None:
    records = [request(0, warmup=True), request(1), request(2, ok=False), request(3, tokens=3)]
    samples = measured(records).e2e_samples()
    assert samples == pytest.approx([0.1 + 4 * ITL_S + 0.001, 0.1 + 2 * ITL_S + 0.001])


# --- ReplayTimer ---------------------------------------------------------------------------


def test_idle_replay_timer_is_a_monotonic_clock() -> None:
    timer = ReplayTimer()
    before = time.perf_counter()
    readings = [timer() for _ in range(1000)]
    after = time.perf_counter()
    assert readings == sorted(readings)
    assert before <= readings[0]
    assert readings[-1] <= after
    time.sleep(0.002)
    assert timer() > readings[-1]


def test_loaded_replay_timer_returns_zero_then_each_duration_then_is_a_clock_again() -> None:
    timer = ReplayTimer()
    timer.load([0.25, 1.5])
    assert [timer(), timer(), timer(), timer()] == [0.0, 0.25, 0.0, 1.5]
    before = time.perf_counter()
    assert timer() >= before


def test_loading_again_replaces_what_was_left() -> None:
    timer = ReplayTimer()
    timer.load([9.0, 9.0])
    timer()
    timer.load([0.5])
    assert [timer(), timer()] == [0.0, 0.5]


def test_clear_empties_the_replay_timer() -> None:
    timer = ReplayTimer()
    timer.load([0.25, 1.5])
    timer.clear()
    before = time.perf_counter()
    assert timer() >= before


class FakeBenchmark:
    """Times each round as pytest-benchmark's pedantic mode does: end - start of its timer."""

    def __init__(self) -> None:
        self.extra_info: dict[str, Any] = {}
        self.rounds: list[float] = []

    def pedantic(self, target: Any, rounds: int, iterations: int) -> None:
        assert iterations == 1
        for _ in range(rounds):
            start = REPLAY()
            target()
            self.rounds.append(REPLAY() - start)


def test_record_replays_each_e2e_sample_as_one_round_and_clears_the_timer() -> None:
    run = measured([request(0), request(1, tokens=3), request(2, ok=False)])
    bench = FakeBenchmark()
    record(bench, run)
    assert bench.rounds == pytest.approx(run.e2e_samples())
    assert bench.extra_info["llmserve_run"] == "t c=4"
    assert bench.extra_info["failed"] == 1
    before = time.perf_counter()
    assert REPLAY() >= before  # nothing left queued for the next test


def test_a_verdict_names_the_look_its_sequential_run_was_decided_on() -> None:
    from pytest_llmserve.checklist.performance import Gate
    from pytest_llmserve.measure.sequential import plan

    m = clean()
    m.plan = plan(160)
    m.run.look = 96
    m.gates = (Gate("throughput", lambda metrics: verdict("pass"), lambda level: 96),)
    (judged,) = m.verdicts("throughput")
    assert judged.outcome == "pass"
    assert "(look 1 of 2: 96 of 160 requests, each look at 97.5%" in judged.reason
    assert m.verdicts("latency") == []


def test_a_one_look_run_says_nothing_of_looks() -> None:
    from pytest_llmserve.measure.sequential import plan

    m = clean()
    m.plan = plan(160, "fixed")
    assert m.sampling is None
    assert with_doubts(verdict("pass"), m).reason == verdict("pass").reason


def test_each_run_shape_sends_prompts_of_its_own() -> None:
    """A run must not find another run's prompts in the server's prefix cache, and the
    same shape gets the same prompts every session (and on every target)."""
    server = SimpleNamespace(framework=VLLM())
    harness = PerfHarness(server=server, _corpus=("", Tokens(tuple(range(5000)))))  # type: ignore[arg-type]
    workload = Workload(input_tokens=32, output_tokens=8)
    throughput = harness.prompts(workload, 20, run="c=16 in=32 out=8 n=160")
    latency = harness.prompts(workload, 20, 4, run="c=4 in=32 out=4 n=500")
    again = harness.prompts(workload, 20, run="c=16 in=32 out=8 n=160")
    assert [p.prompt for p in throughput] == [p.prompt for p in again]
    shared = {tuple(p.prompt[:16]) for p in throughput} & {tuple(p.prompt[:16]) for p in latency}
    assert not shared, "two runs share a 16-token prefix"


def test_a_framework_taking_text_only_is_sent_the_text_of_the_tokens_or_nothing() -> None:
    """TGI takes text only: synthetic prompts go as the text their tokens span; without
    spans to cut the text by, the workload is not measurable, never sent as a guess."""
    text = " ".join(f"w{i}" for i in range(400))
    spans, at = [], 0
    for word in text.split(" "):
        spans.append((at, at + len(word)))
        at += len(word) + 1
    tokens = Tokens(tuple(range(1000, 1400)), tuple(spans))
    harness = PerfHarness(server=SimpleNamespace(framework=TGI()), _corpus=(text, tokens))  # type: ignore[arg-type]
    workload = Workload(input_tokens=8, output_tokens=4)
    assert harness.not_measurable(workload) is None
    for p in harness.prompts(workload, 10, run="c=4"):
        assert isinstance(p.prompt, str)
        assert len(p.prompt.split()) == p.prompt_tokens == 8
        assert p.prompt.strip() in text
    harness = PerfHarness(
        server=SimpleNamespace(framework=TGI()), _corpus=(text, Tokens(tokens.ids))
    )  # type: ignore[arg-type]
    why = harness.not_measurable(workload)
    assert why is not None
    assert "tgi takes text prompts only, and its tokenizer says not where" in why


def test_a_run_of_the_same_shape_with_as_many_requests_serves_a_check() -> None:
    """Runs are keyed by load shape: the scaling check's high end (or a sweep level)
    reads the throughput run when that was planned with at least as many requests."""
    harness = PerfHarness(server=None)  # type: ignore[arg-type]
    workload = Workload(input_tokens=32, output_tokens=8)
    throughput = clean()
    harness._runs[(workload, Schedule(160, concurrency=16, warmup=8), None)] = throughput
    assert harness.run(workload, Schedule(160, concurrency=16, warmup=4)) is throughput
    assert harness.run(workload, Schedule(100, concurrency=16)) is throughput
    for other in [
        (workload, Schedule(200, concurrency=16), None),  # more requests than it planned
        (workload, Schedule(100, concurrency=8), None),
        (workload, Schedule(100, rate_rps=16.0), None),
        (workload, Schedule(100, concurrency=16), 4),  # other output lengths
        (Workload(input_tokens=64, output_tokens=8), Schedule(100, concurrency=16), None),
    ]:
        assert harness._cached(*other) is None, other
    assert harness.has_run(workload, Schedule(100, concurrency=16))
